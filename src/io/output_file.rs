//! Output files that appear whole or not at all: written under a temporary name in the same
//! folder and renamed into place at the end, so a failed or interrupted render leaves nothing
//! half-written behind.

use std::path::{Path, PathBuf};

use super::WriteError;

/// A file being written under a temporary name; dropped without [`PendingFile::commit`], the
/// temporary file is removed.
#[derive(Debug)]
pub struct PendingFile {
    target: PathBuf,
    temp: PathBuf,
    committed: bool,
}

impl PendingFile {
    /// Reserves `target`: creates the (empty) temporary file now, so an unwritable folder is
    /// reported before any work is done.
    pub fn new(target: &Path) -> Result<Self, WriteError> {
        let name = target
            .file_name()
            .ok_or_else(|| WriteError::new(target, "not a file name"))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.partial", std::process::id()));
        let temp = target.with_file_name(temp_name);
        std::fs::File::create(&temp).map_err(|e| WriteError::new(target, e))?;
        Ok(Self {
            target: target.to_owned(),
            temp,
            committed: false,
        })
    }

    /// Where to write meanwhile.
    pub fn temp(&self) -> &Path {
        &self.temp
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the finished file into place.
    pub fn commit(mut self) -> Result<PathBuf, WriteError> {
        std::fs::rename(&self.temp, &self.target).map_err(|e| WriteError::new(&self.target, e))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
