//! Hidden-state norm → velocity.
//!
//! Norms differ by orders of magnitude between layers (embeddings are small, late layers large,
//! some tokens carry "massive activations"), so a raw norm says little. Each layer keeps running
//! statistics of ln(norm) instead, and velocity follows how unusual this token's norm is for its
//! own layer: a z-score, squashed by tanh into the velocity range. The statistics are a running
//! mean and variance over the last [`NORM_WINDOW`] tokens or so (a plain mean until that many
//! have been seen), deterministic and reset with the mapping state.

use super::frame::{MAX_HIDDEN_STATES, TokenFrame};

/// Tokens the running statistics roughly remember.
pub const NORM_WINDOW: u32 = 32;
/// Smallest standard deviation of ln(norm) used for the z-score: norms that vary by less than
/// about 5% should not swing the velocity from end to end.
const MIN_STD: f32 = 0.05;
/// z-score that reaches about three quarters of the way to the range's end (tanh(1) ≈ 0.76).
const Z_SCALE: f32 = 2.0;

/// Running mean and variance of ln(norm) for one layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormStats {
    count: u32,
    mean: f32,
    variance: f32,
}

impl NormStats {
    pub const NEW: NormStats = NormStats {
        count: 0,
        mean: 0.0,
        variance: 0.0,
    };

    /// How many standard deviations `norm` lies above the running mean (in log terms); 0 with no
    /// history yet or for an unusable norm (zero, negative, NaN), so those play at the middle.
    pub fn z(&self, norm: f32) -> f32 {
        if self.count == 0 || !(norm.is_finite() && norm > 0.0) {
            return 0.0;
        }
        (norm.ln() - self.mean) / self.variance.sqrt().max(MIN_STD)
    }

    /// Add one norm; unusable norms are skipped.
    pub fn update(&mut self, norm: f32) {
        if !(norm.is_finite() && norm > 0.0) {
            return;
        }
        let x = norm.ln();
        self.count = self.count.saturating_add(1);
        // A plain mean at first, then an exponential one over about NORM_WINDOW tokens.
        let alpha = 1.0 / self.count.min(NORM_WINDOW) as f32;
        let delta = x - self.mean;
        self.mean += alpha * delta;
        self.variance = (1.0 - alpha) * (self.variance + alpha * delta * delta);
    }

    /// Norms seen so far.
    pub fn count(&self) -> u32 {
        self.count
    }
}

/// Norm statistics for every hidden state, updated from every frame whichever layers the voices
/// use, so switching a voice to another layer mid-run finds meaningful statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerDynamics {
    stats: [NormStats; MAX_HIDDEN_STATES],
}

impl Default for LayerDynamics {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerDynamics {
    pub const fn new() -> Self {
        Self {
            stats: [NormStats::NEW; MAX_HIDDEN_STATES],
        }
    }

    /// The z-score of `norm` for hidden state `layer` (0 for a layer out of range).
    pub fn z(&self, layer: usize, norm: f32) -> f32 {
        self.stats.get(layer).map_or(0.0, |stats| stats.z(norm))
    }

    /// Fold a frame's norms into the statistics (after the frame's notes were made, so a token is
    /// compared with the ones before it).
    pub fn observe(&mut self, frame: &TokenFrame) {
        let states = frame.hidden_states();
        for (stats, &norm) in self.stats[..states].iter_mut().zip(&frame.norm[..states]) {
            stats.update(norm);
        }
    }

    pub fn layer(&self, layer: usize) -> Option<&NormStats> {
        self.stats.get(layer)
    }
}

/// Velocity for a z-score within `min..=max` (swapped if reversed, kept in 1..=127): the middle
/// of the range at z = 0, rising monotonically with z.
pub fn velocity(z: f32, min: u8, max: u8) -> u8 {
    let (min, max) = velocity_bounds(min, max);
    let middle = (f32::from(min) + f32::from(max)) * 0.5;
    let half = (f32::from(max) - f32::from(min)) * 0.5;
    let z = if z.is_nan() { 0.0 } else { z };
    let v = (middle + half * (z / Z_SCALE).tanh()).round();
    // `v` is finite and within min..=max up to rounding; the clamp makes it exact.
    (v as u8).clamp(min, max)
}

/// The velocity a frame with a typical norm gets (and the first frame of a run).
pub fn middle_velocity(min: u8, max: u8) -> u8 {
    velocity(0.0, min, max)
}

fn velocity_bounds(min: u8, max: u8) -> (u8, u8) {
    let (a, b) = (min.clamp(1, 127), max.clamp(1, 127));
    (a.min(b), a.max(b))
}

/// How far the phrase-level swell moves the velocity at full Dynamics, in z-score units.
const SWELL_GAIN: f32 = 4.0;
/// Tokens the swell follows (an exponential average over about this many).
const SWELL_TOKENS: f32 = 6.0;

/// The phrase-level loudness of the model's states: the mean over all layers of how unusual
/// each norm is, averaged over the last few tokens. Single tokens vary too fast to be heard
/// as dynamics; this rises and falls over a phrase, as a crescendo would.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Swell {
    level: f32,
}

impl Swell {
    pub const fn new() -> Self {
        Self { level: 0.0 }
    }

