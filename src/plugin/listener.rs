//! Listen, in the plugin: a thread that takes what the audio thread's [`Ear`] hears, and at
//! every boundary the player marks tokenizes the stretch since the last one
//! ([`crate::listen::Tokenizer`], Basic Pitch and the codebooks, one ONNX Runtime thread) and
//! hands the line to the worker ([`crate::worker::heard`]). It also keeps the key it heard
//! last, for Follow Key, and what the editor shows.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::listen::key::{Key, Mode};
use crate::listen::{Tokenizer, heard_text, runtime};
use crate::music::scale::{Root, Scale};
use crate::playback::ear::{EarTap, Mark};
use crate::worker::feed::FeedShared;

/// Token frames per second of a heard stretch: coarse, the line only samples them.
const FRAME_RATE: f64 = 4.0;
/// The longest stretch tokenized at one boundary (the last seconds before it).
const MAX_STRETCH_SECONDS: f64 = 30.0;
const POLL: Duration = Duration::from_millis(10);

/// What the listener shares with the audio thread (the key) and the editor.
#[derive(Debug, Default)]
pub struct ListenState {
    /// 0: no key yet; else 1 + tonic · 2 + minor.
    key: AtomicU32,
    /// The listener's state in words ("Listening", why it cannot).
    pub status: Mutex<String>,
    /// The last line made.
    pub line: Mutex<String>,
    /// Stretches tokenized.
    pub lines: AtomicU64,
}

impl ListenState {
    fn set_key(&self, key: Option<Key>) {
        let packed = key.map_or(0, |k| {
            1 + u32::from(k.tonic) * 2 + u32::from(k.mode == Mode::Minor)
        });
        self.key.store(packed, Ordering::Relaxed);
    }

    /// The key heard last as the scale and root to follow (audio thread: one atomic load).
    pub fn followed_key(&self) -> Option<(Scale, Root)> {
        let packed = self.key.load(Ordering::Relaxed);
        let code = packed.checked_sub(1)?;
        let scale = if code % 2 == 1 {
            Scale::NaturalMinor
        } else {
            Scale::Major
        };
        Some((scale, Root::from_pitch_class((code / 2) as u8)))
    }

    /// The key heard last, in words.
    pub fn key_name(&self) -> Option<String> {
        self.followed_key()
            .map(|(scale, root)| format!("{} {}", root.name(), scale.name()))
    }

    pub fn status(&self) -> String {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn line(&self) -> String {
        self.line.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn say(&self, message: impl Into<String>) {
        if let Ok(mut status) = self.status.lock() {
            *status = message.into();
        }
    }
}

/// The listener thread; dropping it stops and joins it.
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    pub fn spawn(
        tap: EarTap,
        feed: Arc<FeedShared>,
        state: Arc<ListenState>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("latent-choir-listen".into())
            .spawn(move || {
                let mut ears = Ears::new(tap, feed, state);
                while !stopping.load(Ordering::Relaxed) {
                    if !ears.work() {
                        std::thread::sleep(POLL);
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The listener's own state, on its thread.
struct Ears {
    tap: EarTap,
    feed: Arc<FeedShared>,
    state: Arc<ListenState>,
    /// Loaded at the first boundary; `Err` says why it cannot be.
    tokenizer: Option<Result<Tokenizer, String>>,
    /// Samples heard, the first at `start` (samples since the ear was made).
    buffer: Vec<f32>,
    start: u64,
}

impl Ears {
    fn new(tap: EarTap, feed: Arc<FeedShared>, state: Arc<ListenState>) -> Self {
        Self {
            tap,
            feed,
            state,
            tokenizer: None,
            buffer: Vec::new(),
            start: 0,
        }
    }

    /// Drains the ear and answers the boundaries due; `false` when there was nothing to do.
    fn work(&mut self) -> bool {
        let available = self.tap.samples.slots();
        if let Ok(chunk) = self.tap.samples.read_chunk(available) {
            let (first, second) = chunk.as_slices();
            self.buffer.extend_from_slice(first);
            self.buffer.extend_from_slice(second);
            chunk.commit_all();
        }
        let mut worked = available > 0;
        while let Ok(mark) = self.tap.marks.pop() {
            self.answer(mark);
            worked = true;
        }
        // Keep no more than a stretch's worth while waiting for the next boundary.
        let keep = (MAX_STRETCH_SECONDS * 192_000.0) as usize;
        if self.buffer.len() > keep {
            let cut = self.buffer.len() - keep;
            self.buffer.drain(..cut);
            self.start += cut as u64;
        }
        worked
    }

    fn answer(&mut self, mark: Mark) {
        let end = mark.sample.saturating_sub(self.start) as usize;
        let end = end.min(self.buffer.len());
        let longest = (MAX_STRETCH_SECONDS * mark.sample_rate) as usize;
        let stretch = &self.buffer[end.saturating_sub(longest)..end];
        let rate = mark.sample_rate.round() as u32;
        let tokenizer = tokenizer(&mut self.tokenizer);
        // A crash inside the encoder must not leave the worker waiting, nor end the thread.
        let heard = tokenizer.and_then(|tokenizer| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                tokenizer.listen(stretch, rate)
            }))
            .map_err(|_| "the encoder crashed".to_owned())?
            .map_err(|e| e.to_string())
        });
        let line = match heard {
            Ok(heard) => {
                self.state.set_key(heard.key);
                let line = heard_text::describe(&heard);
                if let Ok(mut last) = self.state.line.lock() {
                    last.clone_from(&line);
                }
                self.state.lines.fetch_add(1, Ordering::Relaxed);
                self.state.say(format!(
                    "{} notes in the last {:.1} s",
                    heard.notes.len(),
                    heard.seconds
                ));
                format!("\n{line}\n")
            }
            Err(message) => {
                self.state.say(format!("Cannot listen: {message}"));
                String::new()
            }
        };
        self.feed.heard.put(mark.run, mark.frame, line);
        // What came before the boundary has been heard.
        self.buffer.drain(..end);
        self.start += end as u64;
    }
}

/// The tokenizer, loaded on first use; why it cannot be, every time after a failure.
fn tokenizer(slot: &mut Option<Result<Tokenizer, String>>) -> Result<&mut Tokenizer, String> {
    let tokenizer = slot.get_or_insert_with(|| {
        let path = runtime::basic_pitch_path().ok_or("no user data folder (HOME)")?;
        Tokenizer::new(&path, None, FRAME_RATE, 1).map_err(|e| e.to_string())
    });
    tokenizer.as_mut().map_err(|e| e.clone())
}
