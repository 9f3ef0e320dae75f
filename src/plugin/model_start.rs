//! Starting the model when the audio thread asks: the audio thread cannot send on a channel, so
//! it raises a flag and the plugin's housekeeping thread (the run collector's, every 20 ms) sends
//! the worker its commands.
//!
//! This replaces nice-plug's background task queue, whose shared worker thread quits when a task
//! outlives the instance that scheduled it; the next instance's teardown then panics inside a
//! destructor and aborts the host (seen under clap-validator, which creates and destroys
//! instances quickly).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use crate::worker::session::AtEnd;
use crate::llm::tokenizer::PromptMode;
use crate::worker::thread::Command;

use crate::project::saved_run::SavedRun;

/// The commands that load the saved model and start generating its saved prompt.
pub struct StartModel {
    pub model: PathBuf,
    pub prompt: String,
    pub mode: PromptMode,
    pub seed: u64,
}

impl StartModel {
    fn commands(&self) -> Vec<Command> {
        vec![
            // Settings before the load: changing one after it makes the worker load again.
            Command::SetAtEnd(AtEnd::Continue),
            Command::Load(self.model.clone()),
            Command::SetPrompt {
                text: self.prompt.clone(),
                mode: self.mode,
            },
            Command::SetSeed(self.seed),
            Command::Start,
        ]
    }
}

const NOTHING: u8 = 0;
const START: u8 = 1;
const NEW_TEXT: u8 = 2;

/// What the audio thread has asked for, and what serving it needs.
pub struct StartRequests {
    asked: AtomicU8,
    /// Prepared off the audio thread (at activation): the first start.
    prepared: Mutex<Option<StartModel>>,
    /// A first start is prepared (the audio thread's view of `prepared`).
    ready: AtomicBool,
    commands: Arc<Mutex<Option<Sender<Command>>>>,
    saved: SavedRun,
}

impl StartRequests {
    pub fn new(commands: Arc<Mutex<Option<Sender<Command>>>>, saved: SavedRun) -> Self {
        Self {
            asked: AtomicU8::new(NOTHING),
            prepared: Mutex::new(None),
            ready: AtomicBool::new(false),
            commands,
            saved,
        }
    }

    /// Main thread: what the first start will send.
    pub fn prepare(&self, start: Option<StartModel>) {
        if let Ok(mut prepared) = self.prepared.lock() {
            self.ready.store(start.is_some(), Ordering::Release);
            *prepared = start;
        }
    }

    /// Audio thread: load the model and start it on the saved prompt; `false` when there is
    /// no model to start.
    pub fn start(&self) -> bool {
        if !self.ready.swap(false, Ordering::AcqRel) {
            return false;
        }
        self.asked.store(START, Ordering::Release);
        true
    }

    /// Audio thread: the saved run has ended and new text is wanted from the running model.
    pub fn new_text(&self) {
        self.asked.store(NEW_TEXT, Ordering::Release);
    }

    /// Housekeeping thread: sends what was asked for, once.
    pub fn serve(&self) {
        let commands = match self.asked.swap(NOTHING, Ordering::AcqRel) {
            START => match self.prepared.lock().ok().and_then(|mut p| p.take()) {
                Some(start) => start.commands(),
                None => return,
            },
            NEW_TEXT => vec![Command::Reset, Command::Start],
            _ => return,
        };
        if self.saved.is_replaying() {
            self.saved.leave_replay();
        }
        if let Ok(Some(sender)) = self.commands.lock().as_deref() {
            for command in commands {
                let _ = sender.send(command);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_served_once_with_the_prepared_commands() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let requests = StartRequests::new(Arc::new(Mutex::new(Some(sender))), SavedRun::default());
        assert!(!requests.start(), "no model prepared");
        requests.serve();
        assert!(receiver.try_recv().is_err(), "nothing asked, nothing sent");
        requests.prepare(Some(StartModel {
            model: PathBuf::from("/m.gguf"),
            prompt: "Hi".to_owned(),
            mode: PromptMode::Chat,
            seed: 5,
        }));
        assert!(requests.start());
        requests.serve();
        let sent: Vec<Command> = receiver.try_iter().collect();
        assert_eq!(sent.len(), 5);
        assert!(matches!(sent.last(), Some(Command::Start)));
        requests.serve();
        assert!(receiver.try_recv().is_err(), "served once");
        assert!(!requests.start(), "the first start is spent");
        requests.new_text();
        requests.serve();
        let sent: Vec<Command> = receiver.try_iter().collect();
        assert!(matches!(sent[..], [Command::Reset, Command::Start]));
    }
}
