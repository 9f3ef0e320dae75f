//! Other ONNX audio encoders (`listen --encoder FILE.onnx`: a wav2vec2 or MERT export, …) for
//! the semantic tokens.
//!
//! The conventions such a model must follow:
//! * one float32 input of shape `[1, samples]` or `[1, samples, 1]`: mono audio in −1…1;
//!   a dynamic length takes the whole signal at once, a fixed length is fed in windows of
//!   that length, the last one zero-padded;
//! * the sample rate in the model's custom metadata as `sample_rate` (16 000 if absent, the
//!   rate wav2vec2 and HuBERT exports use);
//! * the first output of shape `[1, frames, dims]` (or `[frames, dims]`): frames evenly
//!   spaced over the input.
//!
//! Its frames are averaged per token frame, projected to the codebooks' 16 dimensions by a
//! Gaussian random projection drawn from `--seed`, scaled to the semantic codebook's typical
//! length, and quantised by the semantic codebooks.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::Tensor;

use super::error::ListenError;
use super::runtime;
use super::rvq::DIMS;
use crate::rng::SplitMix64;

pub struct CustomEncoder {
    path: PathBuf,
    session: Session,
    input: String,
    /// `Some(n)` when the model takes fixed windows of `n` samples.
    window: Option<usize>,
    with_channel_axis: bool,
    pub sample_rate: u32,
}

/// The encoder's frames: `frames × dims`, row-major.
pub struct EncoderFrames {
    pub frames: usize,
    pub dims: usize,
    pub values: Vec<f32>,
}

impl CustomEncoder {
    pub fn load(path: &Path, threads: usize) -> Result<Self, ListenError> {
        if !path.exists() {
            return Err(ListenError::MissingEncoder(path.to_path_buf()));
        }
        let wrong = |message: String| ListenError::Encoder {
            path: path.to_path_buf(),
            message,
        };
        let environment = runtime::environment()?;
        let session = Session::builder(&environment)
            .and_then(|b| b.with_intra_threads(threads.max(1)).map_err(Into::into))
            .and_then(|mut b| b.commit_from_file(path))
            .map_err(|e| wrong(e.to_string()))?;
        let [input] = session.inputs() else {
            return Err(wrong(format!(
                "it has {} inputs; an audio encoder takes one ([1, samples] float32)",
                session.inputs().len()
            )));
        };
        let shape = input
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .ok_or_else(|| wrong("its input is not a tensor".into()))?;
        if input.dtype().tensor_type() != Some(ort::value::TensorElementType::Float32) {
            return Err(wrong("its input is not float32".into()));
        }
        let with_channel_axis = match shape.as_slice() {
            [_, _] => false,
            [_, _, 1] => true,
            other => {
                return Err(wrong(format!(
                    "its input has shape {other:?}; expected [1, samples] or [1, samples, 1]"
                )));
            }
        };
        let window = (shape[1] > 0).then_some(shape[1] as usize);
        let output_rank = session
            .outputs()
            .first()
            .and_then(|o| o.dtype().tensor_shape().map(|s| s.len()));
        if !matches!(output_rank, Some(2 | 3)) {
            return Err(wrong(
                "its first output is not [1, frames, dims] or [frames, dims]".into(),
            ));
        }
        let sample_rate = session
            .metadata()
            .ok()
            .and_then(|m| m.custom("sample_rate"))
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|&r| (4_000..=192_000).contains(&r))
            .unwrap_or(16_000);
        Ok(Self {
            path: path.to_path_buf(),
            input: input.name().to_owned(),
            session,
            window,
            with_channel_axis,
            sample_rate,
        })
    }

    /// The encoder's frames for a whole signal at `sample_rate`.
    pub fn run(&mut self, audio: &[f32]) -> Result<EncoderFrames, ListenError> {
        let chunk = self.window.unwrap_or(audio.len().max(1));
        let mut values = Vec::new();
        let (mut frames, mut dims) = (0, 0);
        for start in (0..audio.len().max(1)).step_by(chunk) {
            let mut window =
                audio[start.min(audio.len())..(start + chunk).min(audio.len())].to_vec();
            window.resize(chunk, 0.0);
            let shape: Vec<usize> = if self.with_channel_axis {
                vec![1, chunk, 1]
            } else {
                vec![1, chunk]
            };
            let fail =
                |e: ort::Error| ListenError::Inference(format!("{}: {e}", self.path.display()));
            let tensor = Tensor::from_array((shape, window.into_boxed_slice())).map_err(fail)?;
            let outputs = self
                .session
                .run(ort::inputs![self.input.as_str() => tensor])
                .map_err(fail)?;
            let (shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(fail)?;
            let (f, d) = match &shape[..] {
                [1, f, d] | [f, d] => (*f as usize, *d as usize),
                other => {
                    return Err(ListenError::Inference(format!(
                        "{}: output shape {other:?} is not [1, frames, dims]",
                        self.path.display()
                    )));
                }
            };
            if dims != 0 && d != dims {
                return Err(ListenError::Inference(
                    "the output width changed between windows".into(),
                ));
            }
            dims = d;
            frames += f;
            values.extend_from_slice(data);
        }
        Ok(EncoderFrames {
            frames,
            dims,
            values,
        })
    }
}

/// A Gaussian random projection `DIMS × dims` (Box–Muller from the seed), fixed per seed.
pub fn random_projection(dims: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed ^ 0x6c69_7374_656e);
    (0..DIMS * dims)
        .map(|_| {
            let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
            let u2 = rng.next_f64();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
}
