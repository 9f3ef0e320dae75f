//! What can go wrong with a concept direction, in words a user can act on.

use std::path::PathBuf;

use crate::activation::MapError;
use crate::llm::LlmError;

#[derive(Debug, thiserror::Error)]
pub enum DirectionError {
    #[error("could not read or write {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// A prompt file that is not text, or holds no prompt.
    #[error("{source_name}: {message}")]
    BadPrompts {
        source_name: String,
        message: String,
    },
    /// A prompt the model reads as fewer than two tokens: with position 0 left out (the
    /// attention sink, as for maps) nothing of it would remain.
    #[error(
        "{set} prompt {line} (\"{prompt}\") is {tokens} token(s) for this model; every prompt needs at least 2 (the first is left out, as in map fits)"
    )]
    PromptTooShort {
        set: &'static str,
        line: usize,
        prompt: String,
        tokens: usize,
    },
    /// The file is not a direction we can use: truncated, garbled, wrong shapes, non-finite.
    #[error("{path} is not a usable concept direction: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "{path} has direction format version {found}, this build reads version {supported}; fit it again with `latent-choir fit-direction`"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: String,
        supported: u32,
    },
    /// A direction fitted on another model's hidden states.
    #[error(
        "{path} was fitted for another model ({file_model}); the loaded model is {model}. Fit one for it with `latent-choir fit-direction`"
    )]
    WrongModel {
        path: PathBuf,
        file_model: String,
        model: String,
    },
    #[error(
        "no direction is called \"{0}\"; the shipped ones are refusal, doubt and grief (or give a .safetensors file from `latent-choir fit-direction`)"
    )]
    UnknownName(String),
    #[error("cannot fit a direction: {0}")]
    Fit(String),
    #[error("the fit was cancelled")]
    Cancelled,
    #[error("no cache directory: neither XDG_CACHE_HOME nor HOME is set")]
    NoCacheDir,
    #[error(transparent)]
    Model(#[from] LlmError),
    #[error(transparent)]
    Map(#[from] MapError),
}

pub type Result<T> = std::result::Result<T, DirectionError>;
