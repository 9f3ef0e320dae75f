//! The models: one shared decoder (`decoder/`) and, per family, a file that reads its config and
//! loads its weights into it; the slice kernels (`ops.rs`) and linear layers (`qlinear.rs`)
//! under them.

pub mod checkpoint;
pub mod decoder;
pub mod gpt2;
pub mod llama;
pub mod ops;
pub mod qlinear;
pub mod quantized_llama;
pub mod weight_buffer;

/// `config.json` `model_type`s the Hugging Face loader takes; one list, so discovery, the loader
/// and the weights inventory agree on what a folder may hold.
pub const SAFETENSORS_MODEL_TYPES: &[&str] = &["gpt2", "llama", "qwen2", "mistral"];

/// GGUF `general.architecture`s the GGUF loader takes.
pub const GGUF_ARCHITECTURES: &[&str] = &["llama"];
