//! The plugin's "Export MIDI" and "Export run": the run being played (or replayed) written
//! next to a path the user typed, on a background thread. MIDI is the run replayed exactly as
//! `latent-choir replay RUN --midi` would; the run file is what `render --run` writes. Files
//! appear whole or not at all ([`crate::io::output_file`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::io::WriteError;
use crate::io::output_file::PendingFile;
use crate::io::run_file::RunFileError;
use crate::offline::{OfflineError, replay};

use super::saved_run::SavedRun;

/// Which file to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// A Standard MIDI File, `.mid`.
    Midi,
    /// A run file, `.lcrun`.
    Run,
}

impl ExportKind {
    pub fn extension(self) -> &'static str {
        match self {
            ExportKind::Midi => "mid",
            ExportKind::Run => "lcrun",
        }
    }
}

/// An export the editor asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub kind: ExportKind,
    /// As typed: the file name gets the kind's extension.
    pub path: PathBuf,
}

/// The last export's outcome, for the editor.
#[derive(Debug, Default)]
pub struct ExportStatus(Mutex<String>);

impl ExportStatus {
    pub fn set(&self, line: String) {
        if let Ok(mut status) = self.0.lock() {
            *status = line;
        }
    }

    pub fn line(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Where `request` writes: its path with the kind's extension.
pub fn target(request: &ExportRequest) -> PathBuf {
    request.path.with_extension(request.kind.extension())
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("Type a path to export to first")]
    NoPath,
    #[error("Nothing to export yet: no tokens have played")]
    NothingPlayed,
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Replay(#[from] OfflineError),
    #[error(transparent)]
    Run(#[from] RunFileError),
}

/// Writes the saved run as `request` asks; returns the file written.
pub fn export(saved: &SavedRun, request: &ExportRequest) -> Result<PathBuf, ExportError> {
    if request.path.as_os_str().is_empty() {
        return Err(ExportError::NoPath);
    }
    let run = saved.run().ok_or(ExportError::NothingPlayed)?;
    let target = target(request);
    let file = PendingFile::new(&target)?;
    match request.kind {
        ExportKind::Midi => {
            let bytes = replay::midi_bytes(&run)?;
            std::fs::write(file.temp(), &bytes).map_err(|e| WriteError::new(&target, e))?;
        }
        ExportKind::Run => run.write(file.temp())?,
    }
    Ok(file.commit()?)
}

/// Runs `request` and puts its outcome into `status` (the background task's whole job).
/// Writes the export on its own short-lived thread; the outcome lands in `status`.
pub fn spawn(saved: SavedRun, request: ExportRequest, status: Arc<ExportStatus>) {
    let report = Arc::clone(&status);
    let spawned = std::thread::Builder::new()
        .name("latent-choir-export".to_owned())
        .spawn(move || run_export(&saved, &request, &report));
    if let Err(error) = spawned {
        status.set(format!("Export failed: no thread to write it on: {error}"));
    }
}

pub fn run_export(saved: &SavedRun, request: &ExportRequest, status: &ExportStatus) {
    status.set(match export(saved, request) {
        Ok(path) => format!("Wrote {}", path.display()),
        Err(error) => format!("Export failed: {error}"),
    });
}
