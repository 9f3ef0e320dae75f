//! The LLM worker: one thread that owns the model, takes [`Command`]s over a channel and hands
//! every result, as a [`WorkerEvent`], to a sink the caller supplies.
//!
//! ```text
//!  GUI / CLI ──Command──▶ channel ──▶ worker thread ──WorkerEvent──▶ sink (e.g. push to a queue)
//!  audio thread ──set()──▶ SharedTemperature ──get() before every token──┘
//! ```
//!
//! * **Loading happens here**, on [`Command::Load`], never where the worker is spawned: the
//!   plugin can spawn it in its constructor or `initialize()` and stay instant.
//! * **Temperature**: [`SharedTemperature`] is an `f32` stored as bits in an `AtomicU32`.
//!   The audio thread `set`s it (one relaxed store: no lock, no allocation); the worker `get`s
//!   it right before sampling each token, and the token's [`TokenResult::temperature`] says
//!   which value it used.
//! * **Responsiveness**: while generating, the worker checks the channel (`try_recv`) before
//!   every token, so `Stop`, `Reset`, `Load` and `Shutdown` take effect within one token. When
//!   idle it blocks on the channel and uses no CPU.
//! * **Panics**: model loading, every model step, the sink and the pacing gate run under
//!   `catch_unwind`. A panic is reported as [`WorkerEvent::Panicked`] and the thread lives on.
//!   A panic from the model drops the session (its state can no longer be trusted), so a new
//!   `Load` is needed. The process-wide panic hook still runs (by default it prints the panic
//!   to stderr); the worker does not touch it.
//!
//! # Commands
//!
//! Commands are handled in the order sent.
//!
//! | Command | Effect |
//! |---|---|
//! | `Load(path)` | Stops a running generation, drops the current model, loads `path` (`Loading`, then `Loaded` or `LoadFailed`), then gets its PCA map (see [Projection maps](#projection-maps)). A failed load leaves no model loaded. |
//! | `SetMapSource` | Where the next `Load` gets its map: the user cache (default), another cache, a file, or none. |
//! | `SetPrompt` | The next step runs the new prompt. While generating, generation carries on from the new prompt (`PromptProcessed` marks the switch). |
//! | `SetSeed`, `SetSampler`, `SetAtEnd` | Apply from the next time the prompt runs (after `Load`, `SetPrompt` or `Reset`): they are fixed per run; only the temperature changes per token. (`Session` cannot change its sampler or end-of-sequence setting yet, so when either has changed, that prompt run first loads the model again, with `Loading` and `Loaded` events.) |
//! | `SetMaxTokens` | Limit on tokens generated since the prompt ran (`None`: no limit); checked before every token, so lowering it mid-run stops at once and raising it lets `Start` carry on. |
//! | `Start` | Runs the prompt if it has not run yet (`PromptProcessed`), then generates token after token (`Token`) until something ends the run (`Finished`). `Start` after `Stop` resumes where it stopped. Without a model: `Error(NoModel)`. |
//! | `Stop` | Ends a running generation after at most the token in progress (`Finished(Stopped)`); nothing happens when idle. |
//! | `Reset` | Stops (as `Stop`), and the next `Start` runs the prompt again from scratch: with the same seed and temperatures, the same tokens come out. |
//! | `Shutdown` | Ends the thread. [`WorkerHandle`]'s `Drop` sends it and joins. |
//!
//! Every run that `Start` begins ends with exactly one [`WorkerEvent::Finished`]. A run that has
//! ended at the end of sequence or a full context stays ended until the prompt runs again
//! (`Start` only repeats the `Finished` event).
//!
//! # Projection maps
//!
//! After `Loaded`, the worker gets the model's PCA map ([`crate::activation`]) from the
//! [`MapSource`] set by the last `SetMapSource` (default [`MapSource::Auto`]: the user's map
//! cache, fitted on the embedded corpus if missing), and every token's result from then on
//! carries its normalised coordinates in [`TokenResult::coords`]:
//!
//! * a valid cached map: `MapReady` at once;
//! * none, or one that does not belong to the model or is stale — fitted on an older text of
//!   the corpus, or on other positions than the cache's (a map from before the attention sink
//!   was left out of fits; [`crate::activation::fit`]) — (`MapRefused` says why): the map is
//!   fitted, with a `Fitting { done, total }` event after each corpus line, then `MapReady`;
//! * failure (no cache dir, a refused `MapSource::File`, a model error mid-fit): `MapFailed`.
//!   **Generation works without a map**; tokens then carry empty `coords`. A missing map must
//!   not silence the model: the music side can fall back to other features, and the message
//!   says how to fix it.
//!
//! While a map is being fitted (minutes for the default model on 2 cores), `Load` and `Shutdown`
//! cancel the fit (`MapFailed`) and take effect at once; every other command waits until the
//! fit ends and is then handled in order. `MapSource::Off` gets no map and sends no map
//! events. When a changed sampler or end-of-sequence setting reloads the model, its map is
//! kept.
//!
//! # Concept directions
//!
//! `SetDirection` chooses a concept direction ([`crate::activation::direction`]); before each
//! prompt run the session gets it if it does not have it: a shipped set from the user's
//! direction cache, fitted on first use (seconds; the model is reset afterwards, the prompt
//! runs next anyway), or a user's file checked against the model. Every token then carries its
//! projection per state and its tension (`DirectionReady`); a direction that cannot be had is
//! reported (`DirectionFailed`) and the run plays without tension.
//!
//! # Remote text
//!
//! With `SetBackend(Backend::Remote)`, from the next prompt run an OpenAI-compatible server
//! writes the text ([`crate::remote`]) and the local model reads it: the prompt runs locally
//! as always, then each step asks the server for one piece at the temperature the loudness
//! chose (the server's top alternatives, chosen here with the run's seed), and the local model
//! reads the text one of its own tokens at a time ([`Session::force`], `worker::remote_run`),
//! so every token still carries every state. `RemoteReady`, `RemotePiece` and `RemoteTrouble`
//! report the server; a failure is retried with back-off, then the local model writes on
//! (fallback) or the run ends with `Error(Remote)`. While a request or a back-off waits, the
//! commands that end or restart a run cut it short.
//!
//! # Pacing
//!
//! The plugin wants the worker a few tokens ahead of playback, not the whole context ahead.
//! [`Pacing::Gated`] takes a caller-supplied "may produce" function, asked (on the worker
//! thread) before every step; while it says `false` the worker waits on its command channel
//! with a timeout of `poll`, so commands are still handled at once, and asks again. The gate
//! is typically `move || queue_has_room()`, or an atomic count of tokens ahead of playback
//! compared with N. The gate is asked once before the prompt runs, whose results all come in
//! one `PromptProcessed` event, then once before each token.
//!
//! Why a polled gate rather than a budget the consumer tops up and a wake-up: the consumer is
//! the audio thread, which must not make the syscalls a wake-up (condvar, `unpark`) takes.
//! Polling every few milliseconds costs nothing measurable next to a model step (tens of
//! milliseconds), and the gate function keeps the policy ("how far ahead") with the caller.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::ops::ControlFlow;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SendError, Sender, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::remote_run::{self, RemoteRun};
use super::session::{AtEnd, Session, TokenResult};
use crate::activation::cache::{self, Found, MapCache};
use crate::activation::direction::DirectionChoice;
use crate::activation::direction::cache::{DirectionCache, DirectionOrigin, ensure_direction};
use crate::activation::{CorpusCloud, FitProgress, ProjectionMap, identify};
use crate::io::run_file::RemotePiece;
use crate::llm::error::{LlmError, Result};
use crate::llm::loader::{self, LoadedModel};
use crate::llm::model::ModelInfo;
use crate::llm::sampler::SamplerConfig;
use crate::llm::tokenizer::PromptMode;
use crate::remote::choose::piece_seed;
use crate::remote::settings::Backend;
use crate::remote::writer::RemoteError;
use crate::weights::KeyStats;
use crate::weights::analysis::model_key_of;

