//! Audio → tokens, notes and key: the pipeline `listen` and the plugin share.

use std::path::Path;

use super::basic_pitch::{BasicPitch, SAMPLE_RATE};
use super::encoder::{CustomEncoder, random_projection};
use super::error::ListenError;
use super::features::{self, model_frames, token_frames};
use super::key::{self, Key};
use super::mel;
use super::notes::{self, DecodeSettings, NoteEvent};
use super::resample::Resampler;
use super::rvq::{Codebooks, DIMS, STAGES};

/// One token frame: 4 semantic and 4 acoustic tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenFrame {
    /// Start of the frame, in seconds from the start of the input.
    pub t: f64,
    pub semantic: [u16; STAGES],
    pub acoustic: [u16; STAGES],
}

impl TokenFrame {
    /// The 8 tokens in the stream's order S0–S3, A0–A3.
    pub fn tokens(&self) -> [u16; 2 * STAGES] {
        std::array::from_fn(|i| {
            if i < STAGES {
                self.semantic[i]
            } else {
                self.acoustic[i - STAGES]
            }
        })
    }
}

/// What one stretch of audio sounded like.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Heard {
    pub seconds: f64,
    pub frames: Vec<TokenFrame>,
    pub notes: Vec<NoteEvent>,
    pub key: Option<Key>,
}

struct Custom {
    encoder: CustomEncoder,
    seed: u64,
}

pub struct Tokenizer {
    basic_pitch: BasicPitch,
    custom: Option<Custom>,
    codebooks: Codebooks,
    frame_rate: f64,
    decode: DecodeSettings,
}

impl Tokenizer {
    /// Basic Pitch from `basic_pitch`, optionally another semantic encoder, at `frame_rate`
    /// token frames per second (at most Basic Pitch's 86.13).
    pub fn new(
        basic_pitch: &Path,
        custom: Option<(&Path, u64)>,
        frame_rate: f64,
        threads: usize,
    ) -> Result<Self, ListenError> {
        if !(frame_rate > 0.0 && frame_rate <= features::MODEL_FRAME_RATE) {
            return Err(ListenError::Encoder {
                path: basic_pitch.to_path_buf(),
                message: format!(
                    "a frame rate of {frame_rate} Hz is outside 0…{:.2} Hz (Basic Pitch's frame rate)",
                    features::MODEL_FRAME_RATE
                ),
            });
        }
        let custom = match custom {
            Some((path, seed)) => Some(Custom {
                encoder: CustomEncoder::load(path, threads)?,
                seed,
            }),
            None => None,
        };
        Ok(Self {
            basic_pitch: BasicPitch::load(basic_pitch, threads)?,
            custom,
            codebooks: Codebooks::builtin()?,
            frame_rate,
            decode: DecodeSettings::default(),
        })
    }

    pub fn codebooks(&self) -> &Codebooks {
        &self.codebooks
    }

    pub fn frame_rate(&self) -> f64 {
        self.frame_rate
    }

    pub fn custom_sample_rate(&self) -> Option<u32> {
        self.custom.as_ref().map(|c| c.encoder.sample_rate)
    }

    /// Mono audio at any rate → tokens, notes and key.
    pub fn listen(&mut self, mono: &[f32], rate: u32) -> Result<Heard, ListenError> {
        let audio = Resampler::new(rate, SAMPLE_RATE).process(mono);
        let posteriors = self.basic_pitch.run(&audio)?;
        let mel = mel::log_mel(&audio);
        let count = token_frames(audio.len(), self.frame_rate);
        let available = posteriors.frames.min(mel.len() / mel::BANDS);
        let custom = match &mut self.custom {
            Some(custom) => {
                let input = Resampler::new(rate, custom.encoder.sample_rate).process(mono);
                let frames = custom.encoder.run(&input)?;
                let projection = random_projection(frames.dims, custom.seed);
                Some((frames, projection))
            }
            None => None,
        };
        let mut frames = Vec::with_capacity(count);
        if available > 0 {
            for k in 0..count {
                let range = model_frames(k, self.frame_rate, available);
                let semantic = match &custom {
                    None => self
                        .codebooks
                        .semantic
                        .encode(&features::semantic(&posteriors, range.clone())),
                    Some((encoded, projection)) => {
                        let seconds = audio.len() as f64 / f64::from(SAMPLE_RATE);
                        self.encode_custom(encoded, projection, k, seconds)
                    }
                };
                let acoustic = self
                    .codebooks
                    .acoustic
                    .encode(&features::acoustic(&mel, range));
                frames.push(TokenFrame {
                    t: k as f64 / self.frame_rate,
                    semantic,
                    acoustic,
                });
            }
        }
        let notes = notes::decode(&posteriors, &self.decode);
        Ok(Heard {
            seconds: audio.len() as f64 / f64::from(SAMPLE_RATE),
            frames,
            key: key::estimate(&notes),
            notes,
        })
    }

    fn encode_custom(
        &self,
        encoded: &super::encoder::EncoderFrames,
        projection: &[f32],
        k: usize,
        seconds: f64,
    ) -> [u16; STAGES] {
        let per_second = encoded.frames as f64 / seconds.max(1e-9);
        let start = ((k as f64 / self.frame_rate * per_second).floor() as usize)
            .min(encoded.frames.saturating_sub(1));
        let end = (((k + 1) as f64 / self.frame_rate * per_second).floor() as usize)
            .clamp(start + 1, encoded.frames.max(1));
        let mut mean = vec![0.0f64; encoded.dims];
        for t in start..end.min(encoded.frames) {
            for (m, v) in mean
                .iter_mut()
                .zip(&encoded.values[t * encoded.dims..(t + 1) * encoded.dims])
            {
                *m += f64::from(*v) / (end - start) as f64;
            }
        }
        let mut projected: [f64; DIMS] = std::array::from_fn(|d| {
            let row = &projection[d * encoded.dims..(d + 1) * encoded.dims];
            mean.iter().zip(row).map(|(m, p)| m * f64::from(*p)).sum()
        });
        let length = projected.iter().map(|v| v * v).sum::<f64>().sqrt();
        if length > 0.0 {
            let scale = f64::from(self.codebooks.semantic_norm) / length;
            for v in &mut projected {
                *v *= scale;
            }
        }
        self.codebooks.semantic.encode_projected(&projected)
    }
}
