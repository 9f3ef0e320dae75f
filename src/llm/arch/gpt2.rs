//! GPT-2 family models from Hugging Face safetensors folders, in f32 on the CPU.
//!
//! Checkpoints come in two namings: transformers 5.x saves `transformer.`-prefixed keys and no
//! `lm_head.weight` (tied to `wte`); older ones (openai-community/gpt2) use bare keys, and some
//! store the head explicitly. All are accepted. GPT-2's `Conv1D` weights are stored `[in, out]`.
//!
//! The step runs on `f32` slices with the kernels of `ops.rs` (see there why): fused QKV (`c_attn`
//! already is one matrix), learned position embeddings, pre-LN blocks, and the LM head tied to
//! `wte`, whose 50257 rows go through the parallel f32 kernel. Hidden states, attention entropy
//! and MLP sparsity (of the GELU output, the input of `mlp.c_proj`) are read out on the way.

use std::path::Path;

use serde::Deserialize;

use super::llama::{Checkpoint, check_tokens, corrupt, read_config};
use super::ops::{self, Activation, Heads, KvCache};
use super::qlinear::{Dense, in_pool};
use crate::llm::capture;
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

    fn forward(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        Ok(self.0.forward_into(x, out)?)
    }
}

struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(ckpt: &Checkpoint, prefix: &str, size: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: ckpt.vector(&format!("{prefix}.weight"), &[size])?,
            bias: ckpt.vector(&format!("{prefix}.bias"), &[size])?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &[f32], out: &mut [f32]) {
        ops::layer_norm(x, &self.weight, &self.bias, self.eps, out);
    }
}

struct Attention {
    /// Query, key and value in one `[3 * n_embd, n_embd]` product.
    c_attn: Conv1D,
    c_proj: Conv1D,
    heads: Heads,
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
            heads: Heads {
                heads: cfg.n_head,
                kv_heads: cfg.n_head,
                head_dim,
                scale: scale as f32,
            },
        })
    }

    /// `buf.normed` `[n, n_embd]` → `buf.projected`; appends the new keys and values to
    /// `cache` and writes each new position's entropy when asked.
    fn forward(
        &self,
        cache: &mut KvCache,
        buf: &mut Buffers,
        entropy: Option<&mut [f32]>,
    ) -> Result<()> {
        let e = self.heads.width();
        self.c_attn.forward(&buf.normed, &mut buf.qkv)?;
        for qkv in buf.qkv.chunks_exact(3 * e) {
            cache.push(&qkv[e..2 * e], &qkv[2 * e..]);
        }
        ops::attend(
            &self.heads,
            cache,
            &buf.qkv,
            3 * e,
            &mut buf.probs,
            &mut buf.attended,
            entropy,
        );
        self.c_proj.forward(&buf.attended, &mut buf.projected)
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

    /// `buf.normed` `[n, n_embd]` → `buf.projected`; writes the sparsity of the activation (the
    /// input of `c_proj`) per new position when asked.
    fn forward(&self, buf: &mut Buffers, sparsity: Option<&mut [f32]>) -> Result<()> {
        self.c_fc.forward(&buf.normed, &mut buf.hidden)?;
        self.act.apply_all(&mut buf.hidden);
        if let Some(sparsity) = sparsity {
            let rows = buf.hidden.chunks_exact(self.c_fc.0.rows());
            for (row, out) in rows.zip(sparsity) {
                *out = capture::mlp_sparsity(row);
            }
        }
        self.c_proj.forward(&buf.hidden, &mut buf.projected)
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
            ln_1: LayerNorm::load(ckpt, &format!("{prefix}.ln_1"), e, eps)?,
            attn: Attention::load(ckpt, &format!("{prefix}.attn"), cfg, layer)?,
            ln_2: LayerNorm::load(ckpt, &format!("{prefix}.ln_2"), e, eps)?,
            mlp: Mlp::load(ckpt, &format!("{prefix}.mlp"), cfg)?,
        })
    }

    /// Advances `x` `[n, n_embd]` through the block (pre-LN, two residual branches).
    fn forward(
        &self,
        x: &mut [f32],
        cache: &mut KvCache,
        buf: &mut Buffers,
        capture: Option<(&mut [f32], &mut [f32])>,
    ) -> Result<()> {
        let (entropy, sparsity) = capture.unzip();
        self.ln_1.forward(x, &mut buf.normed);
        self.attn.forward(cache, buf, entropy)?;
        ops::add_into(x, &buf.projected);
        self.ln_2.forward(x, &mut buf.normed);
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
    /// The MLP's activations, `[n, n_inner]`.
    hidden: Vec<f32>,
    /// One head's attention weights over every key.
    probs: Vec<f32>,
}

