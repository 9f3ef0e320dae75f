//! A [`SpectralScore`] as plain sinusoids.
//!
//! Slice `s` covers `[s·T, (s+1)·T)`. In it partial `i` is `a_i · sin(2π f_i (t − s·T) + φ_i)`:
//! its phase is the slice's own, counted from the slice's start. Neighbouring slices overlap by
//! [`CROSSFADE_SECONDS`] around their boundary with raised-cosine ramps that sum to one, so a
//! slice's middle holds its amplitudes exactly and a change of phase never clicks. The render is
//! mono (left = right) and scaled so its peak is −1 dBFS; [`Sound::gain`] is what a raw
//! amplitude was multiplied by.

use super::SpectralScore;

/// The overlap of two slices (and the fade in and out at the ends).
pub const CROSSFADE_SECONDS: f32 = 0.02;
/// The peak every spectral render is scaled to: −1 dBFS.
pub const PEAK: f32 = 0.891_250_9;

/// A rendered sonification.
#[derive(Debug, Clone, PartialEq)]
pub struct Sound {
    pub left: Vec<f32>,
    pub right: Vec<f32>,
    /// Sinusoid amplitude in the file per unit of raw amplitude (0 for silence).
    pub gain: f32,
}

impl Sound {
    /// Scales both channels so the peak is [`PEAK`]; `gain` is multiplied by the same factor.
    /// Silence stays silence.
    pub fn normalise(&mut self) {
        let peak = self
            .left
            .iter()
            .chain(&self.right)
            .fold(0.0f32, |p, &x| p.max(x.abs()));
        if peak > 0.0 && peak.is_finite() {
            let scale = PEAK / peak;
            self.left.iter_mut().for_each(|x| *x *= scale);
            self.right.iter_mut().for_each(|x| *x *= scale);
            self.gain *= scale;
        } else {
            self.left.fill(0.0);
            self.right.fill(0.0);
            self.gain = 0.0;
        }
    }
}

/// Samples of one slice and of the crossfade at `sample_rate`.
pub fn slice_samples(score: &SpectralScore, sample_rate: u32) -> (usize, usize) {
    let rate = sample_rate as f32;
    let slice = (score.slice_seconds * rate).round().max(1.0) as usize;
    let fade = ((CROSSFADE_SECONDS * rate).round() as usize).clamp(2, slice.max(2));
    (slice, fade)
}

/// The gain of slice `s` at sample `t` of the render: 1 inside, raised-cosine ramps of `fade`
/// samples on its boundaries (the render's start and end included). Slice `s` starts at
/// `s·slice + fade/2` in the render: its ramp in begins at `s·slice`.
fn window(t: usize, s: usize, slice: usize, fade: usize) -> f32 {
    let ramp = |x: f64| -> f64 {
        0.5 - 0.5 * (std::f64::consts::PI * (x / fade as f64).clamp(0.0, 1.0)).cos()
    };
    let t = t as f64;
    let rise = ramp(t - (s * slice) as f64);
    let fall = 1.0 - ramp(t - ((s + 1) * slice) as f64);
    rise.min(fall) as f32
}

/// Renders `score` as sinusoids (see the [module docs](self)).
pub fn render(score: &SpectralScore, sample_rate: u32) -> Sound {
    let (slice, fade) = slice_samples(score, sample_rate);
    let half = fade / 2;
    let n = score.slices.len();
    // The first slice's fade-in starts at 0: everything is shifted by half a fade.
    let total = n * slice + fade;
    let mut mono = vec![0.0f32; total];
    let peak = score.peak_amplitude();
    let pre = if peak > 0.0 { 1.0 / peak } else { 0.0 };
    let rate = f64::from(sample_rate);
    let mut buffer = vec![0.0f64; slice + fade];
    for (s, content) in score.slices.iter().enumerate() {
        // Samples [s·slice − half, (s+1)·slice + half) of the unshifted timeline.
        buffer.fill(0.0);
        for (i, partial) in score.partials.iter().enumerate() {
            let amplitude = f64::from(content.amplitudes.get(i).copied().unwrap_or(0.0) * pre);
            let frequency = f64::from(partial.frequency);
            if amplitude == 0.0 || !amplitude.is_finite() || frequency >= rate / 2.0 {
                continue;
            }
            let phase = f64::from(content.phases.get(i).copied().unwrap_or(0.0));
            let omega = std::f64::consts::TAU * frequency / rate;
            // The phasor at the buffer's first sample, `half` samples before the slice starts.
            let start = phase - omega * half as f64;
            let (mut re, mut im) = (start.cos(), start.sin());
            let (c, d) = (omega.cos(), omega.sin());
            for out in buffer.iter_mut() {
                *out += amplitude * im;
                (re, im) = (re * c - im * d, re * d + im * c);
            }
        }
        let first = s * slice;
        for (k, value) in buffer.iter().enumerate() {
            let t = first + k;
            if t >= total {
                break;
            }
            mono[t] += window(t, s, slice, fade) * (*value as f32);
        }
    }
    let mut sound = Sound {
        right: mono.clone(),
        left: mono,
        gain: pre,
    };
    sound.normalise();
    sound
}

