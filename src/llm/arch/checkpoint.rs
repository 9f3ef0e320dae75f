//! Hugging Face folders: `config.json` and the safetensors checkpoint the safetensors families
//! (GPT-2, llama) load their weights from.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::safetensors::{Load, MmapedSafetensors};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::TensorView;

use super::decoder::Weights;
use super::qlinear::Linear;
use crate::llm::error::{LlmError, Result};

pub(crate) fn corrupt(path: &Path, message: impl ToString) -> LlmError {
    LlmError::Corrupt {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Reads `folder/config.json`, checks its `model_type` is one of `accepted`, and returns the
/// file's path (for error messages) with the parsed JSON.
pub(crate) fn read_config(
    folder: &Path,
    accepted: &[&str],
) -> Result<(PathBuf, serde_json::Value)> {
    if !folder.exists() {
        return Err(LlmError::NotFound(folder.to_path_buf()));
    }
    let path = folder.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|err| io_error(&path, err))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| corrupt(&path, e))?;
    let model_type = value
        .get("model_type")
        .and_then(|v| v.as_str())
        .ok_or_else(|| corrupt(&path, "no \"model_type\" string"))?;
    if !accepted.contains(&model_type) {
        return Err(LlmError::UnknownArchitecture(model_type.to_string()));
    }
    Ok((path, value))
}

fn io_error(path: &Path, err: std::io::Error) -> LlmError {
    if err.kind() == std::io::ErrorKind::NotFound {
        LlmError::NotFound(path.to_path_buf())
    } else {
        LlmError::Io {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
    }
}

/// The safetensors files of a folder, memory-mapped while the model is built.
pub(crate) struct Checkpoint {
    files: Vec<(PathBuf, MmapedSafetensors)>,
    /// Tensor name → index into `files`.
    names: HashMap<String, usize>,
}

impl Checkpoint {
    /// Opens `model.safetensors`, or every shard named in `model.safetensors.index.json`.
    pub(crate) fn open(folder: &Path) -> Result<Self> {
        let single = folder.join("model.safetensors");
        let index = folder.join("model.safetensors.index.json");
        let paths = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| io_error(&index, e))?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| corrupt(&index, e))?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| corrupt(&index, "no \"weight_map\" object"))?;
            let mut shards = BTreeSet::new();
            for file in map.values() {
                let file = file
                    .as_str()
                    .filter(|f| Path::new(f).file_name() == Some(std::ffi::OsStr::new(f)))
                    .ok_or_else(|| corrupt(&index, format!("bad shard name {file}")))?;
                shards.insert(folder.join(file));
            }
            shards.into_iter().collect()
        } else {
            return Err(LlmError::NotFound(single));
        };

        let mut files = Vec::with_capacity(paths.len());
        let mut names = HashMap::new();
        for path in paths {
            if !path.is_file() {
                return Err(LlmError::NotFound(path));
            }
            // SAFETY: the map is only read, and only while the model is being built; model files
            // are not expected to change under a running program (the same contract as every
            // mmap-based model loader).
            let st = unsafe { MmapedSafetensors::new(&path) }.map_err(|e| corrupt(&path, e))?;
            for (name, _) in st.tensors() {
                names.insert(name, files.len());
            }
            files.push((path, st));
        }
        Ok(Self { files, names })
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// Every tensor's name, sorted, so a copy of the checkpoint is written in a stable order.
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.names.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Tensor `name` as stored (dtype, shape and bytes untouched), to copy it unchanged.
    pub(crate) fn view(&self, name: &str) -> Result<TensorView<'_>> {
        let &index = self
            .names
            .get(name)
            .ok_or_else(|| LlmError::MissingTensor(name.to_string()))?;
        let (path, st) = &self.files[index];
        st.get(name).map_err(|e| corrupt(path, e))
    }

    /// Tensor `name` as f32 on the CPU, checked to have `shape`.
    pub(crate) fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let &index = self
            .names
            .get(name)
            .ok_or_else(|| LlmError::MissingTensor(name.to_string()))?;
        let (path, st) = &self.files[index];
        let view = st.get(name).map_err(|e| corrupt(path, e))?;
        if view.shape() != shape {
            return Err(corrupt(
                path,
                format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    view.shape()
                ),
            ));
        }
        let tensor = view.load(&Device::Cpu).map_err(|e| corrupt(path, e))?;
        match tensor.dtype() {
            DType::F32 => Ok(tensor),
            DType::BF16 | DType::F16 | DType::F64 => Ok(tensor.to_dtype(DType::F32)?),
            other => Err(corrupt(
                path,
                format!("tensor {name} has dtype {other:?}, not a float type"),
            )),
        }
    }

    /// Tensor `name` as flat f32 values, checked to have `shape`: norms, biases, embeddings.
    pub(crate) fn vector(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Ok(self.tensor(name, shape)?.flatten_all()?.to_vec1::<f32>()?)
    }

    /// How `name` is stored (`f32`, `bf16`, ...), for `ModelInfo::dtype`.
    pub(crate) fn stored_dtype(&self, name: &str) -> String {
        self.names
            .get(name)
            .and_then(|&i| self.files[i].1.get(name).ok())
            .and_then(|view| DType::try_from(view.dtype()).ok())
            .map_or_else(|| "unknown".into(), |d| d.as_str().into())
    }
}

impl Weights for Checkpoint {
    fn linear(&mut self, prefix: &str, rows: usize, cols: usize) -> Result<Linear> {
        let weight = self.tensor(&format!("{prefix}.weight"), &[rows, cols])?;
        let bias_name = format!("{prefix}.bias");
        let bias = if self.contains(&bias_name) {
            Some(self.tensor(&bias_name, &[rows])?)
        } else {
            None
        };
        Ok(Linear::dense(&weight, bias.as_ref())?)
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        Checkpoint::vector(self, name, &[len])
    }
}
