//! Wiring the LLM worker to the player, shared by the plugin and the command-line renderer: the
//! worker's events feed a [`FrameBuilder`] and a status the editor reads; its pacing is the
//! [`TicketGate`]; the audio side gets the [`QueueSource`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::llm::worker::{
    Command, FinishReason, NextStep, Pacing, SharedTemperature, WorkerEvent, WorkerHandle,
};

use super::feed::{self, FeedShared, FrameBuilder, QueueSource, TicketGate};

/// Settings the gate reads before every token; the audio side or the editor writes them.
#[derive(Debug)]
pub struct GateSettings {
    /// Tokens the worker may be ahead of playback.
    pub lookahead: AtomicU32,
    /// Temperature of the first `lookahead` tokens of a run (nothing heard yet), as f32 bits.
    pub initial_temperature: AtomicU32,
}

impl GateSettings {
    pub fn new(lookahead: u32, initial_temperature: f32) -> Self {
        Self {
            lookahead: AtomicU32::new(lookahead),
            initial_temperature: AtomicU32::new(initial_temperature.to_bits()),
        }
    }

    pub fn set(&self, lookahead: u32, initial_temperature: f32) {
        self.lookahead.store(lookahead, Ordering::Relaxed);
        self.initial_temperature
            .store(initial_temperature.to_bits(), Ordering::Relaxed);
    }
}

/// What the worker last reported, in words and numbers, for the editor and the CLI.
#[derive(Debug, Default)]
pub struct LinkStatus {
    /// The latest notable event ("Loading …", "Fitting the map: 40%", an error).
    pub message: Mutex<String>,
    /// Corpus lines fitted of `fit_total` while a map is being fitted.
    pub fit_done: AtomicU64,
    pub fit_total: AtomicU64,
    /// Tokens generated since the worker started.
    pub tokens: AtomicU64,
    /// The generated text of the current run.
    pub text: Mutex<String>,
    /// A model is loaded.
    pub loaded: std::sync::atomic::AtomicBool,
    /// Why the model cannot generate (a failed load, an error, a crash); cleared by the next
    /// load. The command-line renderer stops on it instead of waiting.
    pub failure: Mutex<Option<String>>,
}

impl LinkStatus {
    fn say(&self, message: impl Into<String>) {
        if let Ok(mut current) = self.message.lock() {
            *current = message.into();
        }
    }

    pub fn message(&self) -> String {
        self.message.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn text(&self) -> String {
        self.text.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    fn fail(&self, message: String) {
        if let Ok(mut failure) = self.failure.lock() {
            *failure = Some(message.clone());
        }
        self.say(message);
    }
}

/// The worker and both ends of its connection to the audio side.
pub struct Link {
    pub worker: WorkerHandle,
    pub shared: Arc<FeedShared>,
    pub gate: Arc<GateSettings>,
    pub status: Arc<LinkStatus>,
}

impl Link {
    /// Starts the worker thread (nothing is loaded yet) and returns the audio side's source.
    pub fn spawn(gate_settings: Arc<GateSettings>) -> std::io::Result<(Self, QueueSource)> {
        let shared = Arc::new(FeedShared::default());
        let status = Arc::new(LinkStatus::default());
        let channels = feed::channels();
        let (frames, tickets_in) = channels.builder_side;
        let (frames_out, tickets_out) = channels.audio_side;

        let temperature = SharedTemperature::new(gate_settings.initial());
        let gate = Mutex::new(TicketGate::new(Arc::clone(&shared), tickets_in));
        let (gate_temperature, settings) = (temperature.clone(), Arc::clone(&gate_settings));
        let pacing = Pacing::gated_steps(move |next| match next {
            NextStep::Prompt => true,
            NextStep::Token(index) => {
                let Ok(mut gate) = gate.lock() else {
                    return false;
                };
                let lookahead = settings.lookahead.load(Ordering::Relaxed);
                match gate.admit(index as u32, lookahead, settings.initial()) {
                    Some(t) => {
                        gate_temperature.set(t);
                        true
                    }
                    None => false,
                }
            }
        });

        let mut builder = FrameBuilder::new(Arc::clone(&shared), frames);
        let sink_status = Arc::clone(&status);
        let sink = move |event: WorkerEvent| on_event(&mut builder, &sink_status, event);
        let worker = WorkerHandle::spawn(temperature, pacing, sink)?;
        let source = QueueSource::new(Arc::clone(&shared), frames_out, tickets_out);
        Ok((
            Self {
                worker,
                shared,
                gate: gate_settings,
                status,
            },
            source,
        ))
    }

    /// Sends a command; a worker that has gone away is reported in the status.
    pub fn send(&self, command: Command) {
        if self.worker.send(command).is_err() {
            self.status
                .say("The model thread has stopped; reload the plugin.");
        }
    }
}

impl GateSettings {
    fn initial(&self) -> f32 {
        f32::from_bits(self.initial_temperature.load(Ordering::Relaxed))
    }
}

fn on_event(builder: &mut FrameBuilder, status: &LinkStatus, event: WorkerEvent) {
    match event {
        WorkerEvent::Loading { path } => {
            status.loaded.store(false, Ordering::Relaxed);
            if let Ok(mut failure) = status.failure.lock() {
                *failure = None;
            }
            status.say(format!("Loading {}…", path.display()));
        }
        WorkerEvent::Loaded { info, path } => {
            status.loaded.store(true, Ordering::Relaxed);
            status.say(format!(
                "Loaded {} ({}, {} layers, {})",
                path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                ),
                info.architecture,
                info.n_layers,
                info.dtype
            ));
        }
        WorkerEvent::LoadFailed { path, message } => {
            status.loaded.store(false, Ordering::Relaxed);
            status.fail(format!("Could not load {}: {message}", path.display()));
        }
        WorkerEvent::MapRefused { message, .. } => status.say(format!("Map refused: {message}")),
        WorkerEvent::Fitting { done, total } => {
            status.fit_done.store(done as u64, Ordering::Relaxed);
            status.fit_total.store(total as u64, Ordering::Relaxed);
            if let Some(percent) = (done * 100).checked_div(total) {
                status.say(format!("Fitting the activation map: {percent}%"));
            }
        }
        WorkerEvent::MapReady { save_error, .. } => match save_error {
            Some(e) => status.say(format!("Map ready (not saved: {e})")),
            None => status.say("Map ready"),
        },
        WorkerEvent::MapFailed { message } => {
            status.say(format!("No activation map ({message}); playing without"))
        }
        WorkerEvent::PromptProcessed(prompt) => {
            builder.start_run(prompt.len());
            if let Ok(mut text) = status.text.lock() {
                text.clear();
            }
        }
        WorkerEvent::Token(token) => {
            builder.push(&token);
            status.tokens.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut text) = status.text.lock() {
                text.push_str(&token.text);
            }
        }
        WorkerEvent::Finished(reason) => {
            builder.finish_run();
            if !matches!(reason, FinishReason::Stopped) {
                status.say(format!("Generation ended: {reason:?}"));
            }
        }
        WorkerEvent::Error(error) => status.fail(format!("Error: {error}")),
        WorkerEvent::Panicked { source, message } => {
            builder.finish_run();
            status.fail(format!(
                "The model thread recovered from a crash in {source:?}: {message}"
            ));
        }
    }
}
