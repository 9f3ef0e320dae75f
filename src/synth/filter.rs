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
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SvfCoeffs {
    a1: f32,
    a2: f32,
    a3: f32,
}

impl SvfCoeffs {
    /// `cutoff` is clamped into [10 Hz, 0.45 × sample rate] so any note at any rate is stable.
    pub(crate) fn new(sample_rate: f32, cutoff: f32, q: f32) -> Self {
        let fc = cutoff.max(10.0).min(0.45 * sample_rate);
        let g = (PI * fc / sample_rate).tan();
        let k = 1.0 / q.max(0.1);
        let a1 = 1.0 / (1.0 + g * (g + k));
        let a2 = g * a1;
        let a3 = g * a2;
        Self { a1, a2, a3 }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Svf {
    ic1: f32,
    ic2: f32,
}

impl Svf {
    /// One sample; returns (low-pass, band-pass).
    #[inline]
    fn tick(&mut self, c: &SvfCoeffs, x: f32) -> (f32, f32) {
        let v3 = x - self.ic2;
        let v1 = c.a1 * self.ic1 + c.a2 * v3;
        let v2 = self.ic2 + c.a2 * self.ic1 + c.a3 * v3;
        self.ic1 = flush(2.0 * v1 - self.ic1);
        self.ic2 = flush(2.0 * v2 - self.ic2);
        (v2, v1)
    }

    #[inline]
    pub(crate) fn lowpass(&mut self, c: &SvfCoeffs, x: f32) -> f32 {
        self.tick(c, x).0
    }

    #[inline]
    pub(crate) fn bandpass(&mut self, c: &SvfCoeffs, x: f32) -> f32 {
        self.tick(c, x).1
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
        for _ in 0..480_000 {
            let y = f.bandpass(&c, 0.0);
            assert!(y == 0.0 || y.is_normal());
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
