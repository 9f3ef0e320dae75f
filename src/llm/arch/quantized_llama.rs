//! Llama-family models from GGUF with quantized weights (the embedded default, SmolLM2).
//!
//! Follows the shape of candle-transformers' `quantized_llama`, reworked to expose every layer:
//! each block's output, the attention distribution of every new position and the MLP's gated
//! activations are read out as the forward pass goes, with no extra passes. Tensor names are
//! GGUF's (`blk.{i}.attn_q.weight`, ...). GGUF stores Q and K permuted for the interleaved
//! (adjacent-pair) RoPE layout, so RoPE here is `rope_i`.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use candle_core::quantized::{QTensor, gguf_file};
use candle_core::{D, DType, Device, Tensor};
use candle_nn::kv_cache::KvCache;

use super::qlinear::QLinear;
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

struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::rms_norm(x, &self.weight, self.eps)
    }
}

struct Attention {
    attn_q: QLinear,
    attn_k: QLinear,
    attn_v: QLinear,
    attn_output: QLinear,
    cache: KvCache,
}

struct Mlp {
    ffn_gate: QLinear,
    ffn_up: QLinear,
    ffn_down: QLinear,
}

struct Block {
    attn_norm: RmsNorm,
    attention: Attention,
    ffn_norm: RmsNorm,
    mlp: Mlp,
}

/// What one block reports besides its output.
struct BlockTrace {
    /// `[n_new]` mean-over-heads attention entropy.
    entropy: Vec<f32>,
    /// `[n_new]` MLP sparsity.
    sparsity: Vec<f32>,
}

pub struct QuantizedLlama {
    config: Config,
    info: ModelInfo,
    token_embd: QTensor,
    blocks: Vec<Block>,
    output_norm: RmsNorm,
    output: QLinear,
    cos: Tensor,
    sin: Tensor,
    position: usize,
    device: Device,
}

