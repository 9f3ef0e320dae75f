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

use super::ops::{self, Activation, Heads, KvCache, Rope, RopeLayout};
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
    /// Keys with RoPE applied, and values.
    cache: KvCache,
}

pub struct QuantizedLlama {
    config: Config,
    info: ModelInfo,
    token_embd: QTensor,
    blocks: Vec<Block>,
    output_norm: Vec<f32>,
    output: QLinear,
    rope: Rope,
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
                cache: KvCache::default(),
            });
        }
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
            rope: rope(&config),
            config,
            info,
            token_embd,
            blocks,
            output_norm,
            output,
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
        let mut buffers =
            Buffers::new(&self.config, &self.blocks, &self.rope, self.position, n_new);
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let capture = self.capture.then_some(&mut step);
            block.forward(&mut x, &self.config, &self.rope, &mut buffers, capture)?;
            // The last block's output is replaced by the final-norm output below, the
            // convention of `transformers`' hidden states.
            if self.capture && i + 1 < n_layers {
                step.hidden.extend_from_slice(&x);
            }
        }
        let mut normed = vec![0.0_f32; n_new * width];
        ops::rms_norm(&x, &self.output_norm, self.config.rms_eps, &mut normed);
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
    /// RoPE angles of the new positions, `[n_new, rope_dim / 2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Buffers {
    fn new(config: &Config, blocks: &[Block], rope: &Rope, position: usize, n_new: usize) -> Self {
        let width = config.width;
        let (qkv, gate_up) = blocks
            .first()
            .map_or((0, 0), |b| (b.attn_qkv.rows(), b.ffn_gate_up.rows()));
        let pairs = rope.pairs();
        let (mut cos, mut sin) = (vec![0.0; n_new * pairs], vec![0.0; n_new * pairs]);
        for (i, (cos, sin)) in cos
            .chunks_exact_mut(pairs)
            .zip(sin.chunks_exact_mut(pairs))
            .enumerate()
        {
            rope.angles(position + i, cos, sin);
        }
        Self {
            normed: vec![0.0; n_new * width],
            qkv: vec![0.0; n_new * qkv],
            attended: vec![0.0; n_new * width],
            projected: vec![0.0; n_new * width],
            gate_up: vec![0.0; n_new * gate_up],
            gated: vec![0.0; n_new * gate_up / 2],
            probs: Vec::new(),
            cos,
            sin,
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
        let heads = Heads {
            heads: config.n_heads,
            kv_heads: config.n_kv_heads,
            head_dim: config.head_dim,
            scale: 1.0 / (config.head_dim as f32).sqrt(),
        };
        let (width, kv_width) = (heads.width(), heads.kv_width());
        let qkv_width = width + 2 * kv_width;
        let n_new = x.len() / width;

        ops::rms_norm(x, &self.attn_norm, config.rms_eps, &mut buf.normed);
        self.attn_qkv.forward_into(&buf.normed, &mut buf.qkv)?;
        let pairs = rope.pairs();
        for (i, qkv) in buf.qkv.chunks_exact_mut(qkv_width).enumerate() {
            let (cos, sin) = (
                &buf.cos[i * pairs..][..pairs],
                &buf.sin[i * pairs..][..pairs],
            );
            let (q, kv) = qkv.split_at_mut(width);
            let (k, v) = kv.split_at_mut(kv_width);
            rope.rotate(q, config.head_dim, cos, sin);
            rope.rotate(k, config.head_dim, cos, sin);
            self.cache.push(k, v);
        }
        let entropy = capture.as_deref_mut().map(|step| {
            let first = step.attention_entropy.len();
            step.attention_entropy.resize(first + n_new, 0.0);
            &mut step.attention_entropy[first..]
        });
        ops::attend(
            &heads,
            &self.cache,
            &buf.qkv,
            qkv_width,
            &mut buf.probs,
            &mut buf.attended,
            entropy,
        );
        self.attn_output
            .forward_into(&buf.attended, &mut buf.projected)?;
        ops::add_into(x, &buf.projected);

        ops::rms_norm(x, &self.ffn_norm, config.rms_eps, &mut buf.normed);
        self.ffn_gate_up
            .forward_into(&buf.normed, &mut buf.gate_up)?;
        let hidden = self.ffn_gate_up.rows() / 2;
        for (gate_up, gated) in buf
            .gate_up
            .chunks_exact(2 * hidden)
            .zip(buf.gated.chunks_exact_mut(hidden))
        {
            let (gate, up) = gate_up.split_at(hidden);
            Activation::Silu.gate(gate, up, gated);
            // SwiGLU's sparsity is measured on the gated activations that enter `ffn_down`.
            if let Some(step) = capture.as_deref_mut() {
                step.mlp_sparsity.push(capture::mlp_sparsity(gated));
            }
        }
        self.ffn_down.forward_into(&buf.gated, &mut buf.projected)?;
        ops::add_into(x, &buf.projected);
        Ok(())
    }
}

/// GGUF's RoPE: rotates adjacent pairs of the first `rope_dim` values of each head.
fn rope(config: &Config) -> Rope {
    let inverse = (0..config.rope_dim / 2)
        .map(|i| {
            1.0 / config
                .rope_theta
                .powf(2.0 * i as f32 / config.rope_dim as f32)
        })
        .collect();
    Rope::new(inverse, RopeLayout::Interleaved)
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
                block.cache.truncate(self.position, kv_width);
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
            block.cache.clear();
        }
    }

    fn set_capture(&mut self, on: bool) {
        self.capture = on;
    }
}
