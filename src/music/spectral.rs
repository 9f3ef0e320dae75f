//! A Spectral voice's partials for one note: the frame's partials at the voice's layer (its
//! highest-variance dimensions as z-scores, [`super::frame::SPECTRAL_PARTIALS`]) laid out above
//! the note the melody chose.
//!
//! Partial `i` (rank `i`, most variance first) sits `i · 12 · SPREAD_OCTAVES / (P − 1)`
//! semitones above the note, so the strongest-varying dimensions are the lowest and the cluster
//! follows the melody. In Scale mode each pitch moves to the nearest scale tone, and partials
//! that land on the same tone merge (their amplitudes add) instead of beating or cancelling.
//! Amplitude is |z| over the sum of all |z| (at least [`QUIET_SUM`], so a token close to the
//! corpus mean is quiet), tilted down by `1 / (1 + i / 16)` so the top does not hiss; phase is
//! 0 for z ≥ 0 and π for z < 0, as the offline dataset render hears a sign.

use super::frame::dequantize_z;
use super::scale::{Root, Scale};

/// The span of a voice's partials above its note.
pub const SPREAD_OCTAVES: f32 = 3.0;
/// The least the sum of |z| counts as: below it the partials grow quieter rather than louder.
pub const QUIET_SUM: f32 = 8.0;

/// Fills `out` with `(frequency Hz, amplitude, phase)` for `note` and the quantised z-scores
/// `partials`; returns how many entries it wrote (the rest of `out` is left alone). Real-time
/// safe.
pub fn layout(
    note: u8,
    partials: &[i8],
    key: Option<(Scale, Root)>,
    out: &mut [(f32, f32, f32)],
) -> usize {
    let count = partials.len().min(out.len());
    let sum: f32 = partials[..count]
        .iter()
        .map(|&q| dequantize_z(q).abs())
        .sum::<f32>()
        .max(QUIET_SUM);
    let step = if count > 1 {
        12.0 * SPREAD_OCTAVES / (count - 1) as f32
    } else {
        0.0
    };
    let mut last_pitch = None;
    let mut last_slot = 0;
    for (i, &q) in partials[..count].iter().enumerate() {
        let z = dequantize_z(q);
        let amplitude = z.abs() / sum / (1.0 + i as f32 / 16.0);
        let phase = if z < 0.0 { std::f32::consts::PI } else { 0.0 };
        let pitch = f32::from(note) + i as f32 * step;
        let pitch = match key {
            Some((scale, root)) => f32::from(scale.quantize(pitch, root)),
            None => pitch,
        };
        let frequency = 440.0 * 2f32.powf((pitch - 69.0) / 12.0);
        if key.is_some() && last_pitch == Some(pitch) {
            out[last_slot].1 += amplitude;
            out[i] = (frequency, 0.0, 0.0);
        } else {
            out[i] = (frequency, amplitude, phase);
            last_pitch = Some(pitch);
            last_slot = i;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::frame::{SPECTRAL_PARTIALS, quantize_z};

    #[test]
    fn partials_spread_above_the_note_with_amplitudes_from_the_z_scores() {
        let mut partials = [0i8; SPECTRAL_PARTIALS];
        partials[0] = quantize_z(2.0);
        partials[1] = quantize_z(-1.0);
        partials[31] = quantize_z(4.0);
        let mut out = [(0.0, 0.0, 0.0); SPECTRAL_PARTIALS];
        assert_eq!(layout(57, &partials, None, &mut out), SPECTRAL_PARTIALS);
        assert!(
            (out[0].0 - 220.0).abs() < 1e-3,
            "the first partial is the note"
        );
        assert!((out[31].0 - 1760.0).abs() < 0.05, "three octaves up");
        // Σ|z| = 7, below the quiet floor of 8.
        assert!((out[0].1 - 2.0 / 8.0).abs() < 0.01);
        assert!((out[1].1 - 1.0 / 8.0 / (1.0 + 1.0 / 16.0)).abs() < 0.01);
        assert_eq!(out[1].2, std::f32::consts::PI, "a negative z starts at π");
        assert_eq!(out[0].2, 0.0);
        assert_eq!(out[5].1, 0.0);
    }

    #[test]
    fn in_a_scale_every_partial_is_a_scale_tone_and_shared_tones_merge() {
        let partials = [quantize_z(1.0); SPECTRAL_PARTIALS];
        let mut out = [(0.0, 0.0, 0.0); SPECTRAL_PARTIALS];
        layout(60, &partials, Some((Scale::Major, Root::C)), &mut out);
        let total_free: f32 = {
            let mut free = [(0.0, 0.0, 0.0); SPECTRAL_PARTIALS];
            layout(60, &partials, None, &mut free);
            free.iter().map(|p| p.1).sum()
        };
        let mut seen = Vec::new();
        for &(f, a, _) in &out {
            let pitch = (69.0 + 12.0 * (f / 440.0).log2()).round() as u8;
            assert!(Scale::Major.contains(pitch, Root::C), "{pitch}");
            if a > 0.0 {
                assert!(!seen.contains(&pitch), "{pitch} sounds twice");
                seen.push(pitch);
            }
        }
        let total: f32 = out.iter().map(|p| p.1).sum();
        assert!(
            (total - total_free).abs() < 1e-4,
            "merging keeps the energy's sum"
        );
    }
}
