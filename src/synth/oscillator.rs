//! Oscillators: a phase accumulator, a wavetable oscillator on top of it, and a cheap sine LFO.

use super::prefetch::prefetch;
use super::wavetable::{Wavetable, read};

/// 2^32: one cycle of a fixed-point phase.
const CYCLE: f64 = 4_294_967_296.0;

/// Phase as a fraction of a cycle in 32-bit fixed point: adding the increment wraps by itself,
/// exactly, so the per-sample step has no wrap test, and the table index is the top bits.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Phasor {
    phase: u32,
    inc: u32,
}

impl Phasor {
    pub(crate) fn new(freq: f32, sample_rate: f32, phase: f32) -> Self {
        let inc = freq / sample_rate;
        let inc = if inc.is_finite() { inc } else { 0.0 };
        Self {
            phase: to_fixed(f64::from(phase)),
            inc: to_fixed(f64::from(inc)),
        }
    }

    /// Returns the current phase and advances by the plain increment, for callers that read
    /// their own tables (FM, drums).
    #[inline]
    pub(crate) fn tick(&mut self) -> u32 {
        self.step()
    }

    /// Returns the current phase and advances by the increment times `ratio` (FM).
    #[inline]
    fn advance(&mut self, ratio: f32) -> u32 {
        let p = self.phase;
        // A step stays well inside ±2^31 (half a cycle is Nyquist), so it converts as i32.
        let step = (self.inc as f32 * ratio) as i32;
        self.phase = p.wrapping_add_signed(step);
        p
    }

    /// Returns the current phase and advances by the plain increment.
    #[inline]
    fn step(&mut self) -> u32 {
        let p = self.phase;
        self.phase = p.wrapping_add(self.inc);
        p
    }

    /// The next `phases.len()` phases, each step the increment times `ratio[i]`.
    #[inline]
    fn run_modulated(&mut self, ratio: &[f32], phases: &mut [u32]) {
        for (p, &r) in phases.iter_mut().zip(ratio) {
            *p = self.advance(r);
        }
    }

    /// The next `phases.len()` phases at the plain increment.
    #[inline]
    fn run(&mut self, phases: &mut [u32]) {
        let (start, inc) = (self.phase, self.inc);
        for (k, p) in phases.iter_mut().enumerate() {
            *p = start.wrapping_add(inc.wrapping_mul(k as u32));
        }
        self.phase = start.wrapping_add(inc.wrapping_mul(phases.len() as u32));
    }
}

/// Cycles (any real number; NaN is 0) to a fixed-point phase.
pub(crate) fn to_fixed(cycles: f64) -> u32 {
    let fraction = cycles - cycles.floor();
    if fraction.is_finite() {
        (fraction * CYCLE) as u64 as u32
    } else {
        0
    }
}

/// Plays one band of a wavetable, chosen at note start from the note's frequency.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TableOsc {
    phasor: Phasor,
    /// `None`: the fundamental is above Nyquist, the oscillator is silent.
    band: Option<u32>,
}

impl TableOsc {
    pub(crate) fn new(table: &Wavetable, freq: f32, sample_rate: f32, phase: f32) -> Self {
        Self {
            phasor: Phasor::new(freq, sample_rate, phase),
            band: table.band_for(freq),
        }
    }

    /// Plays the band for `freq` while keeping the tuning: during a slide the band must hold
    /// no harmonic that the highest pitch of the slide would push past Nyquist.
    pub(crate) fn cover(&mut self, table: &Wavetable, freq: f32) {
        self.band = table.band_for(freq);
    }

    /// Starts loading the table this oscillator reads (see [`prefetch`]).
    pub(crate) fn prefetch(&self, table: &Wavetable) {
        if let Some(b) = self.band {
            prefetch(table.band(b));
        }
    }

    /// Writes the next `out.len()` samples (at most [`MAX_FILL`]), each advanced by the
    /// increment times `ratio[i]` (`None`: the plain increment). The phases are worked out
    /// first, then read from the band's table in one pass.
    #[inline]
    pub(crate) fn fill(&mut self, table: &Wavetable, ratio: Option<&[f32]>, out: &mut [f32]) {
        let Some(b) = self.band else {
            out.fill(0.0);
            return;
        };
        let band = table.band(b);
        let mut phases = [0u32; MAX_FILL];
        let n = out.len().min(MAX_FILL);
        let phases = &mut phases[..n];
        match ratio {
            Some(ratio) => self.phasor.run_modulated(ratio, phases),
            None => self.phasor.run(phases),
        }
        for (o, &p) in out.iter_mut().zip(&*phases) {
            *o = read(band, p);
        }
    }
}

/// The most samples [`TableOsc::fill`] writes in one call.
pub(crate) const MAX_FILL: usize = 64;

/// A sine LFO (vibrato, slow movement), by a refined parabola: error < 0.1 %, no `sin` call.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Lfo {
    phasor: Phasor,
}

impl Lfo {
    pub(crate) fn new(freq: f32, sample_rate: f32, phase: f32) -> Self {
        Self {
            phasor: Phasor::new(freq, sample_rate, phase),
        }
    }

    #[inline]
    pub(crate) fn next(&mut self) -> f32 {
        sine(self.phasor.step() as f32 * (1.0 / CYCLE as f32))
    }
}

/// sin(2π·phase) for phase in [0, 1).
#[inline]
fn sine(phase: f32) -> f32 {
    // sin(2πp) = -sin(πu) with u = 2p - 1 in [-1, 1).
    let u = 2.0 * phase - 1.0;
    let y = 4.0 * u * (1.0 - u.abs());
    -(0.225 * (y * y.abs() - y) + y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfo_sine_is_close_to_sin() {
        for i in 0..1000 {
            let p = i as f32 / 1000.0;
            let err = (sine(p) - (std::f32::consts::TAU * p).sin()).abs();
            assert!(err < 0.002, "{p}: {err}");
        }
    }

    #[test]
    fn phases_wrap_into_one_cycle() {
        let quarter = 1u32 << 30;
        for (cycles, want) in [
            (-0.25, 3 * quarter),
            (1.0, 0),
            (3.75, 3 * quarter),
            (f64::NAN, 0),
            (f64::INFINITY, 0),
        ] {
            assert_eq!(to_fixed(cycles), want, "{cycles}");
        }
        // 1000 steps of 0.33 cycles from 0.9: the fixed-point phase lands where the real one
        // does, to within the rounding of 1000 increments.
        let mut p = Phasor::new(0.3 * 48_000.0, 48_000.0, 0.9);
        for _ in 0..1000 {
            p.advance(1.1);
        }
        let want = (0.9 + 1000.0 * 0.3 * 1.1_f64).fract();
        let got = f64::from(p.advance(1.0)) / CYCLE;
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }

    #[test]
    fn plain_steps_match_one_at_a_time() {
        let mut a = Phasor::new(440.0, 48_000.0, 0.3);
        let mut b = a;
        let mut run = [0u32; 37];
        a.run(&mut run);
        for &p in &run {
            assert_eq!(p, b.step());
        }
        assert_eq!(a.phase, b.phase);
        let ratio: Vec<f32> = (0..37)
            .map(|i| 1.0 + 0.01 * (i as f32 * 0.7).sin())
            .collect();
        a.run_modulated(&ratio, &mut run);
        for (&p, &r) in run.iter().zip(&ratio) {
            assert_eq!(p, b.advance(r));
        }
        assert_eq!(a.phase, b.phase);
    }
}
