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
