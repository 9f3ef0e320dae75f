//! Llama-style models from Hugging Face safetensors folders, one config and its few differences
//! on the shared decoder: Llama 2/3.x (llama3 RoPE scaling), Mistral, Qwen2/2.5 (q/k/v biases),
//! Qwen3 (per-head q/k RMSNorm, explicit `head_dim`), Phi-3/3.5 (fused `qkv_proj` and
//! `gate_up_proj`, partial rotary, LongRoPE) and Gemma 3 text (`(1 + w)` RMSNorms on both sides
//! of each branch, q/k norms, scaled embeddings, GeGLU, `query_pre_attn_scalar`, sliding-window
//! layers with their own RoPE base). Runs in f32 on the CPU; bf16/f16 checkpoints are upcast
//! when loaded.
//!
//! This file reads `config.json` into one [`Config`] and names the tensors; [`build`] assembles
//! any of these networks from a [`Weights`] source, so the GGUF path (`gguf.rs`) is the same
//! code under GGUF's names ([`Names`]) and a [`Config`] made from GGUF metadata.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::checkpoint::{Checkpoint, corrupt, read_config};
use super::decoder::{Attention, Block, Decoder, Mlp, Model, Norm, Positions, Weights};
use super::ops::{Activation, Heads, Rope, RopeLayout};
use super::qlinear::Linear;
use crate::llm::error::{LlmError, Result};
use crate::llm::model::ModelInfo;

/// `model_type` values this file loads.
pub const MODEL_TYPES: &[&str] = &["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3_text"];

/// The llama-style families, by what sets them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama, Mistral, Qwen2 (biases come with the checkpoint).
    Llama,
    /// Per-head q/k RMSNorm.
    Qwen3,
    /// Fused QKV and gate/up products.
    Phi3,
    /// Sandwich norms, `(1 + w)` RMSNorm, q/k norms, scaled embeddings.
    Gemma3,
}

impl Family {
    /// The family of a `model_type` or GGUF architecture.
    pub fn of(model_type: &str) -> Self {
        match model_type {
            "qwen3" => Self::Qwen3,
            "phi3" => Self::Phi3,
            "gemma3_text" | "gemma3" => Self::Gemma3,
            _ => Self::Llama,
        }
    }
}

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
    /// `"longrope"` (`"su"`): each frequency divided by its `short_factor` while a step stays
    /// within `original_max_position_embeddings`, by its `long_factor` past it; cos and sin
    /// times `attention_factor` (see [`Rope::long_rope`]).
    LongRope {
        short_factor: Vec<f32>,
        long_factor: Vec<f32>,
        original_max_position_embeddings: usize,
        attention_factor: f32,
    },
}

/// A validated llama-style `config.json` (or the same read from GGUF metadata).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `llama`, `mistral`, `qwen2`, `qwen3`, `phi3` or `gemma3_text`.
    pub model_type: String,
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    /// Values of each head RoPE turns (`head_dim * partial_rotary_factor`).
    pub rope_dim: usize,
    pub rms_norm_eps: f64,
    /// The base of the (global) RoPE.
    pub rope_theta: f32,
    pub rope_scaling: RopeScaling,
    /// Gemma 3: the base of the sliding-window layers' RoPE (`rope_local_base_freq`), never
    /// scaled.
    pub rope_local_theta: Option<f32>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub hidden_act: Activation,
    /// Factor on each query-key product: `head_dim^-1/2`, Gemma's `query_pre_attn_scalar^-1/2`.
    pub query_scale: f32,
    /// Per layer, its sliding window (`None`: the whole context).
    pub sliding_windows: Vec<Option<usize>>,
}

/// `config.json` as written: transformers 4.x puts `rope_theta` and `rope_scaling` at the top
/// level, 5.x writes them together as `rope_parameters` (Gemma 3: one per layer type).
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
    rope_scaling: Option<Value>,
    rope_parameters: Option<Value>,
    rope_local_base_freq: Option<f64>,
    partial_rotary_factor: Option<f64>,
    original_max_position_embeddings: Option<usize>,
    max_position_embeddings: usize,
    tie_word_embeddings: Option<bool>,
    hidden_act: Option<String>,
    hidden_activation: Option<String>,
    use_sliding_window: Option<bool>,
    sliding_window: Option<usize>,
    sliding_window_pattern: Option<usize>,
    layer_types: Option<Vec<String>>,
    query_pre_attn_scalar: Option<f64>,
    final_logit_softcapping: Option<f64>,
    attn_logit_softcapping: Option<f64>,
    use_bidirectional_attention: Option<bool>,
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
    short_factor: Option<Vec<f64>>,
    long_factor: Option<Vec<f64>>,
    attention_factor: Option<f64>,
    partial_rotary_factor: Option<f64>,
}

