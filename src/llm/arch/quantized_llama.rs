//! Llama-family models from GGUF with quantized weights (the embedded default, SmolLM2).
//!
//! Follows the shape of candle-transformers' `quantized_llama`, reworked to expose every layer:
//! each block's output, the attention distribution of every new position and the MLP's gated
//! activations are read out as the forward pass goes, with no extra passes. Tensor names are
//! GGUF's (`blk.{i}.attn_q.weight`, ...). GGUF stores Q and K permuted for the interleaved
//! (adjacent-pair) RoPE layout, so RoPE here rotates adjacent pairs.
//!
//! The step works on plain `f32` slices rather than candle tensors: at decode a step is some
//! 200 small operations per token, and a tensor op's fixed cost (allocation, dispatch) was a
//! third of the time. The linear layers are [`QLinear`]s, Q, K, V and gate, up stacked so each
//! block makes four parallel passes over its weights.

use std::io::{Read, Seek};

use candle_core::quantized::{QTensor, gguf_file};
use candle_core::{Device, Tensor};

use super::qlinear::{QLinear, in_pool};
use crate::llm::capture;
use crate::llm::error::{LlmError, Result};
use crate::llm::model::{LanguageModel, ModelInfo, Step};

/// Hyper-parameters read from the GGUF metadata (`llama.*` keys).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub n_layers: usize,
    pub width: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub rope_dim: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
    pub context_length: usize,
}

impl Config {
    pub fn from_gguf(content: &gguf_file::Content) -> std::result::Result<Self, String> {
        let arch = metadata_str(content, "general.architecture")?;
        if arch != "llama" {
            return Err(format!("architecture {arch:?} is not llama"));
        }
        let int = |key: &str| -> std::result::Result<usize, String> {
            let value = content
                .metadata
                .get(&format!("llama.{key}"))
                .ok_or_else(|| format!("metadata llama.{key} is missing"))?;
            value
                .to_u32()
                .map(|v| v as usize)
                .or_else(|_| value.to_u64().map(|v| v as usize))
                .map_err(|e| format!("metadata llama.{key}: {e}"))
        };
        let float = |key: &str, default: f32| {
            content
                .metadata
                .get(&format!("llama.{key}"))
                .and_then(|v| v.to_f32().ok())
                .unwrap_or(default)
        };
        let n_heads = int("attention.head_count")?;
        let n_kv_heads = int("attention.head_count_kv").unwrap_or(n_heads);
        let width = int("embedding_length")?;
        if n_heads == 0 || n_kv_heads == 0 || width % n_heads != 0 || n_heads % n_kv_heads != 0 {
            return Err(format!(
                "inconsistent shape: width {width}, {n_heads} heads, {n_kv_heads} KV heads"
            ));
        }
        let head_dim = width / n_heads;
        Ok(Self {
            n_layers: int("block_count")?,
            width,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim: int("rope.dimension_count").unwrap_or(head_dim),
            rope_theta: float("rope.freq_base", 10_000.0),
            rms_eps: float("attention.layer_norm_rms_epsilon", 1e-5),
            context_length: int("context_length").unwrap_or(2048),
        })
    }
}

fn metadata_str(content: &gguf_file::Content, key: &str) -> std::result::Result<String, String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| format!("metadata {key} is missing"))
}

/// One transformer block; the field names are the GGUF tensors'.
struct Block {
    attn_norm: Vec<f32>,
    /// `attn_q`, `attn_k` and `attn_v` stacked: one output row per query, key, value value.
    attn_qkv: QLinear,
    attn_output: QLinear,
    ffn_norm: Vec<f32>,
    /// `ffn_gate` and `ffn_up` stacked.
    ffn_gate_up: QLinear,
    ffn_down: QLinear,
    /// `[positions, n_kv_heads * head_dim]`, RoPE applied.
    keys: Vec<f32>,
    values: Vec<f32>,
}

