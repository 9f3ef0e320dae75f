//! Composing the Model Weights piece off the audio thread and handing it over without a lock,
//! the way `soundfont_loader` hands over fonts.
//!
//! The first analysis of a model's weights takes seconds (every matrix's SVD; then it is cached
//! on disk by `weights::cache`), so a thread does it. It looks every 20 ms at what the
//! parameters ask for (through a closure: Source, model, Weight Style) and, when that changes,
//! composes the style, folds it onto the slots ([`SlotScore`], tagged with the style) and passes
//! it through a small ring. The audio thread installs it at a block start and hands the one it
//! replaced back, to be freed here. A model that cannot be read only changes the status
//! message; the voices stay silent in that mode.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::llm::discovery;
use crate::music::score::SlotScore;
use crate::weights::WeightStats;
use crate::weights::cache::stats_for;
use crate::weights::style::{ComposeOptions, Style, compose};

use super::score_player::ScorePlayer;

const RING: usize = 4;
/// How often the composer looks at what is asked for.
const POLL: Duration = Duration::from_millis(20);
/// Longest an offline bounce waits at a block start for the piece it needs while the composer
/// works on it …
pub const OFFLINE_SCORE_WAIT: Duration = Duration::from_secs(60);
/// … and for the composer to take the request up (it looks every [`POLL`]); a composer busy
/// with another piece, or gone, never holds a block longer than this.
const OFFLINE_PICKUP: Duration = Duration::from_millis(100);

/// What the composer did last, for the editor and the audio thread.
#[derive(Debug, Default)]
pub struct ScoreStatus {
    message: Mutex<String>,
    /// The tag whose composing failed last (its piece will not come); 0 none.
    failed: AtomicU32,
    /// The tag being composed now; 0 while idle.
    composing: AtomicU32,
    stop: AtomicBool,
}

impl ScoreStatus {
    pub fn message(&self) -> String {
        self.message.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn say(&self, text: String) {
        if let Ok(mut message) = self.message.lock() {
            *message = text;
        }
    }
}

/// One piece to compose: the model (empty: the default one) and the style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreRequest {
    pub model: String,
    pub style: Style,
}

/// The tag a style's piece carries: never 0.
pub fn style_tag(style: Style) -> u32 {
    Style::ALL
        .iter()
        .position(|s| *s == style)
        .map_or(0, |i| i as u32 + 1)
}

/// What the parameters ask for now; `None` while nothing is (the plugin: Source is not Model
/// Weights, or Generate is off).
pub type Wanted = Box<dyn Fn() -> Option<ScoreRequest> + Send>;

