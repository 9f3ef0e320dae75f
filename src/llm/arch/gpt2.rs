//! GPT-2 family models from Hugging Face safetensors folders, in f32 on the CPU.
//!
//! Checkpoints come in two namings: transformers 5.x saves `transformer.`-prefixed keys and no
//! `lm_head.weight` (tied to `wte`); older ones (openai-community/gpt2) use bare keys, and some
//! store the head explicitly. All are accepted. GPT-2's `Conv1D` weights are stored `[in, out]`.
//!
//! The network is the shared [`decoder`](super::decoder) with learned position embeddings,
//! LayerNorm, the fused QKV product `c_attn` and a plain GELU MLP (its sparsity is that of the
//! GELU output, the input of `mlp.c_proj`); this file reads `config.json` and the weights. The
//! token embeddings double as the tied LM head: one copy of the 154 MB matrix.

use std::path::Path;

use serde::Deserialize;

use super::checkpoint::{Checkpoint, corrupt, read_config};
use super::decoder::{Attention, Block, Decoder, Mlp, Model, Positions, Weights};
use super::ops::{Activation, Heads};
use super::qlinear::Linear;
use crate::llm::error::Result;
use crate::llm::model::ModelInfo;

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
fn conv1d(ckpt: &Checkpoint, prefix: &str, inp: usize, out: usize) -> Result<Linear> {
    let weight = ckpt.tensor(&format!("{prefix}.weight"), &[inp, out])?;
    let bias = ckpt.tensor(&format!("{prefix}.bias"), &[out])?;
    Ok(Linear::dense(&weight.t()?.contiguous()?, Some(&bias))?)
}

/// Block `layer` under `prefix` (`h.{layer}`): LayerNorms, the fused `c_attn`, a GELU MLP.
fn block(ckpt: &mut Checkpoint, prefix: &str, cfg: &Config, layer: usize) -> Result<Block> {
    let (e, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
    let head_dim = e / cfg.n_head;
    let mut scale = 1.0;
    if cfg.scale_attn_weights {
        scale = (head_dim as f64).powf(-0.5);
    }
    if cfg.scale_attn_by_inverse_layer_idx {
        scale /= (layer + 1) as f64;
    }
    let heads = Heads {
        heads: cfg.n_head,
        kv_heads: cfg.n_head,
        head_dim,
        scale: scale as f32,
        window: None,
    };
    let attn_norm = ckpt.layer_norm(&format!("{prefix}.ln_1"), e, eps)?;
    let attn = Attention::new(
        conv1d(ckpt, &format!("{prefix}.attn.c_attn"), e, 3 * e)?,
        conv1d(ckpt, &format!("{prefix}.attn.c_proj"), e, e)?,
        heads,
    )?;
    let mlp_norm = ckpt.layer_norm(&format!("{prefix}.ln_2"), e, eps)?;
    let mlp = Mlp::plain(
        conv1d(ckpt, &format!("{prefix}.mlp.c_fc"), e, cfg.n_inner)?,
        conv1d(ckpt, &format!("{prefix}.mlp.c_proj"), cfg.n_inner, e)?,
        cfg.activation_function,
    )?;
    Ok(Block {
        attn_norm,
        attn,
        post_attn_norm: None,
        mlp_norm,
        mlp,
        post_mlp_norm: None,
    })
}

/// A GPT-2 family causal LM with its KV cache.
pub type Gpt2 = Model<Config>;

impl Gpt2 {
    /// Loads a Hugging Face folder: `config.json` and `model.safetensors` (or the shards listed
    /// in `model.safetensors.index.json`). The tokenizer is not read here.
    pub fn load(folder: &Path) -> Result<Self> {
        let config = Config::load(folder)?;
        let mut ckpt = Checkpoint::open(folder)?;
        let prefix = if ckpt.contains("transformer.wte.weight") {
            "transformer."
        } else {
            ""
        };
        let (vocab, e) = (config.vocab_size, config.n_embd);
        let wte_name = format!("{prefix}wte.weight");
        // Token embeddings, also the LM head when the checkpoint ties them.
        let wte = Linear::dense(&ckpt.tensor(&wte_name, &[vocab, e])?, None)?;
        let wpe = ckpt.vector(&format!("{prefix}wpe.weight"), &[config.n_positions, e])?;
        let lm_head = if ckpt.contains("lm_head.weight") {
            Some(Linear::dense(
                &ckpt.tensor("lm_head.weight", &[vocab, e])?,
                None,
            )?)
        } else {
            None
        };
        let h = (0..config.n_layer)
            .map(|i| block(&mut ckpt, &format!("{prefix}h.{i}"), &config, i))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = ckpt.layer_norm(&format!("{prefix}ln_f"), e, config.layer_norm_epsilon)?;
        let info = ModelInfo {
            architecture: "gpt2".into(),
            n_layers: config.n_layer,
            width: e,
            vocab_size: vocab,
            context_length: config.n_positions,
            dtype: ckpt.stored_dtype(&wte_name),
        };
        let decoder = Decoder {
            info,
            embed_tokens: wte,
            embed_scale: 1.0,
            positions: Positions::Learned(wpe),
            blocks: h,
            norm: ln_f,
            lm_head,
        };
        Ok(Model::new(config, decoder))
    }
}
