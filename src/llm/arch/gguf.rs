//! Llama-style models from GGUF files, weights kept quantized as stored (the embedded default,
//! SmolLM2, is a Q4_1 llama): `general.architecture` `llama` (also Mistral, which llama.cpp
//! converts as llama), `qwen2`, `qwen3`, `phi3` and `gemma3`.
//!
//! The metadata (`{arch}.block_count`, `.attention.key_length`, `.rope.freq_base`, ...) becomes
//! the same [`llama::Config`] a `config.json` gives, and [`llama::build`] loads the network under
//! GGUF's tensor names (`blk.{i}.attn_q.weight`, ...): the linear layers are [`QLinear`]s, Q, K, V
//! and gate, up stacked so each block makes four parallel passes over its weights. llama.cpp's
//! converter leaves its marks, followed here:
//! * only `llama` has Q and K rows permuted for the interleaved (adjacent-pair) RoPE layout;
//!   qwen, phi3 and gemma3 keep transformers' halves;
//! * Gemma's `(1 + w)` norms are stored with the 1 added, its multimodal extras dropped;
//! * Phi-3 stores QKV as `attn_qkv` and gate/up stacked as `ffn_up`, its LongRoPE factors as
//!   the tensors `rope_factors_short` / `rope_factors_long` (chosen per step, see
//!   [`Rope::long_rope`]) with `rope.scaling.attn_factor`;
//! * Llama 3.x's RoPE scaling is the tensor `rope_freqs` (one divisor per frequency);
//! * Gemma 3's sliding-window layers follow `attention.sliding_window_pattern` when present,
//!   else llama.cpp's fixed period of 6, with base `rope.freq_base_swa` (default 10000); its
//!   query scale is `attention.scale` when present, else `key_length^-1/2` as llama.cpp takes
//!   it (equal to transformers' `query_pre_attn_scalar^-1/2` for the released sizes but 27B).

use std::io::{Read, Seek};

use candle_core::Device;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{QTensor, gguf_file::Content};

use super::GGUF_ARCHITECTURES;
use super::decoder::{Model, Weights};
use super::llama::{self, Family, Names, RopeScaling};
use super::ops::{Activation, RopeLayout};
use super::qlinear::{Linear, QLinear};
use crate::llm::error::{LlmError, Result};
use crate::llm::model::ModelInfo;

/// Hyper-parameters read from the GGUF metadata (`{arch}.*` keys).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `general.architecture`.
    pub architecture: String,
    pub n_layers: usize,
    pub width: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub rope_dim: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
    pub context_length: usize,
    /// The MLP's width, when the metadata gives it (else the checkpoint's `ffn_down` says).
    pub feed_forward_length: Option<usize>,
}

/// `general.architecture`, checked against [`GGUF_ARCHITECTURES`].
pub fn architecture(content: &Content) -> Result<String> {
    let arch = metadata_str(content, "general.architecture").unwrap_or_default();
    if GGUF_ARCHITECTURES.contains(&arch.as_str()) {
        Ok(arch)
    } else {
        Err(LlmError::UnknownArchitecture(arch))
    }
}

fn metadata_str(content: &Content, key: &str) -> std::result::Result<String, String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| format!("metadata {key} is missing"))
}

/// An integer metadata value, whatever its stored width.
fn to_usize(value: &Value) -> Option<usize> {
    match *value {
        Value::U8(v) => Some(v.into()),
        Value::U16(v) => Some(v.into()),
        Value::U32(v) => usize::try_from(v).ok(),
        Value::U64(v) => usize::try_from(v).ok(),
        Value::I8(v) => usize::try_from(v).ok(),
        Value::I16(v) => usize::try_from(v).ok(),
        Value::I32(v) => usize::try_from(v).ok(),
        Value::I64(v) => usize::try_from(v).ok(),
        _ => None,
    }
}

/// Reads `{arch}.{key}` metadata.
struct Metadata<'a> {
    content: &'a Content,
    arch: &'a str,
}

impl Metadata<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(&format!("{}.{key}", self.arch))
    }

    fn int(&self, key: &str) -> std::result::Result<usize, String> {
        let value = self
            .get(key)
            .ok_or_else(|| format!("metadata {}.{key} is missing", self.arch))?;
        to_usize(value).ok_or_else(|| format!("metadata {}.{key} is not a count", self.arch))
    }

    fn optional_int(&self, key: &str) -> std::result::Result<Option<usize>, String> {
        self.get(key).map(|_| self.int(key)).transpose()
    }

    fn float(&self, key: &str) -> std::result::Result<Option<f32>, String> {
        self.get(key)
            .map(|v| {
                v.to_f32()
                    .or_else(|_| v.to_f64().map(|v| v as f32))
                    .map_err(|e| format!("metadata {}.{key}: {e}", self.arch))
            })
            .transpose()
    }
}