/// Owns the composer thread; dropping it stops the thread (an analysis under way is cancelled
/// within a few matrices) and waits for it, so no thread runs the plugin's code after the host
/// unloads it.
pub struct ScoreLoader {
    pub status: Arc<ScoreStatus>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ScoreLoader {
    fn drop(&mut self) {
        self.status.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The audio-thread side: takes finished pieces, returns replaced ones.
pub struct ScoreInbox {
    ready: rtrb::Consumer<Box<SlotScore>>,
    retired: rtrb::Producer<Box<SlotScore>>,
    status: Arc<ScoreStatus>,
}

impl ScoreLoader {
    pub fn spawn(wanted: Wanted) -> std::io::Result<(Self, ScoreInbox)> {
        let (mut ready_in, ready_out) = rtrb::RingBuffer::new(RING);
        let (retired_in, mut retired_out) = rtrb::RingBuffer::<Box<SlotScore>>::new(RING * 2);
        let status = Arc::new(ScoreStatus::default());
        let thread_status = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name("latent-choir-weights".into())
            .spawn(move || {
                let mut served: Option<ScoreRequest> = None;
                // The last model's analysis, so another style of it composes in milliseconds
                // (no hashing or parsing of the cached file again).
                let mut known: Option<(PathBuf, Arc<WeightStats>)> = None;
                while !thread_status.stop.load(Ordering::Acquire) {
                    while retired_out.pop().is_ok() {}
                    let request = wanted();
                    let Some(request) = request.filter(|r| served.as_ref() != Some(r)) else {
                        std::thread::sleep(POLL);
                        continue;
                    };
                    served = Some(request.clone());
                    let tag = style_tag(request.style);
                    thread_status.failed.store(0, Ordering::Release);
                    thread_status.composing.store(tag, Ordering::Release);
                    let composed = compose_for(&request, &thread_status, &mut known);
                    thread_status.composing.store(0, Ordering::Release);
                    let Some(mut item) = composed else {
                        thread_status.failed.store(tag, Ordering::Release);
                        continue;
                    };
                    thread_status.failed.store(0, Ordering::Release);
                    item.tag = tag;
                    loop {
                        match ready_in.push(item) {
                            Ok(()) => break,
                            Err(rtrb::PushError::Full(back)) => {
                                item = back;
                                while retired_out.pop().is_ok() {}
                                if thread_status.stop.load(Ordering::Acquire) {
                                    return;
                                }
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                }
            })?;
        Ok((
            Self {
                status: Arc::clone(&status),
                thread: Some(thread),
            },
            ScoreInbox {
                ready: ready_out,
                retired: retired_in,
                status,
            },
        ))
    }
}

/// Analyses (or reads the cached analysis of) the model and composes the piece; failures become
/// the status message. A panic in the analysis is caught: the host keeps running.
fn compose_for(
    request: &ScoreRequest,
    status: &ScoreStatus,
    known: &mut Option<(PathBuf, Arc<WeightStats>)>,
) -> Option<Box<SlotScore>> {
    let model = (!request.model.trim().is_empty()).then(|| PathBuf::from(request.model.trim()));
    let path = match discovery::resolve(model.as_deref()) {
        Ok(path) => path,
        Err(error) => {
            status.say(format!("Model Weights: {error}"));
            return None;
        }
    };
    let started = Instant::now();
    let cached = known
        .as_ref()
        .filter(|(p, _)| *p == path)
        .map(|(_, stats)| Arc::clone(stats));
    let result = std::panic::catch_unwind(|| {
        let stats = match cached {
            Some(stats) => stats,
            None => {
                status.say(format!(
                    "Reading the weights of {}…",
                    path.file_name().map_or_else(
                        || path.display().to_string(),
                        |n| n.to_string_lossy().into_owned()
                    )
                ));
                Arc::new(stats_for(&path, |_, _| {
                    if status.stop.load(Ordering::Acquire) {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })?)
            }
        };
        let score = compose(request.style, &stats, &ComposeOptions::default());
        Ok::<_, crate::weights::analysis::AnalysisError>((score, stats))
    });
    let result = result.map(|r| {
        r.map(|(score, stats)| {
            let key = stats.key.describe();
            *known = Some((path.clone(), stats));
            (score, key)
        })
    });
    match result {
        Ok(Ok((score, key))) => {
            let slots = SlotScore::from_score(&score);
            status.say(format!(
                "{} — {} notes, {:.0} bars, in {key} ({:.1} s)",
                score.title,
                score.note_count(),
                slots.length / f64::from(score.beats_per_bar.max(1)),
                started.elapsed().as_secs_f64()
            ));
            Some(Box::new(slots))
        }
        Ok(Err(error)) => {
            status.say(format!("Model Weights: {error}"));
            None
        }
        Err(_) => {
            status.say("Model Weights: reading the weights failed unexpectedly".into());
            None
        }
    }
}

impl ScoreInbox {
    /// At a block start (audio thread): installs a finished piece. `wanted`: the tag of the
    /// piece the parameters ask for (`None` outside Model Weights). Offline, a player without
    /// that piece waits for it while the composer works on it (bounded; not for one whose
    /// composing failed, nor long for a composer that has not taken it up). Never allocates or
    /// frees.
    pub fn install(&mut self, player: &mut ScorePlayer, wanted: Option<u32>, offline: bool) {
        if let Some(tag) = wanted
            && offline
            && player.score().is_none_or(|s| s.tag != tag)
        {
            let start = Instant::now();
            while self.ready.is_empty() && self.status.failed.load(Ordering::Acquire) != tag {
                let limit = if self.status.composing.load(Ordering::Acquire) == tag {
                    OFFLINE_SCORE_WAIT
                } else {
                    OFFLINE_PICKUP
                };
                if start.elapsed() >= limit {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        while !self.retired.is_full() {
            let Ok(score) = self.ready.pop() else {
                break;
            };
            if let Some(old) = player.replace(Some(score)) {
                let _ = self.retired.push(old);
            }
        }
    }
}