impl Config {
    /// Reads and validates `folder/config.json`.
    pub fn load(folder: &Path) -> Result<Self> {
        let path = folder.join("config.json");
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(value) = serde_json::from_str::<Value>(&text)
            && value.get("model_type").and_then(Value::as_str) == Some("gemma3")
        {
            return Err(corrupt(
                &path,
                "this is a multimodal Gemma 3 checkpoint (model_type \"gemma3\"); use the \
                 text-only checkpoint (model_type \"gemma3_text\", Gemma3ForCausalLM)",
            ));
        }
        let (path, value) = read_config(folder, MODEL_TYPES)?;
        let raw: RawConfig = serde_json::from_value(value).map_err(|e| corrupt(&path, e))?;
        Self::from_raw(raw).map_err(|message| corrupt(&path, message))
    }

    fn from_raw(raw: RawConfig) -> std::result::Result<Self, String> {
        let family = Family::of(&raw.model_type);
        let gemma = family == Family::Gemma3;
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
            None if gemma => 256,
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
            return Err(format!(
                "{} with use_sliding_window is not supported",
                raw.model_type
            ));
        }
        for (name, value) in [
            ("final_logit_softcapping", raw.final_logit_softcapping),
            ("attn_logit_softcapping", raw.attn_logit_softcapping),
        ] {
            if value.is_some() {
                return Err(format!("{name} is not supported"));
            }
        }
        if raw.use_bidirectional_attention == Some(true) {
            return Err("bidirectional attention is not supported (not a causal LM)".into());
        }
        let act_name = raw
            .hidden_activation
            .as_deref()
            .or(raw.hidden_act.as_deref())
            .unwrap_or(if gemma { "gelu_pytorch_tanh" } else { "silu" });
        let hidden_act = Activation::from_name(act_name)
            .ok_or_else(|| format!("unsupported hidden_act {act_name:?}"))?;