/// The sampling temperature, shared between whoever sets it (the audio thread, from the
/// track's loudness) and the worker, which reads it before every token. Clones share the
/// value. `set` and `get` are single relaxed atomic operations: safe on the audio thread.
#[derive(Clone)]
pub struct SharedTemperature(Arc<AtomicU32>);

impl SharedTemperature {
    pub fn new(temperature: f32) -> Self {
        Self(Arc::new(AtomicU32::new(temperature.to_bits())))
    }

    pub fn set(&self, temperature: f32) {
        self.0.store(temperature.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for SharedTemperature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedTemperature")
            .field(&self.get())
            .finish()
    }
}

/// What the worker is told to do; see the [module docs](self) for each command's effect.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Load(PathBuf),
    SetPrompt {
        text: String,
        mode: PromptMode,
    },
    SetSeed(u64),
    SetSampler(SamplerConfig),
    SetAtEnd(AtEnd),
    SetMaxTokens(Option<usize>),
    SetMapSource(MapSource),
    /// Which concept direction the next prompt run projects on (see [Concept directions](self#concept-directions)).
    SetDirection(DirectionChoice),
    /// Who writes the next run's text (see [Remote text](self#remote-text)).
    SetBackend(Backend),
    Start,
    Stop,
    Reset,
    Shutdown,
}

/// Where the worker gets a loaded model's PCA map; see [Projection maps](self#projection-maps).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum MapSource {
    /// The user's map cache ([`MapCache::user`]): reuse the model's map, or fit one on the
    /// embedded corpus with K = 16, each line's first position left out, and store it.
    #[default]
    Auto,
    /// Another cache folder, corpus or K (tests fit a small corpus into a temp dir).
    Cache(MapCache),
    /// This map file, refused unless it belongs to the model; never fitted.
    File(PathBuf),
    /// No map and no map events; tokens carry empty `coords`.
    Off,
}

/// Why a generation run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its answer (with [`AtEnd::Stop`]).
    EndOfSequence,
    /// The [`Command::SetMaxTokens`] limit was reached.
    MaxTokens,
    /// The model's context is full; `Reset` to start over.
    ContextFull,
    /// `Stop`, `Reset` or `Load` ended it.
    Stopped,
    /// An error or a panic ended it; the preceding `Error`, `Panicked` or `LoadFailed` event
    /// says what.
    Failed,
}

/// Where a caught panic came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicSource {
    /// Loading a model; a `LoadFailed` event follows.
    Load,
    /// A model step (prompt or token); the session has been dropped, load a model again.
    Model,
    /// The sink, handling an event; that event is lost.
    Sink,
    /// The pacing gate; the run ends with `Finished(Failed)`.
    Gate,
}

/// A command the worker could not carry out. The worker stays usable.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("no model is loaded")]
    NoModel,
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The server writing the text failed for good and no fallback was chosen.
    #[error("the text server failed: {0}")]
    Remote(String),
}

/// What the worker reports to the sink.
#[derive(Debug)]
pub enum WorkerEvent {
    /// Loading `path` has begun (it may take seconds).
    Loading {
        path: PathBuf,
    },
    Loaded {
        info: ModelInfo,
        path: PathBuf,
        /// The model's own key (read from its norms, `weights::key`), or why it has none.
        key: std::result::Result<KeyStats, String>,
    },
    /// Nothing is loaded now.
    LoadFailed {
        path: PathBuf,
        message: String,
    },
    /// A map found for the model could not be used (another model's, a stale corpus, a
    /// damaged file); with a cache source, a fit follows.
    MapRefused {
        path: PathBuf,
        message: String,
    },
    /// Fitting the model's map: `done` of `total` corpus lines have run.
    Fitting {
        done: usize,
        total: usize,
    },
    /// Tokens from now on carry `coords` of `components` per layer. `fitted`: fitted just now
    /// (else read from `path`). `save_error`: a fitted map could not be stored at `path`
    /// (it is used all the same).
    MapReady {
        path: PathBuf,
        components: usize,
        fitted: bool,
        save_error: Option<String>,
        /// The map's corpus cloud for the editor's plot, `None` for a map fitted before
        /// clouds were kept. Shared, never copied: the GUI reads it through `LinkStatus`.
        cloud: Option<Arc<CorpusCloud>>,
    },
    /// The model has no map; tokens carry empty `coords` (generation works regardless).
    MapFailed {
        message: String,
    },
    /// Tokens from this run on carry the projection on the `name` direction and its tension.
    /// `fitted`: fitted just now (seconds), else read from `path`.
    DirectionReady {
        name: String,
        path: PathBuf,
        fitted: bool,
        save_error: Option<String>,
    },
    /// No direction for this run (a bad file, another model's, a prompt the model cannot
    /// read); tokens carry no tension, the rest plays on.
    DirectionFailed {
        message: String,
    },
    /// The prompt ran: one result per prompt token (their `temperature` is `None`).
    PromptProcessed(Vec<TokenResult>),
    /// One generated token.
    Token(TokenResult),
    /// A line heard of the track was read into the context before generated token
    /// `before_token`, taking `tokens` positions.
    Heard {
        before_token: usize,
        text: String,
        tokens: usize,
    },
    /// A server writes this run's text: `model` at `url`. `server_chooses`: it sends no
    /// alternatives, so it picks each piece itself (the run's seed no longer decides).
    RemoteReady {
        url: String,
        model: String,
        server_chooses: bool,
    },
    /// A piece the server wrote (its `run` is the builder's to fill in).
    RemotePiece(RemotePiece),
    /// The server failed: it is asked again after `retry_in`, or (`None`) no more; then the
    /// local model writes on if `fell_back`, else the run ends with an `Error`.
    RemoteTrouble {
        message: String,
        retry_in: Option<Duration>,
        fell_back: bool,
    },
    Finished(FinishReason),
    Error(WorkerError),
    Panicked {
        source: PanicSource,
        message: String,
    },
}