pub struct QuantizedLlama {
    config: Config,
    info: ModelInfo,
    token_embd: QTensor,
    blocks: Vec<Block>,
    output_norm: Vec<f32>,
    output: QLinear,
    /// `[context, rope_dim / 2]` rotation of each position and pair.
    cos: Vec<f32>,
    sin: Vec<f32>,
    position: usize,
    capture: bool,
}

impl QuantizedLlama {
    pub fn from_gguf<R: Read + Seek>(content: &gguf_file::Content, reader: &mut R) -> Result<Self> {
        let arch = metadata_str(content, "general.architecture").unwrap_or_default();
        if arch != "llama" {
            return Err(LlmError::UnknownArchitecture(arch));
        }
        let config = Config::from_gguf(content).map_err(LlmError::Compute)?;
        let mut tensor = |name: &str| -> Result<QTensor> {
            if !content.tensor_infos.contains_key(name) {
                return Err(LlmError::MissingTensor(name.to_owned()));
            }
            Ok(content.tensor(reader, name, &Device::Cpu)?)
        };
        let width = config.width;
        let vector = |t: QTensor, len: usize, name: &str| -> Result<Vec<f32>> {
            let values = t
                .dequantize(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            if values.len() != len {
                return Err(LlmError::Compute(format!(
                    "{name} has {} values, expected {len}",
                    values.len()
                )));
            }
            Ok(values)
        };
        let token_embd = tensor("token_embd.weight")?;
        let (vocab_size, embd_width) = token_embd.shape().dims2()?;
        if embd_width != width {
            return Err(LlmError::Compute(format!(
                "token_embd.weight is {embd_width} wide, the config says {width}"
            )));
        }
        let output_norm = vector(tensor("output_norm.weight")?, width, "output_norm.weight")?;
        let output = match tensor("output.weight") {
            Ok(t) => t,
            Err(LlmError::MissingTensor(_)) => tensor("token_embd.weight")?,
            Err(e) => return Err(e),
        };
        let kv_width = config.n_kv_heads * config.head_dim;
        let mut blocks = Vec::with_capacity(config.n_layers);
        for i in 0..config.n_layers {
            // `rows` is `None` where the checkpoint decides (the MLP's width).
            let mut linear = |name: &str, rows: Option<usize>, cols: usize| -> Result<QLinear> {
                let name = format!("blk.{i}.{name}.weight");
                let layer = QLinear::new(tensor(&name)?)?;
                let rows = rows.unwrap_or(layer.rows());
                if (layer.rows(), layer.cols()) != (rows, cols) {
                    return Err(LlmError::Compute(format!(
                        "{name} is [{}, {}], expected [{rows}, {cols}]",
                        layer.rows(),
                        layer.cols()
                    )));
                }
                Ok(layer)
            };
            let attn_q = linear("attn_q", Some(width), width)?;
            let attn_k = linear("attn_k", Some(kv_width), width)?;
            let attn_v = linear("attn_v", Some(kv_width), width)?;
            let attn_output = linear("attn_output", Some(width), width)?;
            let ffn_gate = linear("ffn_gate", None, width)?;
            let hidden = ffn_gate.rows();
            let ffn_up = linear("ffn_up", Some(hidden), width)?;
            let ffn_down = linear("ffn_down", Some(width), hidden)?;
            let attn_norm = format!("blk.{i}.attn_norm.weight");
            let ffn_norm = format!("blk.{i}.ffn_norm.weight");
            blocks.push(Block {
                attn_norm: vector(tensor(&attn_norm)?, width, &attn_norm)?,
                attn_qkv: QLinear::stack(vec![attn_q, attn_k, attn_v])?,
                attn_output,
                ffn_norm: vector(tensor(&ffn_norm)?, width, &ffn_norm)?,
                ffn_gate_up: QLinear::stack(vec![ffn_gate, ffn_up])?,
                ffn_down,
                keys: Vec::new(),
                values: Vec::new(),
            });
        }
        let (cos, sin) = rope_tables(&config);
        let dtype = content
            .tensor_infos
            .get("blk.0.attn_q.weight")
            .map(|t| format!("{:?}", t.ggml_dtype))
            .unwrap_or_default();
        let info = ModelInfo {
            architecture: "llama".to_owned(),
            n_layers: config.n_layers,
            width,
            vocab_size,
            context_length: config.context_length,
            dtype,
        };
        let output = QLinear::new(output)?;
        if (output.rows(), output.cols()) != (vocab_size, width) {
            return Err(LlmError::Compute(format!(
                "output.weight is [{}, {}], expected [{vocab_size}, {width}]",
                output.rows(),
                output.cols()
            )));
        }
        Ok(Self {
            config,
            info,
            token_embd,
            blocks,
            output_norm,
            output,
            cos,
            sin,
            position: 0,
            capture: true,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn forward_inner(&mut self, tokens: &[u32]) -> candle_core::Result<Step> {
        let n_new = tokens.len();
        let (n_layers, width) = (self.config.n_layers, self.config.width);
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let mut x = self
            .token_embd
            .embedding(&ids)?
            .flatten_all()?
            .to_vec1::<f32>()?;

        let mut step = Step {
            hidden: Vec::with_capacity((n_layers + 1) * n_new * width),
            attention_entropy: Vec::with_capacity(n_layers * n_new),
            mlp_sparsity: Vec::with_capacity(n_layers * n_new),
            n_new,
            ..Step::default()
        };
        if self.capture {
            step.hidden.extend_from_slice(&x);
        }
        let mut buffers = Buffers::new(&self.config, &self.blocks, n_new, self.position);
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let rope = Rope {
                cos: &self.cos,
                sin: &self.sin,
                first_position: self.position,
            };
            let capture = self.capture.then_some(&mut step);
            block.forward(&mut x, &self.config, &rope, &mut buffers, capture)?;
            // The last block's output is replaced by the final-norm output below, the
            // convention of `transformers`' hidden states.
            if self.capture && i + 1 < n_layers {
                step.hidden.extend_from_slice(&x);
            }
        }
        let mut normed = vec![0.0_f32; n_new * width];
        rms_norm(&x, &self.output_norm, self.config.rms_eps, &mut normed);
        if self.capture {
            step.hidden.extend_from_slice(&normed);
        }
        step.logits = vec![0.0_f32; self.info.vocab_size];
        self.output
            .forward_into(&normed[(n_new - 1) * width..], &mut step.logits)?;
        self.position += n_new;
        Ok(step)
    }
}

/// Scratch space for one step, sized for its new positions.
struct Buffers {
    normed: Vec<f32>,
    qkv: Vec<f32>,
    attended: Vec<f32>,
    projected: Vec<f32>,
    gate_up: Vec<f32>,
    gated: Vec<f32>,
    /// One head's attention weights over every key.
    probs: Vec<f32>,
}

impl Buffers {
    fn new(config: &Config, blocks: &[Block], n_new: usize, position: usize) -> Self {
        let width = config.width;
        let (qkv, gate_up) = blocks
            .first()
            .map_or((0, 0), |b| (b.attn_qkv.rows(), b.ffn_gate_up.rows()));
        Self {
            normed: vec![0.0; n_new * width],
            qkv: vec![0.0; n_new * qkv],
            attended: vec![0.0; n_new * width],
            projected: vec![0.0; n_new * width],
            gate_up: vec![0.0; n_new * gate_up],
            gated: vec![0.0; n_new * gate_up / 2],
            probs: vec![0.0; position + n_new],
        }
    }
}

struct Rope<'a> {
    cos: &'a [f32],
    sin: &'a [f32],
    first_position: usize,
}

impl Rope<'_> {
    /// Rotates the adjacent pairs of the first `rope_dim` values of every head in `heads`.
    fn apply(&self, heads: &mut [f32], head_dim: usize, rope_dim: usize, position: usize) {
        let half = rope_dim / 2;
        let cos = &self.cos[position * half..][..half];
        let sin = &self.sin[position * half..][..half];
        for head in heads.chunks_exact_mut(head_dim) {
            for (pair, (c, s)) in head[..rope_dim]
                .chunks_exact_mut(2)
                .zip(cos.iter().zip(sin))
            {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * c - b * s;
                pair[1] = a * s + b * c;
            }
        }
    }
}

impl Block {
    /// Advances `x` (`[n_new, width]`) through the block, appending this layer's entropy and
    /// sparsity to `capture` when given.
    fn forward(
        &mut self,
        x: &mut [f32],
        config: &Config,
        rope: &Rope,
        buf: &mut Buffers,
        mut capture: Option<&mut Step>,
    ) -> candle_core::Result<()> {
        let width = config.width;
        let (heads, kv_heads, head_dim) = (config.n_heads, config.n_kv_heads, config.head_dim);
        let kv_width = kv_heads * head_dim;
        let qkv_width = width + 2 * kv_width;
        let n_new = x.len() / width;

        rms_norm(x, &self.attn_norm, config.rms_eps, &mut buf.normed);
        self.attn_qkv.forward_into(&buf.normed, &mut buf.qkv)?;
        for (i, qkv) in buf.qkv.chunks_exact_mut(qkv_width).enumerate() {
            let position = rope.first_position + i;
            let (q, kv) = qkv.split_at_mut(width);
            let (k, v) = kv.split_at_mut(kv_width);
            rope.apply(q, head_dim, config.rope_dim, position);
            rope.apply(k, head_dim, config.rope_dim, position);
            self.keys.extend_from_slice(k);
            self.values.extend_from_slice(v);
        }

        // Each new position attends to every key up to its own; the heads sharing a KV head
        // (grouped-query attention) read the same cache rows.
        let group = heads / kv_heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        for i in 0..n_new {
            let n_keys = rope.first_position + i + 1;
            let q = &buf.qkv[i * qkv_width..][..width];
            let out = &mut buf.attended[i * width..][..width];
            let mut entropy = 0.0_f32;
            for h in 0..heads {
                let kv_offset = (h / group) * head_dim;
                let q = &q[h * head_dim..][..head_dim];
                let probs = &mut buf.probs[..n_keys];
                for (t, p) in probs.iter_mut().enumerate() {
                    let k = &self.keys[t * kv_width + kv_offset..][..head_dim];
                    *p = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                }
                entropy += softmax_entropy(probs);
                let out = &mut out[h * head_dim..][..head_dim];
                out.fill(0.0);
                for (t, &p) in probs.iter().enumerate() {
                    let v = &self.values[t * kv_width + kv_offset..][..head_dim];
                    for (o, v) in out.iter_mut().zip(v) {
                        *o += p * v;
                    }
                }
            }
            if let Some(step) = capture.as_deref_mut() {
                step.attention_entropy.push(entropy / heads as f32);
            }
        }
        self.attn_output
            .forward_into(&buf.attended, &mut buf.projected)?;
        add_into(x, &buf.projected);

        rms_norm(x, &self.ffn_norm, config.rms_eps, &mut buf.normed);
        self.ffn_gate_up
            .forward_into(&buf.normed, &mut buf.gate_up)?;
        let hidden = self.ffn_gate_up.rows() / 2;
        for (gate_up, gated) in buf
            .gate_up
            .chunks_exact(2 * hidden)
            .zip(buf.gated.chunks_exact_mut(hidden))
        {
            let (gate, up) = gate_up.split_at(hidden);
            for ((g, u), out) in gate.iter().zip(up).zip(gated.iter_mut()) {
                *out = g / (1.0 + (-g).exp()) * u;
            }
            // SwiGLU's sparsity is measured on the gated activations that enter `ffn_down`.
            if let Some(step) = capture.as_deref_mut() {
                step.mlp_sparsity.push(capture::mlp_sparsity(gated));
            }
        }
        self.ffn_down.forward_into(&buf.gated, &mut buf.projected)?;
        add_into(x, &buf.projected);
        Ok(())
    }

