//! Filters of the built-in timbres: a state-variable filter (Simper's trapezoidal SVF, stable
//! under any cutoff) and the denormal flush every recursive state in this module goes through.

use std::f32::consts::PI;

/// Recursive state below this (-300 dB) becomes exact zero. A decaying filter or reverb state
/// would otherwise crawl through subnormal numbers, which are slow on x86 and fail
/// clap-validator when they reach the output.
pub(crate) const FLUSH: f32 = 1e-15;

#[inline]
pub(crate) fn flush(x: f32) -> f32 {
    if x.abs() < FLUSH { 0.0 } else { x }
}

/// Coefficients of a state-variable filter, computed once per note (never per sample: `tan`).
///
/// Simper's per-sample equations are rewritten as one linear step of the two integrator states
/// (`state' = m·state + d·x`) plus the outputs read from the old state. The arithmetic is the
/// same filter, but each state now waits on two multiply-adds per sample instead of five, and
/// that chain is what bounds a note's cost.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SvfCoeffs {
    /// Rows of the state step, `[ic1, ic2, x]` → new `ic1` and `ic2`.
    m1: [f32; 3],
    m2: [f32; 3],
    /// Band-pass (`v1`) and low-pass (`v2`) outputs from `[ic1, ic2, x]`.
    band: [f32; 3],
    low: [f32; 3],
}

impl SvfCoeffs {
    /// `cutoff` is clamped into [10 Hz, 0.45 × sample rate] so any note at any rate is stable,
    /// and `q` to at least 0.5 (see [`Svf::end_chunk`]).
    pub(crate) fn new(sample_rate: f32, cutoff: f32, q: f32) -> Self {
        let fc = cutoff.max(10.0).min(0.45 * sample_rate);
        let g = (PI * fc / sample_rate).tan();
        let k = 1.0 / q.max(0.5);
        let a1 = 1.0 / (1.0 + g * (g + k));
        let a2 = g * a1;
        let a3 = g * a2;
        // v1 = a1·ic1 + a2·(x − ic2), v2 = ic2 + a2·ic1 + a3·(x − ic2), ic' = 2v − ic.
        let band = [a1, -a2, a2];
        let low = [a2, 1.0 - a3, a3];
        Self {
            m1: [2.0 * a1 - 1.0, -2.0 * a2, 2.0 * a2],
            m2: [2.0 * a2, 1.0 - 2.0 * a3, 2.0 * a3],
            band,
            low,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Svf {
    ic1: f32,
    ic2: f32,
}

impl Svf {
    /// One step of the states; returns `[ic1, ic2, x]` before it, for the outputs.
    #[inline]
    fn step(&mut self, c: &SvfCoeffs, x: f32) -> [f32; 3] {
        let v = [self.ic1, self.ic2, x];
        let row = |m: &[f32; 3]| m[0] * v[0] + (m[1] * v[1] + m[2] * v[2]);
        self.ic1 = row(&c.m1);
        self.ic2 = row(&c.m2);
        v
    }

    /// Flushes tiny states to zero. Called once per chunk of at most 64 samples rather than
    /// every sample, which keeps the flush off the per-sample chain: with Q at least 0.5 a state
    /// shrinks by at most 0.73 per sample (the pole radius at the highest cutoff), so within a
    /// chunk it cannot fall from the flush threshold to the subnormal range (0.73^64 ≈ 2e-9).
    #[inline]
    pub(crate) fn end_chunk(&mut self) {
        self.ic1 = flush(self.ic1);
        self.ic2 = flush(self.ic2);
    }

    #[inline]
    pub(crate) fn lowpass(&mut self, c: &SvfCoeffs, x: f32) -> f32 {
        let v = self.step(c, x);
        c.low[0] * v[0] + (c.low[1] * v[1] + c.low[2] * v[2])
    }

    #[inline]
    pub(crate) fn bandpass(&mut self, c: &SvfCoeffs, x: f32) -> f32 {
        let v = self.step(c, x);
        c.band[0] * v[0] + (c.band[1] * v[1] + c.band[2] * v[2])
    }

    #[cfg(test)]
    pub(crate) fn is_zero(&self) -> bool {
        self.ic1 == 0.0 && self.ic2 == 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowpass_passes_dc_and_stops_high_frequencies() {
        let c = SvfCoeffs::new(48_000.0, 1_000.0, 0.707);
        let mut f = Svf::default();
        let mut y = 0.0;
        for _ in 0..48_000 {
            y = f.lowpass(&c, 1.0);
        }
        assert!((y - 1.0).abs() < 1e-4, "{y}");
        let mut f = Svf::default();
        let mut peak = 0.0f32;
        for n in 0..48_000 {
            let x = if n % 2 == 0 { 1.0 } else { -1.0 }; // Nyquist
            let y = f.lowpass(&c, x);
            if n > 1_000 {
                peak = peak.max(y.abs());
            }
        }
        assert!(peak < 0.01, "{peak}");
    }

    #[test]
    fn state_flushes_to_exact_zero_after_an_impulse() {
        let c = SvfCoeffs::new(48_000.0, 300.0, 2.0);
        let mut f = Svf::default();
        f.bandpass(&c, 1.0);
        for n in 0..480_000 {
            let y = f.bandpass(&c, 0.0);
            assert!(y == 0.0 || y.is_normal());
            if n % 64 == 63 {
                f.end_chunk();
            }
        }
        assert!(f.is_zero());
    }

    #[test]
    fn extreme_cutoffs_are_stable() {
        for (sr, fc) in [(1_000.0, 20_000.0), (48_000.0, -5.0), (8_000.0, f32::MAX)] {
            let c = SvfCoeffs::new(sr, fc, 0.5);
            let mut f = Svf::default();
            for n in 0..10_000 {
                let y = f.lowpass(&c, if n % 7 == 0 { 1.0 } else { -0.3 });
                assert!(y.is_finite() && y.abs() < 10.0);
            }
        }
    }
}
