//! Composing the Model Weights piece off the audio thread and handing it over without a lock,
//! the way `soundfont_loader` hands over fonts.
//!
//! The first analysis of a model's weights takes seconds (every matrix's SVD; then it is cached
//! on disk by `weights::cache`), so a thread does it, composes the requested style, folds it
//! onto the slots ([`SlotScore`]) and passes it through a small ring. The audio thread installs
//! it at a block start and hands the one it replaced back, to be freed here. A model that
//! cannot be read only changes the status message; the voices stay silent in that mode.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::llm::discovery;
use crate::music::score::SlotScore;
use crate::weights::cache::stats_for;
use crate::weights::style::{ComposeOptions, Style, compose};

use super::score_player::ScorePlayer;

const RING: usize = 4;
const SWEEP: Duration = Duration::from_millis(250);
/// Longest an offline bounce waits at a block start for a piece still being composed.
pub const OFFLINE_SCORE_WAIT: Duration = Duration::from_secs(60);

/// What the composer did last, for the editor.
#[derive(Debug, Default)]
pub struct ScoreStatus {
    message: Mutex<String>,
    pending: AtomicBool,
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

    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }
}

/// One piece to compose: the model (empty: the default one) and the style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreRequest {
    pub model: String,
    pub style: Style,
}

/// The side that asks for pieces.
pub struct ScoreLoader {
    requests: mpsc::Sender<ScoreRequest>,
    last: Mutex<Option<ScoreRequest>>,
    pub status: Arc<ScoreStatus>,
}

/// The audio-thread side: takes finished pieces, returns replaced ones.
pub struct ScoreInbox {
    ready: rtrb::Consumer<Box<SlotScore>>,
    retired: rtrb::Producer<Box<SlotScore>>,
    status: Arc<ScoreStatus>,
}

impl ScoreLoader {
    pub fn spawn() -> std::io::Result<(Self, ScoreInbox)> {
        let (requests, inbox) = mpsc::channel::<ScoreRequest>();
        let (mut ready_in, ready_out) = rtrb::RingBuffer::new(RING);
        let (retired_in, mut retired_out) = rtrb::RingBuffer::<Box<SlotScore>>::new(RING * 2);
        let status = Arc::new(ScoreStatus::default());
        let thread_status = Arc::clone(&status);
        std::thread::Builder::new()
            .name("latent-choir-weights".into())
            .spawn(move || {
                loop {
                    while retired_out.pop().is_ok() {}
                    let mut request = match inbox.recv_timeout(SWEEP) {
                        Ok(request) => request,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    // Only the latest request matters.
                    while let Ok(newer) = inbox.try_recv() {
                        request = newer;
                    }
                    let Some(mut item) = compose_for(&request, &thread_status) else {
                        thread_status.pending.store(false, Ordering::Release);
                        continue;
                    };
                    loop {
                        match ready_in.push(item) {
                            Ok(()) => break,
                            Err(rtrb::PushError::Full(back)) => {
                                item = back;
                                while retired_out.pop().is_ok() {}
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                }
            })?;
        Ok((
            Self {
                requests,
                last: Mutex::new(None),
                status: Arc::clone(&status),
            },
            ScoreInbox {
                ready: ready_out,
                retired: retired_in,
                status,
            },
        ))
    }

    /// Composes `request` unless it is the one asked for last (`force` asks again, for a new
    /// activation's player).
    pub fn request(&self, request: ScoreRequest, force: bool) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if !force && last.as_ref() == Some(&request) {
            return;
        }
        *last = Some(request.clone());
        self.status.pending.store(true, Ordering::Release);
        if self.requests.send(request).is_err() {
            self.status.pending.store(false, Ordering::Release);
            self.status
                .say("The weights composer has stopped; Model Weights is silent.".into());
        }
    }
}

/// Analyses (or reads the cached analysis of) the model and composes the piece; failures become
/// the status message. A panic in the analysis is caught: the host keeps running.
fn compose_for(request: &ScoreRequest, status: &ScoreStatus) -> Option<Box<SlotScore>> {
    let model = (!request.model.trim().is_empty()).then(|| PathBuf::from(request.model.trim()));
    let path = match discovery::resolve(model.as_deref()) {
        Ok(path) => path,
        Err(error) => {
            status.say(format!("Model Weights: {error}"));
            return None;
        }
    };
    status.say(format!(
        "Reading the weights of {}…",
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        )
    ));
    let started = Instant::now();
    let result = std::panic::catch_unwind(|| {
        let stats = stats_for(&path, |_, _| {})?;
        let score = compose(request.style, &stats, &ComposeOptions::default());
        Ok::<_, crate::weights::analysis::AnalysisError>((score, stats.key.describe()))
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
    /// At a block start (audio thread): installs a finished piece. Offline, waits (bounded) for
    /// one still being composed. Never allocates or frees.
    pub fn install(&mut self, player: &mut ScorePlayer, offline: bool) {
        if offline && self.status.pending() && self.ready.is_empty() {
            let start = Instant::now();
            while self.ready.is_empty() && start.elapsed() < OFFLINE_SCORE_WAIT {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        while !self.retired.is_full() {
            let Ok(score) = self.ready.pop() else {
                break;
            };
            if self.ready.is_empty() {
                self.status.pending.store(false, Ordering::Release);
            }
            if let Some(old) = player.replace(Some(score)) {
                let _ = self.retired.push(old);
            }
        }
    }
}
