//! Llama-family models from Hugging Face safetensors folders: Llama, SmolLM2, TinyLlama, and
//! Qwen2 (the same network with q/k/v biases). Runs in f32 on the CPU; bf16/f16 checkpoints are
//! upcast when loaded.
//!
//! The network is the shared [`decoder`](super::decoder) with RMSNorm, RoPE and a SwiGLU MLP;
//! this file reads `config.json` and names the tensors. [`build`] assembles any llama-style
//! checkpoint, so the GGUF path (`quantized_llama.rs`) is the same network under GGUF's names.

use std::path::Path;

use serde::Deserialize;

use super::checkpoint::{Checkpoint, corrupt, read_config};
use super::decoder::{Attention, Block, Decoder, Mlp, Model, Positions, Weights};
use super::ops::{Activation, Heads, Rope, RopeLayout};
use super::qlinear::Linear;
use crate::llm::error::Result;
use crate::llm::model::ModelInfo;

/// `model_type` values this file loads.
const MODEL_TYPES: &[&str] = &["llama", "qwen2"];

/// How positions are encoded: transformers' non-interleaved ("rotate_half") RoPE, optionally
/// with rescaled frequencies.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE (`rope_type` absent or `"default"`).
    None,
    /// `"linear"`: every frequency divided by `factor`.
    Linear { factor: f32 },
    /// `"llama3"`: low frequencies divided by `factor`, high ones kept, a smooth blend between.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: usize,
    },
}

/// A validated llama-family `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `llama` or `qwen2`.
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f32,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub hidden_act: Activation,
}

/// `config.json` as written: transformers 4.x puts `rope_theta` and `rope_scaling` at the top
/// level, 5.x writes them together as `rope_parameters`.
#[derive(Deserialize)]
struct RawConfig {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<RawRope>,
    rope_parameters: Option<RawRope>,
    max_position_embeddings: usize,
    tie_word_embeddings: Option<bool>,
    hidden_act: Option<String>,
    use_sliding_window: Option<bool>,
}

#[derive(Deserialize)]
struct RawRope {
    rope_type: Option<String>,
    /// The older spelling of `rope_type`; some configs carry both.
    #[serde(rename = "type")]
    kind: Option<String>,
    rope_theta: Option<f64>,
    factor: Option<f64>,
    low_freq_factor: Option<f64>,
    high_freq_factor: Option<f64>,
    original_max_position_embeddings: Option<usize>,
}

impl Config {
    /// Reads and validates `folder/config.json`.
    pub fn load(folder: &Path) -> Result<Self> {
        let (path, value) = read_config(folder, MODEL_TYPES)?;
        let raw: RawConfig = serde_json::from_value(value).map_err(|e| corrupt(&path, e))?;
        Self::from_raw(raw).map_err(|message| corrupt(&path, message))
    }

