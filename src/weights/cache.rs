//! The analysis of each model kept on disk, so the plugin's Model Weights and a repeated
//! `weights --style` do not redo every SVD: `$XDG_CACHE_HOME/latent-choir/weights/<model
//! sha256>.json` (beside the maps), written atomically, read back only if its schema is this
//! build's and it names the same weights.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::analysis::{AnalysisError, analyze};
use super::stats::WeightStats;
use crate::activation::cache::maps_dir;
use crate::activation::identify;

/// `$XDG_CACHE_HOME/latent-choir/weights`.
pub fn weights_dir() -> Option<PathBuf> {
    maps_dir().and_then(|maps| maps.parent().map(|root| root.join("weights")))
}

/// The model's stats: from the cache when they are there and current, else analysed now and
/// stored (a cache that cannot be written only costs the next call the analysis again).
pub fn stats_for(
    model: &Path,
    progress: impl FnMut(usize, usize) -> ControlFlow<()> + Send,
) -> Result<WeightStats, AnalysisError> {
    let Some(dir) = weights_dir() else {
        return analyze(model, progress);
    };
    let identity = identify(model).map_err(|e| AnalysisError::Cache(e.to_string()))?;
    let file = dir.join(format!("{}.json", identity.sha256));
    if let Some(stats) = std::fs::read(&file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<WeightStats>(&bytes).ok())
        .filter(|s| s.schema == WeightStats::SCHEMA)
    {
        return Ok(stats);
    }
    let stats = analyze(model, progress)?;
    let _ = store(&dir, &file, &stats);
    Ok(stats)
}

fn store(dir: &Path, file: &Path, stats: &WeightStats) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = serde_json::to_vec(stats).map_err(std::io::Error::other)?;
    let temp = file.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}
