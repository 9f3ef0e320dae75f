//! Between the worker and the audio thread: tokens become [`TokenFrame`]s in a bounded
//! lock-free queue, and every frame the audio thread plays comes back as a [`Ticket`] carrying
//! the temperature the loudness curve read at that step.
//!
//! ```text
//!  worker ──Token──▶ FrameBuilder ──TokenFrame──▶ [frames queue] ──▶ QueueSource (audio thread)
//!     ▲                                                                   │ played
//!     └── TicketGate: token i may be made once frame i − N was played ◀── [tickets queue]
//! ```
//!
//! The tickets make the worker stay exactly `N` tokens (the lookahead) ahead of playback, and
//! they make the temperature deterministic: token `i` is sampled at the temperature of the step
//! that played frame `i − N` (the first `N` tokens, made before anything was heard, at the
//! curve's fixed temperature). The same audio, seed and parameters therefore give the same
//! tokens however the threads are scheduled, which the offline bounce relies on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::loudness::CurvePoint;
use crate::music::frame::{FRAME_COMPONENTS, MAX_HIDDEN_STATES, TokenFrame};
use crate::music::markov_lstm::PhraseStep;
use crate::worker::heard::HeardInbox;
use crate::worker::session::TokenResult;

use crate::playback::history::HistoryWriter;
use crate::playback::player::FrameSource;

/// Frames the queue holds: more than any lookahead the parameters allow.
pub const QUEUE_CAPACITY: usize = 64;
/// Longest the offline bounce waits for the worker at one step before counting an underrun.
pub const OFFLINE_WAIT: Duration = Duration::from_secs(10);
/// Longest the offline bounce waits for a model to load (and its map to be fitted, minutes on
/// a first run) before its first token, so a bounce starts on the same step as real time would
/// have if the model had been ready.
pub const OFFLINE_START_WAIT: Duration = Duration::from_secs(600);

/// A played frame, reported back to the worker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ticket {
    pub run: u32,
    pub index: u32,
    pub temperature: f32,
    /// A listening boundary fell on this frame: the token it lets through waits for the
    /// listener's line ([`crate::worker::heard`]).
    pub heard: bool,
}

/// State both threads read: the run being generated, counters for the status display.
#[derive(Debug, Default)]
pub struct FeedShared {
    /// Bumped on the worker thread when a prompt has run; frames of older runs are stale.
    pub run: AtomicU32,
    /// Frames the worker could not queue (the queue was full): should stay 0.
    pub dropped: AtomicU64,
    /// Frames pushed since the start, for tokens/s and lookahead readings.
    pub produced: AtomicU64,
    /// Frames the audio thread took off the queue (stale ones included): `produced − consumed`
    /// is the lookahead waiting in the queue.
    pub consumed: AtomicU64,
    /// Steps of a run under way at which no frame was ready (the notes held instead).
    pub underruns: AtomicU64,
    /// A run is under way (set when its prompt has run, cleared when it finishes): only then
    /// is there a frame worth waiting for in the offline bounce.
    pub generating: AtomicBool,
    /// The model has been asked to start and its first prompt has not run yet (nor failed):
    /// the offline bounce waits for it.
    pub starting: AtomicBool,
    /// Lines the listener made, waiting for their tokens.
    pub heard: HeardInbox,
}

/// The two ends of the queues, created together in `initialize`.
pub struct Channels {
    pub builder_side: (rtrb::Producer<TokenFrame>, rtrb::Consumer<Ticket>),
    pub audio_side: (rtrb::Consumer<TokenFrame>, rtrb::Producer<Ticket>),
}

pub fn channels() -> Channels {
    let (frames_in, frames_out) = rtrb::RingBuffer::new(QUEUE_CAPACITY);
    let (tickets_in, tickets_out) = rtrb::RingBuffer::new(QUEUE_CAPACITY * 2);
    Channels {
        builder_side: (frames_in, tickets_out),
        audio_side: (frames_out, tickets_in),
    }
}

/// Turns the worker's results into frames (worker thread).
pub struct FrameBuilder {
    shared: Arc<FeedShared>,
    frames: rtrb::Producer<TokenFrame>,
    run: u32,
    next_index: u32,
    /// Tokens in the sequence before the next generated one (prompt + generated so far): the
    /// keys the next token attends to, which normalise its attention entropy.
    position: usize,
}

impl FrameBuilder {
    pub fn new(shared: Arc<FeedShared>, frames: rtrb::Producer<TokenFrame>) -> Self {
        Self {
            shared,
            frames,
            run: 0,
            next_index: 0,
            position: 0,
        }
    }

