//! A file that could not be written, and why, in words for the user.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {message}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub message: String,
}

impl WriteError {
    pub fn new(path: &Path, message: impl ToString) -> Self {
        Self {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }
}
