//! Llama-family models from Hugging Face safetensors folders: Llama, SmolLM2, TinyLlama, and
//! Qwen2 (the same network with q/k/v biases). Runs in f32 on the CPU; bf16/f16 checkpoints are
//! upcast when loaded.
//!
//! Every forward step reports what the sonification reads: each layer's hidden state, the
//! attention entropy and the MLP sparsity per layer and position. They are taken from values
//! the step computes anyway (the softmax's own sums, the input of `down_proj`), so capturing
//! costs no extra pass. The step runs on `f32` slices with the kernels of `ops.rs`; Q, K, V and
//! gate, up are stacked into one product each.
//!
//! The second half of this file ("Shared with gpt2.rs") holds what the safetensors architectures
//! have in common: reading `config.json` and the checkpoint, and the checks on a step.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::safetensors::{Load, MmapedSafetensors};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::ops::{self, Activation, Heads, KvCache, Rope, RopeLayout};
use super::qlinear::{Dense, in_pool};

use crate::llm::capture;
use crate::llm::error::{LlmError, Result};
use crate::llm::model::{LanguageModel, ModelInfo, Step};

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

/// RMSNorm with its learned scale.
struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    fn load(ckpt: &Checkpoint, name: &str, cfg: &Config) -> Result<Self> {
        Ok(Self {
            weight: ckpt.vector(name, &[cfg.hidden_size])?,
            eps: cfg.rms_norm_eps as f32,
        })
    }

    fn forward(&self, x: &[f32], out: &mut [f32]) {
        ops::rms_norm(x, &self.weight, self.eps, out);
    }
}

struct SelfAttention {
    /// `q_proj`, `k_proj` and `v_proj` stacked (with their biases, Qwen2's), one product.
    qkv_proj: Dense,
    o_proj: Dense,
    heads: Heads,
}

impl SelfAttention {
    fn load(ckpt: &Checkpoint, prefix: &str, cfg: &Config) -> Result<Self> {
        let heads = Heads {
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
            scale: (cfg.head_dim as f32).powf(-0.5),
        };
        let (h, q_size, kv_size) = (cfg.hidden_size, heads.width(), heads.kv_width());
        Ok(Self {
            qkv_proj: Dense::stack(vec![
                ckpt.linear(&format!("{prefix}.q_proj"), h, q_size)?,
                ckpt.linear(&format!("{prefix}.k_proj"), h, kv_size)?,
                ckpt.linear(&format!("{prefix}.v_proj"), h, kv_size)?,
            ])?,
            o_proj: ckpt.linear(&format!("{prefix}.o_proj"), q_size, h)?,
            heads,
        })
    }

    /// `buf.normed` `[n, hidden]` → `buf.projected`; rotates and caches the new keys, writes
    /// each new position's entropy when asked.
    fn forward(
        &self,
        rope: &Rope,
        cache: &mut KvCache,
        buf: &mut Buffers,
        entropy: Option<&mut [f32]>,
    ) -> Result<()> {
        let (q_size, kv_size) = (self.heads.width(), self.heads.kv_width());
        let head_dim = self.heads.head_dim;
        self.qkv_proj.forward_into(&buf.normed, &mut buf.qkv)?;
        let stride = q_size + 2 * kv_size;
        let pairs = rope.pairs();
        for (i, qkv) in buf.qkv.chunks_exact_mut(stride).enumerate() {
            let (cos, sin) = (
                &buf.cos[i * pairs..][..pairs],
                &buf.sin[i * pairs..][..pairs],
            );
            let (q, kv) = qkv.split_at_mut(q_size);
            let (k, v) = kv.split_at_mut(kv_size);
            rope.rotate(q, head_dim, cos, sin);
            rope.rotate(k, head_dim, cos, sin);
            cache.push(k, v);
        }
        ops::attend(
            &self.heads,
            cache,
            &buf.qkv,
            stride,
            &mut buf.probs,
            &mut buf.attended,
            entropy,
        );
        Ok(self
            .o_proj
            .forward_into(&buf.attended, &mut buf.projected)?)
    }
}

struct Mlp {
    /// `gate_proj` and `up_proj` stacked.
    gate_up_proj: Dense,
    down_proj: Dense,
    act: Activation,
}