    /// A prompt has run (`PromptProcessed`): a new run begins and its frames start at index 0.
    pub fn start_run(&mut self, prompt_tokens: usize) {
        self.run = self.run.wrapping_add(1);
        self.shared.run.store(self.run, Ordering::Release);
        self.shared.generating.store(true, Ordering::Release);
        self.shared.starting.store(false, Ordering::Release);
        self.next_index = 0;
        self.position = prompt_tokens;
    }

    /// The run has finished (end of text, stop, error), or the model could not start: the
    /// audio thread stops waiting.
    pub fn finish_run(&mut self) {
        self.shared.generating.store(false, Ordering::Release);
        self.shared.starting.store(false, Ordering::Release);
    }

    /// A heard line took `tokens` positions in the context: later tokens attend to them too.
    pub fn heard(&mut self, tokens: usize) {
        self.position += tokens;
    }

    /// The run being built.
    pub fn run(&self) -> u32 {
        self.run
    }

    /// Queues the frame of one generated token.
    pub fn push(&mut self, token: &TokenResult) {
        self.position += 1;
        let frame = frame_of(token, self.run, self.next_index, self.position);
        self.next_index += 1;
        if self.frames.push(frame).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared.produced.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The frame of `token`, which attended to `keys` positions (itself included).
pub fn frame_of(token: &TokenResult, run: u32, index: u32, keys: usize) -> TokenFrame {
    let layers = token.attention_entropy.len();
    let states = layers + 1;
    let mut frame = TokenFrame::new(
        index,
        token.id,
        &token.text,
        states,
        token.temperature.unwrap_or(0.0),
    );
    frame.run = run;
    let width = token.hidden.len() / states.max(1);
    let components = token.coords.len() / states.max(1);
    // ln(keys) is the entropy of uniform attention: the most diffuse it can be.
    let max_entropy = (keys.max(2) as f32).ln();
    for state in 0..states {
        let hidden = token
            .hidden
            .get(state * width..(state + 1) * width)
            .unwrap_or(&[]);
        let norm = hidden.iter().map(|v| v * v).sum::<f32>().sqrt();
        let mut coords = [0.0; FRAME_COMPONENTS];
        for (c, value) in coords.iter_mut().enumerate().take(components) {
            *value = token.coords[state * components + c];
        }
        let (entropy, sparsity) = match state.checked_sub(1) {
            Some(block) => (
                (token.attention_entropy[block] / max_entropy).clamp(0.0, 1.0),
                token.mlp_sparsity.get(block).copied().unwrap_or(0.0),
            ),
            None => (0.0, 0.0),
        };
        frame.set_state(state, coords, norm, entropy, sparsity);
        if state < MAX_HIDDEN_STATES {
            frame.phrase[state] = token.phrase.get(state).copied().unwrap_or(PhraseStep::REST);
            if let Some(partials) = token.partials.get(state) {
                frame.partials[state] = *partials;
            }
        }
    }
    if let Some(tension) = token.tension {
        frame.has_direction = true;
        frame.tension = tension;
        let states = states.min(MAX_HIDDEN_STATES);
        for (slot, &value) in frame.projection[..states].iter_mut().zip(&token.projection) {
            *slot = value;
        }
        for (slot, &value) in frame.layer_tension[..states]
            .iter_mut()
            .zip(&token.layer_tension)
        {
            *slot = value;
        }
    }
    frame
}

/// A token may be made: at this temperature, and after reading the line heard at `heard`'s
/// boundary `(run, frame)` when there is one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Admission {
    pub temperature: f32,
    pub heard: Option<(u32, u32)>,
}

/// Decides, on the worker thread, whether the next token may be made and at what temperature.
pub struct TicketGate {
    shared: Arc<FeedShared>,
    tickets: rtrb::Consumer<Ticket>,
    /// Tickets of the current run, oldest first (the worker thread may allocate).
    played: VecDeque<Ticket>,
    run: u32,
}

impl TicketGate {
    pub fn new(shared: Arc<FeedShared>, tickets: rtrb::Consumer<Ticket>) -> Self {
        Self {
            shared,
            tickets,
            played: VecDeque::new(),
            run: 0,
        }
    }

