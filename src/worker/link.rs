//! Wiring the LLM worker to the player, shared by the plugin and the command-line renderer: the
//! worker's events feed a [`FrameBuilder`] and a status the editor reads; its pacing is the
//! [`TicketGate`]; the audio side gets the [`QueueSource`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Instant;

use crate::worker::thread::{
    Admit, Command, FinishReason, NextStep, Pacing, SharedTemperature, WorkerEvent, WorkerHandle,
};

use super::feed::{self, FeedShared, FrameBuilder, QueueSource, TicketGate};
use super::heard::{HEARD_WAIT, HeardLine};
use crate::activation::CorpusCloud;
use crate::io::run_file::RemoteRecord;
use crate::music::scale::{Root, Scale};

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
    /// [`LinkPhase`] as a number: what the worker is busy with, for the editor's progress bars.
    phase: AtomicU8,
    /// The model last asked to load (set when loading begins, kept when it failed).
    pub model: Mutex<Option<PathBuf>>,
    /// The latest failure in words, cleared when a new model starts loading: a load error,
    /// a missing map, a model error. The editor keeps it on screen while `message` moves on.
    pub error: Mutex<String>,
    /// Why the model cannot generate (a failed load, an error, a crash), unlike `error` never
    /// a mere warning; cleared by the next load. The command-line renderer stops on it.
    pub failure: Mutex<Option<String>>,
    /// The lines the model read of the track in the current run, oldest first.
    pub heard: Mutex<Vec<HeardLine>>,
    /// The server writing the current run's text and its pieces so far, when one does.
    pub remote: Mutex<Option<RemoteRecord>>,
    /// The server's latest failure while it is being retried or was given up on; cleared by
    /// its next piece.
    pub remote_trouble: Mutex<Option<String>>,
    /// The loaded model's own key for the Model's Key scale: 0 none, else 1 + scale id · 12 +
    /// root (one atomic, read by the audio thread).
    model_key: AtomicU32,
    /// The map's corpus cloud for the editor's PC1/PC2 plot. Only the worker (on a map
    /// event) and the GUI lock it; the audio thread never sees it.
    cloud: Mutex<MapCloud>,
}

/// What the loaded map offers the editor's plot behind the live trajectory.
#[derive(Debug, Clone, Default)]
pub enum MapCloud {
    /// No map (none loaded yet, or the model has none).
    #[default]
    NoMap,
    /// A map fitted before maps kept their corpus cloud.
    NoCloud,
    /// The corpus at its normalised (PC1, PC2), per hidden state.
    Cloud(Arc<CorpusCloud>),
}

/// What the worker is busy with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkPhase {
    /// No model asked for yet.
    Idle = 0,
    Loading = 1,
    /// Loaded; fitting its activation map (`fit_done` of `fit_total`).
    Fitting = 2,
    /// Loaded, map ready or given up on: ready to generate.
    Ready = 3,
    /// The last load failed: nothing is loaded.
    Failed = 4,
}

