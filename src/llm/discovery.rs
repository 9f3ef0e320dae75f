//! Where models are found: an explicit path, the user data dir (where `cargo xtask fetch-model`
//! puts the default model) and the Hugging Face cache. Discovery only reads headers,
//! `config.json` and the tokenizer; loading the weights is the worker's job. What will not load
//! says why (`FoundModel::problem`), in the words `latent-choir models` prints.

use std::fs;
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, gguf_file};

use super::arch::{GGUF_ARCHITECTURES, SAFETENSORS_MODEL_TYPES};
use super::error::{LlmError, Result};
use super::tokenizer::Tokenizer;

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
    /// The family: GGUF `general.architecture` or `config.json` `model_type`; "?" when the
    /// file could not be read.
    pub architecture: String,
    pub n_layers: usize,
    pub width: usize,
    /// Bytes of weights on disk.
    pub size: u64,
    /// Weight format: a GGUF quantisation summary such as `Q4_K (+Q6_K)` (the tensor type
    /// holding most weights, then the others), or the safetensors dtypes (`BF16`).
    pub dtype: String,
    /// Why it will not load (unknown architecture, unsupported tokenizer, truncated file...);
    /// `None` when it should.
    pub problem: Option<String>,
}

/// Every loadable model on this machine, the default model first. Candidates that will not
/// load are left out ([`discover_all`] keeps them, with the reason).
pub fn discover() -> Vec<FoundModel> {
    discover_all()
        .into_iter()
        .filter(|model| model.problem.is_none())
        .collect()
}

/// Every candidate in the models folder and the Hugging Face cache, the default model first;
/// those that will not load say why in [`FoundModel::problem`].
pub fn discover_all() -> Vec<FoundModel> {
    let mut candidates: Vec<(PathBuf, ModelFormat)> = Vec::new();
    if let Some(default) = default_model_path().filter(|p| p.exists()) {
        candidates.push((default, ModelFormat::Gguf));
    }
    if let Some(dir) = models_dir() {
        candidates.extend(sorted_entries(&dir).into_iter().filter_map(candidate));
    }
    if let Some(hub) = hf_cache_dir() {
        for repo in sorted_entries(&hub) {
            let is_model = repo
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("models--"));
            if is_model {
                candidates.extend(cache_candidates(&repo));
            }
        }
    }
    let mut found: Vec<FoundModel> = Vec::new();
    for (path, format) in candidates {
        if found.iter().any(|f| f.path == path) {
            continue;
        }
        found.push(describe(&path).unwrap_or_else(|err| FoundModel {
            path: path.clone(),
            format,
            architecture: "?".to_owned(),
            n_layers: 0,
            width: 0,
            size: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            dtype: "?".to_owned(),
            problem: Some(problem_text(&err)),
        }));
    }
    found
}

/// A model folder's entry as a candidate: a `.gguf` file or a folder.
fn candidate(path: PathBuf) -> Option<(PathBuf, ModelFormat)> {
    if path.is_dir() {
        Some((path, ModelFormat::HfFolder))
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        Some((path, ModelFormat::Gguf))
    } else {
        None
    }
}

/// A cache repo's newest snapshot: the folder when it has a `config.json` (or no GGUF to
/// offer instead), else each of its GGUF files (repos of quantised models hold only those).
fn cache_candidates(repo: &Path) -> Vec<(PathBuf, ModelFormat)> {
    if let Some(snapshot) = latest_snapshot(repo) {
        return vec![(snapshot, ModelFormat::HfFolder)];
    }
    let newest = sorted_entries(&repo.join("snapshots"))
        .into_iter()
        .filter(|p| p.is_dir())
        .max_by_key(|snapshot| fs::metadata(snapshot).and_then(|m| m.modified()).ok());
    let Some(snapshot) = newest else {
        return Vec::new();
    };
    let ggufs: Vec<(PathBuf, ModelFormat)> = sorted_entries(&snapshot)
        .into_iter()
        .filter(|p| !p.is_dir())
        .filter_map(candidate)
        .collect();
    if ggufs.is_empty() {
        vec![(snapshot, ModelFormat::HfFolder)]
    } else {
        ggufs
    }
}

