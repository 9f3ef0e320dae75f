//! The model side: load a language model, tokenise, run it token by token with every layer's
//! hidden state captured, sample the next token. Nothing here knows about audio or MIDI.

pub mod abliterate;
pub mod arch;
pub mod capture;
pub mod discovery;
pub mod error;
pub mod inventory;
pub mod loader;
pub mod model;
pub mod sampler;
pub mod tokenizer;

pub use error::LlmError;
pub use model::{LanguageModel, ModelInfo, Step};