impl Config {
    /// The metadata of any architecture of [`GGUF_ARCHITECTURES`].
    pub fn from_gguf(content: &Content) -> std::result::Result<Self, String> {
        let arch = metadata_str(content, "general.architecture")?;
        if !GGUF_ARCHITECTURES.contains(&arch.as_str()) {
            return Err(format!("architecture {arch:?} is not supported"));
        }
        let md = Metadata {
            content,
            arch: &arch,
        };
        let n_heads = md.int("attention.head_count")?;
        let n_kv_heads = md
            .optional_int("attention.head_count_kv")?
            .unwrap_or(n_heads);
        let width = md.int("embedding_length")?;
        if n_heads == 0 || n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(format!(
                "inconsistent shape: {n_heads} heads, {n_kv_heads} KV heads"
            ));
        }
        let head_dim = match md.optional_int("attention.key_length")? {
            Some(d) => d,
            None if width % n_heads == 0 => width / n_heads,
            None => {
                return Err(format!(
                    "width {width} is not a multiple of {n_heads} heads"
                ));
            }
        };
        let rope_dim = md.optional_int("rope.dimension_count")?.unwrap_or(head_dim);
        if head_dim == 0 || rope_dim == 0 || rope_dim % 2 != 0 || rope_dim > head_dim {
            return Err(format!(
                "RoPE over {rope_dim} of each head's {head_dim} values"
            ));
        }
        let default_theta = if arch == "gemma3" {
            1_000_000.0
        } else {
            10_000.0
        };
        Ok(Self {
            n_layers: md.int("block_count")?,
            width,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim,
            rope_theta: md.float("rope.freq_base")?.unwrap_or(default_theta),
            rms_eps: md
                .float("attention.layer_norm_rms_epsilon")?
                .unwrap_or(1e-5),
            context_length: md.optional_int("context_length")?.unwrap_or(2048),
            feed_forward_length: md.optional_int("feed_forward_length")?,
            architecture: arch,
        })
    }
}

/// GGUF's names (llama.cpp's `LLM_TENSOR_NAMES`); Phi-3's stacked gate/up is `ffn_up`.
const GGUF_NAMES: Names = Names {
    embed_tokens: "token_embd",
    norm: "output_norm",
    lm_head: "output",
    layer: |i| format!("blk.{i}"),
    input_layernorm: "attn_norm",
    q_proj: "attn_q",
    k_proj: "attn_k",
    v_proj: "attn_v",
    qkv_proj: "attn_qkv",
    q_norm: "attn_q_norm",
    k_norm: "attn_k_norm",
    o_proj: "attn_output",
    post_attention_norm: "post_attention_norm",
    mlp_norm: "ffn_norm",
    post_mlp_norm: "post_ffw_norm",
    gate_proj: "ffn_gate",
    up_proj: "ffn_up",
    gate_up_proj: "ffn_up",
    down_proj: "ffn_down",
};

/// The tensors of a GGUF file, read as the model is built.
struct Gguf<'a, R> {
    content: &'a Content,
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

/// A llama-style causal LM from GGUF, with its KV cache.
pub type GgufModel = Model<llama::Config>;