    fn truncate_cache(&mut self, positions: usize, kv_width: usize) {
        self.keys.truncate(positions * kv_width);
        self.values.truncate(positions * kv_width);
    }
}

fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let width = weight.len();
    for (x, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let mean_square = x.iter().map(|v| v * v).sum::<f32>() / width as f32;
        let scale = 1.0 / (mean_square + eps).sqrt();
        for ((o, v), w) in out.iter_mut().zip(x).zip(weight) {
            *o = v * scale * w;
        }
    }
}

/// Softmax in place; returns the distribution's entropy in nats. With `p = e^(s - max) / Z`,
/// `-sum(p ln p) = ln Z - sum(p (s - max))`: one logarithm per head instead of one per key.
fn softmax_entropy(values: &mut [f32]) -> f32 {
    let max = values.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let (mut sum, mut weighted) = (0.0_f32, 0.0_f32);
    for v in values.iter_mut() {
        let shifted = *v - max;
        *v = shifted.exp();
        sum += *v;
        weighted += *v * shifted;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
    (sum.ln() - weighted / sum).max(0.0)
}

fn add_into(x: &mut [f32], delta: &[f32]) {
    for (x, d) in x.iter_mut().zip(delta) {
        *x += d;
    }
}

/// `cos` and `sin` of every position's angle for every rotated pair, `[context, rope_dim / 2]`.
fn rope_tables(config: &Config) -> (Vec<f32>, Vec<f32>) {
    let half = config.rope_dim / 2;
    let inverse: Vec<f32> = (0..half)
        .map(|i| {
            1.0 / config
                .rope_theta
                .powf(2.0 * i as f32 / config.rope_dim as f32)
        })
        .collect();
    let angles = (0..config.context_length).flat_map(|p| inverse.iter().map(move |f| p as f32 * f));
    angles.map(|a| (a.cos(), a.sin())).unzip()
}

impl LanguageModel for QuantizedLlama {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn forward(&mut self, tokens: &[u32]) -> Result<Step> {
        if tokens.is_empty() {
            return Err(LlmError::EmptyPrompt);
        }
        let context = self.config.context_length;
        if self.position == 0 && tokens.len() > context {
            return Err(LlmError::PromptTooLong {
                tokens: tokens.len(),
                context,
            });
        }
        if self.position + tokens.len() > context {
            return Err(LlmError::ContextFull(context));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.info.vocab_size) {
            return Err(LlmError::Tokenizer(format!(
                "token id {bad} is outside the model's vocabulary of {}",
                self.info.vocab_size
            )));
        }
        let result = in_pool(|| self.forward_inner(tokens));
        if result.is_err() {
            // A step that failed half way leaves some caches a position ahead: roll back.
            let kv_width = self.config.n_kv_heads * self.config.head_dim;
            for block in &mut self.blocks {
                block.truncate_cache(self.position, kv_width);
            }
        }
        Ok(result?)
    }

    fn position(&self) -> usize {
        self.position
    }

    fn reset(&mut self) {
        self.position = 0;
        for block in &mut self.blocks {
            block.keys.clear();
            block.values.clear();
        }
    }

    fn set_capture(&mut self, on: bool) {
        self.capture = on;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_from_the_softmax_equals_the_direct_sum() {
        let scores = [0.3_f32, -1.2, 2.5, 0.0, 2.4, -30.0];
        let mut probs = scores;
        let entropy = softmax_entropy(&mut probs);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((entropy - capture::entropy(&probs)).abs() < 1e-5);
        let mut single = [4.0_f32];
        assert_eq!(softmax_entropy(&mut single), 0.0);
    }
}
