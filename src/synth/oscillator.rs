//! Oscillators: a phase accumulator, a wavetable oscillator on top of it, and a cheap sine LFO.

use super::wavetable::{Wavetable, read};

/// Phase in cycles, [0, 1).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Phasor {
    phase: f32,
    inc: f32,
}

impl Phasor {
    pub(crate) fn new(freq: f32, sample_rate: f32, phase: f32) -> Self {
        let inc = freq / sample_rate;
        Self {
            phase: wrap(phase),
            inc: if inc.is_finite() { inc } else { 0.0 },
        }
    }

    /// Returns the current phase and advances by the increment times `ratio` (FM).
    #[inline]
    pub(crate) fn advance(&mut self, ratio: f32) -> f32 {
        let p = self.phase;
        self.phase = wrap(p + self.inc * ratio);
        p
    }
}

#[inline]
fn wrap(x: f32) -> f32 {
    if (0.0..1.0).contains(&x) {
        return x;
    }
    let w = x - x.floor();
    // `x - floor(x)` rounds to 1.0 for tiny negative x; NaN becomes 0.
    if (0.0..1.0).contains(&w) { w } else { 0.0 }
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

    /// Writes the next `out.len()` samples, each advanced by the increment times `ratio[i]`
    /// (`None`: the plain increment). The band's table is looked up once per call.
    #[inline]
    pub(crate) fn fill(&mut self, table: &Wavetable, ratio: Option<&[f32]>, out: &mut [f32]) {
        let Some(b) = self.band else {
            out.fill(0.0);
            return;
        };
        let band = table.band(b);
        match ratio {
            Some(ratio) => {
                for (o, &r) in out.iter_mut().zip(ratio) {
                    *o = read(band, self.phasor.advance(r));
                }
            }
            None => {
                for o in out.iter_mut() {
                    *o = read(band, self.phasor.advance(1.0));
                }
            }
        }
    }
}

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
        sine(self.phasor.advance(1.0))
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
    fn phase_wraps_into_range() {
        for x in [-1e-9, -0.25, 1.0, 3.75, f32::NAN, f32::INFINITY] {
            let w = wrap(x);
            assert!((0.0..1.0).contains(&w), "{x} -> {w}");
        }
        let mut p = Phasor::new(0.3 * 48_000.0, 48_000.0, 0.9);
        for _ in 0..1000 {
            let x = p.advance(1.1);
            assert!((0.0..1.0).contains(&x));
        }
    }
}
