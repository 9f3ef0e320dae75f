//! The meters line: how fast the worker makes tokens, how far it is ahead of playback, what
//! went missing, and what the editor itself costs. All read from atomics.

use std::time::{Duration, Instant};

use crate::playback::history::HistoryShared;
use crate::worker::feed::FeedShared;
use crate::worker::link::LinkStatus;

/// Tokens/s is measured over windows this long.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A rate from a counter sampled now and then.
#[derive(Debug, Default)]
pub struct Rate {
    last: Option<(Instant, u64)>,
    per_second: f64,
}

impl Rate {
    /// The counter reads `count` at `now`; returns the latest rate.
    pub fn update(&mut self, now: Instant, count: u64) -> f64 {
        match self.last {
            None => self.last = Some((now, count)),
            Some((then, before)) => {
                let elapsed = now.saturating_duration_since(then);
                if elapsed >= RATE_WINDOW {
                    self.per_second = count.saturating_sub(before) as f64 / elapsed.as_secs_f64();
                    self.last = Some((now, count));
                }
            }
        }
        self.per_second
    }
}

/// The editor's own cost per frame: a running mean and the worst frame of the last second.
#[derive(Debug, Default)]
pub struct FrameTimer {
    mean_ms: f64,
    worst_ms: f64,
    worst_window: f64,
    window_start: Option<Instant>,
}

impl FrameTimer {
    pub fn add(&mut self, now: Instant, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        self.mean_ms = if self.mean_ms == 0.0 {
            ms
        } else {
            self.mean_ms * 0.95 + ms * 0.05
        };
        self.worst_window = self.worst_window.max(ms);
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= RATE_WINDOW {
            self.worst_ms = self.worst_window;
            self.worst_window = 0.0;
            self.window_start = Some(now);
        }
    }

    pub fn mean_ms(&self) -> f64 {
        self.mean_ms
    }

    pub fn worst_ms(&self) -> f64 {
        self.worst_ms.max(self.worst_window)
    }
}

/// One reading of every meter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub tokens_per_second: f64,
    /// Frames made and not yet played.
    pub lookahead: u64,
    pub underruns: u64,
    /// Frames the worker could not queue.
    pub dropped_frames: u64,
    /// Played records the editor was too slow to take.
    pub dropped_records: u64,
}

#[derive(Debug, Default)]
pub struct Meters {
    rate: Rate,
    pub frame: FrameTimer,
}

impl Meters {
    pub fn read(
        &mut self,
        now: Instant,
        link: &LinkStatus,
        feed: &FeedShared,
        history: &HistoryShared,
    ) -> Reading {
        use std::sync::atomic::Ordering::Relaxed;
        let produced = feed.produced.load(Relaxed);
        let consumed = feed.consumed.load(Relaxed);
        Reading {
            tokens_per_second: self.rate.update(now, link.tokens.load(Relaxed)),
            lookahead: produced.saturating_sub(consumed),
            underruns: feed.underruns.load(Relaxed),
            dropped_frames: feed.dropped.load(Relaxed),
            dropped_records: history.dropped(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_counts_per_second_over_its_window() {
        let mut rate = Rate::default();
        let t0 = Instant::now();
        assert_eq!(rate.update(t0, 10), 0.0);
        // Too soon for a new reading: the old one stays.
        assert_eq!(rate.update(t0 + Duration::from_millis(300), 12), 0.0);
        let r = rate.update(t0 + Duration::from_secs(2), 30);
        assert!((r - 10.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn frame_timer_keeps_the_worst_frame_of_the_window() {
        let mut timer = FrameTimer::default();
        let t0 = Instant::now();
        timer.add(t0, Duration::from_millis(2));
        timer.add(t0 + Duration::from_millis(10), Duration::from_millis(9));
        assert_eq!(timer.worst_ms(), 9.0);
        timer.add(t0 + Duration::from_millis(1100), Duration::from_millis(1));
        timer.add(t0 + Duration::from_millis(2200), Duration::from_millis(1));
        assert_eq!(timer.worst_ms(), 1.0);
        assert!(timer.mean_ms() > 1.0 && timer.mean_ms() < 9.0);
    }
}
