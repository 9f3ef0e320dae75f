//! Everything that can go wrong on the model side, in words a user can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("model file not found: {0}")]
    NotFound(PathBuf),
    #[error("could not read {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} is not a usable model file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "unsupported model architecture {0:?} (supported: Hugging Face folders of model_type {types}; GGUF files of general.architecture {archs})",
        types = crate::llm::arch::SAFETENSORS_MODEL_TYPES.join(", "),
        archs = crate::llm::arch::GGUF_ARCHITECTURES.join(", ")
    )]
    UnknownArchitecture(String),
    #[error("the model is missing tensor {0:?}")]
    MissingTensor(String),
    #[error("tokenizer problem: {0}")]
    Tokenizer(String),
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt has {tokens} tokens but the model's context holds {context}")]
    PromptTooLong { tokens: usize, context: usize },
    #[error("the context is full ({0} tokens); reset to continue")]
    ContextFull(usize),
    #[error("unusable direction: {0}")]
    Direction(String),
    #[error("model computation failed: {0}")]
    Compute(String),
}

impl From<candle_core::Error> for LlmError {
    fn from(err: candle_core::Error) -> Self {
        LlmError::Compute(err.to_string())
    }
}

pub type Result<T> = std::result::Result<T, LlmError>;
