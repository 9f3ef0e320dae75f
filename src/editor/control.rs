//! What the editor's buttons do: they keep the prompt, seed and model with the project, ask the
//! model's owner ([`ModelControl`]) and switch the Generate parameter (which lets the music
//! play). A saved run being replayed gives way to new text.

use std::sync::Arc;

use nice_plug::prelude::ParamSetter;

use crate::params::{LatentChoirParams, SessionSettings};
use crate::project::saved_run::SavedRun;
use crate::worker::control::ModelControl;

pub struct Control {
    pub params: Arc<LatentChoirParams>,
    pub model: Arc<ModelControl>,
    pub saved: SavedRun,
}

impl Control {
    /// Generate: a fresh run of `session` from its prompt. Returns a problem to show instead.
    pub fn generate(&self, session: &SessionSettings, setter: &ParamSetter) -> Result<(), String> {
        self.params.set_session(session);
        self.saved.leave_replay();
        self.model.generate(session).map_err(|e| e.to_string())?;
        self.set_generate(setter, true);
        Ok(())
    }

    /// Stop: the model stops after the token in progress and the notes are released.
    pub fn stop(&self, setter: &ParamSetter) -> Result<(), String> {
        self.set_generate(setter, false);
        self.model.stop().map_err(|e| e.to_string())
    }

    /// Reset: stop, and the next start runs the prompt again from the beginning.
    pub fn reset(&self, setter: &ParamSetter) -> Result<(), String> {
        self.saved.leave_replay();
        self.set_generate(setter, false);
        self.model.reset().map_err(|e| e.to_string())
    }

    /// Replay: the last run again from its prompt, with its seed.
    pub fn replay(&self, setter: &ParamSetter) -> Result<(), String> {
        if self.saved.is_replaying() {
            return Err("The project's saved run is playing; Generate writes new text".to_owned());
        }
        self.model.replay().map_err(|e| e.to_string())?;
        self.set_generate(setter, true);
        Ok(())
    }

    fn set_generate(&self, setter: &ParamSetter, on: bool) {
        let param = &self.params.generation.generate;
        setter.begin_set_parameter(param);
        setter.set_parameter(param, on);
        setter.end_set_parameter(param);
    }
}