/// The step the worker is about to take, as the gate sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Running the prompt (a new run begins).
    Prompt,
    /// Generating token `index` of the run (0-based).
    Token(usize),
}

/// What the gate answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Admit {
    /// Not yet: ask again after `poll`.
    Wait,
    Go,
    /// Go, after reading this text into the context (a line the model heard of the track):
    /// it is context, like the prompt, not generated text.
    Read(String),
}

/// Says whether the worker may take its next step; see [`Pacing`]. It runs on the worker
/// thread right before the step, so it may also set the temperature the token will use.
pub type Gate = Box<dyn Fn(NextStep) -> Admit + Send>;

/// How fast the worker generates.
#[derive(Default)]
pub enum Pacing {
    /// As fast as the model goes.
    #[default]
    Free,
    /// Before every step (the prompt, each token) ask `may_produce`; while it says `false`,
    /// wait up to `poll` for a command, then ask again.
    Gated { may_produce: Gate, poll: Duration },
}

impl Pacing {
    /// How often a closed gate is asked again, for [`Pacing::gated`].
    pub const DEFAULT_POLL: Duration = Duration::from_millis(5);

    /// [`Pacing::Gated`] with [`Pacing::DEFAULT_POLL`], for a gate that does not care which
    /// step comes next.
    pub fn gated(may_produce: impl Fn() -> bool + Send + 'static) -> Self {
        Self::gated_steps(move |_| may_produce())
    }

    /// [`Pacing::Gated`] with [`Pacing::DEFAULT_POLL`], for a gate told which step is next.
    pub fn gated_steps(may_produce: impl Fn(NextStep) -> bool + Send + 'static) -> Self {
        Self::admitting(move |next| {
            if may_produce(next) {
                Admit::Go
            } else {
                Admit::Wait
            }
        })
    }

    /// [`Pacing::Gated`] with [`Pacing::DEFAULT_POLL`], for a gate that may also hand the
    /// worker text to read before a token.
    pub fn admitting(admit: impl Fn(NextStep) -> Admit + Send + 'static) -> Self {
        Pacing::Gated {
            may_produce: Box::new(admit),
            poll: Self::DEFAULT_POLL,
        }
    }
}

impl fmt::Debug for Pacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pacing::Free => f.write_str("Free"),
            Pacing::Gated { poll, .. } => f.debug_struct("Gated").field("poll", poll).finish(),
        }
    }
}

/// The worker thread. Dropping the handle sends [`Command::Shutdown`] and joins the thread
/// (which waits for a model load or step in progress to finish).
pub struct WorkerHandle {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Start the worker thread. Nothing is loaded until [`Command::Load`]. `sink` is called on
    /// the worker thread with every event, in order.
    pub fn spawn(
        temperature: SharedTemperature,
        pacing: Pacing,
        sink: impl FnMut(WorkerEvent) + Send + 'static,
    ) -> std::io::Result<Self> {
        Self::spawn_with_loader(temperature, pacing, Box::new(sink), Box::new(loader::load))
    }

    fn spawn_with_loader(
        temperature: SharedTemperature,
        pacing: Pacing,
        sink: Box<dyn FnMut(WorkerEvent) + Send>,
        loader: LoadFn,
    ) -> std::io::Result<Self> {
        let (commands, receiver) = mpsc::channel();
        let worker = Worker {
            commands: receiver,
            temperature,
            pacing,
            sink,
            loader,
            settings: Settings::default(),
            model: None,
            progress: Progress::Fresh,
            running: false,
            pending: VecDeque::new(),
            remote: None,
        };
        let thread = thread::Builder::new()
            .name("latent-choir-llm".to_owned())
            .spawn(move || worker.run())?;
        Ok(Self {
            commands,
            thread: Some(thread),
        })
    }

    /// Queue a command. Fails only if the worker thread has ended.
    pub fn send(&self, command: Command) -> std::result::Result<(), SendError<Command>> {
        self.commands.send(command)
    }

    /// Another sender for the same worker, e.g. for the GUI thread. The handle still decides
    /// when the thread ends.
    pub fn sender(&self) -> Sender<Command> {
        self.commands.clone()
    }

    /// Send [`Command::Shutdown`] and wait for the thread to end. `Err` carries the payload of
    /// a panic that escaped the worker loop (it should not happen).
    pub fn shutdown(mut self) -> thread::Result<()> {
        self.join()
    }

    fn join(&mut self) -> thread::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        // Fails only if the thread has already ended, which is what we want anyway.
        let _ = self.commands.send(Command::Shutdown);
        thread.join()
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("joined", &self.thread.is_none())
            .finish()
    }
}

type LoadFn = Box<dyn FnMut(&Path) -> Result<LoadedModel> + Send>;

