//! ADSR envelope with exponential segments, like an analog envelope generator.
//!
//! Attack aims past full level (at 1.3) and stops at 1.0, giving the familiar concave rise that
//! reaches full level in the attack time. Decay glides toward the sustain level (so a sustain
//! change mid-note glides too). Release aims slightly below zero, so it reaches exact zero in the
//! release time instead of decaying forever through subnormal numbers. Every segment starts from
//! the current level: a re-trigger or a note-off in the middle of the attack never jumps.

/// Envelope times in seconds and the sustain level (linear, 0..=1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adsr {
    /// Time from silence to full level.
    pub attack: f32,
    /// Time to settle (within 1 %) from full level to the sustain level.
    pub decay: f32,
    /// Held level, 0..=1.
    pub sustain: f32,
    /// Time from full level to silence after note-off.
    pub release: f32,
}

impl Adsr {
    /// Shortest attack and release: anything shorter clicks.
    pub const MIN_SECONDS: f32 = 0.001;
    /// Longest segment accepted.
    pub const MAX_SECONDS: f32 = 60.0;

    /// Clamp into the accepted ranges; non-finite values fall back to `fallback`'s.
    pub fn sanitized(self, fallback: Adsr) -> Adsr {
        let time = |x: f32, f: f32| {
            if x.is_finite() { x } else { f }.clamp(Self::MIN_SECONDS, Self::MAX_SECONDS)
        };
        Adsr {
            attack: time(self.attack, fallback.attack),
            decay: time(self.decay, fallback.decay),
            sustain: if self.sustain.is_finite() {
                self.sustain
            } else {
                fallback.sustain
            }
            .clamp(0.0, 1.0),
            release: time(self.release, fallback.release),
        }
    }
}

const ATTACK_TARGET: f32 = 1.3;
const RELEASE_TARGET: f32 = -1e-3;
/// Within this of the sustain level the decay has arrived.
const SETTLE: f32 = 1e-9;

/// Per-sample coefficients of an [`Adsr`] at one sample rate; shared by all notes of a voice.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AdsrCoeffs {
    attack: f32,
    decay: f32,
    sustain: f32,
    release: f32,
}

fn one_pole(tau_seconds: f32, sample_rate: f32) -> f32 {
    1.0 - (-1.0 / (tau_seconds * sample_rate).max(1.0)).exp()
}

