//! The acoustic features: a log-mel spectrogram on Basic Pitch's frame grid (hop 256 at
//! 22.05 kHz), 1024-point Hann-windowed FFTs centred on each hop, 64 mel bands from 30 Hz to
//! 10 kHz (HTK scale), in dB.

use realfft::RealFftPlanner;

use super::basic_pitch::{HOP, SAMPLE_RATE};

pub const BANDS: usize = 64;
const FFT: usize = 1024;
const LOW_HZ: f64 = 30.0;
const HIGH_HZ: f64 = 10_000.0;
/// The floor, in dB (−100 dB re full scale).
pub const FLOOR_DB: f32 = -100.0;

/// Row-major `[frame][band]` dB values; frame `j` is centred on sample `j · 256`.
pub fn log_mel(audio: &[f32]) -> Vec<f32> {
    let frames = audio.len() / HOP;
    let mut out = Vec::with_capacity(frames * BANDS);
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(FFT);
    let window: Vec<f32> = (0..FFT)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / FFT as f64).cos()) as f32)
        .collect();
    let filters = filterbank();
    let mut buffer = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let mut power = vec![0.0f32; FFT / 2 + 1];
    // Power of a full-scale sine through this window: the dB reference.
    let reference = (FFT as f32 * 0.5 / 2.0).powi(2);
    for frame in 0..frames {
        let centre = (frame * HOP) as isize;
        for (i, slot) in buffer.iter_mut().enumerate() {
            let at = centre + i as isize - (FFT / 2) as isize;
            let sample = if at < 0 || at as usize >= audio.len() {
                0.0
            } else {
                audio[at as usize]
            };
            *slot = sample * window[i];
        }
        if fft
            .process_with_scratch(&mut buffer, &mut spectrum, &mut scratch)
            .is_err()
        {
            out.extend(std::iter::repeat_n(FLOOR_DB, BANDS));
            continue;
        }
        for (p, c) in power.iter_mut().zip(&spectrum) {
            *p = c.norm_sqr();
        }
        for filter in &filters {
            let energy: f32 = filter
                .weights
                .iter()
                .enumerate()
                .map(|(k, w)| power[filter.first_bin + k] * w)
                .sum();
            let db = 10.0 * (energy / reference).max(1e-10).log10();
            out.push(db.max(FLOOR_DB));
        }
    }
    out
}

struct Filter {
    first_bin: usize,
    weights: Vec<f32>,
}

fn hz_to_mel(hz: f64) -> f64 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn mel_to_hz(mel: f64) -> f64 {
    700.0 * (10f64.powf(mel / 2595.0) - 1.0)
}

/// Triangular filters, each normalised to unit area so bands of any width read alike.
fn filterbank() -> Vec<Filter> {
    let (low, high) = (hz_to_mel(LOW_HZ), hz_to_mel(HIGH_HZ));
    let edges: Vec<f64> = (0..BANDS + 2)
        .map(|i| mel_to_hz(low + (high - low) * i as f64 / (BANDS + 1) as f64))
        .collect();
    let bin_hz = f64::from(SAMPLE_RATE) / FFT as f64;
    (0..BANDS)
        .map(|band| {
            let (left, centre, right) = (edges[band], edges[band + 1], edges[band + 2]);
            let first_bin = (left / bin_hz).floor() as usize;
            let last_bin = ((right / bin_hz).ceil() as usize).min(FFT / 2);
            let mut weights: Vec<f32> = (first_bin..=last_bin)
                .map(|bin| {
                    let hz = bin as f64 * bin_hz;
                    let w = if hz <= centre {
                        (hz - left) / (centre - left)
                    } else {
                        (right - hz) / (right - centre)
                    };
                    w.max(0.0) as f32
                })
                .collect();
            let total: f32 = weights.iter().sum();
            if total > 0.0 {
                for w in &mut weights {
                    *w /= total;
                }
            }
            Filter { first_bin, weights }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_lights_its_band_and_silence_sits_on_the_floor() {
        let tone: Vec<f32> = (0..22_050)
            .map(|i| (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 22_050.0).sin() as f32)
            .collect();
        let mel = log_mel(&tone);
        let row = &mel[40 * BANDS..41 * BANDS];
        let loudest = (0..BANDS)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .expect("bands");
        let edges_hz = |band: usize| {
            let (low, high) = (hz_to_mel(LOW_HZ), hz_to_mel(HIGH_HZ));
            mel_to_hz(low + (high - low) * (band + 1) as f64 / (BANDS + 1) as f64)
        };
        assert!((edges_hz(loudest) - 1000.0).abs() < 120.0, "band {loudest}");
        assert!(
            row[loudest] > -12.0 && row[loudest] < 3.0,
            "{} dB",
            row[loudest]
        );
        let silence = log_mel(&vec![0.0; 4096]);
        assert!(silence.iter().all(|&v| v == FLOOR_DB));
    }
}