/// What the next run uses.
#[derive(Debug, Clone, Default)]
struct Settings {
    prompt: String,
    mode: PromptMode,
    seed: u64,
    sampler: SamplerConfig,
    at_end: AtEnd,
    max_tokens: Option<usize>,
    map_source: MapSource,
    direction: DirectionChoice,
    backend: Backend,
}

/// A loaded model's session and the settings it was built with.
struct Model {
    session: Session,
    sampler: SamplerConfig,
    at_end: AtEnd,
    /// The direction choice the session projects on (tried, even if it failed).
    direction: DirectionChoice,
}

/// How [`Worker::load`] gets the model's map.
enum MapPlan {
    /// From the current [`MapSource`].
    Obtain,
    /// Keep what the previous session of the same model had (a settings reload).
    Reuse(Option<Arc<ProjectionMap>>),
}

/// Where the current run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// The prompt has not run (yet, or again).
    Fresh,
    /// The prompt ran and `generated` tokens followed it.
    Generating { generated: usize },
    /// The run ended for good (end of sequence, full context) until the prompt runs again.
    Ended(FinishReason),
}

enum GateAnswer {
    /// With a line to read first, perhaps.
    Open(Option<String>),
    /// Ask again after waiting this long for a command.
    Closed(Duration),
    /// The gate panicked; reported, and the run has ended.
    Panicked,
}

struct Worker {
    commands: Receiver<Command>,
    temperature: SharedTemperature,
    pacing: Pacing,
    sink: Box<dyn FnMut(WorkerEvent) + Send>,
    loader: LoadFn,
    settings: Settings,
    model: Option<Model>,
    progress: Progress,
    /// Between `Start` and `Finished`.
    running: bool,
    /// Commands that arrived while a map was being fitted or a server was asked, handled
    /// before the channel.
    pending: VecDeque<Command>,
    /// The current run's server, when one writes the text.
    remote: Option<RemoteRun>,
}