        // RoPE: transformers 5.x `rope_parameters` (theta inside; Gemma 3 one per layer type),
        // 4.x top-level theta + `rope_scaling` (+ Gemma's `rope_local_base_freq`).
        let sliding_windows =
            sliding_windows(&raw, gemma).map_err(|e| format!("{}: {e}", raw.model_type))?;
        let parse = |value: Option<Value>| -> std::result::Result<Option<RawRope>, String> {
            value
                .filter(|v| !v.is_null())
                .map(|v| serde_json::from_value(v).map_err(|e| format!("rope parameters: {e}")))
                .transpose()
        };
        let (global, local) = match raw.rope_parameters {
            Some(mut params) if gemma && params.get("full_attention").is_some() => {
                let local = params.get_mut("sliding_attention").map(Value::take);
                let global = params.get_mut("full_attention").map(Value::take);
                (parse(global)?, parse(local)?)
            }
            Some(params) => (parse(Some(params))?, None),
            None => (parse(raw.rope_scaling)?, None),
        };
        let theta = |rope: &Option<RawRope>, fallback: Option<f64>, default: f64| {
            let theta = rope
                .as_ref()
                .and_then(|r| r.rope_theta)
                .or(fallback)
                .unwrap_or(default);
            if theta.is_finite() && theta > 0.0 {
                Ok(theta as f32)
            } else {
                Err(format!("rope_theta ({theta}) must be positive"))
            }
        };
        let rope_theta = theta(
            &global,
            raw.rope_theta,
            if gemma { 1_000_000.0 } else { 10_000.0 },
        )?;
        let rope_local_theta = if gemma {
            if let Some(local) = &local
                && !matches!(local.kind(), "default")
            {
                return Err("Gemma 3's sliding-window layers take unscaled RoPE only".into());
            }
            Some(theta(&local, raw.rope_local_base_freq, 10_000.0)?)
        } else {
            None
        };
        let partial = global
            .as_ref()
            .and_then(|r| r.partial_rotary_factor)
            .or(raw.partial_rotary_factor)
            .unwrap_or(1.0);
        if !(partial > 0.0 && partial <= 1.0) {
            return Err(format!(
                "partial_rotary_factor ({partial}) must be in (0, 1]"
            ));
        }
        let rope_dim = (head_dim as f64 * partial) as usize;
        if rope_dim == 0 || !rope_dim.is_multiple_of(2) {
            return Err(format!(
                "RoPE turns {rope_dim} values of each head, which must be positive and even"
            ));
        }
        let rope_scaling = match global {
            None => RopeScaling::None,
            Some(rope) => rope.scaling(
                rope_dim,
                raw.max_position_embeddings,
                raw.original_max_position_embeddings,
            )?,
        };
        let rms_norm_eps = raw.rms_norm_eps.unwrap_or(1e-6);
        if !(rms_norm_eps.is_finite() && rms_norm_eps >= 0.0) {
            return Err(format!(
                "rms_norm_eps ({rms_norm_eps}) must be non-negative"
            ));
        }
        let query_scale = match (gemma, raw.query_pre_attn_scalar) {
            (true, scalar) => {
                let scalar = scalar.unwrap_or(256.0);
                if !(scalar.is_finite() && scalar > 0.0) {
                    return Err(format!("query_pre_attn_scalar ({scalar}) must be positive"));
                }
                scalar.powf(-0.5) as f32
            }
            (false, _) => (head_dim as f64).powf(-0.5) as f32,
        };
        Ok(Self {
            family,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            rope_dim,
            rms_norm_eps,
            rope_theta,
            rope_scaling,
            rope_local_theta,
            max_position_embeddings: raw.max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(gemma),
            hidden_act,
            query_scale,
            sliding_windows,
            model_type: raw.model_type,
        })
    }

    /// RoPE inverse frequencies, `rope_dim / 2` of them, with base `theta`, computed in f32 the
    /// way transformers does.
    fn base_frequencies(&self, theta: f32) -> Vec<f32> {
        let dim = self.rope_dim;
        (0..dim)
            .step_by(2)
            .map(|i| 1.0 / theta.powf(i as f32 / dim as f32))
            .collect()
    }

    /// The RoPEs of the network and, per layer, which one it uses: one for every family but
    /// Gemma 3, whose sliding-window layers have their own (index 1).
    pub(crate) fn ropes(&self, layout: RopeLayout) -> (Vec<Rope>, Vec<usize>) {
        let global = self.global_rope(layout);
        match self.rope_local_theta {
            Some(theta) => {
                let local = Rope::new(self.base_frequencies(theta), layout);
                let of_layer = self
                    .sliding_windows
                    .iter()
                    .map(|w| usize::from(w.is_some()))
                    .collect();
                (vec![global, local], of_layer)
            }
            None => (vec![global], vec![0; self.num_hidden_layers]),
        }
    }

    fn global_rope(&self, layout: RopeLayout) -> Rope {
        let base = self.base_frequencies(self.rope_theta);
        match &self.rope_scaling {
            RopeScaling::None => Rope::new(base, layout),
            RopeScaling::Linear { factor } => {
                Rope::new(base.into_iter().map(|f| f / factor).collect(), layout)
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let old_context = *original_max_position_embeddings as f32;
                let low_freq_wavelen = old_context / low_freq_factor;
                let high_freq_wavelen = old_context / high_freq_factor;
                let frequencies = base
                    .into_iter()
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
                    .collect();
                Rope::new(frequencies, layout)
            }
            RopeScaling::LongRope {
                short_factor,
                long_factor,
                original_max_position_embeddings,
                attention_factor,
            } => {
                // transformers: 1 / (factor * base^(2i/d)), the power in f32.
                let dim = self.rope_dim as f32;
                let scaled = |factors: &[f32]| -> Vec<f32> {
                    factors
                        .iter()
                        .enumerate()
                        .map(|(i, f)| 1.0 / (f * self.rope_theta.powf(2.0 * i as f32 / dim)))
                        .collect()
                };
                Rope::long_rope(
                    scaled(short_factor),
                    scaled(long_factor),
                    *original_max_position_embeddings,
                    *attention_factor,
                    layout,
                )
            }
        }
    }

    /// The network's shape; `norm_offset` is added to every RMSNorm weight (1 for Gemma's
    /// `(1 + w)` as Hugging Face stores it, 0 where the file has it added already: GGUF).
    pub(crate) fn shape(&self, norm_offset: f32) -> Shape {
        let gemma = self.family == Family::Gemma3;
        Shape {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            n_layers: self.num_hidden_layers,
            heads: Heads {
                heads: self.num_attention_heads,
                kv_heads: self.num_key_value_heads,
                head_dim: self.head_dim,
                scale: self.query_scale,
                window: None,
            },
            rms_norm_eps: self.rms_norm_eps,
            act: self.hidden_act,
            tied: self.tie_word_embeddings,
            qk_norm: matches!(self.family, Family::Qwen3 | Family::Gemma3),
            sandwich: gemma,
            fused: self.family == Family::Phi3,
            norm_offset: if gemma { norm_offset } else { 0.0 },
            // transformers keeps the scale as a tensor of the weights' dtype: f32 here.
            embed_scale: if gemma {
                (self.hidden_size as f32).sqrt()
            } else {
                1.0
            },
            windows: self.sliding_windows.clone(),
        }
    }
}

