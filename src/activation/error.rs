//! Everything that can go wrong with a projection map, in words a user can act on.

use std::path::PathBuf;

use crate::llm::LlmError;

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("could not read or write {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// The file is not a map we can use: truncated, garbled, wrong shapes, non-finite values.
    #[error("{path} is not a usable projection map: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// A map written by another (future or past) file format.
    #[error(
        "{path} has map format version {found}, this build reads version {supported}; fit the map again with `latent-choir fit-pca`"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: String,
        supported: u32,
    },
    /// A map fitted on another model's activations.
    #[error(
        "{path} was fitted for another model ({map_model}, weights {map_identity:.12}…); the loaded model is {model} (weights {model_identity:.12}…). Fit a map for it with `latent-choir fit-pca`"
    )]
    WrongModel {
        path: PathBuf,
        map_model: String,
        map_identity: String,
        model: String,
        model_identity: String,
    },
    /// Same weights hash, but the map's shape does not fit the model (should not happen unless
    /// the file was edited).
    #[error(
        "{path} describes {map_layers} layers of width {map_width}, the loaded model has {model_layers} layers of width {model_width}"
    )]
    WrongShape {
        path: PathBuf,
        map_layers: usize,
        map_width: usize,
        model_layers: usize,
        model_width: usize,
    },
    /// A cached map fitted on an earlier text of the same corpus; refitted automatically.
    #[error("{path} was fitted on another version of the {corpus} corpus")]
    StaleCorpus { path: PathBuf, corpus: String },
    /// A cached map fitted on other positions than the cache wants (typically one fitted on
    /// every position, before the attention sink was left out by default); refitted
    /// automatically.
    #[error(
        "{path} was fitted {}; this fit wants {}",
        positions_phrase(*map_skip_first),
        positions_phrase(*wanted_skip_first)
    )]
    OtherPositions {
        path: PathBuf,
        map_skip_first: bool,
        wanted_skip_first: bool,
    },
    #[error("cannot fit {components} components to hidden states of width {width} (1..={width})")]
    BadComponentCount { components: usize, width: usize },
    #[error("the corpus has no usable text (every line empty)")]
    EmptyCorpus,
    #[error("the corpus gave only {0} token(s); a fit needs at least 2")]
    TooFewTokens(u64),
    #[error("cannot fit a map: {0}")]
    Fit(String),
    #[error("the fit was cancelled")]
    Cancelled,
    #[error("no cache directory: neither XDG_CACHE_HOME nor HOME is set")]
    NoCacheDir,
    #[error(transparent)]
    Model(#[from] LlmError),
}

/// How a message says which positions a fit used.
fn positions_phrase(skip_first: bool) -> &'static str {
    if skip_first {
        "without each line's first position (the attention sink)"
    } else {
        "on every position, each line's first (the attention sink) included"
    }
}

pub type Result<T> = std::result::Result<T, MapError>;
