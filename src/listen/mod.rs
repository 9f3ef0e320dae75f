//! Listening: audio → semantic and acoustic tokens, notes and key, so the model can hear the
//! track. Basic Pitch (an ONNX model, through `ort`) gives note, onset and pitch-contour
//! posteriors; a log-mel spectrum gives timbre; fixed residual-VQ codebooks turn both into 4+4
//! tokens per frame. The CLI writes them as an NDJSON stream (`stream`), the plugin puts a
//! compact line of them into the model's context (`heard_text`).

pub mod basic_pitch;
pub mod encoder;
pub mod error;
pub mod features;
pub mod heard_text;
pub mod input;
pub mod key;
pub mod mel;
pub mod notes;
pub mod plot;
pub mod resample;
pub mod runtime;
pub mod rvq;
pub mod stream;
pub mod tokenizer;
pub mod transcription;

pub use error::ListenError;
pub use tokenizer::{Heard, TokenFrame, Tokenizer};