/// Where slice `s`'s steady middle lies in a render: `(first sample, length)`, half a fade in
/// from both ends (for analyses of a render).
pub fn steady_part(score: &SpectralScore, sample_rate: u32, s: usize) -> (usize, usize) {
    let (slice, fade) = slice_samples(score, sample_rate);
    (s * slice + fade, slice.saturating_sub(fade))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spectral::{Partial, PartialSource, Slice, SliceSource};

    fn score(amplitudes: &[[f32; 2]], phases: &[[f32; 2]]) -> SpectralScore {
        let partial = |frequency, position| Partial {
            frequency,
            pan: 0.0,
            source: PartialSource::Token {
                position,
                id: 0,
                text: String::new(),
            },
        };
        SpectralScore {
            mode: "layers",
            partials: vec![partial(440.0, 0), partial(1000.0, 1)],
            slices: amplitudes
                .iter()
                .zip(phases)
                .enumerate()
                .map(|(s, (a, p))| Slice {
                    source: SliceSource::Layer(s),
                    amplitudes: a.to_vec(),
                    phases: p.to_vec(),
                })
                .collect(),
            slice_seconds: 0.25,
        }
    }

    #[test]
    fn a_slice_holds_its_amplitudes_and_phases_between_the_crossfades() {
        let score = score(&[[1.0, 0.5], [0.25, 1.0]], &[[0.0, 1.0], [2.0, -1.0]]);
        let rate = 48_000;
        let sound = render(&score, rate);
        assert_eq!(sound.left, sound.right);
        let peak = sound.left.iter().fold(0.0f32, |p, x| p.max(x.abs()));
        assert!((peak - PEAK).abs() < 1e-6);
        let (slice, fade) = slice_samples(&score, rate);
        for (s, content) in score.slices.iter().enumerate() {
            let (first, len) = steady_part(&score, rate, s);
            for t in first..first + len {
                // Time since the slice started, in the shifted render.
                let local = (t - fade / 2 - s * slice) as f64 / f64::from(rate);
                let expected: f64 = score
                    .partials
                    .iter()
                    .zip(&content.amplitudes)
                    .zip(&content.phases)
                    .map(|((p, &a), &phi)| {
                        f64::from(a * sound.gain)
                            * (std::f64::consts::TAU * f64::from(p.frequency) * local
                                + f64::from(phi))
                            .sin()
                    })
                    .sum();
                assert!(
                    (f64::from(sound.left[t]) - expected).abs() < 1e-4,
                    "{s} {t}"
                );
            }
        }
    }

    #[test]
    fn the_crossfade_never_clicks_and_the_render_ends_silent() {
        let score = score(&[[1.0, 0.0], [1.0, 0.0]], &[[0.0, 0.0], [3.0, 0.0]]);
        let sound = render(&score, 48_000);
        let step = std::f32::consts::TAU * 440.0 / 48_000.0 * PEAK;
        for pair in sound.left.windows(2) {
            assert!((pair[1] - pair[0]).abs() <= step * 1.5);
        }
        assert!(sound.left[0].abs() < 1e-6);
        assert!(sound.left.last().is_some_and(|x| x.abs() < 1e-3));
    }

    #[test]
    fn silence_stays_silent() {
        let sound = render(&score(&[[0.0, 0.0]], &[[0.0, 0.0]]), 48_000);
        assert!(sound.left.iter().all(|&x| x == 0.0));
        assert_eq!(sound.gain, 0.0);
    }
}