/// Per layer, its sliding window: Gemma 3 by `layer_types` (or every `sliding_window_pattern`th
/// layer global, transformers' default 6), Mistral and Phi-3 every layer when `sliding_window`
/// is set.
fn sliding_windows(
    raw: &RawConfig,
    gemma: bool,
) -> std::result::Result<Vec<Option<usize>>, String> {
    let n = raw.num_hidden_layers;
    let window = match raw.sliding_window {
        Some(0) => return Err("sliding_window must be positive".into()),
        window => window,
    };
    if !gemma {
        return Ok(match raw.model_type.as_str() {
            "mistral" | "phi3" => vec![window; n],
            _ => vec![None; n],
        });
    }
    let window = window.unwrap_or(4096);
    let sliding: Vec<bool> = match &raw.layer_types {
        Some(types) => {
            if types.len() != n {
                return Err(format!(
                    "layer_types lists {} layers, num_hidden_layers is {n}",
                    types.len()
                ));
            }
            types
                .iter()
                .map(|t| match t.as_str() {
                    "sliding_attention" => Ok(true),
                    "full_attention" => Ok(false),
                    other => Err(format!("unknown layer type {other:?}")),
                })
                .collect::<std::result::Result<_, _>>()?
        }
        None => {
            let pattern = raw.sliding_window_pattern.unwrap_or(6).max(1);
            (0..n).map(|i| !(i + 1).is_multiple_of(pattern)).collect()
        }
    };
    Ok(sliding.into_iter().map(|s| s.then_some(window)).collect())
}

impl RawRope {
    fn kind(&self) -> &str {
        self.rope_type
            .as_deref()
            .or(self.kind.as_deref())
            .unwrap_or("default")
    }

    /// The scaling these parameters describe, for RoPE over `rope_dim` values in a context of
    /// `max_positions`; `original` is the config's top-level `original_max_position_embeddings`
    /// (Phi-3).
    fn scaling(
        self,
        rope_dim: usize,
        max_positions: usize,
        original: Option<usize>,
    ) -> std::result::Result<RopeScaling, String> {
        let kind = self.kind().to_owned();
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
            "longrope" | "su" => {
                let original = self
                    .original_max_position_embeddings
                    .or(original)
                    .filter(|&n| n > 0)
                    .ok_or("longrope RoPE scaling needs original_max_position_embeddings")?;
                let factors = |name: &str, values: Option<Vec<f64>>| {
                    let values = values.ok_or_else(|| format!("longrope needs {name}"))?;
                    if values.len() != rope_dim / 2
                        || values.iter().any(|v| !(v.is_finite() && *v > 0.0))
                    {
                        return Err(format!(
                            "longrope {name} must hold {} positive numbers, not {}",
                            rope_dim / 2,
                            values.len()
                        ));
                    }
                    Ok(values.into_iter().map(|v| v as f32).collect::<Vec<_>>())
                };
                // transformers: factor = max / original unless given; the attention factor
                // sqrt(1 + ln(factor) / ln(original)) unless given, 1 when factor <= 1.
                let factor = self
                    .factor
                    .unwrap_or(max_positions as f64 / original as f64);
                let attention_factor = match self.attention_factor {
                    Some(a) => a,
                    None if factor <= 1.0 => 1.0,
                    None => (1.0 + factor.ln() / (original as f64).ln()).sqrt(),
                };
                Ok(RopeScaling::LongRope {
                    short_factor: factors("short_factor", self.short_factor)?,
                    long_factor: factors("long_factor", self.long_factor)?,
                    original_max_position_embeddings: original,
                    attention_factor: attention_factor as f32,
                })
            }
            other => Err(format!("unsupported RoPE scaling {other:?}")),
        }
    }
}