impl LinkStatus {
    pub fn say(&self, message: impl Into<String>) {
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

    pub fn phase(&self) -> LinkPhase {
        match self.phase.load(Ordering::Relaxed) {
            1 => LinkPhase::Loading,
            2 => LinkPhase::Fitting,
            3 => LinkPhase::Ready,
            4 => LinkPhase::Failed,
            _ => LinkPhase::Idle,
        }
    }

    fn set_phase(&self, phase: LinkPhase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// The loaded model's key (audio thread: one atomic load).
    pub fn model_key(&self) -> Option<(Scale, Root)> {
        let code = self.model_key.load(Ordering::Relaxed).checked_sub(1)?;
        let scale = Scale::from_id((code / 12) as u8)?;
        Some((scale, Root::from_pitch_class((code % 12) as u8)))
    }

    fn set_model_key(&self, key: Option<(Scale, Root)>) {
        let code = key.map_or(0, |(scale, root)| {
            1 + u32::from(scale.id()) * 12 + u32::from(root.pitch_class())
        });
        self.model_key.store(code, Ordering::Relaxed);
    }

    pub fn error(&self) -> String {
        self.error.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The loaded map's corpus cloud (GUI thread: a short lock and an `Arc` clone).
    pub fn map_cloud(&self) -> MapCloud {
        self.cloud.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn set_map_cloud(&self, cloud: MapCloud) {
        if let Ok(mut current) = self.cloud.lock() {
            *current = cloud;
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Something the user should see until the next load, which does not stop generation.
    fn warn(&self, message: String) {
        if let Ok(mut error) = self.error.lock() {
            error.clone_from(&message);
        }
        self.say(message);
    }

    fn fail(&self, message: String) {
        if let Ok(mut failure) = self.failure.lock() {
            *failure = Some(message.clone());
        }
        self.warn(message);
    }

    pub fn model(&self) -> Option<PathBuf> {
        self.model.lock().ok().and_then(|m| m.clone())
    }

    /// The lines heard in run `run`.
    pub fn heard(&self, run: u32) -> Vec<HeardLine> {
        self.heard
            .lock()
            .map(|lines| lines.iter().filter(|l| l.run == run).cloned().collect())
            .unwrap_or_default()
    }

    /// The server that wrote run `run` and the pieces it wrote in it; `None` when the local
    /// model wrote it.
    pub fn remote(&self, run: u32) -> Option<RemoteRecord> {
        let record = self.remote.lock().ok()?.clone()?;
        let pieces: Vec<_> = record.pieces.into_iter().filter(|p| p.run == run).collect();
        (!pieces.is_empty()).then_some(RemoteRecord { pieces, ..record })
    }

    pub fn remote_trouble(&self) -> Option<String> {
        self.remote_trouble.lock().ok().and_then(|t| t.clone())
    }

    fn set_remote_trouble(&self, trouble: Option<String>) {
        if let Ok(mut current) = self.remote_trouble.lock() {
            *current = trouble;
        }
    }

    /// The last line the model read, if any.
    pub fn last_heard(&self) -> Option<HeardLine> {
        self.heard
            .lock()
            .ok()
            .and_then(|lines| lines.last().cloned())
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
    /// Starts the worker thread (nothing is loaded yet), reporting into counters and a status
    /// made beforehand (the plugin hands them to its editor before the worker exists), and
    /// returns the audio side's source.
    pub fn spawn(
        gate_settings: Arc<GateSettings>,
        shared: Arc<FeedShared>,
        status: Arc<LinkStatus>,
    ) -> std::io::Result<(Self, QueueSource)> {
        let channels = feed::channels();
        let (frames, tickets_in) = channels.builder_side;
        let (frames_out, tickets_out) = channels.audio_side;

        let temperature = SharedTemperature::new(gate_settings.initial());
        let gate = Mutex::new(TicketGate::new(Arc::clone(&shared), tickets_in));
        let (gate_temperature, settings) = (temperature.clone(), Arc::clone(&gate_settings));
        let inbox = Arc::clone(&shared);
        // (token, since) while a token waits for its heard line.
        let waiting: Mutex<Option<(usize, Instant)>> = Mutex::new(None);
        let pacing = Pacing::admitting(move |next| match next {
            NextStep::Prompt => Admit::Go,
            NextStep::Token(index) => {
                let Ok(mut gate) = gate.lock() else {
                    return Admit::Wait;
                };
                let lookahead = settings.lookahead.load(Ordering::Relaxed);
                let Some(admission) = gate.admit(index as u32, lookahead, settings.initial())
                else {
                    return Admit::Wait;
                };
                gate_temperature.set(admission.temperature);
                let Some((run, frame)) = admission.heard else {
                    return Admit::Go;
                };
                match inbox.heard.take(run, frame) {
                    Some(line) if line.is_empty() => Admit::Go,
                    Some(line) => Admit::Read(line),
                    None => {
                        let Ok(mut waiting) = waiting.lock() else {
                            return Admit::Go;
                        };
                        let since = match *waiting {
                            Some((token, since)) if token == index => since,
                            _ => waiting.insert((index, Instant::now())).1,
                        }
                        .elapsed();
                        // A listener that never answers must not stop the music.
                        if since > HEARD_WAIT {
                            Admit::Go
                        } else {
                            Admit::Wait
                        }
                    }
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
            status.set_model_key(None);
            status.set_phase(LinkPhase::Loading);
            status.fit_done.store(0, Ordering::Relaxed);
            status.fit_total.store(0, Ordering::Relaxed);
            if let Ok(mut error) = status.error.lock() {
                error.clear();
            }
            if let Ok(mut failure) = status.failure.lock() {
                *failure = None;
            }
            status.set_map_cloud(MapCloud::NoMap);
            status.say(format!("Loading {}…", path.display()));
            if let Ok(mut model) = status.model.lock() {
                *model = Some(path);
            }
        }
        WorkerEvent::Loaded { info, path, key } => {
            // A model without a readable key still plays; Model's Key then plays Major on Root.
            status.set_model_key(key.ok().and_then(|k| k.scale_and_root()));
            status.loaded.store(true, Ordering::Relaxed);
            status.set_phase(LinkPhase::Ready);
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
            status.set_map_cloud(MapCloud::NoMap);
            builder.finish_run();
            status.loaded.store(false, Ordering::Relaxed);
            status.set_phase(LinkPhase::Failed);
            status.fail(format!("Could not load {}: {message}", path.display()));
        }
        WorkerEvent::MapRefused { message, .. } => status.say(format!("Map refused: {message}")),
        WorkerEvent::Fitting { done, total } => {
            status.set_phase(LinkPhase::Fitting);
            status.fit_done.store(done as u64, Ordering::Relaxed);
            status.fit_total.store(total as u64, Ordering::Relaxed);
            if let Some(percent) = (done * 100).checked_div(total) {
                status.say(format!("Fitting the activation map: {percent}%"));
            }
        }
        WorkerEvent::MapReady {
            save_error, cloud, ..
        } => {
            status.set_map_cloud(cloud.map_or(MapCloud::NoCloud, MapCloud::Cloud));
            status.set_phase(LinkPhase::Ready);
            match save_error {
                Some(e) => status.say(format!("Map ready (not saved: {e})")),
                None => status.say("Map ready"),
            }
        }
        WorkerEvent::MapFailed { message } => {
            status.set_map_cloud(MapCloud::NoMap);
            if status.phase() == LinkPhase::Fitting {
                status.set_phase(LinkPhase::Ready);
            }
            status.warn(format!("No activation map ({message}); playing without"))
        }
        WorkerEvent::DirectionReady {
            name, save_error, ..
        } => match save_error {
            Some(e) => status.say(format!(
                "Tension follows the {name} direction (not saved: {e})"
            )),
            None => status.say(format!("Tension follows the {name} direction")),
        },
        WorkerEvent::DirectionFailed { message } => {
            status.warn(format!("No tension direction ({message}); playing without"))
        }
        WorkerEvent::PromptProcessed(prompt) => {
            builder.start_run(prompt.len());
            if let Ok(mut text) = status.text.lock() {
                text.clear();
            }
            if let Ok(mut heard) = status.heard.lock() {
                heard.clear();
            }
            if let Ok(mut remote) = status.remote.lock() {
                *remote = None;
            }
            status.set_remote_trouble(None);
        }
        WorkerEvent::RemoteReady {
            url,
            model,
            server_chooses,
        } => {
            status.say(format!("Text from {model} at {url}"));
            if let Ok(mut remote) = status.remote.lock() {
                *remote = Some(RemoteRecord {
                    url: url.split(['?', '#']).next().unwrap_or_default().to_owned(),
                    model,
                    server_chose: server_chooses,
                    pieces: Vec::new(),
                });
            }
        }
        WorkerEvent::RemotePiece(mut piece) => {
            piece.run = builder.run();
            // A server that stopped sending alternatives chose this piece itself.
            let server_chose = piece.chosen.is_none();
            status.set_remote_trouble(None);
            if let Ok(mut remote) = status.remote.lock()
                && let Some(record) = remote.as_mut()
            {
                record.server_chose |= server_chose;
                record.pieces.push(piece);
            }
        }
        WorkerEvent::RemoteTrouble {
            message,
            retry_in,
            fell_back,
        } => {
            let trouble = match (retry_in, fell_back) {
                (Some(wait), _) => format!(
                    "Text server: {message}; asking again in {:.1} s",
                    wait.as_secs_f32()
                ),
                (None, true) => format!("Text server: {message}; the local model writes on"),
                (None, false) => format!("Text server: {message}"),
            };
            status.say(trouble.clone());
            status.set_remote_trouble(Some(trouble));
        }
        WorkerEvent::Heard {
            before_token,
            text,
            tokens,
        } => {
            builder.heard(tokens);
            if let Ok(mut heard) = status.heard.lock() {
                heard.push(HeardLine {
                    run: builder.run(),
                    before_token: before_token as u32,
                    text,
                    tokens: tokens as u32,
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> FrameBuilder {
        let (frames, _) = feed::channels().builder_side;
        FrameBuilder::new(Arc::new(FeedShared::default()), frames)
    }

    #[test]
    fn load_failures_and_progress_reach_the_status_in_words() {
        let (mut builder, status) = (builder(), LinkStatus::default());
        assert_eq!(status.phase(), LinkPhase::Idle);
        let path = PathBuf::from("/models/missing.gguf");
        on_event(
            &mut builder,
            &status,
            WorkerEvent::Loading { path: path.clone() },
        );
        assert_eq!(status.phase(), LinkPhase::Loading);
        assert_eq!(status.model(), Some(path.clone()));
        on_event(
            &mut builder,
            &status,
            WorkerEvent::LoadFailed {
                path: path.clone(),
                message: "no such file".to_owned(),
            },
        );
        assert_eq!(status.phase(), LinkPhase::Failed);
        assert_eq!(
            status.error(),
            "Could not load /models/missing.gguf: no such file"
        );

        // A new load clears the old error; fitting reports its progress, then the map is ready.
        on_event(
            &mut builder,
            &status,
            WorkerEvent::Loading { path: path.clone() },
        );
        assert_eq!(status.error(), "");
        on_event(
            &mut builder,
            &status,
            WorkerEvent::Fitting { done: 3, total: 12 },
        );
        assert_eq!(status.phase(), LinkPhase::Fitting);
        assert_eq!(status.fit_done.load(Ordering::Relaxed), 3);
        assert_eq!(status.fit_total.load(Ordering::Relaxed), 12);
        assert_eq!(status.message(), "Fitting the activation map: 25%");
        on_event(
            &mut builder,
            &status,
            WorkerEvent::MapReady {
                path: path.clone(),
                components: 16,
                fitted: true,
                save_error: None,
                cloud: None,
            },
        );
        assert_eq!(status.phase(), LinkPhase::Ready);
        assert!(matches!(status.map_cloud(), MapCloud::NoCloud));
        let cloud = Arc::new(CorpusCloud::new(vec![vec![[0.5, -0.5]]]).unwrap());
        on_event(
            &mut builder,
            &status,
            WorkerEvent::MapReady {
                path: path.clone(),
                components: 16,
                fitted: false,
                save_error: None,
                cloud: Some(Arc::clone(&cloud)),
            },
        );
        match status.map_cloud() {
            MapCloud::Cloud(shared) => assert!(Arc::ptr_eq(&shared, &cloud), "shared, not copied"),
            other => panic!("{other:?}"),
        }
        on_event(&mut builder, &status, WorkerEvent::Loading { path });
        assert!(matches!(status.map_cloud(), MapCloud::NoMap));
    }
}
