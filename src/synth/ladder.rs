//! A 4-pole (24 dB/oct) ladder low-pass, the acid bass's filter.
//!
//! Four trapezoidal (TPT) one-pole stages in a loop with negative feedback. The delay-free loop
//! is solved exactly for the linear filter (the output is linear in the loop input, so one
//! division finds it), and the loop input then goes through a soft saturator, as the transistor
//! ladder's input pair does. Solving rather than delaying the feedback keeps cutoff and
//! resonance where they are set at every frequency up to near Nyquist; the saturator bounds the
//! loop, so even resonance past self-oscillation cannot run away.

use std::f32::consts::PI;

use super::filter::flush;

/// Highest cutoff as a share of the sample rate: the prewarped gain stays finite.
const MAX_CUTOFF: f32 = 0.45;
/// The loop gain at which the linear ladder self-oscillates.
pub(crate) const SELF_OSCILLATION: f32 = 4.0;

/// The stage gain `G = g / (1 + g)` for `cutoff` Hz, `g = tan(π·fc/fs)` (prewarped, so the
/// cutoff is exact). The cutoff is clamped into [10 Hz, 0.45 × `sample_rate`].
#[inline]
pub(crate) fn stage_gain(cutoff: f32, sample_rate: f32) -> f32 {
    let fc = cutoff.max(10.0).min(MAX_CUTOFF * sample_rate);
    let g = (PI * fc / sample_rate).tan();
    g / (1.0 + g)
}

/// Soft saturation: tanh-like, exactly ±1 beyond ±3, monotonic, cheap.
#[inline]
pub(crate) fn saturate(x: f32) -> f32 {
    let x = x.clamp(-3.0, 3.0);
    let x2 = x * x;
    x * (27.0 + x2) / (27.0 + 9.0 * x2)
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ladder {
    s: [f32; 4],
}

impl Ladder {
    /// One sample through the ladder with stage gain `g` (from [`stage_gain`]) and feedback `k`
    /// (0 ..= [`SELF_OSCILLATION`] and a little past).
    #[inline]
    pub(crate) fn process(&mut self, x: f32, g: f32, k: f32) -> f32 {
        let h = 1.0 - g;
        let [s0, s1, s2, s3] = self.s;
        // Each stage is y = g·in + (1 − g)·s, so the last output is g⁴·u + sigma.
        let sigma = h * (g * (g * (g * s0 + s1) + s2) + s3);
        let g4 = (g * g) * (g * g);
        let y = (g4 * x + sigma) / (1.0 + k * g4);
        let mut u = saturate(x - k * y);
        for s in self.s.iter_mut() {
            let v = g * (u - *s);
            let out = v + *s;
            *s = out + v;
            u = out;
        }
        u
    }

    /// Flushes tiny states to zero; once per chunk of at most 64 samples is enough (each stage
    /// shrinks by at most 0.73 per sample, see `Svf::end_chunk`).
    #[inline]
    pub(crate) fn end_chunk(&mut self) {
        for s in self.s.iter_mut() {
            *s = flush(*s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gain_at(freq: f32, cutoff: f32, k: f32, sr: f32) -> f32 {
        let g = stage_gain(cutoff, sr);
        let mut f = Ladder::default();
        let mut peak = 0.0f32;
        let n = (sr * 0.5) as usize;
        for i in 0..n {
            let x = 0.01 * (std::f32::consts::TAU * freq * i as f32 / sr).sin();
            let y = f.process(x, g, k);
            if i > n / 2 {
                peak = peak.max(y.abs());
            }
        }
        peak / 0.01
    }

    #[test]
    fn slopes_24_db_per_octave_and_resonates_at_cutoff() {
        let sr = 48_000.0;
        assert!((gain_at(50.0, 1_000.0, 0.0, sr) - 1.0).abs() < 0.01);
        // Two octaves above the cutoff: about -49 dB (4 poles), where a 2-pole filter gives -24.
        let two = gain_at(4_000.0, 1_000.0, 0.0, sr);
        assert!(two < 0.01 * 1.6 && two > 0.002, "{two}");
        // Resonance lifts the cutoff frequency above the passband.
        let flat = gain_at(1_000.0, 1_000.0, 0.0, sr);
        let peak = gain_at(1_000.0, 1_000.0, 3.6, sr);
        let pass = gain_at(50.0, 1_000.0, 3.6, sr);
        assert!(
            peak > 4.0 * pass && peak > 5.0 * flat,
            "{flat} {peak} {pass}"
        );
    }

    #[test]
    fn stable_and_finite_everywhere() {
        for sr in [22_050.0, 44_100.0, 192_000.0] {
            for cutoff in [-1.0, 10.0, 500.0, 0.49 * sr, f32::MAX] {
                for k in [0.0, 3.9, 4.5] {
                    let g = stage_gain(cutoff, sr);
                    let mut f = Ladder::default();
                    for i in 0..20_000 {
                        let x = if i % 97 < 48 { 1.5 } else { -1.5 };
                        let y = f.process(x, g, k);
                        assert!(y.is_finite() && y.abs() < 4.0, "{sr} {cutoff} {k}: {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn decays_to_exact_zero() {
        let g = stage_gain(300.0, 48_000.0);
        let mut f = Ladder::default();
        f.process(1.0, g, 3.0);
        for i in 0..2_000_000 {
            let y = f.process(0.0, g, 3.0);
            assert!(y == 0.0 || y.is_normal());
            if i % 64 == 63 {
                f.end_chunk();
            }
        }
        assert_eq!(f.s, [0.0; 4]);
    }
}