impl AdsrCoeffs {
    pub(crate) fn new(adsr: &Adsr, sample_rate: f32) -> Self {
        let attack_tau = adsr.attack / (ATTACK_TARGET / (ATTACK_TARGET - 1.0)).ln();
        let decay_tau = adsr.decay / 100f32.ln();
        let release_tau = adsr.release / ((1.0 - RELEASE_TARGET) / -RELEASE_TARGET).ln();
        Self {
            attack: one_pole(attack_tau, sample_rate),
            decay: one_pole(decay_tau, sample_rate),
            sustain: adsr.sustain,
            release: one_pole(release_tau, sample_rate),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Stage {
    #[default]
    Idle,
    Attack,
    /// Decay and sustain: gliding toward (or sitting at) the sustain level.
    Decay,
    Release,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Envelope {
    stage: Stage,
    level: f32,
}

impl Envelope {
    /// (Re)start the attack from the current level.
    pub(crate) fn trigger(&mut self) {
        self.stage = Stage::Attack;
    }

    /// Release from the current level.
    pub(crate) fn release(&mut self) {
        if self.stage != Stage::Idle {
            self.stage = Stage::Release;
        }
    }

    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.stage == Stage::Idle
    }

    #[cfg(test)]
    pub(crate) fn stage(&self) -> Stage {
        self.stage
    }

    #[inline]
    pub(crate) fn next(&mut self, c: &AdsrCoeffs) -> f32 {
        match self.stage {
            Stage::Attack => {
                self.level += (ATTACK_TARGET - self.level) * c.attack;
                if self.level >= 1.0 {
                    self.level = 1.0;
                    self.stage = Stage::Decay;
                }
            }
            Stage::Decay => {
                let next = self.level + (c.sustain - self.level) * c.decay;
                // Arrived, or stalled by f32 rounding (which would otherwise leave a sustain-0
                // note crawling through subnormals forever).
                self.level = if next == self.level || (next - c.sustain).abs() < SETTLE {
                    c.sustain
                } else {
                    next
                };
                if self.level == 0.0 {
                    // Sustain 0: a percussive note that has died away.
                    self.stage = Stage::Idle;
                }
            }
            Stage::Release => {
                self.level += (RELEASE_TARGET - self.level) * c.release;
                if self.level <= 0.0 {
                    self.level = 0.0;
                    self.stage = Stage::Idle;
                }
            }
            Stage::Idle => self.level = 0.0,
        }
        self.level
    }
}

impl Envelope {
    /// Fills `out` with the next levels, exactly as repeated [`Envelope::next`] calls would,
    /// and returns how many samples come before the envelope goes idle (`out.len()` while it
    /// still sounds). A settled sustain is a constant fill instead of a per-sample glide.
    pub(crate) fn fill(&mut self, c: &AdsrCoeffs, out: &mut [f32]) -> usize {
        let mut i = 0;
        while i < out.len() {
            if self.stage == Stage::Decay && self.level == c.sustain && c.sustain != 0.0 {
                out[i..].fill(self.level);
                return out.len();
            }
            let level = self.next(c);
            if self.stage == Stage::Idle {
                return i;
            }
            out[i] = level;
            i += 1;
        }
        out.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: f32 = 48_000.0;

    fn adsr() -> Adsr {
        Adsr {
            attack: 0.05,
            decay: 0.1,
            sustain: 0.6,
            release: 0.2,
        }
    }

    #[test]
    fn segments_take_their_times() {
        let c = AdsrCoeffs::new(&adsr(), SR);
        let mut env = Envelope::default();
        env.trigger();
        let mut n = 0;
        while env.stage() == Stage::Attack {
            env.next(&c);
            n += 1;
        }
        let attack = n as f32 / SR;
        assert!((attack - 0.05).abs() < 0.002, "attack {attack}");
        for _ in 0..(0.1 * SR) as usize {
            env.next(&c);
        }
        assert!((env.next(&c) - 0.6).abs() < 0.4 * 0.011 + 1e-3);
        env.release();
        let mut n = 0;
        let mut last = env.next(&c);
        while !env.is_idle() {
            let x = env.next(&c);
            assert!(x <= last);
            last = x;
            n += 1;
        }
        // From 0.6 the release takes less than the full release time.
        let release = n as f32 / SR;
        assert!(release < 0.2 && release > 0.1, "release {release}");
        assert_eq!(env.next(&c), 0.0);
    }

    #[test]
    fn release_mid_attack_starts_from_the_current_level() {
        let c = AdsrCoeffs::new(&adsr(), SR);
        let mut env = Envelope::default();
        env.trigger();
        let mut x = 0.0;
        for _ in 0..500 {
            x = env.next(&c);
        }
        assert!(x > 0.1 && x < 0.9);
        env.release();
        let y = env.next(&c);
        assert!(y < x && x - y < 0.01, "{x} -> {y}");
        // And a re-trigger during the release climbs again from where it is.
        env.trigger();
        let z = env.next(&c);
        assert!(z > y && z - y < 0.01);
    }

    #[test]
    fn sanitize_clamps_and_replaces_nan() {
        let a = Adsr {
            attack: f32::NAN,
            decay: 0.0,
            sustain: 2.0,
            release: 1e9,
        }
        .sanitized(adsr());
        assert_eq!(a.attack, 0.05);
        assert_eq!(a.decay, Adsr::MIN_SECONDS);
        assert_eq!(a.sustain, 1.0);
        assert_eq!(a.release, Adsr::MAX_SECONDS);
    }
}
