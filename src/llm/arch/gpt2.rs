//! GPT-2 family models from Hugging Face safetensors folders, in f32 on the CPU.
//!
//! Checkpoints come in two namings: transformers 5.x saves `transformer.`-prefixed keys and no
//! `lm_head.weight` (tied to `wte`); older ones (openai-community/gpt2) use bare keys, and some
//! store the head explicitly. All are accepted. GPT-2's `Conv1D` weights are stored `[in, out]`.
//!
//! Hidden states, attention entropy and MLP sparsity (of the GELU output, the input of
//! `mlp.c_proj`) are captured as in `llama.rs`, whose shared half this file uses.

use std::path::Path;

use candle_core::Tensor;
use candle_nn::{Embedding, LayerNorm, Module};
use serde::Deserialize;

use super::llama::{
    Activation, Checkpoint, KvCache, LayerCapture, StepCapture, causal_attention, check_tokens,
    corrupt, read_config, record_sparsity,
};
use super::qlinear::{Dense, in_pool};
use crate::llm::error::Result;
use crate::llm::model::{LanguageModel, ModelInfo, Step};

/// A validated GPT-2 `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub vocab_size: usize,
    /// Context length.
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width (`n_inner`, 4 × `n_embd` when absent).
    pub n_inner: usize,
    pub layer_norm_epsilon: f64,
    pub activation_function: Activation,
    pub scale_attn_weights: bool,
    pub scale_attn_by_inverse_layer_idx: bool,
}

#[derive(Deserialize)]
struct RawConfig {
    vocab_size: usize,
    n_positions: usize,
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_inner: Option<usize>,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    scale_attn_weights: Option<bool>,
    scale_attn_by_inverse_layer_idx: Option<bool>,
}

impl Config {
    /// Reads and validates `folder/config.json`.
    pub fn load(folder: &Path) -> Result<Self> {
        let (path, value) = read_config(folder, &["gpt2"])?;
        let raw: RawConfig = serde_json::from_value(value).map_err(|e| corrupt(&path, e))?;
        Self::from_raw(raw).map_err(|message| corrupt(&path, message))
    }

    fn from_raw(raw: RawConfig) -> std::result::Result<Self, String> {
        let positive = [
            ("vocab_size", raw.vocab_size),
            ("n_positions", raw.n_positions),
            ("n_embd", raw.n_embd),
            ("n_layer", raw.n_layer),
            ("n_head", raw.n_head),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !raw.n_embd.is_multiple_of(raw.n_head) {
            return Err(format!(
                "n_embd ({}) is not a multiple of n_head ({})",
                raw.n_embd, raw.n_head
            ));
        }
        let act_name = raw.activation_function.as_deref().unwrap_or("gelu_new");
        let activation_function = Activation::from_name(act_name)
            .ok_or_else(|| format!("unsupported activation_function {act_name:?}"))?;
        let layer_norm_epsilon = raw.layer_norm_epsilon.unwrap_or(1e-5);
        if !(layer_norm_epsilon.is_finite() && layer_norm_epsilon >= 0.0) {
            return Err(format!(
                "layer_norm_epsilon ({layer_norm_epsilon}) must be non-negative"
            ));
        }
        Ok(Self {
            vocab_size: raw.vocab_size,
            n_positions: raw.n_positions,
            n_embd: raw.n_embd,
            n_layer: raw.n_layer,
            n_head: raw.n_head,
            n_inner: raw.n_inner.filter(|&n| n > 0).unwrap_or(4 * raw.n_embd),
            layer_norm_epsilon,
            activation_function,
            scale_attn_weights: raw.scale_attn_weights.unwrap_or(true),
            scale_attn_by_inverse_layer_idx: raw.scale_attn_by_inverse_layer_idx.unwrap_or(false),
        })
    }
}

/// GPT-2's `Conv1D`: a linear layer whose weight is stored `[in, out]`; kept `[out, in]` here,
/// so each output is one contiguous row for the split kernels.
struct Conv1D(Dense);

impl Conv1D {
    fn load(ckpt: &Checkpoint, prefix: &str, inp: usize, out: usize) -> Result<Self> {
        let weight = ckpt.tensor(&format!("{prefix}.weight"), &[inp, out])?;
        let bias = ckpt.tensor(&format!("{prefix}.bias"), &[out])?;
        Ok(Self(Dense::new(&weight.t()?.contiguous()?, Some(&bias))?))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.0.forward(x)?)
    }
}

fn layer_norm(ckpt: &Checkpoint, prefix: &str, size: usize, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        ckpt.tensor(&format!("{prefix}.weight"), &[size])?,
        ckpt.tensor(&format!("{prefix}.bias"), &[size])?,
        eps,
    ))
}

struct Attention {
    c_attn: Conv1D,
    c_proj: Conv1D,
    n_head: usize,
    head_dim: usize,
    scale: f64,
}

