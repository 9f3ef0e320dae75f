//! The egui editor: prompt and model, the live text in step with the music, the activation
//! plots, the meters and every parameter.
//!
//! * `app`: the editor's state and layout; `panels`: prompt bar, model picker, meters and the
//!   parameter groups; `text_view` and `plots`: what was played.
//! * `playback`: reads the audio thread's history ring ([`crate::playback::history`]) into the
//!   transcript and the records the plots show.
//! * `control`: what the buttons send to the worker; `meters`: rates and counters.
//! * `models`: the picker's model list, found on a short-lived thread of its own.
//! * `window`: opens the window at the size saved with the project.
//!
//! The editor reads the audio and worker threads through atomics and a lock-free ring only, and
//! nothing is recorded for it while its window is closed.

use std::sync::{Arc, Mutex};

use crate::params::LatentChoirParams;
use crate::playback::history::HistoryReader;
use crate::playback::score_loader::ScoreLoader;
use crate::playback::soundfont_loader::FontLoader;
use crate::plugin::listener::ListenState;
use crate::project::export::ExportStatus;
use crate::project::saved_run::SavedRun;
use crate::status::AudioStatus;
use crate::worker::control::ModelControl;

mod app;
mod control;
mod meters;
mod models;
mod panels;
mod playback;
mod plots;
mod text_view;
mod window;

pub use playback::Playback;
pub use window::SizedEditor;

pub type Editor = SizedEditor;

/// What the plugin shares with its editor.
pub struct Shared {
    pub params: Arc<LatentChoirParams>,
    /// The run the project keeps: its state, and what the export buttons write.
    pub saved: SavedRun,
    pub status: Arc<AudioStatus>,
    /// The model's owner: its status and counters, and the buttons' commands.
    pub control: Arc<ModelControl>,
    /// The history ring's reading end; only the GUI thread locks it.
    pub history: Arc<Mutex<HistoryReader>>,
    /// The SoundFont loader, once the plugin has been activated.
    pub fonts: Arc<Mutex<Option<FontLoader>>>,
    /// The Model Weights composer, once the plugin has been activated.
    pub scores: Arc<Mutex<Option<ScoreLoader>>>,
    /// The last export's outcome.
    pub exports: Arc<ExportStatus>,
    /// What Listen heard: its state, the last line, the key.
    pub heard: Arc<ListenState>,
}

pub fn create(shared: Shared) -> Editor {
    let params = Arc::clone(&shared.params);
    let app = app::EditorApp::new(shared);
    let history = app.history_shared();
    SizedEditor::new(params, app::AppHandle::new(app), history)
}
