//! The plucked string ([`Timbre::Pluck`](super::Timbre::Pluck)): Karplus–Strong, harp or guitar.
//!
//! A period of filtered noise (seeded per note, so it repeats bit for bit) circulates in a delay
//! line. Each pass goes through a symmetric three-tap low-pass, whose delay is exactly one
//! sample at every frequency and whose strength sets how fast the upper partials die, and a
//! first-order all-pass tuned to supply the fraction of a sample the integer delay cannot:
//! integer delay + 1 + all-pass delay at the fundamental = one period, so the pitch is exact.
//! A loss factor then sets the fundamental's decay time. Velocity brightens the burst and the
//! string and lengthens the ring; the voice's brightness controller scales the damping.
//!
//! The delay line is not part of the note (notes are small `Copy` values): each note slot of a
//! pool owns one line, preallocated by [`line_len`] for the lowest note at the pool's rate.

use std::f64::consts::PI;

use super::controls::Controls;
use super::filter::flush;
use super::noise::Noise;

/// The lowest pitch the line holds (MIDI 24, C1); lower notes sound octaves up.
const LOWEST_HZ: f32 = 32.703;
/// Fundamental decay time (T60) at C4 for the softest and hardest notes; it scales with
/// 1/√frequency, as a string's does roughly.
const T60_SOFT: f32 = 8.0;
const T60_HARD: f32 = 24.0;
const T60_REFERENCE_HZ: f32 = 261.63;
/// Damping of soft and hard notes (the low-pass's side taps, at most 0.25), full below this
/// frequency and shrinking above it, so high notes keep some sparkle. It is also held low
/// enough that at most half of the fundamental's loss per period comes from it, so the
/// fundamental keeps its decay time on high notes too.
const DAMPING_SOFT: f32 = 0.25;
const DAMPING_HARD: f32 = 0.07;
const DAMPING_REFERENCE_HZ: f32 = 300.0;
/// Damping glides toward a controller change over this time.
const CONTROL_SECONDS: f32 = 0.01;
/// Below this level (-100 dB) the string has died away and the note ends.
const SILENCE: f32 = 1e-5;

