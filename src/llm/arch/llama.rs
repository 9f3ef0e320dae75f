//! Llama-family models from Hugging Face safetensors folders: Llama, SmolLM2, TinyLlama, and
//! Qwen2 (the same network with q/k/v biases). Runs in f32 on the CPU; bf16/f16 checkpoints are
//! upcast when loaded.
//!
//! Every forward step reports what the sonification reads: each layer's hidden state, the
//! attention entropy and the MLP sparsity per layer and position. They are taken from tensors
//! the step computes anyway (the attention probabilities, the input of `down_proj`), read in
//! place, so capturing costs no extra pass.
//!
//! The second half of this file ("Shared with gpt2.rs") holds what the safetensors architectures
//! have in common: reading `config.json` and the checkpoint, the KV cache, causal attention with
//! entropy capture, and collecting a [`Step`].

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::safetensors::{Load, MmapedSafetensors};
use candle_core::{DType, Device, Storage, Tensor};
use candle_nn::{Embedding, Module, RmsNorm};

use super::qlinear::{Dense, in_pool};
use serde::Deserialize;

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

/// Rotary position embedding, cos/sin made per step for just the positions it needs.
struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    /// `cos` and `sin`, each `[n, head_dim / 2]`, for positions `offset..offset + n`.
    fn cos_sin(&self, offset: usize, n: usize) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for pos in offset..offset + n {
            for &f in &self.inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok((
            Tensor::from_vec(cos, (n, half), &Device::Cpu)?,
            Tensor::from_vec(sin, (n, half), &Device::Cpu)?,
        ))
    }

    /// Rotates `x` `[heads, n, head_dim]` (contiguous) with the "rotate_half" layout.
    fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::rotary_emb::rope(&x.unsqueeze(0)?, cos, sin)?.squeeze(0)?)
    }
}

struct SelfAttention {
    q_proj: Dense,
    k_proj: Dense,
    v_proj: Dense,
    o_proj: Dense,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl SelfAttention {
    fn load(ckpt: &Checkpoint, prefix: &str, cfg: &Config) -> Result<Self> {
        let q_size = cfg.num_attention_heads * cfg.head_dim;
        let kv_size = cfg.num_key_value_heads * cfg.head_dim;
        let h = cfg.hidden_size;
        Ok(Self {
            q_proj: ckpt.linear(&format!("{prefix}.q_proj"), h, q_size)?,
            k_proj: ckpt.linear(&format!("{prefix}.k_proj"), h, kv_size)?,
            v_proj: ckpt.linear(&format!("{prefix}.v_proj"), h, kv_size)?,
            o_proj: ckpt.linear(&format!("{prefix}.o_proj"), q_size, h)?,
            num_heads: cfg.num_attention_heads,
            num_kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
        })
    }

    /// `x` `[n, hidden]` → `[n, hidden]`; writes the entropy of each new position.
    fn forward(
        &self,
        x: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        cache: &mut KvCache,
        entropy: &mut [f32],
    ) -> Result<Tensor> {
        let n = x.dim(0)?;
        let heads = |t: Tensor, count: usize| -> Result<Tensor> {
            Ok(t.reshape((n, count, self.head_dim))?
                .transpose(0, 1)?
                .contiguous()?)
        };
        let q = heads(self.q_proj.forward(x)?, self.num_heads)?;
        let k = heads(self.k_proj.forward(x)?, self.num_kv_heads)?;
        let v = heads(self.v_proj.forward(x)?, self.num_kv_heads)?;
        let q = Rope::apply(&q, cos, sin)?;
        let k = Rope::apply(&k, cos, sin)?;
        let (k, v) = cache.append(&k, &v)?;
        let scale = (self.head_dim as f64).powf(-0.5);
        let y = causal_attention(&q, &k, &v, scale, entropy)?;
        Ok(self.o_proj.forward(&y)?)
    }
}

struct Mlp {
    gate_proj: Dense,
    up_proj: Dense,
    down_proj: Dense,
    act: Activation,
}

impl Mlp {
    fn load(ckpt: &Checkpoint, prefix: &str, cfg: &Config) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: ckpt.linear(&format!("{prefix}.gate_proj"), h, i)?,
            up_proj: ckpt.linear(&format!("{prefix}.up_proj"), h, i)?,
            down_proj: ckpt.linear(&format!("{prefix}.down_proj"), i, h)?,
            act: cfg.hidden_act,
        })
    }

    /// Writes the sparsity of `act(gate) * up`, the input of `down_proj`, per new position.
    fn forward(&self, x: &Tensor, sparsity: &mut [f32]) -> Result<Tensor> {
        let gate = self.act.apply(&self.gate_proj.forward(x)?)?;
        let hidden = (gate * self.up_proj.forward(x)?)?;
        record_sparsity(&hidden, sparsity)?;
        Ok(self.down_proj.forward(&hidden)?)
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
        let norm = |name: &str| -> Result<RmsNorm> {
            let weight = ckpt.tensor(&format!("{prefix}.{name}.weight"), &[cfg.hidden_size])?;
            Ok(RmsNorm::new(weight, cfg.rms_norm_eps))
        };
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            self_attn: SelfAttention::load(ckpt, &format!("{prefix}.self_attn"), cfg)?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            mlp: Mlp::load(ckpt, &format!("{prefix}.mlp"), cfg)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: (&Tensor, &Tensor),
        cache: &mut KvCache,
        capture: LayerCapture<'_>,
    ) -> Result<Tensor> {
        let h = self.input_layernorm.forward(x)?;
        let x = (x + self.self_attn.forward(&h, rope, cache, capture.entropy)?)?;
        let h = self.post_attention_layernorm.forward(&x)?;
        Ok((&x + self.mlp.forward(&h, capture.sparsity)?)?)
    }
}

