//! The decoder every architecture runs, written once: embeddings → blocks (norm → attention
//! with its KV cache → residual → norm → MLP → residual) → final norm → LM head, with the
//! capture the sonification reads and the step's checks, roll-back and reset.
//!
//! A family file ([`gpt2`](super::gpt2), [`llama`](super::llama),
//! [`gguf`](super::gguf)) parses its config and loads its weights, under
//! the checkpoint's own names, into these layer types; [`Model`] pairs the result with the
//! family's config.
//!
//! Every step reports each layer's hidden state, the attention entropy and the MLP sparsity per
//! layer and position. They are taken from values the step computes anyway (the softmax's own
//! sums, the input of the MLP's down projection), so capturing costs no extra pass. The step
//! runs on `f32` slices with the kernels of `ops.rs`; its products are [`Linear`]s, dense or
//! quantized behind one enum matched once per product, and the whole step runs inside the
//! product pool (see `qlinear.rs`). Nothing on the hot path is generic or dynamic:
//! `Decoder::run` is one function for every family, `Model<C>` only adds the config.
//!
//! Keep it so; measured on the default model (Q4_1, 2 cores): handing rows out as f32 to share
//! one dot product between dense and quantized weights (dequantize, then dot) decoded 5.5×
//! slower, and the Q4_1 kernel's body compiled outside its `#[target_feature]` function (as in
//! a safe trait method, which cannot carry the attribute) 6× slower, every AVX2 intrinsic an
//! out-of-line call; a step run outside `in_pool` pays a pool hand-off per product (~12%).

mod layers;

pub(crate) use layers::{Attention, Block, Mlp, Norm};

use super::ops::{self, KvCache, Rope};
use super::qlinear::{Linear, in_pool};
use super::weight_buffer::Scratch;
use crate::llm::error::{LlmError, Result};
use crate::llm::model::{LanguageModel, ModelInfo, Step};

/// Where a family's weights come from: a safetensors checkpoint (f32) or a GGUF file
/// (quantized). Names are the checkpoint's.
pub(crate) trait Weights {
    /// Layer `prefix` with weight `{prefix}.weight`, `[rows (out), cols (in)]`, and the bias
    /// `{prefix}.bias` when the checkpoint stores one.
    fn linear(&mut self, prefix: &str, rows: usize, cols: usize) -> Result<Linear>;

    /// Tensor `name` as `len` values: norms, biases.
    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>>;

    /// LayerNorm `{prefix}.weight` and `{prefix}.bias`.
    fn layer_norm(&mut self, prefix: &str, width: usize, eps: f64) -> Result<Norm> {
        Ok(Norm::Layer {
            weight: self.vector(&format!("{prefix}.weight"), width)?,
            bias: self.vector(&format!("{prefix}.bias"), width)?,
            eps: eps as f32,
        })
    }
}

/// How positions enter the model.
pub(crate) enum Positions {
    /// Learned embeddings `[context, width]`, added to the token embeddings: GPT-2.
    Learned(Vec<f32>),
    /// Rotary embeddings on queries and keys; each attention layer names the one it uses
    /// (Gemma 3 has a local and a global one, every other family one).
    Rotary(Vec<Rope>),
}

/// The family-independent model: weights, KV cache and position.
pub(crate) struct Decoder {
    pub(crate) info: ModelInfo,
    /// `[vocab, width]`; also the LM head when `lm_head` is `None` (tied).
    pub(crate) embed_tokens: Linear,
    /// Factor on the looked-up embeddings (Gemma: `sqrt(width)`), 1 otherwise.
    pub(crate) embed_scale: f32,
    pub(crate) positions: Positions,
    pub(crate) blocks: Vec<Block>,
    pub(crate) norm: Norm,
    /// The untied LM head.
    pub(crate) lm_head: Option<Linear>,
}

/// Scratch space for one step, sized for its new positions.
pub(super) struct Buffers {
    normed: Scratch,
    qkv: Scratch,
    attended: Scratch,
    projected: Scratch,
    /// The MLP's first product: gate and up stacked, or up alone.
    up: Scratch,
    /// `act(gate) * up` of a gated MLP.
    gated: Scratch,
    /// One head's attention weights over every key.
    probs: Vec<f32>,
    /// RoPE angles of the new positions, `[n, pairs]`, one table per RoPE.
    cos: Vec<Vec<f32>>,
    sin: Vec<Vec<f32>>,
}

