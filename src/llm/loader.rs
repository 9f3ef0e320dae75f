//! Opens a model file or folder: picks the architecture, loads the weights and the tokenizer
//! that belongs to them.

use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;

use super::arch::{SAFETENSORS_MODEL_TYPES, gguf::GgufModel, gpt2::Gpt2, llama::Llama};
use super::error::{LlmError, Result};
use super::model::LanguageModel;
use super::tokenizer::Tokenizer;

pub struct LoadedModel {
    pub model: Box<dyn LanguageModel>,
    pub tokenizer: Tokenizer,
    pub path: PathBuf,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("path", &self.path)
            .field("info", self.model.info())
            .finish()
    }
}

/// Load a GGUF file or a Hugging Face folder (`config.json`, `*.safetensors`,
/// `tokenizer.json`).
pub fn load(path: &Path) -> Result<LoadedModel> {
    if !path.exists() {
        return Err(LlmError::NotFound(path.to_path_buf()));
    }
    let (model, tokenizer): (Box<dyn LanguageModel>, Tokenizer) = if path.is_dir() {
        let model: Box<dyn LanguageModel> = match model_type(path)?.as_str() {
            "gpt2" => Box::new(Gpt2::load(path)?),
            // Llama::load names the multimodal Gemma 3 it refuses.
            other if SAFETENSORS_MODEL_TYPES.contains(&other) || other == "gemma3" => {
                Box::new(Llama::load(path)?)
            }
            other => return Err(LlmError::UnknownArchitecture(other.to_owned())),
        };
        (model, Tokenizer::from_file(path.join("tokenizer.json"))?)
    } else {
        let corrupt = |message: String| LlmError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let mut file = File::open(path).map_err(|e| LlmError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| corrupt(e.to_string()))?;
        let tokenizer = Tokenizer::from_gguf(&content)?;
        let model = GgufModel::from_gguf(&content, &mut file).map_err(|e| match e {
            LlmError::Compute(message) => corrupt(message),
            other => other,
        })?;
        (Box::new(model), tokenizer)
    };
    let (model_vocab, tokenizer_vocab) = (model.info().vocab_size, tokenizer.vocab_size());
    if tokenizer_vocab > model_vocab {
        return Err(LlmError::Tokenizer(format!(
            "the tokenizer has {tokenizer_vocab} tokens but the model only {model_vocab}: they do not belong together"
        )));
    }
    Ok(LoadedModel {
        model,
        tokenizer,
        path: path.to_path_buf(),
    })
}

fn model_type(folder: &Path) -> Result<String> {
    let config_path = folder.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LlmError::NotFound(config_path.clone()),
        _ => LlmError::Io {
            path: config_path.clone(),
            message: e.to_string(),
        },
    })?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| LlmError::Corrupt {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    config
        .get("model_type")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| LlmError::Corrupt {
            path: config_path,
            message: "no model_type".to_owned(),
        })
}