impl Attention {
    fn load(ckpt: &Checkpoint, prefix: &str, cfg: &Config, layer: usize) -> Result<Self> {
        let e = cfg.n_embd;
        let head_dim = e / cfg.n_head;
        let mut scale = 1.0;
        if cfg.scale_attn_weights {
            scale = (head_dim as f64).powf(-0.5);
        }
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (layer + 1) as f64;
        }
        Ok(Self {
            c_attn: Conv1D::load(ckpt, &format!("{prefix}.c_attn"), e, 3 * e)?,
            c_proj: Conv1D::load(ckpt, &format!("{prefix}.c_proj"), e, e)?,
            n_head: cfg.n_head,
            head_dim,
            scale,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut KvCache, entropy: &mut [f32]) -> Result<Tensor> {
        let (n, e) = x.dims2()?;
        let qkv = self.c_attn.forward(x)?;
        let heads = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(1, i * e, e)?
                .reshape((n, self.n_head, self.head_dim))?
                .transpose(0, 1)?
                .contiguous()?)
        };
        let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
        let (k, v) = cache.append(&k, &v)?;
        let y = causal_attention(&q, &k, &v, self.scale, entropy)?;
        self.c_proj.forward(&y)
    }
}

struct Mlp {
    c_fc: Conv1D,
    c_proj: Conv1D,
    act: Activation,
}

impl Mlp {
    fn load(ckpt: &Checkpoint, prefix: &str, cfg: &Config) -> Result<Self> {
        Ok(Self {
            c_fc: Conv1D::load(ckpt, &format!("{prefix}.c_fc"), cfg.n_embd, cfg.n_inner)?,
            c_proj: Conv1D::load(ckpt, &format!("{prefix}.c_proj"), cfg.n_inner, cfg.n_embd)?,
            act: cfg.activation_function,
        })
    }

    /// Writes the sparsity of the activation (the input of `c_proj`) per new position.
    fn forward(&self, x: &Tensor, sparsity: &mut [f32]) -> Result<Tensor> {
        let hidden = self.act.apply(&self.c_fc.forward(x)?)?;
        record_sparsity(&hidden, sparsity)?;
        self.c_proj.forward(&hidden)
    }
}

struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn load(ckpt: &Checkpoint, prefix: &str, cfg: &Config, layer: usize) -> Result<Self> {
        let (e, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
        Ok(Self {
            ln_1: layer_norm(ckpt, &format!("{prefix}.ln_1"), e, eps)?,
            attn: Attention::load(ckpt, &format!("{prefix}.attn"), cfg, layer)?,
            ln_2: layer_norm(ckpt, &format!("{prefix}.ln_2"), e, eps)?,
            mlp: Mlp::load(ckpt, &format!("{prefix}.mlp"), cfg)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        cache: &mut KvCache,
        capture: LayerCapture<'_>,
    ) -> Result<Tensor> {
        let h = self.ln_1.forward(x)?;
        let x = (x + self.attn.forward(&h, cache, capture.entropy)?)?;
        let h = self.ln_2.forward(&x)?;
        Ok((&x + self.mlp.forward(&h, capture.sparsity)?)?)
    }
}

/// A GPT-2 family causal LM with its KV cache.
pub struct Gpt2 {
    config: Config,
    info: ModelInfo,
    wte: Embedding,
    wpe: Tensor,
    h: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Dense,
    cache: Vec<KvCache>,
    position: usize,
}

impl Gpt2 {
    /// Loads a Hugging Face folder: `config.json` and `model.safetensors` (or the shards listed
    /// in `model.safetensors.index.json`). The tokenizer is not read here.
    pub fn load(folder: &Path) -> Result<Self> {
        let config = Config::load(folder)?;
        let ckpt = Checkpoint::open(folder)?;
        let prefix = if ckpt.contains("transformer.wte.weight") {
            "transformer."
        } else {
            ""
        };
        let (vocab, e) = (config.vocab_size, config.n_embd);
        let wte_name = format!("{prefix}wte.weight");
        let wte = ckpt.tensor(&wte_name, &[vocab, e])?;
        let wpe = ckpt.tensor(&format!("{prefix}wpe.weight"), &[config.n_positions, e])?;
        let lm_head = if ckpt.contains("lm_head.weight") {
            ckpt.tensor("lm_head.weight", &[vocab, e])?
        } else {
            wte.clone()
        };
        let h = (0..config.n_layer)
            .map(|i| Block::load(&ckpt, &format!("{prefix}h.{i}"), &config, i))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = layer_norm(
            &ckpt,
            &format!("{prefix}ln_f"),
            e,
            config.layer_norm_epsilon,
        )?;

        let info = ModelInfo {
            architecture: "gpt2".into(),
            n_layers: config.n_layer,
            width: e,
            vocab_size: vocab,
            context_length: config.n_positions,
            dtype: ckpt.stored_dtype(&wte_name),
        };
        let cache = (0..config.n_layer)
            .map(|_| KvCache::new(config.n_positions))
            .collect();
        Ok(Self {
            wte: Embedding::new(wte, e),
            wpe,
            h,
            ln_f,
            lm_head: Dense::new(&lm_head, None)?,
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
        let mut capture = StepCapture::new(self.h.len(), n, self.info.width);
        let ids = Tensor::new(tokens, self.wpe.device())?;
        let positions = self.wpe.narrow(0, self.position, n)?;
        let mut x = (self.wte.forward(&ids)? + positions)?;
        capture.push_hidden(&x)?;
        let last = self.h.len() - 1;
        for (i, (block, cache)) in self.h.iter().zip(&mut self.cache).enumerate() {
            x = block.forward(&x, cache, capture.layer(i))?;
            if i != last {
                capture.push_hidden(&x)?;
            }
        }
        let x = self.ln_f.forward(&x)?;
        capture.push_hidden(&x)?;
        let logits = self.lm_head.forward(&x.narrow(0, n - 1, 1)?)?;
        capture.finish(&logits)
    }
}

impl LanguageModel for Gpt2 {
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