impl Buffers {
    fn new(block: &Block, ropes: &[Rope], width: usize, first: usize, n: usize) -> Self {
        let (up, down) = block.mlp.widths();
        let (cos, sin) = ropes
            .iter()
            .map(|rope| {
                let pairs = rope.pairs();
                let (mut cos, mut sin) = (vec![0.0; n * pairs], vec![0.0; n * pairs]);
                for (p, (cos, sin)) in cos
                    .chunks_exact_mut(pairs)
                    .zip(sin.chunks_exact_mut(pairs))
                    .enumerate()
                {
                    rope.angles(first + p, first + n, cos, sin);
                }
                (cos, sin)
            })
            .unzip();
        let gated = matches!(block.mlp, Mlp::Gated { .. });
        Self {
            normed: Scratch::zeroed(n * width),
            qkv: Scratch::zeroed(n * block.attn.qkv_rows()),
            attended: Scratch::zeroed(n * block.attn.q_width()),
            projected: Scratch::zeroed(n * width),
            up: Scratch::zeroed(n * up),
            gated: Scratch::zeroed(if gated { n * down } else { 0 }),
            probs: Vec::new(),
            cos,
            sin,
        }
    }
}

impl Decoder {
    fn ropes(&self) -> &[Rope] {
        match &self.positions {
            Positions::Rotary(ropes) => ropes,
            Positions::Learned(_) => &[],
        }
    }

    fn has_long_rope(&self) -> bool {
        self.ropes()
            .iter()
            .any(|r| r.crosses_to_long(1, usize::MAX))
    }

    fn crosses_to_long(&self, start: usize, end: usize) -> bool {
        self.ropes().iter().any(|r| r.crosses_to_long(start, end))
    }

    /// Runs `tokens` as positions `position..`; the caches grow by `tokens.len()` (also when a
    /// later layer fails: the caller rolls back).
    fn run(
        &self,
        caches: &mut [KvCache],
        position: usize,
        capture: bool,
        tokens: &[u32],
    ) -> Result<Step> {
        let (n, width, n_layers) = (tokens.len(), self.info.width, self.blocks.len());
        let mut x = vec![0.0_f32; n * width];
        for (i, (&token, x)) in tokens.iter().zip(x.chunks_exact_mut(width)).enumerate() {
            self.embed_tokens.weight_row(token as usize, x)?;
            if self.embed_scale != 1.0 {
                x.iter_mut().for_each(|v| *v *= self.embed_scale);
            }
            if let Positions::Learned(table) = &self.positions {
                ops::add_into(x, &table[(position + i) * width..][..width]);
            }
        }
        let mut step = Step {
            n_new: n,
            ..Step::default()
        };
        if capture {
            step.hidden.reserve_exact((n_layers + 1) * n * width);
            step.hidden.extend_from_slice(&x);
            step.attention_entropy = vec![0.0; n_layers * n];
            step.mlp_sparsity = vec![0.0; n_layers * n];
        }
        let ropes: &[Rope] = match &self.positions {
            Positions::Rotary(ropes) => ropes,
            Positions::Learned(_) => &[],
        };
        let Some(first) = self.blocks.first() else {
            return Err(LlmError::Compute("the model has no blocks".into()));
        };
        let mut buf = Buffers::new(first, ropes, width, position, n);
        let stats = step
            .attention_entropy
            .chunks_exact_mut(n)
            .zip(step.mlp_sparsity.chunks_exact_mut(n));
        let mut stats = stats.map(Some).chain(std::iter::repeat_with(|| None));
        for (i, (block, cache)) in self.blocks.iter().zip(caches).enumerate() {
            block.forward(&mut x, ropes, cache, &mut buf, stats.next().flatten())?;
            // The last block's output is replaced by the final-norm output below, the
            // convention of `transformers`' hidden states.
            if capture && i + 1 < n_layers {
                step.hidden.extend_from_slice(&x);
            }
        }
        self.norm.forward(&x, &mut buf.normed);
        if capture {
            step.hidden.extend_from_slice(&buf.normed);
        }
        let head = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        step.logits = vec![0.0; self.info.vocab_size];
        head.forward_into(&buf.normed[(n - 1) * width..], &mut step.logits)?;
        Ok(step)
    }
}

/// A causal LM of any family: the shared [`Decoder`] with its KV cache, and the family's
/// config `C`.
pub struct Model<C> {
    config: C,
    decoder: Decoder,
    /// One per block: keys (rotated, when RoPE) and values.
    caches: Vec<KvCache>,
    /// The tokens run so far, kept only for a model with LongRoPE (see
    /// [`Rope::crosses_to_long`]).
    history: Vec<u32>,
    position: usize,
    capture: bool,
}