/// A llama-family causal LM with its KV cache.
pub struct Llama {
    config: Config,
    info: ModelInfo,
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Dense,
    rope: Rope,
    cache: Vec<KvCache>,
    position: usize,
}

impl Llama {
    /// Loads a Hugging Face folder: `config.json` and `model.safetensors` (or the shards listed
    /// in `model.safetensors.index.json`). The tokenizer is not read here.
    pub fn load(folder: &Path) -> Result<Self> {
        let config = Config::load(folder)?;
        let ckpt = Checkpoint::open(folder)?;
        let (vocab, h) = (config.vocab_size, config.hidden_size);

        let embed_name = "model.embed_tokens.weight";
        let embeddings = ckpt.tensor(embed_name, &[vocab, h])?;
        let lm_head = if config.tie_word_embeddings {
            Dense::new(&embeddings, None)?
        } else {
            Dense::new(&ckpt.tensor("lm_head.weight", &[vocab, h])?, None)?
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| DecoderLayer::load(&ckpt, &format!("model.layers.{i}"), &config))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(ckpt.tensor("model.norm.weight", &[h])?, config.rms_norm_eps);

        let info = ModelInfo {
            architecture: config.model_type.clone(),
            n_layers: config.num_hidden_layers,
            width: h,
            vocab_size: vocab,
            context_length: config.max_position_embeddings,
            dtype: ckpt.stored_dtype(embed_name),
        };
        let cache = (0..config.num_hidden_layers)
            .map(|_| KvCache::new(config.max_position_embeddings))
            .collect();
        Ok(Self {
            rope: Rope {
                inv_freq: config.inverse_frequencies(),
            },
            embed_tokens: Embedding::new(embeddings, h),
            layers,
            norm,
            lm_head,
            info,
            cache,
            position: 0,
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn run(&mut self, tokens: &[u32]) -> Result<Step> {
        let n = tokens.len();
        let mut capture = StepCapture::new(self.layers.len(), n, self.info.width);
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let mut x = self.embed_tokens.forward(&ids)?;
        capture.push_hidden(&x)?;
        let (cos, sin) = self.rope.cos_sin(self.position, n)?;
        let last = self.layers.len() - 1;
        for (i, (layer, cache)) in self.layers.iter().zip(&mut self.cache).enumerate() {
            x = layer.forward(&x, (&cos, &sin), cache, capture.layer(i))?;
            if i != last {
                capture.push_hidden(&x)?;
            }
        }
        let x = self.norm.forward(&x)?;
        capture.push_hidden(&x)?;
        let logits = self.lm_head.forward(&x.narrow(0, n - 1, 1)?)?;
        capture.finish(&logits)
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
                self.cache
                    .iter_mut()
                    .for_each(|c| c.truncate(self.position));
                Err(err)
            }
        }
    }

    fn position(&self) -> usize {
        self.position
    }

    fn reset(&mut self) {
        self.position = 0;
        self.cache.iter_mut().for_each(KvCache::reset);
    }
}

// ---------------------------------------------------------------------------------------------
// Shared with gpt2.rs: Hugging Face folders, the KV cache, attention and capture.
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

/// The MLP nonlinearities of the supported configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// GELU, tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// GELU with erf (`gelu`).
    GeluErf,
    Relu,
    /// `silu` / `swish`.
    Silu,
}