impl QuantizedLlama {
    /// Open a GGUF file and load the model in it.
    pub fn load(path: &Path) -> Result<(Self, gguf_file::Content)> {
        let corrupt = |message: String| LlmError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let mut file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LlmError::NotFound(path.to_path_buf()),
            _ => LlmError::Io {
                path: path.to_path_buf(),
                message: e.to_string(),
            },
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| corrupt(e.to_string()))?;
        let model = Self::from_gguf(&content, &mut file).map_err(|e| match e {
            LlmError::Compute(message) => corrupt(message),
            other => other,
        })?;
        Ok((model, content))
    }

    pub fn from_gguf<R: Read + Seek>(content: &gguf_file::Content, reader: &mut R) -> Result<Self> {
        let arch = metadata_str(content, "general.architecture").unwrap_or_default();
        if arch != "llama" {
            return Err(LlmError::UnknownArchitecture(arch));
        }
        let config = Config::from_gguf(content).map_err(LlmError::Compute)?;
        let device = Device::Cpu;
        let mut tensor = |name: &str| -> Result<QTensor> {
            if !content.tensor_infos.contains_key(name) {
                return Err(LlmError::MissingTensor(name.to_owned()));
            }
            Ok(content.tensor(reader, name, &device)?)
        };
        let norm = |t: QTensor, eps| -> Result<RmsNorm> {
            Ok(RmsNorm {
                weight: t.dequantize(&Device::Cpu)?,
                eps,
            })
        };
        let token_embd = tensor("token_embd.weight")?;
        let output_norm = norm(tensor("output_norm.weight")?, config.rms_eps)?;
        let output = match tensor("output.weight") {
            Ok(t) => t,
            Err(LlmError::MissingTensor(_)) => tensor("token_embd.weight")?,
            Err(e) => return Err(e),
        };
        let vocab_size = token_embd.shape().dims()[0];
        let mut blocks = Vec::with_capacity(config.n_layers);
        for i in 0..config.n_layers {
            let mut q = |name: &str| -> Result<QLinear> {
                QLinear::new(tensor(&format!("blk.{i}.{name}.weight"))?).map_err(Into::into)
            };
            let attention = Attention {
                attn_q: q("attn_q")?,
                attn_k: q("attn_k")?,
                attn_v: q("attn_v")?,
                attn_output: q("attn_output")?,
                cache: KvCache::new(2, config.context_length),
            };
            let mlp = Mlp {
                ffn_gate: q("ffn_gate")?,
                ffn_up: q("ffn_up")?,
                ffn_down: q("ffn_down")?,
            };
            blocks.push(Block {
                attn_norm: norm(
                    tensor(&format!("blk.{i}.attn_norm.weight"))?,
                    config.rms_eps,
                )?,
                attention,
                ffn_norm: norm(tensor(&format!("blk.{i}.ffn_norm.weight"))?, config.rms_eps)?,
                mlp,
            });
        }
        let (cos, sin) = rope_tables(&config, &device)?;
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
        Ok(Self {
            config,
            info,
            token_embd,
            blocks,
            output_norm,
            output: QLinear::new(output)?,
            cos,
            sin,
            position: 0,
            device,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn forward_inner(&mut self, tokens: &[u32]) -> candle_core::Result<Step> {
        let n_new = tokens.len();
        let (n_layers, width) = (self.config.n_layers, self.config.width);
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.token_embd.embedding(&ids)?.unsqueeze(0)?;
        let mask = causal_mask(n_new, self.position, &self.device)?;
        let cos = self.cos.narrow(0, self.position, n_new)?;
        let sin = self.sin.narrow(0, self.position, n_new)?;

        let mut step = Step {
            hidden: Vec::with_capacity((n_layers + 1) * n_new * width),
            attention_entropy: Vec::with_capacity(n_layers * n_new),
            mlp_sparsity: Vec::with_capacity(n_layers * n_new),
            n_new,
            ..Step::default()
        };
        step.hidden.extend(x.flatten_all()?.to_vec1::<f32>()?);
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let (out, trace) = block.forward(&x, &self.config, mask.as_ref(), &cos, &sin)?;
            x = out;
            // The last block's output is replaced by the final-norm output below, the
            // convention of `transformers`' hidden states.
            if i + 1 < n_layers {
                step.hidden.extend(x.flatten_all()?.to_vec1::<f32>()?);
            }
            step.attention_entropy.extend(trace.entropy);
            step.mlp_sparsity.extend(trace.sparsity);
        }
        let normed = self.output_norm.forward(&x)?;
        step.hidden.extend(normed.flatten_all()?.to_vec1::<f32>()?);
        let last = normed.narrow(1, n_new - 1, 1)?;
        step.logits = self
            .output
            .forward_slice(&last.flatten_all()?.to_vec1::<f32>()?);
        self.position += n_new;
        Ok(step)
    }
}

impl Block {
    fn forward(
        &mut self,
        x: &Tensor,
        config: &Config,
        mask: Option<&Tensor>,
        cos: &Tensor,
        sin: &Tensor,
    ) -> candle_core::Result<(Tensor, BlockTrace)> {
        let (attended, entropy) =
            self.attention
                .forward(&self.attn_norm.forward(x)?, config, mask, cos, sin)?;
        let x = (x + attended)?;
        let (mlp_out, sparsity) = self.mlp.forward(&self.ffn_norm.forward(&x)?)?;
        Ok(((x + mlp_out)?, BlockTrace { entropy, sparsity }))
    }
}

impl Attention {
    /// Returns the attention output and, per new position, the mean-over-heads entropy.
    fn forward(
        &mut self,
        x: &Tensor,
        config: &Config,
        mask: Option<&Tensor>,
        cos: &Tensor,
        sin: &Tensor,
    ) -> candle_core::Result<(Tensor, Vec<f32>)> {
        let (b, n_new, _) = x.dims3()?;
        let (heads, kv_heads, head_dim) = (config.n_heads, config.n_kv_heads, config.head_dim);
        let split = |t: Tensor, h: usize| {
            t.reshape((b, n_new, h, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.attn_q.forward(x)?, heads)?;
        let k = split(self.attn_k.forward(x)?, kv_heads)?;
        let v = split(self.attn_v.forward(x)?, kv_heads)?;
        let q = candle_nn::rotary_emb::rope_i(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope_i(&k, cos, sin)?;
        let (k, v) = self.cache.append(&k, &v)?;
        let n_keys = k.dim(2)?;

        // Grouped-query attention without copying K and V: the heads sharing a KV head are
        // stacked along the query axis.
        let group = heads / kv_heads;
        let q = q.reshape((b, kv_heads, group * n_new, head_dim))?;
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?;
        let scores = scores.reshape((b, heads, n_new, n_keys))?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;

        let flat = probs.flatten_all()?.to_vec1::<f32>()?;
        let entropy = (0..n_new)
            .map(|pos| {
                (0..heads)
                    .map(|h| {
                        let start = (h * n_new + pos) * n_keys;
                        capture::entropy(&flat[start..start + n_keys])
                    })
                    .sum::<f32>()
                    / heads as f32
            })
            .collect();

        let probs = probs.reshape((b, kv_heads, group * n_new, n_keys))?;
        let y = probs.matmul(&v)?.reshape((b, heads, n_new, head_dim))?;
        let y = y.transpose(1, 2)?.reshape((b, n_new, heads * head_dim))?;
        Ok((self.attn_output.forward(&y)?, entropy))
    }
}

impl Mlp {
    /// SwiGLU; the sparsity is measured on the gated activations that enter `ffn_down`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<(Tensor, Vec<f32>)> {
        let gated =
            (candle_nn::ops::silu(&self.ffn_gate.forward(x)?)? * self.ffn_up.forward(x)?)?;
        let width = gated.dim(D::Minus1)?;
        let flat = gated.flatten_all()?.to_vec1::<f32>()?;
        let sparsity = flat
            .chunks_exact(width)
            .map(capture::mlp_sparsity)
            .collect();
        Ok((self.ffn_down.forward(&gated)?, sparsity))
    }
}

/// Additive causal mask `[n_new, position + n_new]`, or none for a single new token (it may
/// see every key).
fn causal_mask(
    n_new: usize,
    position: usize,
    device: &Device,
) -> candle_core::Result<Option<Tensor>> {
    if n_new == 1 {
        return Ok(None);
    }
    let keys = position + n_new;
    let values: Vec<f32> = (0..n_new)
        .flat_map(|i| {
            (0..keys).map(move |j| {
                if j > position + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(values, (n_new, keys), device).map(Some)
}

fn rope_tables(config: &Config, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let half = config.rope_dim / 2;
    let inverse: Vec<f32> = (0..half)
        .map(|i| {
            1.0 / config
                .rope_theta
                .powf(2.0 * i as f32 / config.rope_dim as f32)
        })
        .collect();
    let inverse = Tensor::from_vec(inverse, (1, half), device)?;
    let positions = Tensor::arange(0u32, config.context_length as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((config.context_length, 1))?;
    let angles = positions.matmul(&inverse)?;
    Ok((angles.cos()?, angles.sin()?))
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
        Ok(self.forward_inner(tokens)?)
    }

    fn position(&self) -> usize {
        self.position
    }

    fn reset(&mut self) {
        self.position = 0;
        for block in &mut self.blocks {
            block.attention.cache.reset();
        }
    }
}
