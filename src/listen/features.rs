//! Per token frame, the vectors the codebooks quantise: Basic Pitch's posteriors (semantic)
//! and the log-mel spectrum (acoustic), pooled over the model frames the token frame covers.

use std::ops::Range;

use super::basic_pitch::{HOP, KEYS, Posteriors, SAMPLE_RATE};
use super::mel::BANDS;

/// Semantic feature size: note mean, onset max, contour mean per semitone (88 each).
pub const SEMANTIC_DIMS: usize = 3 * KEYS;
/// Basic Pitch's frame rate, 22050 / 256 ≈ 86.13 Hz: the finest token frame rate.
pub const MODEL_FRAME_RATE: f64 = SAMPLE_RATE as f64 / HOP as f64;

/// How many token frames `samples` (at 22.05 kHz) make at `rate` frames per second.
pub fn token_frames(samples: usize, rate: f64) -> usize {
    (samples as f64 / f64::from(SAMPLE_RATE) * rate).ceil() as usize
}

/// The model frames token frame `k` pools, never empty while `available > 0`.
pub fn model_frames(k: usize, rate: f64, available: usize) -> Range<usize> {
    let per = MODEL_FRAME_RATE / rate;
    let last = available.saturating_sub(1);
    let start = ((k as f64 * per).floor() as usize).min(last);
    let end = (((k + 1) as f64 * per).floor() as usize).clamp(start + 1, available.max(1));
    start..end
}

pub fn semantic(posteriors: &Posteriors, frames: Range<usize>) -> Vec<f32> {
    let mut out = vec![0.0f32; SEMANTIC_DIMS];
    let count = frames.len().max(1) as f32;
    for t in frames {
        let (note, onset, contour) = (
            posteriors.note_row(t),
            posteriors.onset_row(t),
            posteriors.contour_row(t),
        );
        for key in 0..KEYS {
            out[key] += note[key] / count;
            out[KEYS + key] = out[KEYS + key].max(onset[key]);
            let bins = &contour[3 * key..3 * key + 3];
            out[2 * KEYS + key] += (bins[0] + bins[1] + bins[2]) / 3.0 / count;
        }
    }
    out
}

pub fn acoustic(mel: &[f32], frames: Range<usize>) -> Vec<f32> {
    let mut out = vec![0.0f32; BANDS];
    let available = mel.len() / BANDS;
    let frames = frames.start.min(available)..frames.end.min(available);
    let count = frames.len().max(1) as f32;
    for t in frames {
        for (o, v) in out.iter_mut().zip(&mel[t * BANDS..(t + 1) * BANDS]) {
            *o += v / count;
        }
    }
    out
}
