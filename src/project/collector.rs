//! Collecting what the plugin plays, so the project can keep it (see [`super::saved_run`]).
//!
//! ```text
//!  audio thread ──CollectedToken──▶ [ring, COLLECT_RING] ──▶ collector thread / state save
//!  (never waits live; counts drops)                          └─▶ Collection: tokens + manifest
//! ```
//!
//! The audio thread pushes a fixed-size record for every played frame; the collector thread
//! (every [`DRAIN_EVERY`]) and the state save drain the ring into a growing [`Collection`]: the
//! run's tokens, curve points and what identifies it (prompt, model, seed, parameters, tempo,
//! sample rate). A new run id in the frames starts a new collection. A collection keeps its
//! first [`MAX_RUN_TOKENS`] tokens; the rest of a longer run is not kept.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::activation::direction::DirectionChoice;
use crate::activation::identify;
use crate::io::run_file::{self, HeardLine, Manifest, ModelRecord, PlayedToken, RemoteRecord, Run};
use crate::loudness::CurvePoint;
use crate::music::frame::TokenFrame;
use crate::music::scale::key_name;
use crate::offline::timeline::{BLOCK, Timeline};
use crate::params::LatentChoirParams;
use crate::params::text as param_text;
use crate::worker::link::LinkStatus;

/// Records the ring holds: seconds of tokens at any real-time rate, and more than an offline
/// bounce plays between two drains.
pub const COLLECT_RING: usize = 256;
/// Tokens a collection keeps: about 17 minutes at 120 BPM and 2 tokens per beat, and about
/// 5 MB of project state with the default model (1.2 KB per token in base64).
pub const MAX_RUN_TOKENS: usize = 4096;
/// How often the collector thread drains the ring.
pub const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// Longest an offline bounce waits for room in a full ring before it drops a record.
const OFFLINE_FULL_WAIT: Duration = Duration::from_secs(1);

/// One played frame, as the audio thread reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CollectedToken {
    pub token: PlayedToken,
    /// The grid's tempo when it played, in beats per minute (free-running: the tempo at which
    /// the grid would step as fast).
    pub bpm: f64,
    /// The host grid step it was first played on (`None` free-running).
    pub step: Option<i64>,
}

/// The audio thread's end of the ring.
pub struct CollectorWriter {
    ring: rtrb::Producer<CollectedToken>,
    dropped: Arc<AtomicU64>,
    /// Offline: wait (bounded) for room rather than drop.
    wait: Option<Duration>,
}

/// The draining end.
pub struct CollectorReader {
    ring: rtrb::Consumer<CollectedToken>,
    dropped: Arc<AtomicU64>,
}

/// A ring and its two ends (allocates: call off the audio thread).
pub fn collector() -> (CollectorWriter, CollectorReader) {
    let (producer, consumer) = rtrb::RingBuffer::new(COLLECT_RING);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        CollectorWriter {
            ring: producer,
            dropped: Arc::clone(&dropped),
            wait: None,
        },
        CollectorReader {
            ring: consumer,
            dropped,
        },
    )
}

impl CollectorWriter {
    /// Offline (bounce): a full ring is waited on, up to a second, so no token goes missing.
    pub fn set_offline(&mut self, offline: bool) {
        self.wait = offline.then_some(OFFLINE_FULL_WAIT);
    }

