//! The instance's helper threads: the model's worker (through [`ModelControl`]), the
//! housekeeping thread that drains played tokens into the saved run and serves the audio
//! thread's start requests, and the SoundFont loader.

use std::sync::{Arc, Mutex};

use nice_plug::nice_log;

use crate::params::LatentChoirParams;
use crate::params::SourceChoice;
use crate::playback::ear::{Ear, ear};
use crate::playback::history::HistoryWriter;
use crate::playback::score_loader::{ScoreInbox, ScoreLoader, ScoreRequest};
use crate::playback::soundfont_loader::{FontInbox, FontLoader};
use crate::project::collector::{CollectorThread, Describer};
use crate::worker::control::ModelControl;

use super::listener::{ListenState, Listener};
use super::params::PluginParams;
use super::source::PluginSource;

/// Starts the model's worker, idle (the model loads when Generate is first on), and the
/// housekeeping thread; returns the audio side's source, which takes the history writer. `None` if the worker runs already or
/// could not start (said in the log).
pub fn start_model_threads(
    control: &Arc<ModelControl>,
    params: &PluginParams,
    history: &mut Option<HistoryWriter>,
) -> Option<(PluginSource, Option<CollectorThread>)> {
    let queue = match control.spawn() {
        Ok(Some(queue)) => queue,
        Ok(None) => return None,
        Err(error) => {
            nice_log!("Latent Choir: could not start the model thread: {error}");
            return None;
        }
    };
    let mut source = PluginSource::new(queue, params.run.clone());
    if let Some(history) = history.take() {
        source.set_history(history);
    }
    let describer = Describer::new(&params.settings, Arc::clone(control.status()));
    source.connect(params.run.connect(describer));
    let (saved, control) = (params.run.clone(), Arc::clone(control));
    let collector = CollectorThread::spawn(move || {
        saved.drain();
        if control.serve() && saved.is_replaying() {
            saved.leave_replay();
        }
    });
    let collector = match collector {
        Ok(thread) => Some(thread),
        Err(error) => {
            nice_log!("Latent Choir: no run collector thread: {error}");
            None
        }
    };
    Some((source, collector))
}

/// Asks the loader (started on first use) for the saved SoundFont, prepared for this
/// activation (the choir is new, so even an unchanged font is loaded again for its rate).
/// Returns the audio thread's inbox when the loader was started now.
pub fn request_soundfont(
    fonts: &Mutex<Option<FontLoader>>,
    settings: &LatentChoirParams,
    sample_rate: f32,
    max_block: usize,
) -> Option<FontInbox> {
    let Ok(mut fonts) = fonts.lock() else {
        return None;
    };
    let mut inbox = None;
    if fonts.is_none() {
        match FontLoader::spawn() {
            Ok((loader, new_inbox)) => {
                *fonts = Some(loader);
                inbox = Some(new_inbox);
            }
            Err(error) => nice_log!("Latent Choir: no SoundFont loader thread: {error}"),
        }
    }
    let fonts = fonts.as_ref()?;
    fonts.set_format(sample_rate, max_block);
    if let Some(path) = settings.soundfont_path() {
        fonts.request(Some(path));
    }
    inbox
}

/// Starts the listener thread (idle until Listen marks a boundary) and returns the audio
/// thread's ear; `None` if it could not start (said in the log: Listen then hears nothing).
pub fn start_listener(
    control: &ModelControl,
    state: &Arc<ListenState>,
    sample_rate: f64,
) -> Option<(Listener, Ear)> {
    let (ear, tap) = ear(sample_rate);
    match Listener::spawn(tap, Arc::clone(control.feed()), Arc::clone(state)) {
        Ok(listener) => Some((listener, ear)),
        Err(error) => {
            nice_log!("Latent Choir: no listener thread: {error}");
            None
        }
    }
}

/// Starts the Model Weights composer on first use, watching `settings` (it composes while the
/// Source is Model Weights and Generate is on); returns the audio thread's inbox then.
pub fn start_score_loader(
    scores: &Mutex<Option<ScoreLoader>>,
    settings: &Arc<LatentChoirParams>,
) -> Option<ScoreInbox> {
    let mut scores = scores.lock().ok()?;
    if scores.is_some() {
        return None;
    }
    let settings = Arc::downgrade(settings);
    let wanted = Box::new(move || {
        let settings = settings.upgrade()?;
        let generation = &settings.generation;
        // Like the model, the weights are read once Generate is first on, not when a host
        // merely scans or restores the plugin.
        let wanted =
            generation.source.value() == SourceChoice::Weights && generation.generate.value();
        wanted.then(|| ScoreRequest {
            model: settings.session().model,
            style: generation.weight_style.value().style(),
        })
    });
    match ScoreLoader::spawn(wanted) {
        Ok((loader, inbox)) => {
            *scores = Some(loader);
            Some(inbox)
        }
        Err(error) => {
            nice_log!("Latent Choir: no weights composer thread: {error}");
            None
        }
    }
}
