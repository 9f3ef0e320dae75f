//! The factory presets as VST3 preset files beside the bundles, in
//! `target/bundled/presets/<vendor>/<plugin>/`, the layout of `~/.vst3/presets/` that VST3 hosts
//! read. The plugin's own code renders them (`examples/vst3_presets.rs`), so the files hold
//! exactly the state the plugin's `setState` takes; CLAP hosts find the same presets inside the
//! plugin instead.

use std::path::Path;

/// The plugin's vendor, the first folder under the preset root.
pub const VENDOR: &str = "Latent Choir";

/// Replaces `<bundled>/presets` with freshly written presets. `bundle_args` are the arguments
/// the bundles were built with (`--release`, `--features ...`), so the example reuses that build
/// of the library rather than building another.
pub fn write(bundled: &Path, bundle_args: &[&str]) -> Result<(), String> {
    let root = bundled.join("presets");
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .map_err(|err| format!("cannot clear {}: {err}", root.display()))?;
    }
    let root_text = root.to_string_lossy();
    let mut args = vec![
        "run",
        "--quiet",
        "-p",
        super::PACKAGE,
        "--example",
        "vst3_presets",
    ];
    args.extend_from_slice(bundle_args);
    args.extend_from_slice(&["--", &root_text]);
    super::cargo(&args).map_err(|err| format!("writing the VST3 factory presets failed: {err}"))?;
    println!("Wrote the VST3 factory presets to {}", root.display());
    Ok(())
}
