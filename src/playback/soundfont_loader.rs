//! Loading SoundFonts off the audio thread and handing them over without a lock.
//!
//! A font can be 150 MB: reading and parsing it takes seconds, so a loader thread does it and
//! passes the finished [`SoundFontPlayer`] through a small wait-free ring. The audio thread
//! swaps it into the [`Choir`] at a block start and hands the font it replaced back through a
//! second ring, so the old font is freed on the loader thread too. A missing or corrupt file
//! only changes the status message; the built-in synth keeps playing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::synth::{Choir, SoundFontPlayer};

/// Fonts in flight between the threads; more than one only if loads are requested faster than
/// blocks are processed.
const RING: usize = 4;
/// How often the loader frees retired fonts when no request comes.
const SWEEP: Duration = Duration::from_millis(250);
/// Longest an offline bounce waits at a block start for a font still loading, so the bounce
/// plays it from the first note, as a prepared real-time session would.
pub const OFFLINE_FONT_WAIT: Duration = Duration::from_secs(30);

/// What the loader did last, for the editor.
#[derive(Debug, Default)]
pub struct FontStatus {
    message: Mutex<String>,
    /// A request is being loaded (or waits to be picked up by the audio thread).
    pending: AtomicBool,
    /// Sample rate and block size of the current activation, for requests made by the GUI.
    sample_rate_bits: AtomicU32,
    max_block: AtomicU32,
}

impl FontStatus {
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

struct Request {
    /// `None` unloads the font (back to the built-in synth).
    path: Option<PathBuf>,
    sample_rate: f32,
    max_block: usize,
}

/// The main-thread side: asks for fonts.
pub struct FontLoader {
    requests: mpsc::Sender<Request>,
    pub status: Arc<FontStatus>,
}

/// The audio-thread side: takes finished fonts, returns replaced ones.
pub struct FontInbox {
    ready: rtrb::Consumer<Option<SoundFontPlayer>>,
    retired: rtrb::Producer<SoundFontPlayer>,
    status: Arc<FontStatus>,
}

impl FontLoader {
    /// Starts the loader thread.
    pub fn spawn() -> std::io::Result<(Self, FontInbox)> {
        let (requests, inbox_requests) = mpsc::channel::<Request>();
        let (mut ready_in, ready_out) = rtrb::RingBuffer::new(RING);
        let (retired_in, mut retired_out) = rtrb::RingBuffer::<SoundFontPlayer>::new(RING * 2);
        let status = Arc::new(FontStatus::default());
        let thread_status = Arc::clone(&status);
        std::thread::Builder::new()
            .name("latent-choir-soundfont".into())
            .spawn(move || {
                loop {
                    while retired_out.pop().is_ok() {}
                    let request = match inbox_requests.recv_timeout(SWEEP) {
                        Ok(request) => request,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    let player = load(&request, &thread_status);
                    // The audio thread drains the ring every block; wait for room rather than
                    // lose a font.
                    let mut item = player;
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
                status: Arc::clone(&status),
            },
            FontInbox {
                ready: ready_out,
                retired: retired_in,
                status,
            },
        ))
    }

    /// The activation's sample rate and block size, which every font is prepared for.
    pub fn set_format(&self, sample_rate: f32, max_block: usize) {
        self.status
            .sample_rate_bits
            .store(sample_rate.to_bits(), Ordering::Relaxed);
        self.status
            .max_block
            .store(max_block as u32, Ordering::Relaxed);
    }

    /// Loads `path` (or unloads with `None`) for the current format. Without an activation
    /// yet, nothing happens: `activate` asks again.
    pub fn request(&self, path: Option<PathBuf>) {
        let sample_rate = f32::from_bits(self.status.sample_rate_bits.load(Ordering::Relaxed));
        let max_block = self.status.max_block.load(Ordering::Relaxed) as usize;
        if sample_rate <= 0.0 || max_block == 0 {
            return;
        }
        self.status.pending.store(true, Ordering::Release);
        let request = Request {
            path,
            sample_rate,
            max_block,
        };
        if self.requests.send(request).is_err() {
            self.status.pending.store(false, Ordering::Release);
            self.status
                .say("The SoundFont loader has stopped; the built-in synth plays.".into());
        }
    }
}

/// Reads and parses the font (loader thread); failures become the status message.
fn load(request: &Request, status: &FontStatus) -> Option<SoundFontPlayer> {
    let Some(path) = &request.path else {
        status.say("Built-in synth".into());
        return None;
    };
    status.say(format!("Loading {}…", path.display()));
    let started = Instant::now();
    match SoundFontPlayer::load(path, request.sample_rate, request.max_block) {
        Ok(player) => {
            status.say(format!(
                "SoundFont {} loaded in {:.1} s",
                player.name(),
                started.elapsed().as_secs_f64()
            ));
            Some(player)
        }
        Err(error) => {
            status.say(format!("{error}; the built-in synth plays instead"));
            None
        }
    }
}

impl FontInbox {
    /// At a block start (audio thread): installs a font that has finished loading. Offline,
    /// waits (bounded) for one still loading. Never allocates or frees.
    pub fn install(&mut self, choir: &mut Choir, offline: bool) {
        if offline && self.status.pending() && self.ready.is_empty() {
            let start = Instant::now();
            while self.ready.is_empty() && start.elapsed() < OFFLINE_FONT_WAIT {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        while !self.retired.is_full() {
            let Ok(font) = self.ready.pop() else {
                break;
            };
            if self.ready.is_empty() {
                self.status.pending.store(false, Ordering::Release);
            }
            let old = match choir.replace_soundfont(font) {
                Ok(old) => old,
                // Prepared for an earlier activation's sample rate.
                Err(stale) => Some(stale),
            };
            if let Some(old) = old {
                // Room was checked above; the loader frees it.
                let _ = self.retired.push(old);
            }
        }
    }
}
