//! Writes the factory presets as `.vstpreset` files under a VST3 preset root, into
//! `<root>/Latent Choir/Latent Choir/`. `cargo xtask bundle` runs it for
//! `target/bundled/presets`; it is an example so that the plugin's own code renders the files.
//!
//! Usage: `cargo run --example vst3_presets -- <preset root>`

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(root) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: vst3_presets <preset root, e.g. ~/.vst3/presets>");
        return ExitCode::FAILURE;
    };
    match latent_choir::vst3_export::write_factory_presets(&root) {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