impl Worker {
    fn run(mut self) {
        loop {
            let command = if let Some(command) = self.pending.pop_front() {
                Some(command)
            } else if self.running {
                match self.commands.try_recv() {
                    Ok(command) => Some(command),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match self.commands.recv() {
                    Ok(command) => Some(command),
                    Err(_) => return,
                }
            };
            if let Some(command) = command {
                if !self.handle(command) {
                    return;
                }
                continue;
            }
            // Generating and no command waiting.
            if let Some(reason) = self.due_finish() {
                self.finish(reason);
                continue;
            }
            match self.gate() {
                GateAnswer::Open(heard) => self.step(heard),
                GateAnswer::Closed(poll) => match self.commands.recv_timeout(poll) {
                    Ok(command) => {
                        if !self.handle(command) {
                            return;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                // Reported, and the run has ended.
                GateAnswer::Panicked => {}
            }
        }
    }

    /// Carry out `command`; `false` to end the thread.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Load(path) => {
                self.stop();
                // Free the old model before loading the new one: two large models may not fit.
                self.model = None;
                self.progress = Progress::Fresh;
                self.load(path, MapPlan::Obtain);
            }
            Command::SetPrompt { text, mode } => {
                self.settings.prompt = text;
                self.settings.mode = mode;
                self.progress = Progress::Fresh;
            }
            Command::SetSeed(seed) => self.settings.seed = seed,
            Command::SetSampler(sampler) => self.settings.sampler = sampler,
            Command::SetAtEnd(at_end) => self.settings.at_end = at_end,
            Command::SetMaxTokens(max_tokens) => self.settings.max_tokens = max_tokens,
            Command::SetMapSource(source) => self.settings.map_source = source,
            Command::SetDirection(choice) => self.settings.direction = choice,
            Command::SetBackend(backend) => self.settings.backend = backend,
            Command::Start => {
                if self.model.is_some() {
                    self.running = true;
                } else {
                    self.emit(WorkerEvent::Error(WorkerError::NoModel));
                }
            }
            Command::Stop => self.stop(),
            Command::Reset => {
                self.stop();
                self.progress = Progress::Fresh;
            }
            Command::Shutdown => return false,
        }
        true
    }

    fn stop(&mut self) {
        if self.running {
            self.finish(FinishReason::Stopped);
        }
    }

    fn finish(&mut self, reason: FinishReason) {
        self.running = false;
        self.emit(WorkerEvent::Finished(reason));
    }

    /// A reason to end the run before another step.
    fn due_finish(&self) -> Option<FinishReason> {
        match self.progress {
            Progress::Ended(reason) => Some(reason),
            Progress::Generating { generated }
                if self.settings.max_tokens.is_some_and(|max| generated >= max) =>
            {
                Some(FinishReason::MaxTokens)
            }
            _ => None,
        }
    }

    /// May the next step run?
    fn gate(&mut self) -> GateAnswer {
        let Pacing::Gated { may_produce, poll } = &self.pacing else {
            return GateAnswer::Open(None);
        };
        let poll = *poll;
        let next = match self.progress {
            Progress::Generating { generated } => NextStep::Token(generated),
            _ => NextStep::Prompt,
        };
        match panic::catch_unwind(AssertUnwindSafe(|| may_produce(next))) {
            Ok(Admit::Go) => GateAnswer::Open(None),
            Ok(Admit::Read(text)) => GateAnswer::Open(Some(text)),
            Ok(Admit::Wait) => GateAnswer::Closed(poll),
            Err(payload) => {
                self.emit(WorkerEvent::Panicked {
                    source: PanicSource::Gate,
                    message: panic_message(payload.as_ref()),
                });
                self.finish(FinishReason::Failed);
                GateAnswer::Panicked
            }
        }
    }

    /// Run the prompt or generate one token (reading `heard` into the context first).
    fn step(&mut self, heard: Option<String>) {
        match self.progress {
            Progress::Fresh => self.run_prompt(),
            Progress::Generating { generated } => {
                if let Some(text) = heard {
                    if !self.hear(generated, &text) {
                        return;
                    }
                    if let Some(remote) = self.remote.as_mut() {
                        remote.heard(&text);
                    }
                }
                if self.remote.is_some() {
                    self.remote_token(generated)
                } else {
                    self.next_token(generated)
                }
            }
            Progress::Ended(reason) => self.finish(reason),
        }
    }

    fn run_prompt(&mut self) {
        if !self.apply_settings() {
            self.finish(FinishReason::Failed);
            return;
        }
        self.apply_direction();
        let Some(model) = self.model.as_mut() else {
            self.no_model();
            return;
        };
        let Settings {
            prompt, mode, seed, ..
        } = &self.settings;
        let session = &mut model.session;
        match panic::catch_unwind(AssertUnwindSafe(|| session.start(prompt, *mode, *seed))) {
            Ok(Ok(results)) => {
                self.progress = Progress::Generating { generated: 0 };
                self.emit(WorkerEvent::PromptProcessed(results));
                self.connect_remote();
            }
            Ok(Err(error)) => self.fail(error),
            Err(payload) => self.model_panicked(payload),
        }
    }

    /// Before a prompt runs: give the session the direction the settings ask for, unless it
    /// has it. Fitting a shipped set takes seconds on first use (then it is cached); a
    /// direction that cannot be had is reported and the run goes on without tension.
    fn apply_direction(&mut self) {
        let Some(model) = self.model.as_mut() else {
            return;
        };
        let choice = self.settings.direction.clone();
        if model.direction == choice {
            return;
        }
        model.direction = choice.clone();
        let session = &mut model.session;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            let cache = DirectionCache::user()?;
            ensure_direction(session.loaded_mut(), &cache, &choice, &mut |_| {
                ControlFlow::Continue(())
            })
        }));
        let event = match outcome {
            Ok(Ok(None)) => {
                let _ = session.set_direction(None);
                return;
            }
            Ok(Ok(Some(ensured))) => {
                let name = ensured.direction.name().to_owned();
                match session.set_direction(Some(Arc::new(ensured.direction))) {
                    Ok(()) => WorkerEvent::DirectionReady {
                        name,
                        path: ensured.path,
                        fitted: matches!(ensured.origin, DirectionOrigin::Fitted { .. }),
                        save_error: ensured.save_error.map(|e| e.to_string()),
                    },
                    Err(message) => WorkerEvent::DirectionFailed { message },
                }
            }
            Ok(Err(error)) => {
                let _ = session.set_direction(None);
                WorkerEvent::DirectionFailed {
                    message: error.to_string(),
                }
            }
            Err(payload) => {
                let _ = session.set_direction(None);
                WorkerEvent::DirectionFailed {
                    message: format!(
                        "fitting the direction panicked: {}",
                        panic_message(payload.as_ref())
                    ),
                }
            }
        };
        self.emit(event);
    }

    /// Reads `text` into the context before token `generated`; `false` if that ended the run.
    fn hear(&mut self, generated: usize, text: &str) -> bool {
        let Some(model) = self.model.as_mut() else {
            self.no_model();
            return false;
        };
        let session = &mut model.session;
        match panic::catch_unwind(AssertUnwindSafe(|| session.hear(text))) {
            Ok(Ok(tokens)) => {
                self.emit(WorkerEvent::Heard {
                    before_token: generated,
                    text: text.to_owned(),
                    tokens,
                });
                true
            }
            Ok(Err(error)) => {
                self.fail(error);
                false
            }
            Err(payload) => {
                self.model_panicked(payload);
                false
            }
        }
    }

    /// After the prompt ran: the server that writes this run's text, if one does. A server
    /// that cannot even be set up (a missing key, a bad URL) ends the run, or leaves the
    /// local model writing when fallback was chosen.
    fn connect_remote(&mut self) {
        self.remote = None;
        let Backend::Remote(settings) = &self.settings.backend else {
            return;
        };
        let fallback = settings.fallback;
        match RemoteRun::new(settings.clone(), &self.settings.prompt, self.settings.mode) {
            Ok(remote) => self.remote = Some(remote),
            Err(error) if fallback => self.emit(WorkerEvent::RemoteTrouble {
                message: error.to_string(),
                retry_in: None,
                fell_back: true,
            }),
            Err(error) => {
                self.progress = Progress::Fresh;
                self.emit(WorkerEvent::Error(WorkerError::Remote(error.to_string())));
                self.finish(FinishReason::Failed);
            }
        }
    }

    /// The next token of a run a server writes: the next local token of its text, asking
    /// for pieces until one completes a token. Waits (backing off after a failure) poll the
    /// command channel: `Stop`, `Reset`, `Load`, `SetPrompt` and `Shutdown` cut a request or
    /// a wait short (they are handled next), other commands wait for the token.
    fn remote_token(&mut self, generated: usize) {
        let keep_going = self.settings.at_end == AtEnd::Continue;
        loop {
            let (Some(remote), Some(model)) = (self.remote.as_mut(), self.model.as_ref()) else {
                return self.next_token(generated);
            };
            if let Some((id, temperature)) = remote.take_ready() {
                return self.read_token(generated, id, temperature);
            }
            if remote.fallen_back {
                return self.next_token(generated);
            }
            if remote.ended {
                self.progress = Progress::Ended(FinishReason::EndOfSequence);
                return self.finish(FinishReason::EndOfSequence);
            }
            if let Some(until) = remote.wait_until.take() {
                loop {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    if poll_commands(&self.commands, &mut self.pending, left.min(COMMAND_POLL)) {
                        remote.wait_until = Some(until);
                        return;
                    }
                }
            }
            let temperature = self.temperature.get();
            let seed = piece_seed(self.settings.seed, remote.pieces);
            let (commands, pending) = (&self.commands, &mut self.pending);
            let mut cancel = || poll_commands(commands, pending, Duration::ZERO);
            let asked = remote.writer.piece(
                remote.endpoint,
                &remote.prompt,
                &remote.answer,
                temperature,
                seed,
                &mut cancel,
            );
            let piece = match asked {
                Ok(piece) => piece,
                Err(error) if error.cancelled() => return,
                Err(error) => return self.remote_failed(error),
            };
            let record = remote_run::record(&piece, generated, temperature);
            let tokenizer = &model.session.loaded().tokenizer;
            let accepted = remote.accept(&piece, temperature, keep_going, tokenizer);
            let announce = (!remote.announced).then(|| WorkerEvent::RemoteReady {
                url: remote.writer.url().to_owned(),
                model: remote.writer.model().unwrap_or_default().to_owned(),
                server_chooses: remote.writer.server_chooses(),
            });
            remote.announced = true;
            if let Some(event) = announce {
                self.emit(event);
            }
            self.emit(WorkerEvent::RemotePiece(record));
            if let Err(error) = accepted {
                return self.fail(error);
            }
        }
    }

    /// A piece could not be had: back off and try again, then fall back or end the run.
    fn remote_failed(&mut self, error: RemoteError) {
        let (Some(remote), Some(model)) = (self.remote.as_mut(), self.model.as_ref()) else {
            return;
        };
        let message = error.to_string();
        if error.retryable()
            && let Some(wait) = remote.retry.after_failure()
        {
            remote.wait_until = Some(Instant::now() + wait);
            return self.emit(WorkerEvent::RemoteTrouble {
                message,
                retry_in: Some(wait),
                fell_back: false,
            });
        }
        if remote.fallback {
            let tokenizer = &model.session.loaded().tokenizer;
            if let Err(error) = remote.fall_back(tokenizer, self.temperature.get()) {
                return self.fail(error);
            }
            return self.emit(WorkerEvent::RemoteTrouble {
                message,
                retry_in: None,
                fell_back: true,
            });
        }
        // `Start` tries the server again from here.
        remote.retry = Default::default();
        self.emit(WorkerEvent::Error(WorkerError::Remote(message)));
        self.finish(FinishReason::Failed);
    }

    /// The local model reads a token of the server's text.
    fn read_token(&mut self, generated: usize, id: u32, temperature: f32) {
        let Some(model) = self.model.as_mut() else {
            self.no_model();
            return;
        };
        let session = &mut model.session;
        match panic::catch_unwind(AssertUnwindSafe(|| session.force(id, temperature))) {
            Ok(Ok(Some(token))) => {
                self.progress = Progress::Generating {
                    generated: generated + 1,
                };
                self.emit(WorkerEvent::Token(token));
            }
            Ok(Ok(None)) => {
                self.progress = Progress::Ended(FinishReason::ContextFull);
                self.finish(FinishReason::ContextFull);
            }
            Ok(Err(error)) => self.fail(error),
            Err(payload) => self.model_panicked(payload),
        }
    }

    fn next_token(&mut self, generated: usize) {
        let Some(model) = self.model.as_mut() else {
            self.no_model();
            return;
        };
        let temperature = self.temperature.get();
        let session = &mut model.session;
        match panic::catch_unwind(AssertUnwindSafe(|| session.next(temperature))) {
            Ok(Ok(Some(token))) => {
                self.progress = Progress::Generating {
                    generated: generated + 1,
                };
                self.emit(WorkerEvent::Token(token));
            }
            Ok(Ok(None)) => {
                let model = &session.loaded().model;
                let reason = if model.position() >= model.info().context_length {
                    FinishReason::ContextFull
                } else {
                    FinishReason::EndOfSequence
                };
                self.progress = Progress::Ended(reason);
                self.finish(reason);
            }
            Ok(Err(error)) => self.fail(error),
            Err(payload) => self.model_panicked(payload),
        }
    }

    /// A step failed: report it, end the run, and run the prompt again next time (the model's
    /// cache may hold part of the failed step).
    fn fail(&mut self, error: LlmError) {
        self.progress = Progress::Fresh;
        self.emit(WorkerEvent::Error(error.into()));
        self.finish(FinishReason::Failed);
    }

    fn no_model(&mut self) {
        self.emit(WorkerEvent::Error(WorkerError::NoModel));
        self.finish(FinishReason::Failed);
    }

    fn model_panicked(&mut self, payload: Box<dyn Any + Send>) {
        self.model = None;
        self.progress = Progress::Fresh;
        self.emit(WorkerEvent::Panicked {
            source: PanicSource::Model,
            message: panic_message(payload.as_ref()),
        });
        self.finish(FinishReason::Failed);
    }

    /// Make the session use the current sampler and end-of-sequence settings. `false` if
    /// that failed (reported) and no model is loaded now.
    ///
    /// `Session` has no way to change them, nor to give its model back, so a change means
    /// loading the model again.
    fn apply_settings(&mut self) -> bool {
        let Some(model) = &self.model else {
            return true;
        };
        if model.sampler == self.settings.sampler && model.at_end == self.settings.at_end {
            return true;
        }
        let path = model.session.loaded().path.clone();
        let map = model.session.projection().cloned();
        self.model = None;
        self.load(path, MapPlan::Reuse(map))
    }

    /// Load `path` into a fresh session and give it a map; `true` if the model loaded (with
    /// or without a map).
    fn load(&mut self, path: PathBuf, plan: MapPlan) -> bool {
        self.emit(WorkerEvent::Loading { path: path.clone() });
        let Settings {
            seed,
            sampler,
            at_end,
            ..
        } = self.settings.clone();
        let loader = &mut self.loader;
        let mut loaded = match panic::catch_unwind(AssertUnwindSafe(|| loader(&path))) {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(error)) => {
                let message = error.to_string();
                self.emit(WorkerEvent::LoadFailed { path, message });
                return false;
            }
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                self.emit(WorkerEvent::Panicked {
                    source: PanicSource::Load,
                    message: message.clone(),
                });
                let message = format!("loading panicked: {message}");
                self.emit(WorkerEvent::LoadFailed { path, message });
                return false;
            }
        };
        let info = loaded.model.info().clone();
        let key = panic::catch_unwind(|| model_key_of(&path))
            .map_err(|payload| panic_message(payload.as_ref()))
            .and_then(|key| key.map_err(|e| e.to_string()));
        self.emit(WorkerEvent::Loaded {
            info,
            path: path.clone(),
            key,
        });
        let map = match plan {
            MapPlan::Reuse(map) => map,
            MapPlan::Obtain => {
                let source = self.settings.map_source.clone();
                match panic::catch_unwind(AssertUnwindSafe(|| {
                    self.obtain_map(&mut loaded, &source)
                })) {
                    Ok(map) => map,
                    Err(payload) => {
                        // The model panicked mid-fit: like any model panic, the model goes.
                        let message = panic_message(payload.as_ref());
                        self.emit(WorkerEvent::Panicked {
                            source: PanicSource::Model,
                            message: message.clone(),
                        });
                        self.emit(WorkerEvent::MapFailed {
                            message: format!("fitting the map panicked: {message}"),
                        });
                        return false;
                    }
                }
            }
        };
        let mut session = Session::new(loaded, sampler, seed, at_end);
        if let Err(error) = session.set_projection(map) {
            self.emit(WorkerEvent::MapFailed {
                message: error.to_string(),
            });
        }
        self.model = Some(Model {
            session,
            sampler,
            at_end,
            direction: DirectionChoice::Off,
        });
        true
    }

    /// The model's map from `source`, reporting what happens as map events; `None` (after
    /// `MapFailed`) if there is none.
    fn obtain_map(
        &mut self,
        loaded: &mut LoadedModel,
        source: &MapSource,
    ) -> Option<Arc<ProjectionMap>> {
        let cache = match source {
            MapSource::Off => return None,
            MapSource::File(path) => {
                let result = identify(&loaded.path).and_then(|identity| {
                    cache::open_for_model(path, &identity, loaded.model.info())
                });
                return match result {
                    Ok(map) => {
                        self.emit(WorkerEvent::MapReady {
                            path: path.clone(),
                            components: map.components(),
                            fitted: false,
                            save_error: None,
                            cloud: map.corpus_cloud().cloned(),
                        });
                        Some(Arc::new(map))
                    }
                    Err(error) => {
                        self.emit(WorkerEvent::MapFailed {
                            message: error.to_string(),
                        });
                        None
                    }
                };
            }
            MapSource::Cache(cache) => cache.clone(),
            MapSource::Auto => match MapCache::user() {
                Ok(cache) => cache,
                Err(error) => {
                    self.emit(WorkerEvent::MapFailed {
                        message: error.to_string(),
                    });
                    return None;
                }
            },
        };
        let entry = match cache::lookup(loaded, &cache) {
            Ok(entry) => entry,
            Err(error) => {
                self.emit(WorkerEvent::MapFailed {
                    message: error.to_string(),
                });
                return None;
            }
        };
        match entry.found {
            Found::Valid(map) => {
                self.emit(WorkerEvent::MapReady {
                    path: entry.path,
                    components: map.components(),
                    fitted: false,
                    save_error: None,
                    cloud: map.corpus_cloud().cloned(),
                });
                return Some(Arc::new(map));
            }
            Found::Refused(reason) => self.emit(WorkerEvent::MapRefused {
                path: entry.path.clone(),
                message: reason.to_string(),
            }),
            Found::Missing => {}
        }
        let Self {
            commands,
            sink,
            pending,
            ..
        } = self;
        let mut progress = |p: FitProgress| {
            emit_to(
                sink,
                WorkerEvent::Fitting {
                    done: p.done,
                    total: p.total,
                },
            );
            take_commands_while_fitting(commands, pending)
        };
        match cache::fit_and_store(loaded, &cache, &entry.identity, &entry.path, &mut progress) {
            Ok((map, _, save_error)) => {
                self.emit(WorkerEvent::MapReady {
                    path: entry.path,
                    components: map.components(),
                    fitted: true,
                    save_error: save_error.map(|e| e.to_string()),
                    cloud: map.corpus_cloud().cloned(),
                });
                Some(Arc::new(map))
            }
            Err(error) => {
                self.emit(WorkerEvent::MapFailed {
                    message: error.to_string(),
                });
                None
            }
        }
    }

    /// Hand `event` to the sink (see [`emit_to`]).
    fn emit(&mut self, event: WorkerEvent) {
        emit_to(&mut self.sink, event);
    }
}