    /// For generated token `index` of the current run with a lookahead of `lookahead` tokens:
    /// `Some(temperature)` when it may be made now, `None` to wait. `initial` is the
    /// temperature of the first `lookahead` tokens.
    pub fn admit(&mut self, index: u32, lookahead: u32, initial: f32) -> Option<Admission> {
        let run = self.shared.run.load(Ordering::Acquire);
        if run != self.run {
            self.run = run;
            self.played.clear();
        }
        while let Ok(ticket) = self.tickets.pop() {
            if ticket.run == self.run {
                self.played.push_back(ticket);
            }
        }
        let lookahead = lookahead.max(1);
        let Some(due) = index.checked_sub(lookahead) else {
            return Some(Admission {
                temperature: initial,
                heard: None,
            });
        };
        // Token `index` waits for frame `due` to have been played.
        while self.played.front().is_some_and(|t| t.index < due) {
            self.played.pop_front();
        }
        // The lookahead may have shrunk: frame `due` was played before, use what came after it.
        self.played.front().map(|ticket| Admission {
            temperature: ticket.temperature,
            heard: ticket.heard.then_some((ticket.run, ticket.index)),
        })
    }
}

/// The audio thread's end: frames in, tickets out.
pub struct QueueSource {
    shared: Arc<FeedShared>,
    frames: rtrb::Consumer<TokenFrame>,
    tickets: rtrb::Producer<Ticket>,
    /// Set for the offline bounce: wait (bounded) for a frame rather than underrun.
    wait: Option<Duration>,
    /// Where played frames go for the editor, when there is one.
    history: Option<HistoryWriter>,
    /// The next played frame's ticket marks a listening boundary.
    heard: bool,
}

impl QueueSource {
    pub fn new(
        shared: Arc<FeedShared>,
        frames: rtrb::Consumer<TokenFrame>,
        tickets: rtrb::Producer<Ticket>,
    ) -> Self {
        Self {
            shared,
            frames,
            tickets,
            wait: None,
            history: None,
            heard: false,
        }
    }

    /// Report every played frame to the editor through `writer` (fed only while it is open).
    pub fn set_history(&mut self, writer: HistoryWriter) {
        self.history = Some(writer);
    }

    /// Offline (bounce, render): wait up to `limit` for the worker at each step.
    pub fn set_offline(&mut self, limit: Option<Duration>) {
        self.wait = limit;
    }

    /// The model has just been asked to start: an offline bounce waits for its first frame
    /// (up to [`OFFLINE_START_WAIT`]) instead of underrunning while it loads. The worker
    /// clears this when the prompt has run or the start failed.
    pub fn expect_start(&self) {
        self.shared.starting.store(true, Ordering::Release);
    }

    /// Frames waiting to be played (the lookahead actually kept).
    pub fn queued(&self) -> usize {
        self.frames.slots()
    }

    fn pop_current(&mut self) -> Option<TokenFrame> {
        let run = self.shared.run.load(Ordering::Acquire);
        while let Ok(frame) = self.frames.pop() {
            self.shared.consumed.fetch_add(1, Ordering::Relaxed);
            // Older runs are left behind by a new prompt or a reset.
            if frame.run == run {
                return Some(frame);
            }
        }
        None
    }
}

impl FrameSource for QueueSource {
    fn next_frame(&mut self) -> Option<TokenFrame> {
        let frame = self.wait_for_frame();
        if frame.is_none() && self.shared.generating.load(Ordering::Acquire) {
            self.shared.underruns.fetch_add(1, Ordering::Relaxed);
        }
        frame
    }

    fn live_run(&self) -> Option<u32> {
        Some(self.shared.run.load(Ordering::Acquire))
    }

    fn heard(&mut self, _frame: &TokenFrame) {
        self.heard = true;
    }

    fn played(&mut self, frame: &TokenFrame, point: &CurvePoint, _step: Option<i64>) {
        // Full only if the worker stopped reading; then nothing waits for the ticket either.
        let _ = self.tickets.push(Ticket {
            run: frame.run,
            index: frame.index,
            temperature: point.temperature,
            heard: std::mem::take(&mut self.heard),
        });
        if let Some(history) = &mut self.history {
            history.record(frame, point);
        }
    }
}

impl QueueSource {
    /// The next frame of the current run; offline, waits (bounded) while one is being made.
    fn wait_for_frame(&mut self) -> Option<TokenFrame> {
        if let Some(frame) = self.pop_current() {
            return Some(frame);
        }
        let step_limit = self.wait?;
        // Offline only: the host waits for the bounce, so waiting here is allowed (bounded).
        let start = Instant::now();
        while self.shared.starting.load(Ordering::Acquire) && start.elapsed() < OFFLINE_START_WAIT {
            std::thread::sleep(Duration::from_millis(1));
        }
        if !self.shared.generating.load(Ordering::Acquire) {
            // The last frame may have landed just before the run ended.
            return self.pop_current();
        }
        let start = Instant::now();
        while start.elapsed() < step_limit && self.shared.generating.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_micros(200));
            if let Some(frame) = self.pop_current() {
                return Some(frame);
            }
        }
        self.pop_current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::history::history;

