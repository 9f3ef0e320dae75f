//! Where models are found: an explicit path, the user data dir (where `cargo xtask fetch-model`
//! puts the default model) and the Hugging Face cache. Discovery only reads headers and
//! `config.json`; loading is the worker's job.

use std::fs;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;

use super::error::{LlmError, Result};

/// File name of the embedded default model, SmolLM2-135M-Instruct quantized to Q4_1.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// `$XDG_DATA_HOME/latent-choir/models`, by default `~/.local/share/latent-choir/models`.
pub fn models_dir() -> Option<PathBuf> {
    let data =
        env_dir("XDG_DATA_HOME").or_else(|| env_dir("HOME").map(|h| h.join(".local/share")))?;
    Some(data.join("latent-choir/models"))
}

/// `$HF_HOME/hub`, by default `~/.cache/huggingface/hub`.
pub fn hf_cache_dir() -> Option<PathBuf> {
    env_dir("HF_HOME")
        .or_else(|| env_dir("HOME").map(|h| h.join(".cache/huggingface")))
        .map(|dir| dir.join("hub"))
}

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

pub fn default_model_path() -> Option<PathBuf> {
    models_dir().map(|dir| dir.join(DEFAULT_MODEL_FILE))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    Gguf,
    /// A Hugging Face folder: `config.json`, `*.safetensors`, `tokenizer.json`.
    HfFolder,
}

/// A model discovery found, described from its header or `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundModel {
    pub path: PathBuf,
    pub format: ModelFormat,
    pub architecture: String,
    pub n_layers: usize,
    pub width: usize,
    /// Bytes of weights on disk.
    pub size: u64,
    /// Weight format: a GGUF quantisation such as `Q4_1`, or the safetensors dtype.
    pub dtype: String,
}

/// Every model on this machine, the default model first. Unreadable candidates are skipped.
pub fn discover() -> Vec<FoundModel> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(default) = default_model_path().filter(|p| p.exists()) {
        candidates.push(default);
    }
    if let Some(dir) = models_dir() {
        candidates.extend(sorted_entries(&dir));
    }
    if let Some(hub) = hf_cache_dir() {
        for repo in sorted_entries(&hub) {
            let is_model = repo
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("models--"));
            if is_model {
                candidates.extend(latest_snapshot(&repo));
            }
        }
    }
    let mut found: Vec<FoundModel> = Vec::new();
    for path in candidates {
        if found.iter().any(|f| f.path == path) {
            continue;
        }
        if let Ok(model) = describe(&path) {
            found.push(model);
        }
    }
    found
}

/// The model to load: `explicit` if given (a GGUF file, a Hugging Face folder, or a cache
/// `models--ORG--NAME` folder), else the default model.
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf> {
    match explicit {
        Some(path) if !path.exists() => Err(LlmError::NotFound(path.to_path_buf())),
        Some(path) if path.is_dir() && !path.join("config.json").exists() => latest_snapshot(path)
            .ok_or_else(|| LlmError::Corrupt {
                path: path.to_path_buf(),
                message: "no config.json here, and no snapshots/*/config.json below".to_owned(),
            }),
        Some(path) => Ok(path.to_path_buf()),
        None => default_model_path().filter(|p| p.exists()).ok_or_else(|| {
            LlmError::NotFound(
                default_model_path().unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_FILE)),
            )
        }),
    }
}

/// Read what kind of model `path` holds without loading its weights.
pub fn describe(path: &Path) -> Result<FoundModel> {
    if path.is_dir() {
        describe_folder(path)
    } else {
        describe_gguf(path)
    }
}

fn describe_gguf(path: &Path) -> Result<FoundModel> {
    let corrupt = |message: String| LlmError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let mut file = fs::File::open(path).map_err(|e| io_error(path, e))?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| corrupt(e.to_string()))?;
    let get = |key: &str| content.metadata.get(key);
    let architecture = get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| corrupt("no general.architecture".to_owned()))?;
    let number = |key: &str| {
        get(&format!("{architecture}.{key}"))
            .and_then(|v| v.to_u32().ok())
            .unwrap_or(0) as usize
    };
    let dtype = content
        .tensor_infos
        .get("blk.0.attn_q.weight")
        .map(|t| format!("{:?}", t.ggml_dtype))
        .unwrap_or_else(|| "unknown".to_owned());
    Ok(FoundModel {
        path: path.to_path_buf(),
        format: ModelFormat::Gguf,
        n_layers: number("block_count"),
        width: number("embedding_length"),
        architecture,
        size: fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        dtype,
    })
}

fn describe_folder(path: &Path) -> Result<FoundModel> {
    let config_path = path.join("config.json");
    let text = fs::read_to_string(&config_path).map_err(|e| io_error(&config_path, e))?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| LlmError::Corrupt {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    let number = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| config.get(*k).and_then(|v| v.as_u64()))
            .unwrap_or(0) as usize
    };
    let weights: Vec<PathBuf> = sorted_entries(path)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    if weights.is_empty() {
        return Err(LlmError::Corrupt {
            path: path.to_path_buf(),
            message: "no *.safetensors weights in the folder".to_owned(),
        });
    }
    Ok(FoundModel {
        path: path.to_path_buf(),
        format: ModelFormat::HfFolder,
        architecture: config
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_owned(),
        n_layers: number(&["num_hidden_layers", "n_layer"]),
        width: number(&["hidden_size", "n_embd"]),
        size: weights
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum(),
        dtype: config
            .get("torch_dtype")
            .or_else(|| config.get("dtype"))
            .and_then(|v| v.as_str())
            .unwrap_or("float32")
            .to_owned(),
    })
}

/// The most recently modified `snapshots/*/` of a Hugging Face cache repo that has a
/// `config.json`.
fn latest_snapshot(repo: &Path) -> Option<PathBuf> {
    sorted_entries(&repo.join("snapshots"))
        .into_iter()
        .filter(|snapshot| snapshot.join("config.json").exists())
        .max_by_key(|snapshot| fs::metadata(snapshot).and_then(|m| m.modified()).ok())
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map(|read| read.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

fn io_error(path: &Path, err: std::io::Error) -> LlmError {
    match err.kind() {
        std::io::ErrorKind::NotFound => LlmError::NotFound(path.to_path_buf()),
        _ => LlmError::Io {
            path: path.to_path_buf(),
            message: err.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_finds_the_latest_snapshot_of_a_cache_repo() {
        let root = std::env::temp_dir().join(format!("lc-discovery-{}", std::process::id()));
        let snapshot = root.join("models--org--tiny/snapshots/abc123");
        fs::create_dir_all(&snapshot).expect("create snapshot");
        fs::write(
            snapshot.join("config.json"),
            r#"{"model_type":"gpt2","n_layer":2,"n_embd":8}"#,
        )
        .expect("write config");
        assert_eq!(
            resolve(Some(&root.join("models--org--tiny"))).ok(),
            Some(snapshot.clone())
        );
        assert!(
            matches!(describe(&snapshot), Err(LlmError::Corrupt { .. })),
            "no weights yet"
        );
        fs::write(snapshot.join("model.safetensors"), b"x").expect("write weights");
        let found = describe(&snapshot).expect("describe");
        assert_eq!(
            (found.architecture.as_str(), found.n_layers, found.width),
            ("gpt2", 2, 8)
        );
        assert!(matches!(
            resolve(Some(&root.join("missing"))),
            Err(LlmError::NotFound(_))
        ));
        let _ = fs::remove_dir_all(&root);
    }
}
