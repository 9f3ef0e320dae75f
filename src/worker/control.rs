//! The one owner of the model worker's life: it spawns the worker, and every start, stop and
//! reset goes through it, whoever asks (the editor's buttons, the Generate parameter from the
//! audio thread, the command line).
//!
//! The audio thread cannot send on a channel, so it raises a flag ([`ModelControl::request_start`])
//! and the plugin's housekeeping thread sends the commands ([`ModelControl::serve`]). This
//! replaces nice-plug's background task queue, whose shared worker thread quits when a task
//! outlives the instance that scheduled it; the next instance's teardown then panics inside a
//! destructor and aborts the host (seen under clap-validator, which creates and destroys
//! instances quickly).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::params::SessionSettings;

use super::feed::{FeedShared, QueueSource};
use super::link::{GateSettings, Link, LinkPhase, LinkStatus};
use super::session::AtEnd;
use super::thread::Command;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error(
        "No model: the default model was not found (run `cargo xtask fetch-model`) and no path was given"
    )]
    NoModel,
    #[error("The model thread has not started yet (the host has not activated the plugin)")]
    NotStarted,
    #[error("The model thread has stopped; reload the plugin")]
    Stopped,
    #[error("Nothing to replay yet: press Generate first")]
    NothingToReplay,
}

const NOTHING: u8 = 0;
const START: u8 = 1;
const NEW_TEXT: u8 = 2;

pub struct ModelControl {
    /// The worker, once spawned; locked by the editor and the housekeeping thread, never by
    /// the audio thread.
    link: Mutex<Option<Link>>,
    gate: Arc<GateSettings>,
    feed: Arc<FeedShared>,
    status: Arc<LinkStatus>,
    /// The model has been asked to load and start, by whoever came first.
    requested: AtomicBool,
    /// What the audio thread has asked for.
    asked: AtomicU8,
    /// The audio thread's first start, prepared off it (at activation).
    prepared: Mutex<Option<SessionSettings>>,
    /// A first start is prepared (the audio thread's view of `prepared`).
    ready: AtomicBool,
}

impl ModelControl {
    /// Reporting into counters and a status made beforehand (the plugin hands them to its
    /// editor before the worker exists).
    pub fn new(gate: Arc<GateSettings>, feed: Arc<FeedShared>, status: Arc<LinkStatus>) -> Self {
        Self {
            link: Mutex::new(None),
            gate,
            feed,
            status,
            requested: AtomicBool::new(false),
            asked: AtomicU8::new(NOTHING),
            prepared: Mutex::new(None),
            ready: AtomicBool::new(false),
        }
    }

    /// Starts the worker thread, idle (nothing loads until a start), and returns the audio
    /// side's source. A second call starts nothing and returns `None`.
    pub fn spawn(&self) -> std::io::Result<Option<QueueSource>> {
        let mut link = self
            .link
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        if link.is_some() {
            return Ok(None);
        }
        let (spawned, source) = Link::spawn(
            Arc::clone(&self.gate),
            Arc::clone(&self.feed),
            Arc::clone(&self.status),
        )?;
        *link = Some(spawned);
        Ok(Some(source))
    }

    pub fn status(&self) -> &Arc<LinkStatus> {
        &self.status
    }

    pub fn feed(&self) -> &Arc<FeedShared> {
        &self.feed
    }

    pub fn gate(&self) -> &Arc<GateSettings> {
        &self.gate
    }

    /// Whether a start has been asked for (by any caller).
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// A fresh run of `session` from its prompt, loading its model first unless that model is
    /// the one loaded and well.
    pub fn generate(&self, session: &SessionSettings) -> Result<(), ControlError> {
        let first = !self.requested.swap(true, Ordering::AcqRel);
        self.start(session, first)
    }

    fn start(&self, session: &SessionSettings, load: bool) -> Result<(), ControlError> {
        let model = session.model_path().ok_or(ControlError::NoModel)?;
        let load = load
            || self.status.model().as_deref() != Some(model.as_path())
            || self.status.phase() == LinkPhase::Failed;
        // Settings before the load: changing one after it makes the worker load again.
        let mut commands = vec![Command::SetAtEnd(AtEnd::Continue)];
        if load {
            commands.push(Command::Load(model));
        }
        commands.extend([
            Command::SetPrompt {
                text: session.prompt.clone(),
                mode: session.prompt_mode(),
            },
            Command::SetSeed(session.seed),
            Command::SetDirection(session.direction_choice()),
            Command::SetBackend(session.text_source.backend()),
            Command::Reset,
            Command::Start,
        ]);
        self.send_all(commands)
    }

