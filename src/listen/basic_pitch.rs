//! Spotify's Basic Pitch (ICASSP 2022, `nmp.onnx`) run through ONNX Runtime, windowed exactly
//! as its Python package does, so the posteriors equal `basic_pitch.inference.run_inference`'s.
//!
//! The model takes 2 s windows of 22.05 kHz mono (43 844 samples) and gives 172 frames of
//! note (88 keys), onset (88 keys) and pitch contour (264 bins, a third of a semitone each)
//! posteriors per window. Windows overlap by 30 frames (7 680 samples); the audio is preceded
//! by half an overlap of silence, each window's output loses 15 frames at either end, and the
//! rest is concatenated and cut to `floor(n · 86 / 22050)` frames (86 = 22050 div 256, an
//! integer in the Python code: the frames drift slightly against time, and we keep that).

use std::path::Path;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;

use super::error::ListenError;
use super::runtime;

pub const SAMPLE_RATE: u32 = 22_050;
pub const HOP: usize = 256;
pub const KEYS: usize = 88;
pub const CONTOUR_BINS: usize = 264;
/// The lowest key, A0, as a MIDI note.
pub const LOWEST_NOTE: u8 = 21;
const WINDOW: usize = 43_844;
const WINDOW_FRAMES: usize = 172;
const OVERLAP_FRAMES: usize = 30;
const OVERLAP: usize = OVERLAP_FRAMES * HOP;
const WINDOW_HOP: usize = WINDOW - OVERLAP;
/// The Python package's integer frame rate (22050 div 256).
const FRAMES_PER_SECOND_INT: usize = SAMPLE_RATE as usize / HOP;
/// Windows per call: larger batches run the convolutions faster (a 3-minute song: 2.8 s in
/// single windows, see the note in `run`).
const BATCH: usize = 8;
const INPUT: &str = "serving_default_input_2:0";
const NOTE: &str = "StatefulPartitionedCall:1";
const ONSET: &str = "StatefulPartitionedCall:2";
const CONTOUR: &str = "StatefulPartitionedCall:0";

/// The model's output over a whole signal, row-major `[frame][bin]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Posteriors {
    pub frames: usize,
    pub note: Vec<f32>,
    pub onset: Vec<f32>,
    pub contour: Vec<f32>,
}

impl Posteriors {
    pub fn note_row(&self, frame: usize) -> &[f32] {
        &self.note[frame * KEYS..(frame + 1) * KEYS]
    }

    pub fn onset_row(&self, frame: usize) -> &[f32] {
        &self.onset[frame * KEYS..(frame + 1) * KEYS]
    }

    pub fn contour_row(&self, frame: usize) -> &[f32] {
        &self.contour[frame * CONTOUR_BINS..(frame + 1) * CONTOUR_BINS]
    }
}

/// One window's raw output (172 frames), before trimming.
#[derive(Debug, Clone, Default)]
pub struct WindowOutput {
    pub note: Vec<f32>,
    pub onset: Vec<f32>,
    pub contour: Vec<f32>,
}

pub struct BasicPitch {
    session: Session,
}