impl<C> Model<C> {
    pub(crate) fn new(config: C, decoder: Decoder) -> Self {
        let caches = decoder.blocks.iter().map(|_| KvCache::default()).collect();
        Self {
            config,
            decoder,
            caches,
            history: Vec::new(),
            position: 0,
            capture: true,
        }
    }

    pub fn config(&self) -> &C {
        &self.config
    }
}

impl<C: Send> LanguageModel for Model<C> {
    fn info(&self) -> &ModelInfo {
        &self.decoder.info
    }

    fn forward(&mut self, tokens: &[u32]) -> Result<Step> {
        check_tokens(tokens, self.position, &self.decoder.info)?;
        let long_rope = self.decoder.has_long_rope();
        let Self {
            decoder,
            caches,
            history,
            position,
            capture,
            ..
        } = self;
        let end = *position + tokens.len();
        let result = if decoder.crosses_to_long(*position, end) {
            // Recompute everything on the long factors, as transformers does, into fresh caches
            // (kept only if the step succeeds), and report the new positions only.
            let mut all = history.clone();
            all.extend_from_slice(tokens);
            let mut fresh: Vec<KvCache> = caches.iter().map(|_| KvCache::default()).collect();
            let n_layers = decoder.blocks.len();
            let step = in_pool(|| decoder.run(&mut fresh, 0, *capture, &all));
            if step.is_ok() {
                *caches = fresh;
            }
            step.map(|step| last_positions(step, tokens.len(), n_layers, decoder.info.width))
        } else {
            in_pool(|| decoder.run(caches, *position, *capture, tokens))
        };
        match result {
            Ok(step) => {
                *position = end;
                if long_rope {
                    history.extend_from_slice(tokens);
                }
                Ok(step)
            }
            Err(err) => {
                // A step that failed half way leaves some caches ahead: roll them back.
                for (cache, block) in caches.iter_mut().zip(&decoder.blocks) {
                    cache.truncate(*position, block.attn.kv_width());
                }
                Err(err)
            }
        }
    }

    fn position(&self) -> usize {
        self.position
    }

    fn reset(&mut self) {
        self.position = 0;
        self.history.clear();
        self.caches.iter_mut().for_each(KvCache::clear);
    }

    fn truncate(&mut self, position: usize) -> bool {
        // Positions past LongRoPE's switch were computed on the long factors; going back below
        // it would leave them so: refuse, and let the caller reset.
        if position > self.position
            || (self.decoder.has_long_rope()
                && self.decoder.crosses_to_long(position.max(1), self.position))
        {
            return false;
        }
        for (cache, block) in self.caches.iter_mut().zip(&self.decoder.blocks) {
            cache.truncate(position, block.attn.kv_width());
        }
        self.history.truncate(position);
        self.position = position;
        true
    }

    fn set_capture(&mut self, on: bool) {
        self.capture = on;
    }
}

/// `step` (over `n_all` positions) cut to its last `n` positions.
fn last_positions(step: Step, n: usize, n_layers: usize, width: usize) -> Step {
    let n_all = step.n_new;
    let skip = n_all - n;
    let keep = |values: &[f32], rows: usize, row: usize| -> Vec<f32> {
        if values.is_empty() {
            return Vec::new();
        }
        (0..rows)
            .flat_map(|r| {
                values[(r * n_all + skip) * row..][..n * row]
                    .iter()
                    .copied()
            })
            .collect()
    };
    Step {
        hidden: keep(&step.hidden, n_layers + 1, width),
        attention_entropy: keep(&step.attention_entropy, n_layers, 1),
        mlp_sparsity: keep(&step.mlp_sparsity, n_layers, 1),
        logits: step.logits,
        n_new: n,
    }
}

/// The errors a step is checked for before anything runs.
fn check_tokens(tokens: &[u32], position: usize, info: &ModelInfo) -> Result<()> {
    if tokens.is_empty() {
        return Err(LlmError::EmptyPrompt);
    }
    let context = info.context_length;
    if position + tokens.len() > context {
        return Err(if position == 0 {
            LlmError::PromptTooLong {
                tokens: tokens.len(),
                context,
            }
        } else {
            LlmError::ContextFull(context)
        });
    }
    if let Some(bad) = tokens.iter().find(|&&t| t as usize >= info.vocab_size) {
        return Err(LlmError::Tokenizer(format!(
            "token id {bad} is outside the model's vocabulary of {}",
            info.vocab_size
        )));
    }
    Ok(())
}
