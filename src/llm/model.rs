//! The one abstraction every architecture implements: a causal LM with a KV cache whose forward
//! step also reports every layer's hidden state and two per-layer statistics.

use super::error::Result;

/// What a loaded model is, for listings, maps and the editor.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// `llama`, `gpt2`, ...
    pub architecture: String,
    /// Transformer blocks; hidden states come in `n_layers + 1` (embedding output first).
    pub n_layers: usize,
    /// Width of the residual stream.
    pub width: usize,
    pub vocab_size: usize,
    /// Longest sequence (prompt + generated) the model accepts.
    pub context_length: usize,
    /// Weight format, e.g. `Q4_1`, `f32`.
    pub dtype: String,
}

/// The result of one forward step over `n_new` new positions.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// Logits of the newest position, `[vocab_size]`.
    pub logits: Vec<f32>,
    /// Hidden states, layer-major: `[(n_layers + 1) * n_new * width]`. Entry 0 is the embedding
    /// output, entry `i` the output of block `i`, the last one taken after the final norm —
    /// the convention of `transformers`' `output_hidden_states=True`.
    pub hidden: Vec<f32>,
    /// Attention entropy (nats, mean over heads) per layer and new position:
    /// `[n_layers * n_new]`.
    pub attention_entropy: Vec<f32>,
    /// Fraction of near-zero MLP activations after the nonlinearity, per layer and new
    /// position: `[n_layers * n_new]` (see `capture::mlp_sparsity`).
    pub mlp_sparsity: Vec<f32>,
    pub n_new: usize,
}

impl Step {
    /// Hidden state of `layer` (0..=n_layers) at new position `pos`.
    pub fn hidden_state(&self, layer: usize, pos: usize, width: usize) -> &[f32] {
        let start = (layer * self.n_new + pos) * width;
        &self.hidden[start..start + width]
    }
}

pub trait LanguageModel: Send {
    fn info(&self) -> &ModelInfo;

    /// Run `tokens` as the next positions after everything already in the KV cache.
    fn forward(&mut self, tokens: &[u32]) -> Result<Step>;

    /// Positions currently in the KV cache.
    fn position(&self) -> usize;

    /// Forget the KV cache: the next `forward` starts a new sequence.
    fn reset(&mut self);

    /// Forget every position from `position` on, keeping the ones before it, so the next
    /// `forward` continues after position `position - 1` (a server reusing a prompt's common
    /// prefix). `false`, with nothing changed, when the model cannot (a position past the end,
    /// or a cache the model would have to recompute); the caller then resets.
    fn truncate(&mut self, _position: usize) -> bool {
        false
    }

    /// Capture (hidden states, entropy, sparsity) is on unless turned off here; `bench-model`
    /// turns it off to measure what it costs. Models that cannot skip it ignore this.
    fn set_capture(&mut self, _on: bool) {}
}