/// Samples of delay line per note slot at `sample_rate`.
pub(crate) fn line_len(sample_rate: f32) -> usize {
    (sample_rate / LOWEST_HZ).ceil() as usize + 4
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Excite {
    #[default]
    None,
    /// A new note: the burst replaces whatever the line held.
    Replace,
    /// A re-pluck: the burst adds to the ringing string.
    Add,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PluckTone {
    /// Integer delay of the line (0: the pitch is out of range and the note is silent).
    delay: usize,
    write: usize,
    /// All-pass coefficient and state.
    allpass: f32,
    ap_in: f32,
    ap_out: f32,
    /// The low-pass's last two inputs.
    taps: [f32; 2],
    damping: f32,
    damping_base: f32,
    damping_max: f32,
    /// Loss per pass, from the damping and the decay time.
    loss: f32,
    /// Consecutive samples below [`SILENCE`]; a whole loop of them and the string is still.
    quiet: usize,
    cos_w: f32,
    /// Target loop gain per period at the fundamental.
    period_gain: f32,
    control_coeff: f32,
    excite: Excite,
    noise: Noise,
    /// One-pole low-pass coefficient of the burst (1: white).
    burst_tone: f32,
    gain: f32,
}

impl PluckTone {
    pub(crate) fn new(
        controls: &Controls,
        freq: f32,
        velocity: u8,
        sample_rate: f32,
        seed: u64,
        gain: f32,
    ) -> Self {
        let v = f32::from(velocity.min(127)) / 127.0;
        let max_period = (line_len(sample_rate) - 4) as f32;
        if freq.is_nan() || freq <= 0.0 {
            return Self::default();
        }
        let mut f = freq;
        while sample_rate / f > max_period {
            f *= 2.0;
        }
        let period = f64::from(sample_rate) / f64::from(f);
        if !period.is_finite() || period < 2.5 {
            return Self::default();
        }
        // Integer delay + 1 (low-pass) + all-pass delay in [0.5, 1.5) = one period.
        let delay = (period - 1.5).floor();
        let frac = period - 1.0 - delay;
        let w = 2.0 * PI / period;
        let allpass = ((w * (1.0 - frac) / 2.0).sin() / (w * (1.0 + frac) / 2.0).sin()) as f32;
        let t60 = (T60_SOFT + (T60_HARD - T60_SOFT) * v) * (T60_REFERENCE_HZ / f).sqrt();
        let t60 = t60.clamp(0.3, 30.0);
        let damping_base = (DAMPING_SOFT + (DAMPING_HARD - DAMPING_SOFT) * v)
            * (DAMPING_REFERENCE_HZ / f).min(1.0);
        let period_gain = (-3.0 * std::f32::consts::LN_10 / (t60 * f)).exp();
        let cos_w = w.cos() as f32;
        let damping_max = ((1.0 - period_gain.sqrt()) / (2.0 * (1.0 - cos_w)).max(1e-12)).min(0.25);
        let control_coeff = 1.0 - (-1.0 / (CONTROL_SECONDS * sample_rate).max(1.0)).exp();
        let mut tone = Self {
            delay: delay as usize,
            write: 0,
            allpass,
            damping_base,
            damping_max,
            cos_w,
            period_gain,
            control_coeff,
            excite: Excite::Replace,
            noise: Noise::new(seed),
            burst_tone: 0.2 + 0.8 * v * v,
            gain,
            ..Self::default()
        };
        tone.damping = tone.damping_for(controls);
        tone.loss = tone.loss_for(tone.damping);
        tone
    }

    fn damping_for(&self, controls: &Controls) -> f32 {
        (self.damping_base / controls.brightness()).min(self.damping_max)
    }

    /// The loss factor that keeps the fundamental's decay time whatever the damping.
    fn loss_for(&self, damping: f32) -> f32 {
        let lowpass_at_f0 = 1.0 - 2.0 * damping * (1.0 - self.cos_w);
        (self.period_gain / lowpass_at_f0).min(1.0)
    }

    /// Pluck again: a new burst on top of the ringing string.
    pub(crate) fn repluck(&mut self) {
        if self.delay > 0 {
            self.excite = Excite::Add;
            self.quiet = 0;
        }
    }

    /// Writes the string's next samples and returns how many come before it has died away
    /// (`out.len()` while it rings; the rest are zeros). `line` is this note slot's delay line,
    /// [`line_len`] long.
    pub(crate) fn fill(&mut self, controls: &Controls, line: &mut [f32], out: &mut [f32]) -> usize {
        let len = line.len();
        if self.delay == 0 || self.delay + 2 > len {
            out.fill(0.0);
            return 0;
        }
        if self.excite != Excite::None {
            self.burst(line);
        }
        let damping = self.damping_for(controls);
        let mut read = (self.write + len - self.delay) % len;
        let mut write = self.write;
        for (i, o) in out.iter_mut().enumerate() {
            if self.damping != damping {
                let next = self.damping + (damping - self.damping) * self.control_coeff;
                self.damping = if (damping - next).abs() < 1e-6 {
                    damping
                } else {
                    next
                };
                self.loss = self.loss_for(self.damping);
            }
            let c = self.damping;
            let x = line[read];
            let lp = c * (x + self.taps[1]) + (1.0 - 2.0 * c) * self.taps[0];
            self.taps = [x, self.taps[0]];
            let ap = self.allpass * (lp - self.ap_out) + self.ap_in;
            self.ap_in = lp;
            self.ap_out = ap;
            let y = flush(self.loss * ap);
            line[write] = y;
            *o = y * self.gain;
            read += 1;
            if read == len {
                read = 0;
            }
            write += 1;
            if write == len {
                write = 0;
            }
            self.quiet = if y.abs() < SILENCE { self.quiet + 1 } else { 0 };
            if self.quiet > self.delay + 2 {
                out[i + 1..].fill(0.0);
                self.write = write;
                return i + 1;
            }
        }
        self.write = write;
        self.ap_out = flush(self.ap_out);
        self.ap_in = flush(self.ap_in);
        out.len()
    }

    /// One period of filtered noise, zero-mean and at unit RMS, into the part of the line read
    /// next. The noise runs twice from the same state: once to measure, once to write.
    fn burst(&mut self, line: &mut [f32]) {
        let len = line.len();
        let n = self.delay;
        let start = (self.write + len - n) % len;
        let replace = self.excite == Excite::Replace;
        self.excite = Excite::None;
        let tone = self.burst_tone;
        let run = |noise: &mut Noise, lp: &mut f32| {
            *lp += (noise.next() - *lp) * tone;
            *lp
        };
        let (mut noise, mut lp) = (self.noise, 0.0f32);
        let (mut sum, mut sum_sq) = (0.0f32, 0.0f32);
        for _ in 0..n {
            let x = run(&mut noise, &mut lp);
            sum += x;
            sum_sq += x * x;
        }
        let mean = sum / n as f32;
        let scale = 1.0 / (sum_sq / n as f32 - mean * mean).max(1e-12).sqrt();
        // A DC offset would ring as long as the string: the burst is made zero-mean.
        let mut lp = 0.0f32;
        for k in 0..n {
            let i = (start + k) % len;
            let x = (run(&mut self.noise, &mut lp) - mean) * scale;
            line[i] = if replace { x } else { line[i] + x };
        }
        if replace {
            self.taps = [0.0; 2];
            self.ap_in = 0.0;
            self.ap_out = 0.0;
        }
    }
}