    fn from_raw(raw: RawConfig) -> std::result::Result<Self, String> {
        let positive = [
            ("vocab_size", raw.vocab_size),
            ("hidden_size", raw.hidden_size),
            ("intermediate_size", raw.intermediate_size),
            ("num_hidden_layers", raw.num_hidden_layers),
            ("num_attention_heads", raw.num_attention_heads),
            ("max_position_embeddings", raw.max_position_embeddings),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        let heads = raw.num_attention_heads;
        let kv_heads = raw.num_key_value_heads.unwrap_or(heads);
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(format!(
                "num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})"
            ));
        }
        let head_dim = match raw.head_dim {
            Some(d) => d,
            None if raw.hidden_size.is_multiple_of(heads) => raw.hidden_size / heads,
            None => {
                return Err(format!(
                    "hidden_size ({}) is not a multiple of num_attention_heads ({heads})",
                    raw.hidden_size
                ));
            }
        };
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim ({head_dim}) must be positive and even for RoPE"
            ));
        }
        if raw.use_sliding_window == Some(true) {
            return Err("sliding-window attention is not supported".into());
        }
        let act_name = raw.hidden_act.as_deref().unwrap_or("silu");
        let hidden_act = Activation::from_name(act_name)
            .ok_or_else(|| format!("unsupported hidden_act {act_name:?}"))?;

        // transformers 5.x: `rope_parameters` (theta inside); 4.x: top-level theta + `rope_scaling`.
        let (rope_theta, rope) = match raw.rope_parameters {
            Some(params) => (params.rope_theta.or(raw.rope_theta), Some(params)),
            None => (raw.rope_theta, raw.rope_scaling),
        };
        let rope_theta = rope_theta.unwrap_or(10_000.0);
        if !(rope_theta.is_finite() && rope_theta > 0.0) {
            return Err(format!("rope_theta ({rope_theta}) must be positive"));
        }
        let rope_scaling = match rope {
            None => RopeScaling::None,
            Some(rope) => rope.scaling()?,
        };
        let rms_norm_eps = raw.rms_norm_eps.unwrap_or(1e-6);
        if !(rms_norm_eps.is_finite() && rms_norm_eps >= 0.0) {
            return Err(format!(
                "rms_norm_eps ({rms_norm_eps}) must be non-negative"
            ));
        }
        Ok(Self {
            model_type: raw.model_type,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            rms_norm_eps,
            rope_theta: rope_theta as f32,
            rope_scaling,
            max_position_embeddings: raw.max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            hidden_act,
        })
    }

    /// RoPE inverse frequencies, `head_dim / 2` of them, computed in f32 the way transformers
    /// does.
    fn inverse_frequencies(&self) -> Vec<f32> {
        let dim = self.head_dim;
        let base: Vec<f32> = (0..dim)
            .step_by(2)
            .map(|i| 1.0 / self.rope_theta.powf(i as f32 / dim as f32))
            .collect();
        match self.rope_scaling {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.into_iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let old_context = original_max_position_embeddings as f32;
                let low_freq_wavelen = old_context / low_freq_factor;
                let high_freq_wavelen = old_context / high_freq_factor;
                base.into_iter()
                    .map(|freq| {
                        let wavelen = 2.0 * std::f32::consts::PI / freq;
                        if wavelen < high_freq_wavelen {
                            freq
                        } else if wavelen > low_freq_wavelen {
                            freq / factor
                        } else {
                            let smooth = (old_context / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * freq / factor + smooth * freq
                        }
                    })
                    .collect()
            }
        }
    }
}

impl RawRope {
    fn scaling(self) -> std::result::Result<RopeScaling, String> {
        let kind = self
            .rope_type
            .or(self.kind)
            .unwrap_or_else(|| "default".into());
        let number = |name: &str, value: Option<f64>| {
            value
                .filter(|v| v.is_finite() && *v > 0.0)
                .map(|v| v as f32)
                .ok_or_else(|| format!("{kind} RoPE scaling needs a positive {name}"))
        };
        match kind.as_str() {
            "default" => Ok(RopeScaling::None),
            "linear" => Ok(RopeScaling::Linear {
                factor: number("factor", self.factor)?,
            }),
            "llama3" => {
                let low_freq_factor = number("low_freq_factor", self.low_freq_factor)?;
                let high_freq_factor = number("high_freq_factor", self.high_freq_factor)?;
                if high_freq_factor <= low_freq_factor {
                    return Err(
                        "llama3 RoPE scaling needs high_freq_factor > low_freq_factor".into(),
                    );
                }
                Ok(RopeScaling::Llama3 {
                    factor: number("factor", self.factor)?,
                    low_freq_factor,
                    high_freq_factor,
                    original_max_position_embeddings: self
                        .original_max_position_embeddings
                        .filter(|&n| n > 0)
                        .ok_or("llama3 RoPE scaling needs original_max_position_embeddings")?,
                })
            }
            other => Err(format!("unsupported RoPE scaling {other:?}")),
        }
    }
}

/// How a llama-style checkpoint names its tensors: layer prefixes without `.weight`, block
/// parts relative to the block's prefix.
pub(crate) struct Names {
    pub embed_tokens: &'static str,
    pub norm: &'static str,
    pub lm_head: &'static str,
    pub layer: fn(usize) -> String,
    pub input_layernorm: &'static str,
    pub q_proj: &'static str,
    pub k_proj: &'static str,
    pub v_proj: &'static str,
    pub o_proj: &'static str,
    pub post_attention_layernorm: &'static str,
    pub gate_proj: &'static str,
    pub up_proj: &'static str,
    pub down_proj: &'static str,
}