impl Mlp {
    fn load(ckpt: &Checkpoint, prefix: &str, cfg: &Config) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_up_proj: Dense::stack(vec![
                ckpt.linear(&format!("{prefix}.gate_proj"), h, i)?,
                ckpt.linear(&format!("{prefix}.up_proj"), h, i)?,
            ])?,
            down_proj: ckpt.linear(&format!("{prefix}.down_proj"), i, h)?,
            act: cfg.hidden_act,
        })
    }

    /// `buf.normed` → `buf.projected`; writes the sparsity of `act(gate) * up`, the input of
    /// `down_proj`, per new position when asked.
    fn forward(&self, buf: &mut Buffers, sparsity: Option<&mut [f32]>) -> Result<()> {
        self.gate_up_proj
            .forward_into(&buf.normed, &mut buf.gate_up)?;
        let i = self.down_proj.cols();
        for (gate_up, gated) in buf
            .gate_up
            .chunks_exact(2 * i)
            .zip(buf.gated.chunks_exact_mut(i))
        {
            let (gate, up) = gate_up.split_at(i);
            self.act.gate(gate, up, gated);
        }
        if let Some(sparsity) = sparsity {
            for (row, out) in buf.gated.chunks_exact(i).zip(sparsity) {
                *out = capture::mlp_sparsity(row);
            }
        }
        Ok(self
            .down_proj
            .forward_into(&buf.gated, &mut buf.projected)?)
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: SelfAttention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn load(ckpt: &Checkpoint, prefix: &str, cfg: &Config) -> Result<Self> {
        let norm = |name: &str| RmsNorm::load(ckpt, &format!("{prefix}.{name}.weight"), cfg);
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            self_attn: SelfAttention::load(ckpt, &format!("{prefix}.self_attn"), cfg)?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            mlp: Mlp::load(ckpt, &format!("{prefix}.mlp"), cfg)?,
        })
    }

    /// Advances `x` `[n, hidden]` through the layer.
    fn forward(
        &self,
        x: &mut [f32],
        rope: &Rope,
        cache: &mut KvCache,
        buf: &mut Buffers,
        capture: Option<(&mut [f32], &mut [f32])>,
    ) -> Result<()> {
        let (entropy, sparsity) = capture.unzip();
        self.input_layernorm.forward(x, &mut buf.normed);
        self.self_attn.forward(rope, cache, buf, entropy)?;
        ops::add_into(x, &buf.projected);
        self.post_attention_layernorm.forward(x, &mut buf.normed);
        self.mlp.forward(buf, sparsity)?;
        ops::add_into(x, &buf.projected);
        Ok(())
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
    /// RoPE angles of the new positions, `[n, head_dim / 2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Buffers {
    fn new(cfg: &Config, rope: &Rope, first_position: usize, n: usize) -> Self {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let q_size = cfg.num_attention_heads * cfg.head_dim;
        let kv_size = cfg.num_key_value_heads * cfg.head_dim;
        let pairs = rope.pairs();
        let (mut cos, mut sin) = (vec![0.0; n * pairs], vec![0.0; n * pairs]);
        for (p, (cos, sin)) in cos
            .chunks_exact_mut(pairs)
            .zip(sin.chunks_exact_mut(pairs))
            .enumerate()
        {
            rope.angles(first_position + p, cos, sin);
        }
        Self {
            normed: vec![0.0; n * h],
            qkv: vec![0.0; n * (q_size + 2 * kv_size)],
            attended: vec![0.0; n * q_size],
            projected: vec![0.0; n * h],
            gate_up: vec![0.0; n * 2 * i],
            gated: vec![0.0; n * i],
            probs: Vec::new(),
            cos,
            sin,
        }
    }
}

/// A llama-family causal LM with its KV cache.
pub struct Llama {
    config: Config,
    info: ModelInfo,
    /// `[vocab, hidden]`; also the LM head when `tie_word_embeddings`.
    embed_tokens: Dense,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// The untied LM head.
    lm_head: Option<Dense>,
    rope: Rope,
    cache: Vec<KvCache>,
    position: usize,
    capture: bool,
}

