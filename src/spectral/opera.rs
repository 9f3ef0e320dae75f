//! A layers score sung: every token a voice (a fundamental and six overtones shaped by a vowel's
//! formants, [`FormantVoice`]) that sings one syllable per hidden state, into a convolution
//! reverb.
//!
//! In slice `l` a token's voice starts a note at its fundamental (the score's frequency, already
//! in the scale) with velocity `127·√(a / a_max)` — the voice's gain is velocity², so its level
//! follows the state's norm `a` — and releases it after [`SUNG`] of the slice, so the layers are
//! heard as a choir breathing once per layer. Each voice keeps its place in the stereo field
//! ([`super::Partial::pan`]) and a vowel from its token id; vibrato comes in after a singer's
//! delay. The dry choir goes through [`ConvolutionReverb`] with a synthetic room (or a given
//! impulse response), and the whole render is scaled to peak at −1 dBFS.

use super::SpectralScore;
use super::additive::Sound;
use crate::synth::{ConvolutionReverb, FormantVoice, Vowel, synthetic_impulse_response};

/// The share of a slice a syllable is held before its release.
pub const SUNG: f32 = 0.85;
/// Samples rendered per step (the reverb's block).
const BLOCK: usize = 512;

/// How the choir is heard.
#[derive(Debug, Clone, PartialEq)]
pub struct OperaOptions {
    /// Wet share, 0..=1.
    pub reverb_mix: f32,
    /// The room when no impulse response is given: its length (to −60 dB) and seed.
    pub room_seconds: f32,
    pub room_seed: u64,
    /// A stereo impulse response to use instead of the synthetic room.
    pub impulse: Option<(Vec<f32>, Vec<f32>)>,
}

impl Default for OperaOptions {
    fn default() -> Self {
        Self {
            reverb_mix: 0.3,
            room_seconds: 2.8,
            room_seed: 0x0be7a,
            impulse: None,
        }
    }
}

/// Renders `score` (an [`super::layers::opera_score`]) as the choir; see the
/// [module docs](self). [`Sound::gain`] is the final scale factor.
pub fn render(score: &SpectralScore, sample_rate: u32, options: &OperaOptions) -> Sound {
    let rate = sample_rate as f32;
    let slice = (score.slice_seconds * rate).round().max(1.0) as usize;
    let held = ((slice as f32 * SUNG) as usize).max(1);
    let tail = ((options.room_seconds.clamp(0.05, 20.0) + 1.0) * rate) as usize;
    let total = score.slices.len() * slice + tail;
    let mut voices: Vec<FormantVoice> = score
        .partials
        .iter()
        .map(|partial| {
            let mut voice = FormantVoice::new(rate);
            voice.set_pan(partial.pan);
            let vowel = match &partial.source {
                super::PartialSource::Token { id, .. } => {
                    Vowel::ALL[*id as usize % Vowel::ALL.len()]
                }
                super::PartialSource::Dimension { index, .. } => {
                    Vowel::ALL[index % Vowel::ALL.len()]
                }
            };
            voice.set_vowel(vowel);
            voice
        })
        .collect();
    let peak = score.peak_amplitude();
    let mut left = vec![0.0f32; total];
    let mut right = vec![0.0f32; total];
    let mut t = 0;
    while t < total {
        // Events fall on slice starts and release points: a block ends at the next one.
        let s = t / slice;
        let in_slice = t % slice;
        if s < score.slices.len() {
            if in_slice == 0 {
                let content = &score.slices[s];
                for (i, voice) in voices.iter_mut().enumerate() {
                    let a: f32 = content.amplitudes.get(i).copied().unwrap_or(0.0);
                    let level = if peak > 0.0 && a.is_finite() {
                        (a.abs() / peak).sqrt()
                    } else {
                        0.0
                    };
                    let velocity = (level * 127.0).round().clamp(0.0, 127.0) as u8;
                    voice.note_on(score.partials[i].frequency, velocity);
                }
            } else if in_slice == held {
                voices.iter_mut().for_each(FormantVoice::note_off);
            }
        }
        let next_event = if s < score.slices.len() {
            if in_slice < held {
                s * slice + held
            } else {
                (s + 1) * slice
            }
        } else {
            total
        };
        let end = next_event.min(total).min(t + BLOCK);
        for voice in voices.iter_mut() {
            if !voice.is_silent() {
                voice.render_add(&mut left[t..end], &mut right[t..end]);
            }
        }
        t = end;
    }
    let (ir_left, ir_right) = options.impulse.clone().unwrap_or_else(|| {
        synthetic_impulse_response(rate, options.room_seconds, options.room_seed)
    });
    let mut reverb = ConvolutionReverb::new(&ir_left, &ir_right, BLOCK);
    reverb.set_mix(options.reverb_mix);
    for (l, r) in left.chunks_mut(BLOCK).zip(right.chunks_mut(BLOCK)) {
        reverb.process(l, r);
    }
    let mut sound = Sound {
        left,
        right,
        gain: 1.0,
    };
    sound.normalise();
    sound
}