/// Hugging Face's names.
const HF_NAMES: Names = Names {
    embed_tokens: "model.embed_tokens",
    norm: "model.norm",
    lm_head: "lm_head",
    layer: |i| format!("model.layers.{i}"),
    input_layernorm: "input_layernorm",
    q_proj: "self_attn.q_proj",
    k_proj: "self_attn.k_proj",
    v_proj: "self_attn.v_proj",
    o_proj: "self_attn.o_proj",
    post_attention_layernorm: "post_attention_layernorm",
    gate_proj: "mlp.gate_proj",
    up_proj: "mlp.up_proj",
    down_proj: "mlp.down_proj",
};

/// The shape of a llama-style network, whichever file describes it.
pub(crate) struct Shape {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub n_layers: usize,
    pub heads: Heads,
    pub rms_norm_eps: f64,
    pub act: Activation,
    /// The LM head is the token embedding.
    pub tied: bool,
}

/// Loads a llama-style network from `weights`: RMSNorm, Q, K, V (biases if stored) stacked into
/// one product, gate and up stacked, no bias on the output projections.
pub(crate) fn build(
    weights: &mut impl Weights,
    names: &Names,
    shape: &Shape,
    rope: Rope,
    info: ModelInfo,
) -> Result<Decoder> {
    let (vocab, h, i) = (shape.vocab_size, shape.hidden_size, shape.intermediate_size);
    let (q_size, kv_size) = (shape.heads.width(), shape.heads.kv_width());
    let eps = shape.rms_norm_eps;
    let embed_tokens = weights.linear(names.embed_tokens, vocab, h)?;
    let lm_head = if shape.tied {
        None
    } else {
        Some(weights.linear(names.lm_head, vocab, h)?)
    };
    let mut blocks = Vec::with_capacity(shape.n_layers);
    for layer in 0..shape.n_layers {
        let prefix = (names.layer)(layer);
        let name = |part: &str| format!("{prefix}.{part}");
        let attn_norm = weights.rms_norm(&name(names.input_layernorm), h, eps)?;
        let qkv = Linear::stack(vec![
            weights.linear(&name(names.q_proj), q_size, h)?,
            weights.linear(&name(names.k_proj), kv_size, h)?,
            weights.linear(&name(names.v_proj), kv_size, h)?,
        ])?;
        let o_proj = weights.linear(&name(names.o_proj), h, q_size)?;
        let attn = Attention::new(qkv, o_proj, shape.heads)?;
        let mlp_norm = weights.rms_norm(&name(names.post_attention_layernorm), h, eps)?;
        let mlp = Mlp::gated(
            weights.linear(&name(names.gate_proj), i, h)?,
            weights.linear(&name(names.up_proj), i, h)?,
            weights.linear(&name(names.down_proj), h, i)?,
            shape.act,
        )?;
        blocks.push(Block {
            attn_norm,
            attn,
            mlp_norm,
            mlp,
        });
    }
    Ok(Decoder {
        info,
        embed_tokens,
        positions: Positions::Rotary(rope),
        blocks,
        norm: weights.rms_norm(names.norm, h, eps)?,
        lm_head,
    })
}

/// A llama-family causal LM from safetensors, with its KV cache.
pub type Llama = Model<Config>;

impl Llama {
    /// Loads a Hugging Face folder: `config.json` and `model.safetensors` (or the shards listed
    /// in `model.safetensors.index.json`). The tokenizer is not read here.
    pub fn load(folder: &Path) -> Result<Self> {
        let config = Config::load(folder)?;
        let mut ckpt = Checkpoint::open(folder)?;
        let shape = Shape {
            vocab_size: config.vocab_size,
            hidden_size: config.hidden_size,
            intermediate_size: config.intermediate_size,
            n_layers: config.num_hidden_layers,
            heads: Heads {
                heads: config.num_attention_heads,
                kv_heads: config.num_key_value_heads,
                head_dim: config.head_dim,
                scale: (config.head_dim as f32).powf(-0.5),
            },
            rms_norm_eps: config.rms_norm_eps,
            act: config.hidden_act,
            tied: config.tie_word_embeddings,
        };
        let info = ModelInfo {
            architecture: config.model_type.clone(),
            n_layers: config.num_hidden_layers,
            width: config.hidden_size,
            vocab_size: config.vocab_size,
            context_length: config.max_position_embeddings,
            dtype: ckpt.stored_dtype(&format!("{}.weight", HF_NAMES.embed_tokens)),
        };
        let rope = Rope::new(config.inverse_frequencies(), RopeLayout::Halves);
        let decoder = build(&mut ckpt, &HF_NAMES, &shape, rope, info)?;
        Ok(Model::new(config, decoder))
    }
}
