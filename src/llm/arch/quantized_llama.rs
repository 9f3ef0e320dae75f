//! Llama-family models from GGUF with quantized weights (the embedded default, SmolLM2).
//!
//! The same network as `llama.rs` ([`llama::build`]) under GGUF's tensor names
//! (`blk.{i}.attn_q.weight`, ...), with the weights kept quantized as stored: the linear layers
//! are [`QLinear`]s, Q, K, V and gate, up stacked so each block makes four parallel passes over
//! its weights. GGUF stores Q and K permuted for the interleaved (adjacent-pair) RoPE layout,
//! so RoPE here rotates adjacent pairs.

use std::io::{Read, Seek};

use candle_core::Device;
use candle_core::quantized::{QTensor, gguf_file};

use super::decoder::{Model, Weights};
use super::llama::{self, Names, Shape};
use super::ops::{Activation, Heads, Rope, RopeLayout};
use super::qlinear::{Linear, QLinear};
use crate::llm::error::{LlmError, Result};
use crate::llm::model::ModelInfo;

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
    /// The MLP's width, when the metadata gives it (else the checkpoint's `ffn_gate` says).
    pub feed_forward_length: Option<usize>,
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
            feed_forward_length: int("feed_forward_length").ok(),
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

/// GGUF's names for a llama network.
const GGUF_NAMES: Names = Names {
    embed_tokens: "token_embd",
    norm: "output_norm",
    lm_head: "output",
    layer: |i| format!("blk.{i}"),
    input_layernorm: "attn_norm",
    q_proj: "attn_q",
    k_proj: "attn_k",
    v_proj: "attn_v",
    o_proj: "attn_output",
    post_attention_layernorm: "ffn_norm",
    gate_proj: "ffn_gate",
    up_proj: "ffn_up",
    down_proj: "ffn_down",
};

/// The tensors of a GGUF file, read as the model is built.
struct Gguf<'a, R> {
    content: &'a gguf_file::Content,
    reader: &'a mut R,
}

impl<R: Read + Seek> Gguf<'_, R> {
    fn tensor(&mut self, name: &str) -> Result<QTensor> {
        if !self.content.tensor_infos.contains_key(name) {
            return Err(LlmError::MissingTensor(name.to_owned()));
        }
        Ok(self.content.tensor(self.reader, name, &Device::Cpu)?)
    }
}

impl<R: Read + Seek> Weights for Gguf<'_, R> {
    fn linear(&mut self, prefix: &str, rows: usize, cols: usize) -> Result<Linear> {
        let name = format!("{prefix}.weight");
        let weight = QLinear::new(self.tensor(&name)?)?;
        if (weight.rows(), weight.cols()) != (rows, cols) {
            return Err(LlmError::Compute(format!(
                "{name} is [{}, {}], expected [{rows}, {cols}]",
                weight.rows(),
                weight.cols()
            )));
        }
        let bias_name = format!("{prefix}.bias");
        let bias = if self.content.tensor_infos.contains_key(&bias_name) {
            Some(self.vector(&bias_name, rows)?)
        } else {
            None
        };
        Ok(Linear::new(weight, bias)?)
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let values = self
            .tensor(name)?
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
    }
}

/// A llama-family causal LM from GGUF, with its KV cache.
pub type QuantizedLlama = Model<Config>;

impl QuantizedLlama {
    pub fn from_gguf<R: Read + Seek>(content: &gguf_file::Content, reader: &mut R) -> Result<Self> {
        let arch = metadata_str(content, "general.architecture").unwrap_or_default();
        if arch != "llama" {
            return Err(LlmError::UnknownArchitecture(arch));
        }
        let config = Config::from_gguf(content).map_err(LlmError::Compute)?;
        let shape_of = |name: &str| -> Result<(usize, usize)> {
            let info = content
                .tensor_infos
                .get(name)
                .ok_or_else(|| LlmError::MissingTensor(name.to_owned()))?;
            Ok(info.shape.dims2()?)
        };
        let (vocab_size, _) = shape_of("token_embd.weight")?;
        let shape = Shape {
            vocab_size,
            hidden_size: config.width,
            intermediate_size: match config.feed_forward_length {
                Some(width) => width,
                None => shape_of("blk.0.ffn_gate.weight")?.0,
            },
            n_layers: config.n_layers,
            heads: Heads {
                heads: config.n_heads,
                kv_heads: config.n_kv_heads,
                head_dim: config.head_dim,
                scale: 1.0 / (config.head_dim as f32).sqrt(),
            },
            rms_norm_eps: f64::from(config.rms_eps),
            act: Activation::Silu,
            tied: !content.tensor_infos.contains_key("output.weight"),
        };
        let dtype = content
            .tensor_infos
            .get("blk.0.attn_q.weight")
            .map(|t| format!("{:?}", t.ggml_dtype))
            .unwrap_or_default();
        let info = ModelInfo {
            architecture: "llama".to_owned(),
            n_layers: config.n_layers,
            width: config.width,
            vocab_size,
            context_length: config.context_length,
            dtype,
        };
        let mut weights = Gguf { content, reader };
        let decoder = llama::build(&mut weights, &GGUF_NAMES, &shape, rope(&config), info)?;
        Ok(Model::new(config, decoder))
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