    /// Audio thread: `frame` played where the curve read `point`, at `bpm`, on grid `step`.
    pub fn record(&mut self, frame: &TokenFrame, point: &CurvePoint, bpm: f64, step: Option<i64>) {
        let mut record = CollectedToken {
            token: PlayedToken {
                frame: *frame,
                point: *point,
            },
            bpm,
            step,
        };
        let start = Instant::now();
        loop {
            match self.ring.push(record) {
                Ok(()) => return,
                Err(rtrb::PushError::Full(back)) => record = back,
            }
            match self.wait {
                // Offline only: the host waits for the bounce, so waiting here is allowed.
                Some(limit) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                _ => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

impl CollectorReader {
    /// Records the ring could not take (should stay 0).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Hands every waiting record to `each`, oldest first.
    pub fn drain(&mut self, mut each: impl FnMut(CollectedToken)) {
        while let Ok(record) = self.ring.pop() {
            each(record);
        }
    }
}

/// A run as it is collected: what identifies it and its tokens so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// The run id its frames carry.
    pub run_id: u32,
    /// Prompt, model, seed, parameters, tempo and rate, read when the run began; the token
    /// lists and lengths are filled in by [`Collection::to_run`].
    pub manifest: Manifest,
    pub tokens: Vec<PlayedToken>,
    /// The host grid step of each token, while every token had one.
    pub grid_steps: Option<Vec<i64>>,
    /// Tokens played after the collection was full.
    pub left_out: u64,
    /// What the model heard of the track during the run (Listen).
    pub heard: Vec<HeardLine>,
    /// The server that wrote the text, when one did.
    pub remote: Option<RemoteRecord>,
}

impl Collection {
    /// Starts collecting run `run_id` with `manifest` (its identity).
    pub fn new(run_id: u32, manifest: Manifest) -> Self {
        Self {
            run_id,
            manifest,
            tokens: Vec::new(),
            grid_steps: Some(Vec::new()),
            left_out: 0,
            heard: Vec::new(),
            remote: None,
        }
    }

    /// A restored run, kept as it was.
    pub fn restored(run: Run) -> Self {
        Self {
            run_id: run.tokens.first().map_or(0, |t| t.frame.run),
            grid_steps: run.manifest.grid_steps.clone(),
            heard: run.manifest.heard.clone(),
            remote: run.manifest.remote.clone(),
            manifest: run.manifest,
            tokens: run.tokens,
            left_out: 0,
        }
    }

    /// Adds a played token; `step` is its host grid step (a run with a token without one keeps
    /// no steps).
    pub fn push(&mut self, token: PlayedToken, step: Option<i64>) {
        if self.tokens.len() < MAX_RUN_TOKENS {
            self.tokens.push(token);
            match (self.grid_steps.as_mut(), step) {
                (Some(steps), Some(step)) => steps.push(step),
                _ => self.grid_steps = None,
            }
        } else {
            self.left_out += 1;
        }
    }

    /// The collection as a run file: one step per token, the piece's length on its timeline.
    pub fn to_run(&self) -> Run {
        let mut manifest = self.manifest.clone();
        let steps = self.tokens.len() as u64;
        let timeline = Timeline::for_tokens(
            manifest.sample_rate,
            manifest.bpm,
            manifest.tokens_per_beat,
            steps,
        );
        manifest.steps = steps;
        manifest.block_size = timeline.block;
        manifest.piece_samples = timeline.piece_samples;
        manifest.tail_samples = timeline.tail_samples;
        manifest.hidden_states = self
            .tokens
            .first()
            .map_or(manifest.hidden_states, |t| t.frame.hidden_states());
        manifest.tokens = self
            .tokens
            .iter()
            .map(|t| t.frame.text().to_owned())
            .collect();
        manifest.grid_steps = self.grid_steps.clone().filter(|steps| !steps.is_empty());
        manifest.heard = self.heard.clone();
        manifest.remote = self.remote.clone();
        Run {
            manifest,
            tokens: self.tokens.clone(),
            notes: Vec::new(),
        }
    }
}

/// Reads what identifies a live run when its first token arrives: the saved prompt, seed and
/// model, every parameter, the tempo it played at and the sample rate.
pub struct Describer {
    params: std::sync::Weak<LatentChoirParams>,
    link: Arc<LinkStatus>,
    /// The last model identified, by path: hashing the weights takes a moment.
    known: Mutex<Option<(std::path::PathBuf, ModelRecord)>>,
}

impl Describer {
    pub fn new(params: &Arc<LatentChoirParams>, link: Arc<LinkStatus>) -> Self {
        Self {
            params: Arc::downgrade(params),
            link,
            known: Mutex::new(None),
        }
    }

    /// The lines the model heard in run `run` so far.
    pub fn heard(&self, run: u32) -> Vec<HeardLine> {
        self.link.heard(run)
    }

    /// The server that wrote run `run` so far, if one did.
    pub fn remote(&self, run: u32) -> Option<RemoteRecord> {
        self.link.remote(run)
    }

    /// The manifest of a run that began at `bpm` and `sample_rate` (the token list empty).
    pub fn describe(&self, bpm: f64, sample_rate: u32) -> Manifest {
        let params = self.params.upgrade();
        let session = params
            .as_deref()
            .map(LatentChoirParams::session)
            .unwrap_or_default();
        let soundfont = params
            .as_deref()
            .and_then(LatentChoirParams::soundfont_path);
        let tokens_per_beat = params
            .as_deref()
            .map_or(2.0, |p| f64::from(p.generation.tokens_per_beat.value()));
        let direction = match session.direction_choice() {
            DirectionChoice::Off => None,
            choice => Some(choice.text()),
        };
        Manifest {
            format: run_file::FORMAT.to_owned(),
            version: run_file::VERSION,
            prompt: session.prompt,
            model: self.model(),
            seed: session.seed,
            bpm,
            tokens_per_beat,
            sample_rate,
            block_size: BLOCK,
            steps: 0,
            piece_samples: 0,
            tail_samples: 0,
            song: None,
            soundfont: soundfont.map(|p| p.display().to_string()),
            params: params
                .as_deref()
                .map(param_text::values)
                .unwrap_or_default(),
            hidden_states: 0,
            tokens: Vec::new(),
            grid_steps: None,
            heard: Vec::new(),
            remote: None,
            direction,
            model_key: self
                .link
                .model_key()
                .map(|(scale, root)| key_name(scale, root)),
        }
    }

    fn model(&self) -> ModelRecord {
        let Some(path) = self.link.model() else {
            return ModelRecord {
                name: String::new(),
                sha256: String::new(),
                path: String::new(),
            };
        };
        if let Ok(known) = self.known.lock()
            && let Some((known_path, record)) = known.as_ref()
            && *known_path == path
        {
            return record.clone();
        }
        let (name, sha256) = match identify(&path) {
            Ok(identity) => (identity.name, identity.sha256),
            Err(_) => (
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                String::new(),
            ),
        };
        let record = ModelRecord {
            name,
            sha256,
            path: path.display().to_string(),
        };
        if let Ok(mut known) = self.known.lock() {
            *known = Some((path, record.clone()));
        }
        record
    }
}

/// The thread that drains the ring while the plugin lives; stopped and joined on drop.
pub struct CollectorThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl CollectorThread {
    /// Calls `drain` every [`DRAIN_EVERY`] until dropped.
    pub fn spawn(drain: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("latent-choir-collector".to_owned())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    drain();
                    std::thread::sleep(DRAIN_EVERY);
                }
            })?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for CollectorThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POINT: CurvePoint = CurvePoint {
        lufs: -30.0,
        smoothed: -30.0,
        velocity: 0.0,
        temperature: 0.7,
    };

    #[test]
    fn a_full_ring_counts_drops_live_and_the_collection_keeps_its_first_tokens() {
        let (mut writer, mut reader) = collector();
        let frame = TokenFrame::new(0, 5, " a", 3, 0.8);
        for _ in 0..COLLECT_RING + 3 {
            writer.record(&frame, &POINT, 120.0, None);
        }
        assert_eq!(reader.dropped(), 3);
        let mut n = 0;
        reader.drain(|record| {
            assert_eq!(record.bpm, 120.0);
            n += 1;
        });
        assert_eq!(n, COLLECT_RING);

        let params = Arc::new(LatentChoirParams::default());
        let describer = Describer::new(&params, Arc::new(LinkStatus::default()));
        let mut collection = Collection::new(1, describer.describe(100.0, 48_000));
        for _ in 0..MAX_RUN_TOKENS + 2 {
            collection.push(
                PlayedToken {
                    frame,
                    point: POINT,
                },
                None,
            );
        }
        assert_eq!(collection.left_out, 2);
        let run = collection.to_run();
        assert_eq!(run.tokens.len(), MAX_RUN_TOKENS);
        assert_eq!(run.manifest.steps, MAX_RUN_TOKENS as u64);
        assert_eq!(run.manifest.hidden_states, 3);
        assert_eq!(
            run.manifest.params.len(),
            param_text::values(&LatentChoirParams::default()).len()
        );
    }
}