/// How a llama-style checkpoint names its tensors: layer prefixes without `.weight`, block
/// parts relative to the block's prefix. A family uses the parts its [`Shape`] calls for.
pub(crate) struct Names {
    pub embed_tokens: &'static str,
    pub norm: &'static str,
    pub lm_head: &'static str,
    pub layer: fn(usize) -> String,
    pub input_layernorm: &'static str,
    pub q_proj: &'static str,
    pub k_proj: &'static str,
    pub v_proj: &'static str,
    /// Q, K and V stacked (Phi-3).
    pub qkv_proj: &'static str,
    pub q_norm: &'static str,
    pub k_norm: &'static str,
    pub o_proj: &'static str,
    /// Gemma's norm of the attention output.
    pub post_attention_norm: &'static str,
    /// The norm before the MLP.
    pub mlp_norm: &'static str,
    /// Gemma's norm of the MLP output.
    pub post_mlp_norm: &'static str,
    pub gate_proj: &'static str,
    pub up_proj: &'static str,
    /// Gate and up stacked (Phi-3).
    pub gate_up_proj: &'static str,
    pub down_proj: &'static str,
}

/// Hugging Face's names.
pub(crate) const HF_NAMES: Names = Names {
    embed_tokens: "model.embed_tokens",
    norm: "model.norm",
    lm_head: "lm_head",
    layer: |i| format!("model.layers.{i}"),
    input_layernorm: "input_layernorm",
    q_proj: "self_attn.q_proj",
    k_proj: "self_attn.k_proj",
    v_proj: "self_attn.v_proj",
    qkv_proj: "self_attn.qkv_proj",
    q_norm: "self_attn.q_norm",
    k_norm: "self_attn.k_norm",
    o_proj: "self_attn.o_proj",
    post_attention_norm: "post_attention_layernorm",
    mlp_norm: "post_attention_layernorm",
    post_mlp_norm: "post_feedforward_layernorm",
    gate_proj: "mlp.gate_proj",
    up_proj: "mlp.up_proj",
    gate_up_proj: "mlp.gate_up_proj",
    down_proj: "mlp.down_proj",
};

/// Hugging Face's names for Gemma, whose `post_attention_layernorm` is on the attention output
/// and whose MLP norm is `pre_feedforward_layernorm`.
pub(crate) const HF_GEMMA_NAMES: Names = Names {
    mlp_norm: "pre_feedforward_layernorm",
    ..HF_NAMES
};

/// The shape of a llama-style network, whichever file describes it.
pub(crate) struct Shape {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub n_layers: usize,
    /// The heads of every layer (their `window` set per layer from `windows`).
    pub heads: Heads,
    pub rms_norm_eps: f64,
    pub act: Activation,
    /// The LM head is the token embedding.
    pub tied: bool,
    /// Per-head q/k RMSNorm (Qwen3, Gemma 3).
    pub qk_norm: bool,
    /// Norms on each branch's output too (Gemma).
    pub sandwich: bool,
    /// QKV and gate/up stored stacked (Phi-3).
    pub fused: bool,
    /// Added to every RMSNorm weight as it is loaded.
    pub norm_offset: f32,
    /// Factor on the token embeddings.
    pub embed_scale: f32,
    /// Per layer, its sliding window.
    pub windows: Vec<Option<usize>>,
}

/// RMSNorm `{prefix}.weight`, plus the shape's offset.
fn rms_norm(weights: &mut impl Weights, shape: &Shape, prefix: &str, width: usize) -> Result<Norm> {
    let mut weight = weights.vector(&format!("{prefix}.weight"), width)?;
    if shape.norm_offset != 0.0 {
        weight.iter_mut().for_each(|w| *w += shape.norm_offset);
    }
    Ok(Norm::Rms {
        weight,
        eps: shape.rms_norm_eps as f32,
    })
}

