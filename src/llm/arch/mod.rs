//! One file per architecture, each implementing `LanguageModel`.

pub mod gpt2;
pub mod llama;
pub mod lm_head;
pub mod quantized_llama;