impl Activation {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "gelu" => Self::GeluErf,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            _ => return None,
        })
    }

    pub(crate) fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::GeluTanh => x.gelu()?,
            Self::GeluErf => x.gelu_erf()?,
            Self::Relu => x.relu()?,
            Self::Silu => x.silu()?,
        })
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

/// One layer's keys and values, `[kv_heads, positions, head_dim]`, in a buffer that grows by
/// doubling, so a step copies only its own new positions.
pub(crate) struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    max_len: usize,
}

impl KvCache {
    pub(crate) fn new(max_len: usize) -> Self {
        Self {
            k: None,
            v: None,
            len: 0,
            max_len,
        }
    }

    /// Appends `k`, `v` `[kv_heads, n, head_dim]` and returns views of everything cached.
    pub(crate) fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (heads, n, dim) = k.dims3()?;
        let needed = self.len + n;
        let (k_buf, v_buf) = match (&self.k, &self.v) {
            (Some(k_buf), Some(v_buf)) if k_buf.dim(1)? >= needed => (k_buf.clone(), v_buf.clone()),
            _ => {
                let capacity = match &self.k {
                    Some(buffer) => buffer.dim(1)?,
                    None => 0,
                };
                let new_capacity = needed
                    .max(2 * capacity)
                    .max(64)
                    .min(self.max_len.max(needed));
                let grow = |old: Option<&Tensor>| -> Result<Tensor> {
                    let buffer =
                        Tensor::zeros((heads, new_capacity, dim), DType::F32, &Device::Cpu)?;
                    if let Some(old) = old.filter(|_| self.len > 0) {
                        buffer.slice_set(&old.narrow(1, 0, self.len)?.contiguous()?, 1, 0)?;
                    }
                    Ok(buffer)
                };
                let (k_buf, v_buf) = (grow(self.k.as_ref())?, grow(self.v.as_ref())?);
                self.k = Some(k_buf.clone());
                self.v = Some(v_buf.clone());
                (k_buf, v_buf)
            }
        };
        k_buf.slice_set(&k.contiguous()?, 1, self.len)?;
        v_buf.slice_set(&v.contiguous()?, 1, self.len)?;
        self.len = needed;
        Ok((k_buf.narrow(1, 0, needed)?, v_buf.narrow(1, 0, needed)?))
    }

    /// Forgets positions from `len` on (after a failed step).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Forgets everything; the buffers are kept for the next sequence.
    pub(crate) fn reset(&mut self) {
        self.len = 0;
    }
}