/// Loads a llama-style network from `weights`: RMSNorms, Q, K, V (biases if stored) stacked into
/// one product, gate and up stacked, no bias on the output projections; `ropes` and, per layer,
/// the index of its RoPE from [`Config::ropes`].
pub(crate) fn build(
    weights: &mut impl Weights,
    names: &Names,
    shape: &Shape,
    (ropes, layer_rope): (Vec<Rope>, Vec<usize>),
    info: ModelInfo,
) -> Result<Decoder> {
    let (vocab, h, i) = (shape.vocab_size, shape.hidden_size, shape.intermediate_size);
    let (q_size, kv_size) = (shape.heads.width(), shape.heads.kv_width());
    let head_dim = shape.heads.head_dim;
    if shape.windows.len() != shape.n_layers || layer_rope.len() != shape.n_layers {
        return Err(LlmError::Compute(format!(
            "{} layers but {} sliding windows and {} RoPE choices",
            shape.n_layers,
            shape.windows.len(),
            layer_rope.len()
        )));
    }
    let embed_tokens = weights.linear(names.embed_tokens, vocab, h)?;
    let lm_head = if shape.tied {
        None
    } else {
        Some(weights.linear(names.lm_head, vocab, h)?)
    };
    let mut blocks = Vec::with_capacity(shape.n_layers);
    for (layer, (&window, &rope)) in shape.windows.iter().zip(&layer_rope).enumerate() {
        let prefix = (names.layer)(layer);
        let name = |part: &str| format!("{prefix}.{part}");
        let attn_norm = rms_norm(weights, shape, &name(names.input_layernorm), h)?;
        let qkv = if shape.fused {
            weights.linear(&name(names.qkv_proj), q_size + 2 * kv_size, h)?
        } else {
            Linear::stack(vec![
                weights.linear(&name(names.q_proj), q_size, h)?,
                weights.linear(&name(names.k_proj), kv_size, h)?,
                weights.linear(&name(names.v_proj), kv_size, h)?,
            ])?
        };
        let qk_norm = if shape.qk_norm {
            Some((
                rms_norm(weights, shape, &name(names.q_norm), head_dim)?,
                rms_norm(weights, shape, &name(names.k_norm), head_dim)?,
            ))
        } else {
            None
        };
        let o_proj = weights.linear(&name(names.o_proj), h, q_size)?;
        let heads = Heads {
            window,
            ..shape.heads
        };
        let attn = Attention::with_options(qkv, o_proj, heads, qk_norm, rope)?;
        let post_attn_norm = if shape.sandwich {
            Some(rms_norm(
                weights,
                shape,
                &name(names.post_attention_norm),
                h,
            )?)
        } else {
            None
        };
        let mlp_norm = rms_norm(weights, shape, &name(names.mlp_norm), h)?;
        let down = weights.linear(&name(names.down_proj), h, i)?;
        let mlp = if shape.fused {
            Mlp::fused(
                weights.linear(&name(names.gate_up_proj), 2 * i, h)?,
                down,
                shape.act,
            )?
        } else {
            Mlp::gated(
                weights.linear(&name(names.gate_proj), i, h)?,
                weights.linear(&name(names.up_proj), i, h)?,
                down,
                shape.act,
            )?
        };
        let post_mlp_norm = if shape.sandwich {
            Some(rms_norm(weights, shape, &name(names.post_mlp_norm), h)?)
        } else {
            None
        };
        blocks.push(Block {
            attn_norm,
            attn,
            post_attn_norm,
            mlp_norm,
            mlp,
            post_mlp_norm,
        });
    }
    if let Some(bad) = blocks.iter().find(|b| b.attn.rope() >= ropes.len()) {
        return Err(LlmError::Compute(format!(
            "a layer uses RoPE {} of {}",
            bad.attn.rope(),
            ropes.len()
        )));
    }
    Ok(Decoder {
        info,
        embed_tokens,
        embed_scale: shape.embed_scale,
        positions: Positions::Rotary(ropes),
        blocks,
        norm: rms_norm(weights, shape, names.norm, h)?,
        lm_head,
    })
}

/// A llama-style causal LM (any family of this file) with its KV cache.
pub type Llama = Model<Config>;