    /// The model stops after the token in progress.
    pub fn stop(&self) -> Result<(), ControlError> {
        self.send_all([Command::Stop])
    }

    /// Stop; the next start runs the prompt again from the beginning.
    pub fn reset(&self) -> Result<(), ControlError> {
        self.send_all([Command::Reset])
    }

    /// The last run again from its prompt, with its seed.
    pub fn replay(&self) -> Result<(), ControlError> {
        if !self.requested() {
            return Err(ControlError::NothingToReplay);
        }
        self.send_all([Command::Reset, Command::Start])
    }

    /// Any other command (the command line's limits and map source).
    pub fn send(&self, command: Command) -> Result<(), ControlError> {
        self.send_all([command])
    }

    fn send_all(&self, commands: impl IntoIterator<Item = Command>) -> Result<(), ControlError> {
        let link = self.link.lock().map_err(|_| ControlError::Stopped)?;
        let link = link.as_ref().ok_or(ControlError::NotStarted)?;
        for command in commands {
            link.worker
                .send(command)
                .map_err(|_| ControlError::Stopped)?;
        }
        Ok(())
    }

    /// Main thread: the session the audio thread's first start will run (`None`: no start).
    pub fn prepare(&self, session: Option<SessionSettings>) {
        if let Ok(mut prepared) = self.prepared.lock() {
            self.ready.store(session.is_some(), Ordering::Release);
            *prepared = session;
        }
    }

    /// Audio thread: load the model and start it on the prepared session, unless someone
    /// already started it. `false` when nothing was asked (started already, or nothing
    /// prepared).
    pub fn request_start(&self) -> bool {
        if !self.ready.load(Ordering::Acquire)
            || self
                .requested
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return false;
        }
        self.ready.store(false, Ordering::Release);
        self.asked.store(START, Ordering::Release);
        true
    }

    /// Audio thread: new text from the running model, from its prompt.
    pub fn request_new_text(&self) {
        self.asked.store(NEW_TEXT, Ordering::Release);
    }

    /// Housekeeping thread: sends what the audio thread asked for, once; `true` if there was
    /// something to send (a failure to send is reported in the status).
    pub fn serve(&self) -> bool {
        let sent = match self.asked.swap(NOTHING, Ordering::AcqRel) {
            START => match self.prepared.lock().ok().and_then(|mut p| p.take()) {
                Some(session) => self.start(&session, true),
                None => return false,
            },
            NEW_TEXT => self.send_all([Command::Reset, Command::Start]),
            _ => return false,
        };
        if let Err(error) = sent {
            self.status.say(error.to_string());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn the_audio_threads_request_is_served_once_with_the_prepared_session() {
        let control = ModelControl::new(
            Arc::new(GateSettings::new(4, 0.8)),
            Arc::default(),
            Arc::default(),
        );
        assert_eq!(
            control
                .generate(&SessionSettings::default())
                .map_err(|_| ()),
            Err(())
        );
        let control = ModelControl::new(
            Arc::new(GateSettings::new(4, 0.8)),
            Arc::default(),
            Arc::default(),
        );
        assert!(control.spawn().expect("spawn").is_some());
        assert!(
            control.spawn().expect("spawn again").is_none(),
            "one worker"
        );
        assert!(!control.request_start(), "nothing prepared");
        assert!(!control.serve(), "nothing asked, nothing sent");

        let missing = std::env::temp_dir().join("latent-choir-no-such-model.gguf");
        control.prepare(Some(SessionSettings {
            model: missing.display().to_string(),
            ..SessionSettings::default()
        }));
        assert!(control.request_start());
        assert!(!control.request_start(), "the first start is spent");
        assert!(control.serve());
        assert!(!control.serve(), "served once");
        // The worker got the prepared model: it tries it, and says why it failed.
        let status = Arc::clone(control.status());
        wait_for("the load to fail", || status.phase() == LinkPhase::Failed);
        assert_eq!(status.model(), Some(missing));

        control.request_new_text();
        assert!(control.serve(), "new text is sent");
        assert_eq!(
            control.replay(),
            Ok(()),
            "a start was asked for, so replay is allowed"
        );
    }

    #[test]
    fn generate_before_the_worker_runs_says_so() {
        let control = ModelControl::new(
            Arc::new(GateSettings::new(4, 0.8)),
            Arc::default(),
            Arc::default(),
        );
        assert_eq!(control.replay(), Err(ControlError::NothingToReplay));
        let session = SessionSettings {
            model: "/models/m.gguf".to_owned(),
            ..SessionSettings::default()
        };
        assert_eq!(control.generate(&session), Err(ControlError::NotStarted));
    }
}