/// Causal softmax attention of `q` `[heads, n, head_dim]` over `k`, `v`
/// `[kv_heads, offset + n, head_dim]`, the last `n` keys being the queries' own positions. Query
/// head `h` reads key/value head `h / (heads / kv_heads)`, as transformers' `repeat_kv`, done by
/// grouping queries instead of copying keys. Writes each new position's attention entropy (nats,
/// mean over heads) into `entropy` and returns `[n, heads * head_dim]`.
pub(crate) fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    entropy: &mut [f32],
) -> Result<Tensor> {
    let (heads, n, head_dim) = q.dims3()?;
    let (kv_heads, total, _) = k.dims3()?;
    let group = heads / kv_heads;
    let offset = total - n;
    let q = q.reshape((kv_heads, group * n, head_dim))?;
    let scores = (q.matmul(&k.t()?)? * scale)?.reshape((heads, n, total))?;
    let scores = if n > 1 {
        let mask: Vec<f32> = (0..n)
            .flat_map(|i| {
                (0..total).map(move |j| {
                    if j > offset + i {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        scores.broadcast_add(&Tensor::from_vec(mask, (n, total), &Device::Cpu)?)?
    } else {
        scores
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    with_f32_slice(&probs, |p| {
        for (pos, out) in entropy.iter_mut().enumerate() {
            let sum: f32 = (0..heads)
                .map(|h| capture::entropy(&p[(h * n + pos) * total..][..total]))
                .sum();
            *out = sum / heads as f32;
        }
    })?;
    let y = probs
        .reshape((kv_heads, group * n, total))?
        .matmul(v)?
        .reshape((heads, n, head_dim))?;
    Ok(y.transpose(0, 1)?.reshape((n, heads * head_dim))?)
}

/// Writes [`capture::mlp_sparsity`] of each row of `activations` `[n, intermediate]`.
pub(crate) fn record_sparsity(activations: &Tensor, out: &mut [f32]) -> Result<()> {
    let width = activations.dim(1)?;
    with_f32_slice(activations, |a| {
        for (row, out) in a.chunks_exact(width).zip(out.iter_mut()) {
            *out = capture::mlp_sparsity(row);
        }
    })
}

/// Runs `f` on the f32 data of `t` in place (copying only if `t` is not contiguous).
pub(crate) fn with_f32_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| LlmError::Compute("tensor is not contiguous".into()))?;
    match &*storage {
        Storage::Cpu(cpu) => Ok(f(&cpu.as_slice::<f32>()?[start..end])),
        _ => Err(LlmError::Compute("expected a CPU tensor".into())),
    }
}

/// What one step collects on its way through the layers, laid out as [`Step`] wants it.
pub(crate) struct StepCapture {
    hidden: Vec<f32>,
    entropy: Vec<f32>,
    sparsity: Vec<f32>,
    n_new: usize,
}

/// One layer's slots in a [`StepCapture`], `n_new` each.
pub(crate) struct LayerCapture<'a> {
    pub(crate) entropy: &'a mut [f32],
    pub(crate) sparsity: &'a mut [f32],
}

impl StepCapture {
    pub(crate) fn new(n_layers: usize, n_new: usize, width: usize) -> Self {
        Self {
            hidden: Vec::with_capacity((n_layers + 1) * n_new * width),
            entropy: vec![0.0; n_layers * n_new],
            sparsity: vec![0.0; n_layers * n_new],
            n_new,
        }
    }

    /// Appends the next hidden-state entry, `[n_new, width]`.
    pub(crate) fn push_hidden(&mut self, x: &Tensor) -> Result<()> {
        with_f32_slice(x, |s| self.hidden.extend_from_slice(s))
    }

    pub(crate) fn layer(&mut self, layer: usize) -> LayerCapture<'_> {
        let range = layer * self.n_new..(layer + 1) * self.n_new;
        LayerCapture {
            entropy: &mut self.entropy[range.clone()],
            sparsity: &mut self.sparsity[range],
        }
    }

    /// The finished step, with the newest position's `logits` `[1, vocab]`.
    pub(crate) fn finish(self, logits: &Tensor) -> Result<Step> {
        Ok(Step {
            logits: logits.flatten_all()?.to_vec1::<f32>()?,
            hidden: self.hidden,
            attention_entropy: self.entropy,
            mlp_sparsity: self.sparsity,
            n_new: self.n_new,
        })
    }
}