impl Buffers {
    fn new(cfg: &Config, n: usize) -> Self {
        let e = cfg.n_embd;
        Self {
            normed: vec![0.0; n * e],
            qkv: vec![0.0; n * 3 * e],
            attended: vec![0.0; n * e],
            projected: vec![0.0; n * e],
            hidden: vec![0.0; n * cfg.n_inner],
            probs: Vec::new(),
        }
    }
}

/// A GPT-2 family causal LM with its KV cache.
pub struct Gpt2 {
    config: Config,
    info: ModelInfo,
    /// Token embeddings `[vocab, n_embd]`, also the LM head when the checkpoint ties them.
    wte: Dense,
    /// Position embeddings `[n_positions, n_embd]`.
    wpe: Vec<f32>,
    h: Vec<Block>,
    ln_f: LayerNorm,
    /// An untied LM head, when the checkpoint stores one.
    lm_head: Option<Dense>,
    cache: Vec<KvCache>,
    position: usize,
    capture: bool,
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
        let wte = Dense::new(&ckpt.tensor(&wte_name, &[vocab, e])?, None)?;
        let wpe = ckpt.vector(&format!("{prefix}wpe.weight"), &[config.n_positions, e])?;
        let lm_head = if ckpt.contains("lm_head.weight") {
            Some(Dense::new(
                &ckpt.tensor("lm_head.weight", &[vocab, e])?,
                None,
            )?)
        } else {
            None
        };
        let h = (0..config.n_layer)
            .map(|i| Block::load(&ckpt, &format!("{prefix}h.{i}"), &config, i))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::load(
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
        let cache = (0..config.n_layer).map(|_| KvCache::default()).collect();
        Ok(Self {
            wte,
            wpe,
            h,
            ln_f,
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
        let (n, e, n_layers) = (tokens.len(), self.config.n_embd, self.h.len());
        let mut x = vec![0.0_f32; n * e];
        for (i, (&token, x)) in tokens.iter().zip(x.chunks_exact_mut(e)).enumerate() {
            self.wte.weight_row(token as usize, x);
            ops::add_into(x, &self.wpe[(self.position + i) * e..][..e]);
        }
        let mut step = Step {
            n_new: n,
            ..Step::default()
        };
        if self.capture {
            step.hidden.reserve_exact((n_layers + 1) * n * e);
            step.hidden.extend_from_slice(&x);
            step.attention_entropy = vec![0.0; n_layers * n];
            step.mlp_sparsity = vec![0.0; n_layers * n];
        }
        let mut buf = Buffers::new(&self.config, n);
        let stats = step
            .attention_entropy
            .chunks_exact_mut(n)
            .zip(step.mlp_sparsity.chunks_exact_mut(n));
        let mut stats = stats.map(Some).chain(std::iter::repeat_with(|| None));
        for (i, (block, cache)) in self.h.iter().zip(&mut self.cache).enumerate() {
            block.forward(&mut x, cache, &mut buf, stats.next().flatten())?;
            // The last block's output is replaced by the final-norm output below, the
            // convention of `transformers`' hidden states.
            if self.capture && i + 1 < n_layers {
                step.hidden.extend_from_slice(&x);
            }
        }
        self.ln_f.forward(&x, &mut buf.normed);
        if self.capture {
            step.hidden.extend_from_slice(&buf.normed);
        }
        let head = self.lm_head.as_ref().unwrap_or(&self.wte);
        step.logits = vec![0.0; self.info.vocab_size];
        head.forward_into(&buf.normed[(n - 1) * e..], &mut step.logits)?;
        Ok(step)
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
                let e = self.config.n_embd;
                for cache in &mut self.cache {
                    cache.truncate(self.position, e);
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
