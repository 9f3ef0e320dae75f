//! What the audio thread played, for the editor: one [`PlayedToken`] per token, in a
//! lock-free ring (rtrb) the editor drains while it draws.
//!
//! ```text
//!  audio thread: QueueSource::played ──HistoryWriter::record──▶ [ring] ──HistoryReader::drain──▶ editor
//! ```
//!
//! The writer copies a record into preallocated slots: no allocation, no lock, no wait. It only
//! writes while the editor is open ([`HistoryShared::set_open`]), so a closed editor costs the
//! audio thread one relaxed load per token. When the editor falls behind and the ring is full,
//! the record is dropped and counted, never waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::io::run_file::PlayedToken;
use crate::loudness::CurvePoint;
use crate::music::frame::TokenFrame;

/// Records the ring holds: about a minute of tokens at 4 per second, far more than the editor
/// lets pile up between two frames.
pub const HISTORY_CAPACITY: usize = 256;

/// Counters and the open flag both ends read.
#[derive(Debug, Default)]
pub struct HistoryShared {
    open: AtomicBool,
    /// Records written since the start.
    written: AtomicU64,
    /// Records dropped because the ring was full.
    dropped: AtomicU64,
}

impl HistoryShared {
    /// The editor opened or closed: only an open editor is fed.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Release);
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The audio thread's end.
pub struct HistoryWriter {
    ring: rtrb::Producer<PlayedToken>,
    shared: Arc<HistoryShared>,
}

/// The editor's end.
pub struct HistoryReader {
    ring: rtrb::Consumer<PlayedToken>,
    shared: Arc<HistoryShared>,
}

/// A ring of `capacity` records and its two ends (allocates: call off the audio thread).
pub fn history(capacity: usize) -> (HistoryWriter, HistoryReader) {
    let shared = Arc::new(HistoryShared::default());
    let (producer, consumer) = rtrb::RingBuffer::new(capacity.max(1));
    (
        HistoryWriter {
            ring: producer,
            shared: Arc::clone(&shared),
        },
        HistoryReader {
            ring: consumer,
            shared,
        },
    )
}

impl HistoryWriter {
    /// Audio thread: `frame` was played at a step where the curve read `point`. Does nothing
    /// while the editor is closed; drops and counts when the ring is full.
    pub fn record(&mut self, frame: &TokenFrame, point: &CurvePoint) {
        if !self.shared.is_open() {
            return;
        }
        if self.ring.is_full() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else if self
            .ring
            .push(PlayedToken {
                frame: *frame,
                point: *point,
            })
            .is_ok()
        {
            self.shared.written.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl HistoryReader {
    pub fn shared(&self) -> &Arc<HistoryShared> {
        &self.shared
    }

    /// Editor: hands every waiting record to `each`, oldest first.
    pub fn drain(&mut self, mut each: impl FnMut(&PlayedToken)) -> usize {
        let mut n = 0;
        while let Ok(record) = self.ring.pop() {
            each(&record);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(run: u32, index: u32, text: &str) -> TokenFrame {
        let mut frame = TokenFrame::new(index, 7, text, 3, 0.9);
        frame.run = run;
        frame.set_state(
            2,
            crate::music::frame::components(&[0.5, -0.25, 0.0, 1.0]),
            1.0,
            0.0,
            0.0,
        );
        frame
    }

    fn point(temperature: f32) -> CurvePoint {
        CurvePoint {
            lufs: -20.0,
            smoothed: -21.0,
            velocity: 1.5,
            temperature,
        }
    }

    #[test]
    fn records_carry_what_was_played_in_order() {
        let (mut writer, mut reader) = history(8);
        writer.shared.set_open(true);
        writer.record(&frame(1, 0, " the"), &point(0.5));
        writer.record(&frame(1, 1, " forest"), &point(0.7));
        let mut seen = Vec::new();
        assert_eq!(reader.drain(|r| seen.push(*r)), 2);
        assert_eq!(seen[0].frame.text(), " the");
        assert_eq!(seen[1].frame.text(), " forest");
        assert_eq!((seen[1].frame.run, seen[1].frame.index), (1, 1));
        assert_eq!(
            seen[1].frame.coords[2],
            crate::music::frame::components(&[0.5, -0.25, 0.0, 1.0])
        );
        assert_eq!(seen[1].frame.hidden_states(), 3);
        assert_eq!(seen[1].point.temperature, 0.7);
        assert_eq!(seen[1].frame.temperature, 0.9);
        assert_eq!(reader.drain(|_| {}), 0);
        assert_eq!(reader.shared().written(), 2);
    }

    #[test]
    fn a_closed_editor_is_not_fed() {
        let (mut writer, mut reader) = history(8);
        writer.record(&frame(1, 0, "a"), &point(0.5));
        assert_eq!(reader.drain(|_| {}), 0);
        assert_eq!(reader.shared().written(), 0);
        assert_eq!(reader.shared().dropped(), 0);
    }

    #[test]
    fn a_full_ring_drops_and_counts_keeping_the_oldest() {
        let (mut writer, mut reader) = history(4);
        reader.shared().set_open(true);
        for i in 0..10 {
            writer.record(&frame(1, i, "x"), &point(0.5));
        }
        assert_eq!(reader.shared().written(), 4);
        assert_eq!(reader.shared().dropped(), 6);
        let mut indices = Vec::new();
        reader.drain(|r| indices.push(r.frame.index));
        assert_eq!(indices, [0, 1, 2, 3]);
        // Room again after draining.
        writer.record(&frame(1, 10, "x"), &point(0.5));
        reader.drain(|r| indices.push(r.frame.index));
        assert_eq!(indices, [0, 1, 2, 3, 10]);
    }
}
