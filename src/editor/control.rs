//! What the editor's buttons do: they save the prompt, seed and model in the plugin state, send
//! the worker its commands and switch the Generate parameter (which lets the music play).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use nice_plug::prelude::ParamSetter;

use crate::worker::link::{LinkPhase, LinkStatus};
use crate::worker::session::AtEnd;
use crate::llm::tokenizer::PromptMode;
use crate::worker::thread::Command;
use crate::params::LatentChoirParams;

/// What a run starts from, as the editor's fields show it.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub prompt: String,
    pub raw: bool,
    pub seed: u64,
    /// As typed; empty means the default model.
    pub model: String,
}

/// The worker's command channel and what the editor needs to decide what to send.
pub struct Control {
    pub params: Arc<LatentChoirParams>,
    pub link: Arc<LinkStatus>,
    pub commands: Arc<Mutex<Option<Sender<Command>>>>,
    pub model_requested: Arc<AtomicBool>,
}

impl Request {
    /// The fields as the project saved them.
    pub fn saved(params: &LatentChoirParams) -> Self {
        Self {
            prompt: params.prompt.read().map(|p| p.clone()).unwrap_or_default(),
            raw: params.raw_prompt.read().map(|r| *r).unwrap_or(false),
            seed: params.seed.read().map(|s| *s).unwrap_or(1),
            model: params.model.read().map(|m| m.clone()).unwrap_or_default(),
        }
    }

    /// The model file or folder to load: the typed path, or the default model.
    pub fn model_path(&self) -> Option<PathBuf> {
        let typed = self.model.trim();
        if typed.is_empty() {
            crate::llm::discovery::default_model_path()
        } else {
            Some(PathBuf::from(typed))
        }
    }

    fn save(&self, params: &LatentChoirParams) {
        if let Ok(mut prompt) = params.prompt.write() {
            prompt.clone_from(&self.prompt);
        }
        if let Ok(mut raw) = params.raw_prompt.write() {
            *raw = self.raw;
        }
        if let Ok(mut seed) = params.seed.write() {
            *seed = self.seed;
        }
        if let Ok(mut model) = params.model.write() {
            model.clone_from(&self.model);
        }
    }
}

impl Control {
    /// Generate: a fresh run of `request` from its prompt (loading its model first if another
    /// or none is loaded). Returns a problem to show instead.
    pub fn generate(&self, request: &Request, setter: &ParamSetter) -> Result<(), String> {
        request.save(&self.params);
        let model = request.model_path().ok_or(
            "No model: the default model was not found (run `cargo xtask fetch-model`) and no path was given",
        )?;
        // Whoever asks first (this button or the Generate parameter) starts the model.
        let first = self
            .model_requested
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        let loaded_elsewhere = self.link.model().as_deref() != Some(model.as_path());
        // Settings before the load: changing one after it makes the worker load again.
        let mut commands = vec![Command::SetAtEnd(AtEnd::Continue)];
        if first || loaded_elsewhere || self.link.phase() == LinkPhase::Failed {
            commands.push(Command::Load(model));
        }
        commands.extend([
            Command::SetPrompt {
                text: request.prompt.clone(),
                mode: if request.raw {
                    PromptMode::Raw
                } else {
                    PromptMode::Chat
                },
            },
            Command::SetSeed(request.seed),
            Command::Reset,
            Command::Start,
        ]);
        self.send(commands)?;
        self.set_generate(setter, true);
        Ok(())
    }

    /// Stop: the model stops after the token in progress and the notes are released.
    pub fn stop(&self, setter: &ParamSetter) -> Result<(), String> {
        self.set_generate(setter, false);
        self.send(vec![Command::Stop])
    }

    /// Reset: stop, and the next start runs the prompt again from the beginning.
    pub fn reset(&self, setter: &ParamSetter) -> Result<(), String> {
        self.set_generate(setter, false);
        self.send(vec![Command::Reset])
    }

    /// Replay: the last run again from its prompt, with its seed.
    pub fn replay(&self, setter: &ParamSetter) -> Result<(), String> {
        if !self.model_requested.load(Ordering::Acquire) {
            return Err("Nothing to replay yet: press Generate first".to_owned());
        }
        self.send(vec![Command::Reset, Command::Start])?;
        self.set_generate(setter, true);
        Ok(())
    }

    fn set_generate(&self, setter: &ParamSetter, on: bool) {
        let param = &self.params.generate;
        setter.begin_set_parameter(param);
        setter.set_parameter(param, on);
        setter.end_set_parameter(param);
    }

    fn send(&self, commands: Vec<Command>) -> Result<(), String> {
        let guard = self
            .commands
            .lock()
            .map_err(|_| "The model thread's channel is broken; reload the plugin".to_owned())?;
        let sender = guard.as_ref().ok_or(
            "The model thread has not started yet (the host has not activated the plugin)",
        )?;
        for command in commands {
            sender
                .send(command)
                .map_err(|_| "The model thread has stopped; reload the plugin".to_owned())?;
        }
        Ok(())
    }
}