/// Hand `event` to `sink`. If the sink panics, the event is lost and the sink is told so
/// (once; a second panic is swallowed).
fn emit_to(sink: &mut Box<dyn FnMut(WorkerEvent) + Send>, event: WorkerEvent) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| sink(event))) {
        let message = panic_message(payload.as_ref());
        let _ = panic::catch_unwind(AssertUnwindSafe(|| {
            sink(WorkerEvent::Panicked {
                source: PanicSource::Sink,
                message,
            })
        }));
    }
}

/// While a map is fitted: queue every command that has arrived; `Break` (cancel the fit) if
/// one of them is `Load` or `Shutdown`, or every sender is gone.
fn take_commands_while_fitting(
    commands: &Receiver<Command>,
    pending: &mut VecDeque<Command>,
) -> ControlFlow<()> {
    loop {
        match commands.try_recv() {
            Ok(command) => {
                let cancels = matches!(command, Command::Load(_) | Command::Shutdown);
                pending.push_back(command);
                if cancels {
                    return ControlFlow::Break(());
                }
            }
            Err(TryRecvError::Empty) => return ControlFlow::Continue(()),
            Err(TryRecvError::Disconnected) => {
                pending.push_back(Command::Shutdown);
                return ControlFlow::Break(());
            }
        }
    }
}

