//! One file per architecture, each implementing `LanguageModel`.

pub mod gpt2;
pub mod llama;
pub mod ops;
pub mod qlinear;
pub mod quantized_llama;
pub mod weight_buffer;
