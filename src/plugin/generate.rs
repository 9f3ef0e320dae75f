//! The Generate parameter, followed on the audio thread: the model starts the first time
//! Generate is on (not while a saved run replays), and writes new text when Generate is turned
//! on again after the saved run has ended.

use crate::project::saved_run::SavedRun;
use crate::worker::control::ModelControl;

use super::source::PluginSource;

#[derive(Default)]
pub struct GenerateSwitch {
    /// Generate's value in the last block.
    was_on: bool,
}

impl GenerateSwitch {
    pub fn update(
        &mut self,
        generate: bool,
        saved: &SavedRun,
        source: &mut PluginSource,
        control: &ModelControl,
    ) {
        let turned_on = generate && !self.was_on;
        self.was_on = generate;
        let replay_ended = source.replay_finished();
        if !generate || (saved.is_replaying() && !(turned_on && replay_ended)) {
            return;
        }
        let started = if control.request_start() {
            true
        } else if turned_on && replay_ended {
            control.request_new_text();
            true
        } else {
            false
        };
        if started {
            // From the next step on the model's frames play (an offline bounce waits for them,
            // so it comes out the same every time).
            source.live.expect_start();
            if replay_ended {
                source.go_live();
            }
        }
    }
}
