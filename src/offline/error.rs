//! What can end an offline run early.

use crate::io::WriteError;
use crate::params::text::ParamTextError;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The audio sink could not take a block.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A run file's recorded parameters do not fit this build's.
    #[error("the run's parameters: {0}")]
    Params(#[from] ParamTextError),
    #[error("the SoundFont was loaded for another sample rate")]
    SoundFontRate,
}
