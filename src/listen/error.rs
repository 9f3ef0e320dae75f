use std::path::PathBuf;

use crate::io::audio_file::AudioFileError;
use crate::io::write_error::WriteError;

/// Everything that can stop `listen`: each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{0}")]
    Runtime(String),
    #[error("{0}: no such encoder; `cargo xtask fetch-model` stores Basic Pitch's nmp.onnx there")]
    MissingEncoder(PathBuf),
    #[error("{path}: not an encoder this tool can use: {message}")]
    Encoder { path: PathBuf, message: String },
    #[error("the encoder failed: {0}")]
    Inference(String),
    #[error(transparent)]
    Audio(#[from] AudioFileError),
    #[error("{0}: the input holds no audio")]
    Empty(String),
    #[error("codebooks {name}: {message}")]
    Codebooks { name: String, message: String },
    #[error(transparent)]
    Write(#[from] WriteError),
}