/// The [`llama::Config`] a GGUF file describes, reading the few tensors that carry
/// hyper-parameters (`rope_freqs`, Phi-3's RoPE factors).
fn family_config<R: Read + Seek>(
    gguf: &Config,
    weights: &mut Gguf<'_, R>,
) -> Result<llama::Config> {
    let content = weights.content;
    let arch = gguf.architecture.as_str();
    let md = Metadata { content, arch };
    let compute = LlmError::Compute;
    let shape_of = |name: &str| -> Result<(usize, usize)> {
        let info = content
            .tensor_infos
            .get(name)
            .ok_or_else(|| LlmError::MissingTensor(name.to_owned()))?;
        Ok(info.shape.dims2()?)
    };
    let (vocab_size, _) = shape_of("token_embd.weight")?;
    let intermediate_size = match gguf.feed_forward_length {
        Some(width) => width,
        None => shape_of("blk.0.ffn_down.weight")?.1,
    };
    let family = Family::of(arch);
    let n = gguf.n_layers;
    let pairs = gguf.rope_dim / 2;
    let mut rope_scaling = RopeScaling::None;
    if content.tensor_infos.contains_key("rope_freqs.weight") {
        // Llama 3.x: llama.cpp divides each frequency by its factor; as linear scaling per pair.
        let factors = weights.vector("rope_freqs.weight", pairs)?;
        rope_scaling = RopeScaling::LongRope {
            short_factor: factors.clone(),
            long_factor: factors,
            original_max_position_embeddings: usize::MAX,
            attention_factor: 1.0,
        };
    } else if content
        .tensor_infos
        .contains_key("rope_factors_long.weight")
    {
        let original = md
            .int("rope.scaling.original_context_length")
            .map_err(compute)?;
        rope_scaling = RopeScaling::LongRope {
            short_factor: weights.vector("rope_factors_short.weight", pairs)?,
            long_factor: weights.vector("rope_factors_long.weight", pairs)?,
            original_max_position_embeddings: original,
            attention_factor: md
                .float("rope.scaling.attn_factor")
                .map_err(compute)?
                .unwrap_or(1.0),
        };
    } else if let Some(kind) = md.get("rope.scaling.type") {
        let kind = kind.to_string().map_err(|e| compute(e.to_string()))?;
        let factor = md.float("rope.scaling.factor").map_err(compute)?;
        match (kind.as_str(), factor) {
            ("none", _) | ("linear", None | Some(1.0)) => {}
            ("linear", Some(factor)) if factor > 0.0 => {
                rope_scaling = RopeScaling::Linear { factor };
            }
            (other, _) => {
                return Err(compute(format!("unsupported RoPE scaling {other:?}")));
            }
        }
    }
    let window = md
        .optional_int("attention.sliding_window")
        .map_err(compute)?
        .filter(|&w| w > 0);
    let (sliding_windows, rope_local_theta, query_scale) = if family == Family::Gemma3 {
        let sliding: Vec<bool> = match md.get("attention.sliding_window_pattern") {
            Some(Value::Array(flags)) => flags
                .iter()
                .map(|f| f.to_bool().map_err(|e| compute(e.to_string())))
                .collect::<Result<_>>()?,
            Some(period) => {
                let period = to_usize(period)
                    .filter(|&p| p > 0)
                    .ok_or_else(|| compute("bad attention.sliding_window_pattern".into()))?;
                (0..n).map(|i| (i + 1) % period != 0).collect()
            }
            None => (0..n).map(|i| (i + 1) % 6 != 0).collect(),
        };
        if sliding.len() != n {
            return Err(compute(format!(
                "attention.sliding_window_pattern covers {} of {n} layers",
                sliding.len()
            )));
        }
        let windows = sliding
            .into_iter()
            .map(|s| if s { window } else { None })
            .collect();
        let local = md
            .float("rope.freq_base_swa")
            .map_err(compute)?
            .unwrap_or(10_000.0);
        let scale = md
            .float("attention.scale")
            .map_err(compute)?
            .unwrap_or((gguf.head_dim as f32).powf(-0.5));
        (windows, Some(local), scale)
    } else {
        let windows = match arch {
            "phi3" => vec![window; n],
            _ => vec![None; n],
        };
        (windows, None, (gguf.head_dim as f32).powf(-0.5))
    };
    Ok(llama::Config {
        model_type: arch.to_owned(),
        family,
        vocab_size,
        hidden_size: gguf.width,
        intermediate_size,
        num_hidden_layers: n,
        num_attention_heads: gguf.n_heads,
        num_key_value_heads: gguf.n_kv_heads,
        head_dim: gguf.head_dim,
        rope_dim: gguf.rope_dim,
        rms_norm_eps: f64::from(gguf.rms_eps),
        rope_theta: gguf.rope_theta,
        rope_scaling,
        rope_local_theta,
        max_position_embeddings: gguf.context_length,
        tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
        hidden_act: if family == Family::Gemma3 {
            Activation::GeluTanh
        } else {
            Activation::Silu
        },
        query_scale,
        sliding_windows,
    })
}

impl GgufModel {
    /// Builds the model `content` describes, reading its tensors from `reader`.
    pub fn from_gguf<R: Read + Seek>(content: &Content, reader: &mut R) -> Result<Self> {
        architecture(content)?;
        let gguf = Config::from_gguf(content).map_err(LlmError::Compute)?;
        let mut weights = Gguf { content, reader };
        let config = family_config(&gguf, &mut weights)?;
        let dtype = content
            .tensor_infos
            .get("blk.0.attn_q.weight")
            .or_else(|| content.tensor_infos.get("blk.0.attn_qkv.weight"))
            .map(|t| format!("{:?}", t.ggml_dtype))
            .unwrap_or_default();
        let info = ModelInfo {
            architecture: config.model_type.clone(),
            n_layers: config.num_hidden_layers,
            width: config.hidden_size,
            vocab_size: config.vocab_size,
            context_length: config.max_position_embeddings,
            dtype,
        };
        // Only llama.cpp's llama converter permutes Q and K for adjacent-pair RoPE.
        let layout = if gguf.architecture == "llama" {
            RopeLayout::Interleaved
        } else {
            RopeLayout::Halves
        };
        let shape = config.shape(0.0);
        let ropes = config.ropes(layout);
        let decoder = llama::build(&mut weights, &GGUF_NAMES, &shape, ropes, info)?;
        Ok(Model::new(config, decoder))
    }
}

/// Reads a GGUF header from `reader`, any failure a [`LlmError::Corrupt`] of `path`.
pub fn read_content<R: Read + Seek>(reader: &mut R, path: &std::path::Path) -> Result<Content> {
    gguf_file::Content::read(reader).map_err(|e| LlmError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