impl Llama {
    /// Loads a Hugging Face folder: `config.json` and `model.safetensors` (or the shards listed
    /// in `model.safetensors.index.json`). The tokenizer is not read here.
    pub fn load(folder: &Path) -> Result<Self> {
        let config = Config::load(folder)?;
        let mut ckpt = Checkpoint::open(folder)?;
        let names = if config.family == Family::Gemma3 {
            &HF_GEMMA_NAMES
        } else {
            &HF_NAMES
        };
        let info = ModelInfo {
            architecture: config.model_type.clone(),
            n_layers: config.num_hidden_layers,
            width: config.hidden_size,
            vocab_size: config.vocab_size,
            context_length: config.max_position_embeddings,
            dtype: ckpt.stored_dtype(&format!("{}.weight", names.embed_tokens)),
        };
        let shape = config.shape(1.0);
        let ropes = config.ropes(RopeLayout::Halves);
        let decoder = build(&mut ckpt, names, &shape, ropes, info).map_err(|e| match e {
            LlmError::Compute(message) => corrupt(
                &folder.join("config.json"),
                format!("the config does not fit the checkpoint: {message}"),
            ),
            other => other,
        })?;
        Ok(Model::new(config, decoder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> std::result::Result<Config, String> {
        Config::from_raw(serde_json::from_value(value).map_err(|e| e.to_string())?)
    }

    #[test]
    fn a_transformers_4_gemma3_config_reads_its_pattern_and_local_base() {
        let config = parse(serde_json::json!({
            "model_type": "gemma3_text", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 12, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 4, "max_position_embeddings": 64,
            "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0},
            "sliding_window": 512, "sliding_window_pattern": 6, "query_pre_attn_scalar": 4,
            "final_logit_softcapping": null, "attn_logit_softcapping": null
        }))
        .unwrap();
        let global: Vec<usize> = (0..12)
            .filter(|&i| config.sliding_windows[i].is_none())
            .collect();
        assert_eq!(global, [5, 11]);
        assert_eq!(config.sliding_windows[0], Some(512));
        assert_eq!(config.rope_local_theta, Some(10_000.0));
        assert_eq!(config.rope_scaling, RopeScaling::Linear { factor: 8.0 });
        assert!(config.tie_word_embeddings);
        assert_eq!(config.hidden_act, Activation::GeluTanh);
        let (ropes, of_layer) = config.ropes(RopeLayout::Halves);
        assert_eq!((ropes.len(), of_layer[5], of_layer[4]), (2, 0, 1));
    }

    #[test]
    fn a_phi3_su_config_gets_transformers_attention_factor() {
        let config = parse(serde_json::json!({
            "model_type": "phi3", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
            "rope_theta": 10000.0, "sliding_window": 262144,
            "rope_scaling": {"type": "su", "short_factor": [1.0, 1.0], "long_factor": [2.0, 3.0]}
        }))
        .unwrap();
        let want = (1.0 + 32f64.ln() / 4096f64.ln()).sqrt() as f32;
        match config.rope_scaling {
            RopeScaling::LongRope {
                attention_factor,
                original_max_position_embeddings,
                ref long_factor,
                ..
            } => {
                assert_eq!(attention_factor, want);
                assert_eq!(original_max_position_embeddings, 4096);
                assert_eq!(long_factor, &[2.0, 3.0]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(config.sliding_windows, [Some(262_144)]);
    }

    #[test]
    fn configs_the_decoder_cannot_run_are_refused_by_name() {
        let base = serde_json::json!({
            "model_type": "qwen3", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "max_position_embeddings": 64
        });
        let with = |key: &str, value: Value| {
            let mut config = base.clone();
            config[key] = value;
            parse(config).unwrap_err()
        };
        assert!(with("use_sliding_window", true.into()).contains("use_sliding_window"));
        assert!(with("final_logit_softcapping", 30.0.into()).contains("softcapping"));
        assert!(with("sliding_window", 0.into()).contains("sliding_window"));
        let mut gemma = base.clone();
        gemma["model_type"] = "gemma3_text".into();
        gemma["layer_types"] = serde_json::json!(["full_attention"]);
        assert!(parse(gemma).unwrap_err().contains("layer_types"));
        let mut phi = base.clone();
        phi["model_type"] = "phi3".into();
        phi["rope_scaling"] = serde_json::json!({"type": "longrope", "short_factor": [1.0],
            "long_factor": [1.0, 2.0], "original_max_position_embeddings": 8});
        assert!(parse(phi).unwrap_err().contains("short_factor"));
    }
}