impl Llama {
    /// Loads a Hugging Face folder: `config.json` and `model.safetensors` (or the shards listed
    /// in `model.safetensors.index.json`). The tokenizer is not read here.
    pub fn load(folder: &Path) -> Result<Self> {
        let config = Config::load(folder)?;
        let ckpt = Checkpoint::open(folder)?;
        let (vocab, h) = (config.vocab_size, config.hidden_size);

        let embed_name = "model.embed_tokens.weight";
        let embed_tokens = Dense::new(&ckpt.tensor(embed_name, &[vocab, h])?, None)?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(Dense::new(
                &ckpt.tensor("lm_head.weight", &[vocab, h])?,
                None,
            )?)
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| DecoderLayer::load(&ckpt, &format!("model.layers.{i}"), &config))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(&ckpt, "model.norm.weight", &config)?;

        let info = ModelInfo {
            architecture: config.model_type.clone(),
            n_layers: config.num_hidden_layers,
            width: h,
            vocab_size: vocab,
            context_length: config.max_position_embeddings,
            dtype: ckpt.stored_dtype(embed_name),
        };
        let cache = (0..config.num_hidden_layers)
            .map(|_| KvCache::default())
            .collect();
        Ok(Self {
            rope: Rope::new(config.inverse_frequencies(), RopeLayout::Halves),
            embed_tokens,
            layers,
            norm,
            lm_head,
            info,
            cache,
            position: 0,
            capture: true,
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn run(&mut self, tokens: &[u32]) -> Result<Step> {
        let (n, h, n_layers) = (tokens.len(), self.info.width, self.layers.len());
        let mut x = vec![0.0_f32; n * h];
        for (&token, x) in tokens.iter().zip(x.chunks_exact_mut(h)) {
            self.embed_tokens.weight_row(token as usize, x);
        }
        let mut step = Step {
            n_new: n,
            ..Step::default()
        };
        if self.capture {
            step.hidden.reserve_exact((n_layers + 1) * n * h);
            step.hidden.extend_from_slice(&x);
            step.attention_entropy = vec![0.0; n_layers * n];
            step.mlp_sparsity = vec![0.0; n_layers * n];
        }
        let mut buf = Buffers::new(&self.config, &self.rope, self.position, n);
        let stats = step
            .attention_entropy
            .chunks_exact_mut(n)
            .zip(step.mlp_sparsity.chunks_exact_mut(n));
        let mut stats = stats.map(Some).chain(std::iter::repeat_with(|| None));
        for (i, (layer, cache)) in self.layers.iter().zip(&mut self.cache).enumerate() {
            layer.forward(&mut x, &self.rope, cache, &mut buf, stats.next().flatten())?;
            // The last layer's output is replaced by the final-norm output below, the
            // convention of `transformers`' hidden states.
            if self.capture && i + 1 < n_layers {
                step.hidden.extend_from_slice(&x);
            }
        }
        self.norm.forward(&x, &mut buf.normed);
        if self.capture {
            step.hidden.extend_from_slice(&buf.normed);
        }
        let head = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        step.logits = vec![0.0; self.info.vocab_size];
        head.forward_into(&buf.normed[(n - 1) * h..], &mut step.logits)?;
        Ok(step)
    }
}

impl LanguageModel for Llama {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn forward(&mut self, tokens: &[u32]) -> Result<Step> {
        check_tokens(tokens, self.position, &self.info)?;
        match in_pool(|| self.run(tokens)) {
            Ok(step) => {
                self.position += tokens.len();
                Ok(step)
            }
            Err(err) => {
                let kv_size = self.config.num_key_value_heads * self.config.head_dim;
                for cache in &mut self.cache {
                    cache.truncate(self.position, kv_size);
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
        self.cache.iter_mut().for_each(KvCache::clear);
    }

    fn set_capture(&mut self, on: bool) {
        self.capture = on;
    }
}

// ---------------------------------------------------------------------------------------------
// Shared with gpt2.rs: Hugging Face folders and the checks on a step.
// ---------------------------------------------------------------------------------------------

pub(crate) fn corrupt(path: &Path, message: impl ToString) -> LlmError {
    LlmError::Corrupt {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Reads `folder/config.json`, checks its `model_type` is one of `accepted`, and returns the
/// file's path (for error messages) with the parsed JSON.
pub(crate) fn read_config(
    folder: &Path,
    accepted: &[&str],
) -> Result<(PathBuf, serde_json::Value)> {
    if !folder.exists() {
        return Err(LlmError::NotFound(folder.to_path_buf()));
    }
    let path = folder.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|err| io_error(&path, err))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| corrupt(&path, e))?;
    let model_type = value
        .get("model_type")
        .and_then(|v| v.as_str())
        .ok_or_else(|| corrupt(&path, "no \"model_type\" string"))?;
    if !accepted.contains(&model_type) {
        return Err(LlmError::UnknownArchitecture(model_type.to_string()));
    }
    Ok((path, value))
}

fn io_error(path: &Path, err: std::io::Error) -> LlmError {
    if err.kind() == std::io::ErrorKind::NotFound {
        LlmError::NotFound(path.to_path_buf())
    } else {
        LlmError::Io {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
    }
}

/// The safetensors files of a folder, memory-mapped while the model is built.
pub(crate) struct Checkpoint {
    files: Vec<(PathBuf, MmapedSafetensors)>,
    /// Tensor name → index into `files`.
    names: HashMap<String, usize>,
}

impl Checkpoint {
    /// Opens `model.safetensors`, or every shard named in `model.safetensors.index.json`.
    pub(crate) fn open(folder: &Path) -> Result<Self> {
        let single = folder.join("model.safetensors");
        let index = folder.join("model.safetensors.index.json");
        let paths = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| io_error(&index, e))?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| corrupt(&index, e))?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| corrupt(&index, "no \"weight_map\" object"))?;
            let mut shards = BTreeSet::new();
            for file in map.values() {
                let file = file
                    .as_str()
                    .filter(|f| Path::new(f).file_name() == Some(std::ffi::OsStr::new(f)))
                    .ok_or_else(|| corrupt(&index, format!("bad shard name {file}")))?;
                shards.insert(folder.join(file));
            }
            shards.into_iter().collect()
        } else {
            return Err(LlmError::NotFound(single));
        };

        let mut files = Vec::with_capacity(paths.len());
        let mut names = HashMap::new();
        for path in paths {
            if !path.is_file() {
                return Err(LlmError::NotFound(path));
            }
            // SAFETY: the map is only read, and only while the model is being built; model files
            // are not expected to change under a running program (the same contract as every
            // mmap-based model loader).
            let st = unsafe { MmapedSafetensors::new(&path) }.map_err(|e| corrupt(&path, e))?;
            for (name, _) in st.tensors() {
                names.insert(name, files.len());
            }
            files.push((path, st));
        }
        Ok(Self { files, names })
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// Tensor `name` as f32 on the CPU, checked to have `shape`.
    pub(crate) fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let &index = self
            .names
            .get(name)
            .ok_or_else(|| LlmError::MissingTensor(name.to_string()))?;
        let (path, st) = &self.files[index];
        let view = st.get(name).map_err(|e| corrupt(path, e))?;
        if view.shape() != shape {
            return Err(corrupt(
                path,
                format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    view.shape()
                ),
            ));
        }
        let tensor = view.load(&Device::Cpu).map_err(|e| corrupt(path, e))?;
        match tensor.dtype() {
            DType::F32 => Ok(tensor),
            DType::BF16 | DType::F16 | DType::F64 => Ok(tensor.to_dtype(DType::F32)?),
            other => Err(corrupt(
                path,
                format!("tensor {name} has dtype {other:?}, not a float type"),
            )),
        }
    }

    /// Tensor `name` as flat f32 values, checked to have `shape`: norms, biases, embeddings.
    pub(crate) fn vector(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Ok(self.tensor(name, shape)?.flatten_all()?.to_vec1::<f32>()?)
    }

    /// `[out, inp]` weight plus the `.bias` if the checkpoint has one.
    pub(crate) fn linear(&self, prefix: &str, inp: usize, out: usize) -> Result<Dense> {
        let weight = self.tensor(&format!("{prefix}.weight"), &[out, inp])?;
        let bias_name = format!("{prefix}.bias");
        let bias = if self.contains(&bias_name) {
            Some(self.tensor(&bias_name, &[out])?)
        } else {
            None
        };
        Ok(Dense::new(&weight, bias.as_ref())?)
    }

    /// How `name` is stored (`f32`, `bf16`, ...), for [`ModelInfo::dtype`].
    pub(crate) fn stored_dtype(&self, name: &str) -> String {
        self.names
            .get(name)
            .and_then(|&i| self.files[i].1.get(name).ok())
            .and_then(|view| DType::try_from(view.dtype()).ok())
            .map_or_else(|| "unknown".into(), |d| d.as_str().into())
    }
}

/// The errors a step is checked for before anything runs.
pub(crate) fn check_tokens(tokens: &[u32], position: usize, info: &ModelInfo) -> Result<()> {
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