    const POINT: CurvePoint = CurvePoint {
        lufs: -30.0,
        smoothed: -30.0,
        velocity: 0.0,
        temperature: 0.7,
    };

    #[test]
    fn counters_and_history_follow_what_the_audio_side_took() {
        let shared = Arc::new(FeedShared::default());
        let Channels {
            builder_side: (mut frames, mut tickets),
            audio_side: (frames_out, tickets_in),
        } = channels();
        let mut source = QueueSource::new(Arc::clone(&shared), frames_out, tickets_in);
        let (writer, mut reader) = history(8);
        reader.shared().set_open(true);
        source.set_history(writer);

        // Nothing generating: an empty queue is no underrun (the model is still loading).
        assert!(source.next_frame().is_none());
        assert_eq!(shared.underruns.load(Ordering::Relaxed), 0);

        shared.generating.store(true, Ordering::Relaxed);
        assert!(source.next_frame().is_none());
        assert_eq!(shared.underruns.load(Ordering::Relaxed), 1);

        let mut stale = TokenFrame::new(0, 1, "old", 2, 0.8);
        stale.run = 7;
        frames.push(stale).unwrap();
        frames.push(TokenFrame::new(0, 1, " hi", 2, 0.8)).unwrap();
        let frame = source.next_frame().expect("the current run's frame");
        assert_eq!(shared.consumed.load(Ordering::Relaxed), 2);
        source.played(&frame, &POINT, None);
        assert_eq!(tickets.pop().map(|t| t.temperature), Ok(0.7));
        let mut texts = Vec::new();
        reader.drain(|r| texts.push(r.frame.text().to_owned()));
        assert_eq!(texts, [" hi"]);
    }

    /// What an open editor costs the audio thread: `Player::process` with the worker's queue
    /// kept full, history off (editor closed) and on (open), 16 tokens/s, 512-sample blocks.
    /// `cargo test --release --lib worker::feed::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark; run in release"]
    fn bench_process_with_editor_open_and_closed() {
        use crate::loudness::CurveSettings;
        use crate::music::voices::MappingParams;
        use crate::playback::history::HISTORY_CAPACITY;
        use crate::playback::player::{Clock, Player, PlayerSettings};
        use std::time::Instant;

        let sample_rate = 48_000.0;
        let block = 512;
        let input: Vec<f32> = (0..block).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        for open in [false, true, false, true] {
            let shared = Arc::new(FeedShared::default());
            let feed = channels();
            let (mut frames_in, _tickets_out) = feed.builder_side;
            let (frames_out, tickets_in) = feed.audio_side;
            let mut source = QueueSource::new(Arc::clone(&shared), frames_out, tickets_in);
            let (writer, mut reader) = history(HISTORY_CAPACITY);
            reader.shared().set_open(open);
            source.set_history(writer);
            let mut player = Player::new(sample_rate);
            let settings = PlayerSettings {
                playing: true,
                mapping: MappingParams::default(),
                channels: [0, 1, 2, 3, 4],
                curve: CurveSettings::default(),
                loop_passes: crate::playback::clip::LoopPasses::Replay,
            };
            let clock = Clock::Free {
                tokens_per_second: 16.0,
            };
            let mut next = 0u32;
            let blocks = 20_000;
            let mut total = std::time::Duration::ZERO;
            let mut worst = std::time::Duration::ZERO;
            for _ in 0..blocks {
                while frames_in.slots() > 0 {
                    let mut frame = TokenFrame::new(next, 1, " word", 31, 0.8);
                    for state in 0..31 {
                        let v = ((next as f32 + state as f32) * 0.37).sin();
                        frame.set_state(
                            state,
                            crate::music::frame::components(&[v, -v, v * 0.5, 0.1]),
                            50.0,
                            0.5,
                            0.2,
                        );
                    }
                    let _ = frames_in.push(frame);
                    next += 1;
                }
                let start = Instant::now();
                player.process(
                    &input,
                    &input,
                    clock,
                    &settings,
                    &mut source,
                    Default::default(),
                );
                let took = start.elapsed();
                total += took;
                worst = worst.max(took);
                reader.drain(|_| {});
            }
            println!(
                "editor {}: Player::process mean {:.2} us, worst {:.1} us per {block}-sample block ({} records)",
                if open { "open  " } else { "closed" },
                total.as_secs_f64() * 1e6 / blocks as f64,
                worst.as_secs_f64() * 1e6,
                reader.shared().written(),
            );
        }
    }
}
