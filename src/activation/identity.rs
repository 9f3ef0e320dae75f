//! Which model a map belongs to: a sha256 of the weights, so a map is never applied to a model
//! it was not fitted on, whatever the files are called or wherever they live.
//!
//! * A single file (GGUF): the sha256 of the file itself — for the default model, the same
//!   checksum `cargo xtask fetch-model` verifies.
//! * A Hugging Face folder: the sha256 over, for each `*.safetensors` file in name order, its
//!   name, its length and its own sha256. Config and tokenizer are not weights.
//!
//! Hashing 100 MB takes a few tenths of a second, so each file's digest is remembered for the
//! life of the process, keyed by path, length and modification time.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::corpus::hex;
use super::error::{MapError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIdentity {
    /// Hex sha256, as described in the [module docs](self).
    pub sha256: String,
    /// A readable name for messages: the file name, the folder name, or `ORG/NAME` for a
    /// Hugging Face cache snapshot.
    pub name: String,
}

/// Identify the model at `path` (a GGUF file or a Hugging Face folder).
pub fn identify(path: &Path) -> Result<ModelIdentity> {
    let sha256 = if path.is_dir() {
        let files = weight_files(path)?;
        let mut hasher = Sha256::new();
        for file in &files {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            hasher.update(name.unwrap_or_default().as_bytes());
            hasher.update([0]);
            hasher.update(file_len(file)?.to_le_bytes());
            hasher.update(file_digest(file)?);
        }
        hex(&hasher.finalize())
    } else {
        hex(&file_digest(path)?)
    };
    Ok(ModelIdentity {
        sha256,
        name: display_name(path),
    })
}

/// The `*.safetensors` files directly in `folder`, sorted by name.
fn weight_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let io = |e: std::io::Error| MapError::Io {
        path: folder.to_path_buf(),
        message: e.to_string(),
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(folder).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "safetensors") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(MapError::Io {
            path: folder.to_path_buf(),
            message: "no *.safetensors weights in the folder".to_owned(),
        });
    }
    Ok(files)
}

fn display_name(path: &Path) -> String {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    // .../models--ORG--NAME/snapshots/<commit>
    let repo = path
        .parent()
        .filter(|p| name(p).as_deref() == Some("snapshots"))
        .and_then(Path::parent)
        .and_then(name)
        .and_then(|n| n.strip_prefix("models--").map(|n| n.replace("--", "/")));
    repo.or_else(|| name(path))
        .unwrap_or_else(|| path.display().to_string())
}

fn file_len(path: &Path) -> Result<u64> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| MapError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

type Memo = Mutex<HashMap<PathBuf, (u64, Option<SystemTime>, [u8; 32])>>;

fn memo() -> &'static Memo {
    static MEMO: OnceLock<Memo> = OnceLock::new();
    MEMO.get_or_init(Memo::default)
}

/// sha256 of a file's bytes, remembered while its length and modification time stay the same.
fn file_digest(path: &Path) -> Result<[u8; 32]> {
    let io = |e: std::io::Error| MapError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let metadata = fs::metadata(path).map_err(io)?;
    let key = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let stamp = (metadata.len(), metadata.modified().ok());
    if let Ok(memo) = memo().lock()
        && let Some(&(len, modified, digest)) = memo.get(&key)
        && (len, modified) == stamp
    {
        return Ok(digest);
    }
    let mut file = fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    let digest: [u8; 32] = hasher.finalize().into();
    if let Ok(mut memo) = memo().lock() {
        memo.insert(key, (stamp.0, stamp.1, digest));
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_folders_hash_their_weights_only() {
        let root = std::env::temp_dir().join(format!("lc-identity-{}", std::process::id()));
        let snapshot = root.join("models--org--tiny/snapshots/abc");
        fs::create_dir_all(&snapshot).unwrap();
        let weights = snapshot.join("model.safetensors");
        fs::write(&weights, b"weights").unwrap();
        fs::write(snapshot.join("config.json"), b"{}").unwrap();
        let file = identify(&weights).unwrap();
        // sha256("weights")
        assert_eq!(
            file.sha256,
            "9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c"
        );
        assert_eq!(file.name, "model.safetensors");
        let folder = identify(&snapshot).unwrap();
        assert_eq!(folder.name, "org/tiny");
        assert_ne!(folder.sha256, file.sha256);
        // The config is not part of the identity; the weights are.
        fs::write(snapshot.join("config.json"), b"{\"x\":1}").unwrap();
        assert_eq!(identify(&snapshot).unwrap().sha256, folder.sha256);
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&weights, b"other weights").unwrap();
        assert_ne!(identify(&snapshot).unwrap().sha256, folder.sha256);
        assert!(identify(&root.join("missing")).is_err());
        let _ = fs::remove_dir_all(&root);
    }
}