impl BasicPitch {
    /// Loads `nmp.onnx` (or a file with the same interface). `threads` bounds ONNX Runtime's
    /// pool: 1 inside a plugin, the cores the CLI may use otherwise.
    pub fn load(path: &Path, threads: usize) -> Result<Self, ListenError> {
        if !path.exists() {
            return Err(ListenError::MissingEncoder(path.to_path_buf()));
        }
        let environment = runtime::environment()?;
        let encoder = |e: ort::Error| ListenError::Encoder {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let session = Session::builder(&environment)
            .map_err(encoder)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| encoder(e.into()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| encoder(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| encoder(e.into()))?
            .commit_from_file(path)
            .map_err(encoder)?;
        let fits = session.inputs().iter().any(|i| i.name() == INPUT)
            && [NOTE, ONSET, CONTOUR]
                .iter()
                .all(|name| session.outputs().iter().any(|o| o.name() == *name));
        if !fits {
            return Err(ListenError::Encoder {
                path: path.to_path_buf(),
                message: format!(
                    "not a Basic Pitch model: it needs input {INPUT} and outputs {NOTE}, {ONSET}, {CONTOUR}"
                ),
            });
        }
        Ok(Self { session })
    }

    /// One window of up to 43 844 samples (zero-padded), as the model sees it.
    pub fn run_window(&mut self, samples: &[f32]) -> Result<WindowOutput, ListenError> {
        let mut outputs = self.run_batch(&[samples])?;
        outputs
            .pop()
            .ok_or_else(|| ListenError::Inference("no output".into()))
    }

    /// Several windows in one call (the model takes a batch): the convolutions run faster.
    fn run_batch(&mut self, windows: &[&[f32]]) -> Result<Vec<WindowOutput>, ListenError> {
        let batch = windows.len();
        // The tensor takes the buffer: a fresh one per call (a window is 171 KB).
        let mut input = Vec::with_capacity(batch * WINDOW);
        for samples in windows {
            let n = samples.len().min(WINDOW);
            input.extend_from_slice(&samples[..n]);
            input.resize(input.len() + WINDOW - n, 0.0);
        }
        let run_error = |e: ort::Error| ListenError::Inference(e.to_string());
        let tensor = Tensor::from_array(([batch, WINDOW, 1], input.into_boxed_slice()))
            .map_err(run_error)?;
        let outputs = self
            .session
            .run(ort::inputs![INPUT => tensor])
            .map_err(run_error)?;
        let take = |name: &str, bins: usize| -> Result<Vec<f32>, ListenError> {
            let (shape, data) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|e| ListenError::Inference(e.to_string()))?;
            if shape.iter().product::<i64>() != (batch * WINDOW_FRAMES * bins) as i64 {
                return Err(ListenError::Inference(format!(
                    "{name} has shape {:?}, expected [{batch}, {WINDOW_FRAMES}, {bins}]",
                    &shape[..]
                )));
            }
            Ok(data.to_vec())
        };
        let (note, onset, contour) = (
            take(NOTE, KEYS)?,
            take(ONSET, KEYS)?,
            take(CONTOUR, CONTOUR_BINS)?,
        );
        Ok((0..batch)
            .map(|b| {
                let part = |all: &[f32], bins: usize| {
                    all[b * WINDOW_FRAMES * bins..(b + 1) * WINDOW_FRAMES * bins].to_vec()
                };
                WindowOutput {
                    note: part(&note, KEYS),
                    onset: part(&onset, KEYS),
                    contour: part(&contour, CONTOUR_BINS),
                }
            })
            .collect())
    }

    /// The posteriors of a whole 22.05 kHz mono signal.
    pub fn run(&mut self, audio: &[f32]) -> Result<Posteriors, ListenError> {
        let mut padded = vec![0.0f32; OVERLAP / 2];
        padded.extend_from_slice(audio);
        let trim = OVERLAP_FRAMES / 2;
        let kept = WINDOW_FRAMES - 2 * trim;
        let total = audio.len() * FRAMES_PER_SECOND_INT / SAMPLE_RATE as usize;
        let mut out = Posteriors {
            frames: total,
            note: Vec::with_capacity(total * KEYS),
            onset: Vec::with_capacity(total * KEYS),
            contour: Vec::with_capacity(total * CONTOUR_BINS),
        };
        // Only the windows whose frames are kept.
        let starts: Vec<usize> = (0..padded.len())
            .step_by(WINDOW_HOP)
            .take(total.div_ceil(kept))
            .collect();
        for batch in starts.chunks(BATCH) {
            let windows: Vec<&[f32]> = batch
                .iter()
                .map(|&start| &padded[start..(start + WINDOW).min(padded.len())])
                .collect();
            for window in self.run_batch(&windows)? {
                let rows = kept.min(total - out.note.len() / KEYS);
                let range = |bins: usize| trim * bins..(trim + rows) * bins;
                out.note.extend_from_slice(&window.note[range(KEYS)]);
                out.onset.extend_from_slice(&window.onset[range(KEYS)]);
                out.contour
                    .extend_from_slice(&window.contour[range(CONTOUR_BINS)]);
            }
        }
        out.frames = out.note.len() / KEYS;
        Ok(out)
    }
}

/// A model frame's time in seconds as Basic Pitch reports it (`model_frames_to_time`): the
/// nominal hop time, less a per-window correction for the windows' drift.
pub fn frame_time(frame: usize) -> f64 {
    let hop = HOP as f64 / f64::from(SAMPLE_RATE);
    let window_offset = hop * (WINDOW_FRAMES as f64 - WINDOW as f64 / HOP as f64) + 0.0018;
    frame as f64 * hop - window_offset * (frame / WINDOW_FRAMES) as f64
}
