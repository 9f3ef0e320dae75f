//! What the listener hears, taken off the audio thread: the metered input as mono samples in
//! a preallocated ring, and a mark at every listening boundary saying how many samples came
//! before it and which frame was playing. Pushing is a copy into a ring: no allocation, no
//! lock, no wait; when the ring is full the samples are dropped (and counted), never waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Samples the ring holds: over 20 s at 48 kHz, far more than the listener lags.
pub const EAR_CAPACITY: usize = 1 << 20;
const MARKS: usize = 64;

/// A listening boundary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mark {
    /// The run and index of the frame that played at the boundary: the heard line enters the
    /// context before the token the worker makes after that frame's ticket.
    pub run: u32,
    pub frame: u32,
    /// Samples pushed before the boundary (since the ear was made).
    pub sample: u64,
    pub sample_rate: f64,
}

/// The audio thread's end.
pub struct Ear {
    samples: rtrb::Producer<f32>,
    marks: rtrb::Producer<Mark>,
    pushed: u64,
    sample_rate: f64,
    dropped: Arc<AtomicU64>,
}

/// The listener's end.
pub struct EarTap {
    pub samples: rtrb::Consumer<f32>,
    pub marks: rtrb::Consumer<Mark>,
    /// Samples the audio thread could not push (the listener fell behind).
    pub dropped: Arc<AtomicU64>,
}

/// A new ear and its tap; allocates, so call it off the audio thread.
pub fn ear(sample_rate: f64) -> (Ear, EarTap) {
    let (samples, samples_out) = rtrb::RingBuffer::new(EAR_CAPACITY);
    let (marks, marks_out) = rtrb::RingBuffer::new(MARKS);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        Ear {
            samples,
            marks,
            pushed: 0,
            sample_rate,
            dropped: dropped.clone(),
        },
        EarTap {
            samples: samples_out,
            marks: marks_out,
            dropped,
        },
    )
}

impl Ear {
    pub fn set_sample_rate(&mut self, sample_rate: f64) {
        self.sample_rate = sample_rate;
    }

    /// The mono mix of a stretch of stereo input.
    pub fn add(&mut self, left: &[f32], right: &[f32]) {
        let n = left.len().min(right.len());
        let room = self.samples.slots().min(n);
        if let Ok(chunk) = self.samples.write_chunk_uninit(room) {
            let mono = left.iter().zip(right).map(|(l, r)| {
                let mono = (l + r) * 0.5;
                if mono.is_finite() { mono } else { 0.0 }
            });
            self.pushed += chunk.fill_from_iter(mono) as u64;
        }
        if room < n {
            self.dropped.fetch_add((n - room) as u64, Ordering::Relaxed);
        }
    }

    /// A boundary now; `false` when the mark ring is full (the listener is gone), and then no
    /// line will be made for it.
    pub fn mark(&mut self, run: u32, frame: u32) -> bool {
        self.marks
            .push(Mark {
                run,
                frame,
                sample: self.pushed,
                sample_rate: self.sample_rate,
            })
            .is_ok()
    }
}