    /// Adds one token's mean z-score (a non-finite one counts as typical).
    pub fn observe(&mut self, mean_z: f32) {
        let z = if mean_z.is_finite() {
            mean_z.clamp(-4.0, 4.0)
        } else {
            0.0
        };
        self.level += (z - self.level) / SWELL_TOKENS;
    }

    /// The z-score offset the swell adds at Dynamics `amount` (0: none).
    pub fn z(&self, amount: f32) -> f32 {
        if amount > 0.0 {
            self.level * SWELL_GAIN * amount.min(1.0)
        } else {
            0.0
        }
    }
}

/// The velocity range at Dynamics `amount`: `min..=max` as it is at 0, widened at 1 to
/// 12..=124 (pianissimo to fortissimo) around the same middle region.
pub fn spread_bounds(min: u8, max: u8, amount: f32) -> (u8, u8) {
    let (min, max) = velocity_bounds(min, max);
    if amount.is_nan() || amount <= 0.0 {
        return (min, max);
    }
    let amount = amount.min(1.0);
    let lerp = |from: u8, to: u8| {
        (f32::from(from) + (f32::from(to) - f32::from(from)) * amount).round() as u8
    };
    (lerp(min, min.min(12)), lerp(max, max.max(124)))
}

/// A velocity accented for where its step falls in the bar: the downbeat strongest, the
/// half bar next, other beats as they are, off-beats softer; `amount` 0…1 scales it (0: the
/// velocity unchanged), up to ±24.
pub fn accent(velocity: u8, step_in_bar: i64, steps_per_bar: i64, amount: f32) -> u8 {
    if amount <= 0.0 || amount.is_nan() || steps_per_bar <= 0 {
        return velocity;
    }
    let step = step_in_bar.rem_euclid(steps_per_bar);
    let beat = (steps_per_bar / 4).max(1);
    let weight = if step == 0 {
        1.0
    } else if steps_per_bar % 2 == 0 && step == steps_per_bar / 2 {
        0.5
    } else if step % beat == 0 {
        0.0
    } else {
        -0.5
    };
    let accented = f32::from(velocity) + weight * 24.0 * amount.min(1.0);
    accented.round().clamp(1.0, 127.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_norm_is_the_middle_and_stats_follow() {
        let mut stats = NormStats::NEW;
        assert_eq!(stats.z(123.0), 0.0);
        stats.update(10.0);
        assert_eq!(stats.z(10.0), 0.0);
        assert!(stats.z(20.0) > 0.0 && stats.z(5.0) < 0.0);
        for _ in 0..1000 {
            stats.update(40.0);
        }
        assert!(stats.z(40.0).abs() < 1e-3);
        stats.update(f32::NAN);
        stats.update(0.0);
        stats.update(-3.0);
        assert_eq!(stats.count(), 1001);
    }

    #[test]
    fn velocity_is_monotone_and_in_range() {
        for (min, max) in [(40u8, 110u8), (1, 127), (64, 64), (110, 40), (0, 200)] {
            let (lo, hi) = velocity_bounds(min, max);
            let mut previous = 0;
            for i in -400..=400 {
                let v = velocity(i as f32 / 40.0, min, max);
                assert!((lo..=hi).contains(&v) && v >= 1);
                assert!(v >= previous);
                previous = v;
            }
            assert_eq!(velocity(f32::INFINITY, min, max), hi);
            assert_eq!(velocity(f32::NEG_INFINITY, min, max), lo);
            assert_eq!(velocity(f32::NAN, min, max), middle_velocity(min, max));
        }
        assert_eq!(middle_velocity(40, 110), 75);
    }
    #[test]
    fn dynamics_widen_the_range_and_the_swell_follows_phrases() {
        assert_eq!(spread_bounds(40, 110, 0.0), (40, 110));
        assert_eq!(spread_bounds(40, 110, 1.0), (12, 124));
        assert_eq!(spread_bounds(40, 110, f32::NAN), (40, 110));
        let (lo, hi) = spread_bounds(40, 110, 0.5);
        assert!(lo < 40 && hi > 110);
        let mut swell = Swell::new();
        assert_eq!(swell.z(1.0), 0.0);
        for _ in 0..20 {
            swell.observe(1.0);
        }
        let loud = swell.z(1.0);
        assert!(loud > 2.0, "a run of strong norms swells ({loud})");
        assert_eq!(swell.z(0.0), 0.0, "off: no swell");
        swell.observe(f32::NAN);
        assert!(swell.z(1.0).is_finite());
        for _ in 0..20 {
            swell.observe(-1.0);
        }
        assert!(swell.z(1.0) < -2.0);
    }

    #[test]
    fn accents_follow_the_bar_and_none_leaves_the_velocity() {
        // 8 steps a bar (2 a beat).
        let bar: Vec<u8> = (0..8).map(|step| accent(80, step, 8, 1.0)).collect();
        assert_eq!(bar, [104, 68, 80, 68, 92, 68, 80, 68]);
        assert!((0..8).all(|step| accent(80, step, 8, 0.0) == 80));
        assert_eq!(accent(120, 0, 8, 1.0), 127);
        assert_eq!(accent(80, 9, 8, 1.0), 68, "steps count from the bar line");
    }
}
