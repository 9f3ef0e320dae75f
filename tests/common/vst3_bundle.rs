//! A `.vst3` bundle made from this run's cdylib, for tests that load the plugin through
//! `vst3-host` as a DAW would (Linux layout).

use std::fs;
use std::path::PathBuf;

use vst3_host::{Plugin, Vst3Host};

pub const PLUGIN_NAME: &str = "Latent Choir";
pub const SAMPLE_RATE: f64 = 48_000.0;
pub const BLOCK_SIZE: usize = 512;

/// A bundle in a private scratch folder under `target/`, removed on drop.
pub struct Bundle {
    /// The folder a host would be told to scan; also holds scratch files such as presets.
    pub root: PathBuf,
    /// `<root>/Latent Choir.vst3`, what a host loads.
    pub path: PathBuf,
}

impl Bundle {
    /// `Latent Choir.vst3/Contents/<arch>-linux/Latent Choir.so`, as nice-plug-xtask lays it out.
    pub fn fresh(test_name: &str) -> Self {
        let root = super::paths::target_dir()
            .join("vst3-test-bundles")
            .join(format!("{test_name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let path = root.join(format!("{PLUGIN_NAME}.vst3"));
        let binary_dir = path
            .join("Contents")
            .join(format!("{}-linux", std::env::consts::ARCH));
        fs::create_dir_all(&binary_dir).expect("create the bundle folders");
        let library = super::paths::plugin_library();
        let inside = binary_dir.join(format!("{PLUGIN_NAME}.so"));
        if fs::hard_link(&library, &inside).is_err() {
            fs::copy(&library, &inside).expect("copy the cdylib into the bundle");
        }
        Self { root, path }
    }

    pub fn scratch_file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// A new instance, loaded in-process at the test rate and block size.
    pub fn load(&self) -> Plugin {
        let mut host = Vst3Host::builder()
            .sample_rate(SAMPLE_RATE)
            .block_size(BLOCK_SIZE)
            .build()
            .expect("configure the VST3 host");
        host.load_plugin(&self.path)
            .unwrap_or_else(|e| panic!("load {}: {e}", self.path.display()))
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}
