//! The residual stream heard directly: additive ("spectral") sonifications in which every token
//! or dimension is a sinusoid, with no notes between the model and the sound.
//!
//! A sonification is first a [`SpectralScore`] — partials (what each sinusoid stands for, and its
//! frequency) and time slices (each partial's amplitude and phase in that slice) — and then
//! sound:
//!
//! * [`layers`]: one prompt, the hidden states in layer order as time. Each token a partial at a
//!   log-spaced frequency; amplitude its state's L2 norm, phase its angle in that layer's
//!   PC1–PC2 plane. [`layers::opera_score`] quantises the frequencies to a scale for the
//!   operatic render ([`opera`]).
//! * [`dataset`]: many prompts, each mean-pooled at one layer; the dimensions of highest
//!   variance across the set are the partials, each prompt one slice (amplitude |activation|,
//!   phase its sign).
//! * [`additive`]: a score as plain sinusoids, slices joined by raised-cosine crossfades.
//! * [`opera`]: a score as formant voices (six harmonics, ADSR, vibrato, stereo) into a
//!   convolution reverb.
//! * [`sidecar`]: the JSON that names every partial and slice of a render.
//!
//! Everything is deterministic: the same model, prompt(s) and options give the same bytes.

pub mod additive;
pub mod dataset;
pub mod layers;
pub mod opera;
pub mod sidecar;

use std::fmt;

use crate::llm::error::LlmError;

/// The lowest and highest partial frequency of the sinusoid renders (five octaves from A2).
pub const LOWEST_HZ: f32 = 110.0;
pub const HIGHEST_HZ: f32 = 3520.0;

/// What a partial stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum PartialSource {
    /// The prompt's token at `position` (0 = the first token).
    Token {
        position: usize,
        id: u32,
        text: String,
    },
    /// Dimension `index` of the residual stream at `layer`; `rank` 0 has the most variance.
    Dimension {
        layer: usize,
        index: usize,
        rank: usize,
        variance: f64,
    },
}

/// One sinusoid (or voice) of a render.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub frequency: f32,
    /// -1 (left) … 1 (right); the sinusoid renders are mono and ignore it.
    pub pan: f32,
    pub source: PartialSource,
}

/// What a slice of time is.
#[derive(Debug, Clone, PartialEq)]
pub enum SliceSource {
    /// Hidden state `layer` (0 = the embeddings).
    Layer(usize),
    /// Prompt `line` (0-based) of the set.
    Prompt { line: usize, text: String },
}

/// One stretch of time: every partial's amplitude and starting phase in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub source: SliceSource,
    /// Per partial, the raw value (a norm, |activation|): the render scales all by one gain.
    pub amplitudes: Vec<f32>,
    /// Per partial, radians at the slice's start.
    pub phases: Vec<f32>,
}

/// A whole sonification before it is sound.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralScore {
    /// `layers`, `opera` or `dataset`, for the sidecar.
    pub mode: &'static str,
    pub partials: Vec<Partial>,
    pub slices: Vec<Slice>,
    /// Length of each slice.
    pub slice_seconds: f32,
}

impl SpectralScore {
    /// The largest amplitude of any partial in any slice (0 for an empty score).
    pub fn peak_amplitude(&self) -> f32 {
        self.slices
            .iter()
            .flat_map(|s| s.amplitudes.iter())
            .fold(0.0f32, |peak, &a| {
                if a.is_finite() {
                    peak.max(a.abs())
                } else {
                    peak
                }
            })
    }
}

/// `count` frequencies spaced evenly in log frequency from [`LOWEST_HZ`] to [`HIGHEST_HZ`]
/// (one partial sits at the lowest).
pub fn log_spaced(count: usize) -> Vec<f32> {
    let ratio = f64::from(HIGHEST_HZ / LOWEST_HZ);
    (0..count)
        .map(|i| {
            let t = if count > 1 {
                i as f64 / (count - 1) as f64
            } else {
                0.0
            };
            (f64::from(LOWEST_HZ) * ratio.powf(t)) as f32
        })
        .collect()
}

/// Why a sonification could not be made.
#[derive(Debug)]
pub enum SpectralError {
    /// The prompt (or a prompt file) has no text.
    EmptyPrompt(String),
    /// A prompt tokenised to too few tokens.
    TooFewTokens {
        what: String,
        tokens: usize,
        needed: usize,
    },
    /// The layer asked for does not exist.
    LayerOutOfRange {
        layer: usize,
        states: usize,
    },
    /// A bad option value.
    Option(String),
    Model(LlmError),
    /// The model produced something unusable (non-finite states, a wrong shape).
    Numbers(String),
}

impl fmt::Display for SpectralError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyPrompt(what) => write!(f, "{what} is empty: nothing to sonify"),
            Self::TooFewTokens {
                what,
                tokens,
                needed,
            } => write!(
                f,
                "{what} is {tokens} token(s) long; it needs at least {needed}"
            ),
            Self::LayerOutOfRange { layer, states } => write!(
                f,
                "layer {layer} is out of range: this model has hidden states 0..={} \
                 (0 the embeddings, {} the last block after the final norm)",
                states - 1,
                states - 1
            ),
            Self::Option(message) | Self::Numbers(message) => f.write_str(message),
            Self::Model(error) => write!(f, "the model failed: {error}"),
        }
    }
}

impl std::error::Error for SpectralError {}

impl From<LlmError> for SpectralError {
    fn from(error: LlmError) -> Self {
        Self::Model(error)
    }
}

pub type Result<T> = std::result::Result<T, SpectralError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_spacing_spans_the_range_with_equal_ratios() {
        let f = log_spaced(6);
        assert_eq!(f[0], LOWEST_HZ);
        assert!((f[5] - HIGHEST_HZ).abs() < 0.01);
        let ratio = f[1] / f[0];
        for pair in f.windows(2) {
            assert!((pair[1] / pair[0] - ratio).abs() < 1e-4);
        }
        assert_eq!(log_spaced(1), vec![LOWEST_HZ]);
        assert!(log_spaced(0).is_empty());
    }
}