/// An error as the reason on a `models` line: the message without the path the line shows.
fn problem_text(err: &LlmError) -> String {
    match err {
        LlmError::NotFound(path) => format!(
            "missing {}",
            path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into()
            )
        ),
        LlmError::Corrupt { message, .. } | LlmError::Io { message, .. } => message.clone(),
        other => other.to_string(),
    }
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

/// Read what kind of model `path` holds without loading its weights. An error when not even
/// that can be read (a truncated header, no `config.json`, no weights); a description with
/// [`FoundModel::problem`] set when it can be read but will not load.
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
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let content = gguf_file::Content::read(&mut file).map_err(|e| {
        corrupt(format!(
            "truncated or corrupt GGUF header ({})",
            first_line(&e)
        ))
    })?;
    let get = |key: &str| content.metadata.get(key);
    let architecture = get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| corrupt("no general.architecture in the GGUF header".to_owned()))?;
    let number = |key: &str| {
        get(&format!("{architecture}.{key}"))
            .and_then(|v| v.to_u32().ok())
            .unwrap_or(0) as usize
    };
    let problem = if !GGUF_ARCHITECTURES.contains(&architecture.as_str()) {
        Some(unknown_architecture(&architecture, GGUF_ARCHITECTURES))
    } else if content.tensor_infos.is_empty() {
        Some("no tensors in the file (a vocabulary-only GGUF?)".to_owned())
    } else if let Some(problem) = gguf_truncation(&content, size) {
        Some(problem)
    } else {
        Tokenizer::from_gguf(&content).err().map(|e| {
            format!(
                "tokenizer: {}",
                e.to_string().trim_start_matches("tokenizer problem: ")
            )
        })
    };
    Ok(FoundModel {
        path: path.to_path_buf(),
        format: ModelFormat::Gguf,
        n_layers: number("block_count"),
        width: number("embedding_length"),
        architecture,
        size,
        dtype: gguf_quantisation(&content),
        problem,
    })
}

/// An error's message without the backtrace candle appends when `RUST_BACKTRACE` is set.
fn first_line(err: &dyn std::fmt::Display) -> String {
    let text = err.to_string();
    text.lines().next().unwrap_or_default().to_owned()
}

fn unknown_architecture(name: &str, supported: &[&str]) -> String {
    format!(
        "unknown architecture {name} — supported: {}",
        supported.join(", ")
    )
}

/// Does every tensor's data lie inside the file?
fn gguf_truncation(content: &gguf_file::Content, file_size: u64) -> Option<String> {
    let end = content
        .tensor_infos
        .values()
        .map(|t| {
            let dtype = t.ggml_dtype;
            let bytes =
                (t.shape.elem_count() / dtype.block_size()).saturating_mul(dtype.type_size());
            content
                .tensor_data_offset
                .saturating_add(t.offset)
                .saturating_add(bytes as u64)
        })
        .max()?;
    (end > file_size)
        .then(|| format!("truncated: the tensors need {end} bytes but the file has {file_size}"))
}

/// `Q4_K (+Q6_K)`: the type of the matrices holding most weights, then the other matrix types
/// by weight count (1-D tensors, norms and biases, are left out: they are F32 in every file).
fn gguf_quantisation(content: &gguf_file::Content) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for info in content.tensor_infos.values() {
        if info.shape.rank() < 2 {
            continue;
        }
        let name = ggml_type_name(info.ggml_dtype);
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += info.shape.elem_count(),
            None => counts.push((name, info.shape.elem_count())),
        }
    }
    dtype_summary(counts)
}

/// The most common type, then the others in brackets, most weights first.
fn dtype_summary(mut counts: Vec<(String, usize)>) -> String {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut names = counts.into_iter().map(|(name, _)| name);
    match names.next() {
        None => "none".to_owned(),
        Some(first) => {
            let rest: Vec<String> = names.map(|n| format!("+{n}")).collect();
            if rest.is_empty() {
                first
            } else {
                format!("{first} ({})", rest.join(", "))
            }
        }
    }
}

