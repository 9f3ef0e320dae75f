//! What the host sees of the plugin's state: every parameter and session setting
//! ([`LatentChoirParams`]) and the run it played ([`SavedRun`]), kept with the project.

use std::sync::Arc;

use nice_plug::prelude::*;

use crate::params::LatentChoirParams;
use crate::project::saved_run::SavedRun;

#[derive(Params)]
pub struct PluginParams {
    /// Inline: the parameter ids and field keys are those of [`LatentChoirParams`].
    #[nested]
    pub settings: Arc<LatentChoirParams>,
    /// The tokens played, so a reopened project plays the same music without the model.
    #[persist = "run"]
    pub run: SavedRun,
}

impl Default for PluginParams {
    fn default() -> Self {
        Self {
            settings: Arc::new(LatentChoirParams::default()),
            run: SavedRun::default(),
        }
    }
}