/// How often a wait for a server looks at the command channel.
const COMMAND_POLL: Duration = Duration::from_millis(50);

/// Moves commands that arrive within `wait` to `pending`; `true` when one of them should
/// cut short a request or a wait for the server (or the channel is gone).
fn poll_commands(
    commands: &Receiver<Command>,
    pending: &mut VecDeque<Command>,
    wait: Duration,
) -> bool {
    let first = if wait.is_zero() {
        commands
            .try_recv()
            .map_err(|e| e == TryRecvError::Disconnected)
    } else {
        commands
            .recv_timeout(wait)
            .map_err(|e| e == RecvTimeoutError::Disconnected)
    };
    let mut next = first;
    loop {
        match next {
            Ok(command) => {
                let cuts = matches!(
                    command,
                    Command::Stop
                        | Command::Reset
                        | Command::Load(_)
                        | Command::SetPrompt { .. }
                        | Command::Shutdown
                );
                pending.push_back(command);
                if cuts {
                    return true;
                }
            }
            Err(disconnected) => return disconnected,
        }
        next = commands
            .try_recv()
            .map_err(|e| e == TryRecvError::Disconnected);
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    //! What the fixture models cannot do: panic. A fake model (with the tiny llama fixture's
    //! tokenizer) panics on a chosen forward step; a fake loader panics on request.

    use super::*;
    use crate::llm::model::{LanguageModel, Step};
    use crate::llm::tokenizer::Tokenizer;

    const TIMEOUT: Duration = Duration::from_secs(30);
    const VOCAB: usize = 400;

    struct Fake {
        info: ModelInfo,
        position: usize,
        forwards: usize,
        /// Panic on this forward step (1 = the prompt).
        panic_on: usize,
    }

    impl LanguageModel for Fake {
        fn info(&self) -> &ModelInfo {
            &self.info
        }

        fn forward(&mut self, tokens: &[u32]) -> Result<Step> {
            self.forwards += 1;
            if self.forwards == self.panic_on {
                panic!("model trouble");
            }
            self.position += tokens.len();
            let n = tokens.len();
            let mut logits = vec![0.0; VOCAB];
            logits[5] = 100.0;
            Ok(Step {
                logits,
                hidden: vec![0.0; 2 * n * 4],
                attention_entropy: vec![0.0; n],
                mlp_sparsity: vec![0.0; n],
                n_new: n,
            })
        }

        fn position(&self) -> usize {
            self.position
        }

        fn reset(&mut self) {
            self.position = 0;
        }
    }

    /// Loads a fake model that panics on forward step `panic_on`, or panics itself if the
    /// path is `panic`.
    fn fake_loader(panic_on: usize) -> LoadFn {
        Box::new(move |path: &Path| {
            if path == Path::new("panic") {
                panic!("loader trouble");
            }
            let tokenizer = Tokenizer::from_file(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/tiny-llama/tokenizer.json"),
            )?;
            let info = ModelInfo {
                architecture: "fake".to_owned(),
                n_layers: 1,
                width: 4,
                vocab_size: VOCAB,
                context_length: 64,
                dtype: "f32".to_owned(),
            };
            Ok(LoadedModel {
                model: Box::new(Fake {
                    info,
                    position: 0,
                    forwards: 0,
                    panic_on,
                }),
                tokenizer,
                path: path.to_path_buf(),
            })
        })
    }

    fn spawn(panic_on: usize) -> (WorkerHandle, Receiver<WorkerEvent>) {
        let (sender, events) = mpsc::channel();
        let worker = WorkerHandle::spawn_with_loader(
            SharedTemperature::new(0.0),
            Pacing::Free,
            Box::new(move |event| {
                let _ = sender.send(event);
            }),
            fake_loader(panic_on),
        )
        .unwrap();
        // The fake has no weights file to identify, so no map.
        worker.send(Command::SetMapSource(MapSource::Off)).unwrap();
        (worker, events)
    }

    fn next(events: &Receiver<WorkerEvent>) -> WorkerEvent {
        events.recv_timeout(TIMEOUT).expect("an event in time")
    }

    fn load(worker: &WorkerHandle, events: &Receiver<WorkerEvent>) {
        worker.send(Command::Load(PathBuf::from("fake"))).unwrap();
        assert!(matches!(next(events), WorkerEvent::Loading { .. }));
        // A fake model has no weights to read a key from.
        assert!(matches!(
            next(events),
            WorkerEvent::Loaded { key: Err(_), .. }
        ));
    }

    #[test]
    fn a_model_panic_drops_the_session_and_a_new_load_works() {
        let (worker, events) = spawn(4);
        worker
            .send(Command::SetPrompt {
                text: "hello".to_owned(),
                mode: PromptMode::Raw,
            })
            .unwrap();
        load(&worker, &events);
        worker.send(Command::Start).unwrap();
        assert!(matches!(next(&events), WorkerEvent::PromptProcessed(_)));
        for _ in 0..2 {
            assert!(matches!(next(&events), WorkerEvent::Token(t) if t.id == 5));
        }
        match next(&events) {
            WorkerEvent::Panicked { source, message } => {
                assert_eq!(source, PanicSource::Model);
                assert_eq!(message, "model trouble");
            }
            other => panic!("expected Panicked, got {other:?}"),
        }
        assert!(matches!(
            next(&events),
            WorkerEvent::Finished(FinishReason::Failed)
        ));
        // The broken session is gone.
        worker.send(Command::Start).unwrap();
        assert!(matches!(
            next(&events),
            WorkerEvent::Error(WorkerError::NoModel)
        ));
        // A fresh load runs the prompt again (this fake panics on its 4th step again).
        load(&worker, &events);
        worker.send(Command::SetMaxTokens(Some(2))).unwrap();
        worker.send(Command::Start).unwrap();
        assert!(matches!(next(&events), WorkerEvent::PromptProcessed(_)));
        assert!(matches!(next(&events), WorkerEvent::Token(_)));
        assert!(matches!(next(&events), WorkerEvent::Token(_)));
        assert!(matches!(
            next(&events),
            WorkerEvent::Finished(FinishReason::MaxTokens)
        ));
        worker.shutdown().unwrap();
    }

    #[test]
    fn a_loader_panic_is_reported_as_a_failed_load() {
        let (worker, events) = spawn(0);
        worker.send(Command::Load(PathBuf::from("panic"))).unwrap();
        assert!(matches!(next(&events), WorkerEvent::Loading { .. }));
        assert!(matches!(
            next(&events),
            WorkerEvent::Panicked { source: PanicSource::Load, message } if message == "loader trouble"
        ));
        match next(&events) {
            WorkerEvent::LoadFailed { path, message } => {
                assert_eq!(path, Path::new("panic"));
                assert!(message.contains("loader trouble"), "{message}");
            }
            other => panic!("expected LoadFailed, got {other:?}"),
        }
        load(&worker, &events);
        drop(worker);
        // Joined: the sink is gone.
        assert!(matches!(
            events.recv_timeout(TIMEOUT),
            Err(mpsc::RecvTimeoutError::Disconnected)
        ));
    }

    #[test]
    fn shared_temperature_round_trips_every_value() {
        let shared = SharedTemperature::new(0.7);
        let clone = shared.clone();
        assert_eq!(clone.get(), 0.7);
        for t in [0.0, -0.0, 1e-30, 2.5, f32::INFINITY] {
            shared.set(t);
            assert_eq!(clone.get().to_bits(), t.to_bits());
        }
        shared.set(f32::NAN);
        assert!(clone.get().is_nan());
    }
}