/// llama.cpp's name of a tensor type (`Q4_K`, not candle's `Q4K`).
fn ggml_type_name(dtype: GgmlDType) -> String {
    let name = format!("{dtype:?}");
    match name.strip_suffix('K') {
        Some(stem) if stem.starts_with('Q') => format!("{stem}_K"),
        _ => name,
    }
}

fn describe_folder(path: &Path) -> Result<FoundModel> {
    let config_path = path.join("config.json");
    let text = fs::read_to_string(&config_path).map_err(|e| io_error(&config_path, e))?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| LlmError::Corrupt {
        path: config_path.clone(),
        message: format!("config.json is not valid JSON ({e})"),
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
    let architecture = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown")
        .to_owned();
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut problem = None;
    for file in &weights {
        match safetensors_dtypes(file) {
            Ok(file_counts) => {
                for (name, count) in file_counts {
                    match counts.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, total)) => *total += count,
                        None => counts.push((name, count)),
                    }
                }
            }
            Err(message) => {
                let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
                problem.get_or_insert(format!("{}: {message}", name.unwrap_or_default()));
            }
        }
    }
    if !SAFETENSORS_MODEL_TYPES.contains(&architecture.as_str()) {
        problem = Some(unknown_architecture(&architecture, SAFETENSORS_MODEL_TYPES));
    } else if problem.is_none() {
        problem = match Tokenizer::from_file(path.join("tokenizer.json")) {
            Ok(_) => None,
            Err(err) => Some(problem_text(&err)),
        };
    }
    Ok(FoundModel {
        path: path.to_path_buf(),
        format: ModelFormat::HfFolder,
        architecture,
        n_layers: number(&["num_hidden_layers", "n_layer"]),
        width: number(&["hidden_size", "n_embd"]),
        size: weights
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum(),
        dtype: dtype_summary(counts),
        problem,
    })
}

/// Far beyond any real safetensors header: a larger length means a broken file.
const MAX_SAFETENSORS_HEADER: u64 = 100 << 20;

/// Weights per dtype in one safetensors file, from its header; an error naming what is wrong
/// when the header is cut off or not JSON, or the data is shorter than the header says.
fn safetensors_dtypes(path: &Path) -> std::result::Result<Vec<(String, usize)>, String> {
    use std::io::Read;
    let mut file = fs::File::open(path).map_err(|e| e.to_string())?;
    let file_size = file
        .metadata()
        .map(|m| m.len())
        .map_err(|e| e.to_string())?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| "truncated safetensors header (shorter than 8 bytes)".to_owned())?;
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_SAFETENSORS_HEADER || 8 + header_len > file_size {
        return Err(format!(
            "truncated or corrupt safetensors header (says {header_len} bytes, the file has {file_size})"
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| format!("truncated safetensors header ({e})"))?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| format!("corrupt safetensors header: not JSON ({e})"))?;
    let tensors = json
        .as_object()
        .ok_or_else(|| "corrupt safetensors header: not a JSON object".to_owned())?;
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut data_end = 0u64;
    for (name, tensor) in tensors {
        if name == "__metadata__" {
            continue;
        }
        let dtype = tensor.get("dtype").and_then(|v| v.as_str());
        let shape = tensor.get("shape").and_then(|v| v.as_array());
        let end = tensor
            .get("data_offsets")
            .and_then(|v| v.as_array())
            .and_then(|o| o.get(1))
            .and_then(|v| v.as_u64());
        let (Some(dtype), Some(shape), Some(end)) = (dtype, shape, end) else {
            return Err(format!(
                "corrupt safetensors header: tensor {name:?} lacks dtype, shape or data_offsets"
            ));
        };
        data_end = data_end.max(end);
        let elements = shape
            .iter()
            .map(|d| d.as_u64().unwrap_or(0) as usize)
            .fold(1usize, usize::saturating_mul);
        match counts.iter_mut().find(|(n, _)| n == dtype) {
            Some((_, total)) => *total += elements,
            None => counts.push((dtype.to_owned(), elements)),
        }
    }
    let needed = (8 + header_len).saturating_add(data_end);
    if needed > file_size {
        return Err(format!(
            "truncated: the tensors need {needed} bytes but the file has {file_size}"
        ));
    }
    Ok(counts)
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
