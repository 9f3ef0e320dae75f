//! The layers a decoder block is made of, one type each for every family: a family picks the
//! variant (which norm, which MLP) and loads the weights under its own names.

use super::super::ops::{self, Activation, Heads, KvCache, Rope};
use super::super::qlinear::Linear;
use super::Buffers;
use crate::llm::capture;
use crate::llm::error::{LlmError, Result};

/// A normalisation with its learned scale (and shift).
pub(crate) enum Norm {
    /// RMSNorm: llama and its kin. Gemma's `(1 + w)` scale is stored here with the 1 added, as
    /// llama.cpp's converter stores it.
    Rms { weight: Vec<f32>, eps: f32 },
    /// LayerNorm: GPT-2.
    Layer {
        weight: Vec<f32>,
        bias: Vec<f32>,
        eps: f32,
    },
}

impl Norm {
    /// The width it normalises.
    pub(crate) fn width(&self) -> usize {
        match self {
            Self::Rms { weight, .. } | Self::Layer { weight, .. } => weight.len(),
        }
    }

    /// Each `width`-wide row of `x` into `out`.
    pub(crate) fn forward(&self, x: &[f32], out: &mut [f32]) {
        match self {
            Self::Rms { weight, eps } => ops::rms_norm(x, weight, *eps, out),
            Self::Layer { weight, bias, eps } => ops::layer_norm(x, weight, bias, *eps, out),
        }
    }
}

/// Causal self-attention: one fused Q, K, V product, per-head q/k RMSNorms when the model has
/// them (Qwen3, Gemma 3), RoPE when the model has it, the KV cache (with its sliding window, see
/// [`Heads`]), the output projection.
pub(crate) struct Attention {
    /// Queries, keys and values in one product, in that order along each output row.
    qkv: Linear,
    o_proj: Linear,
    heads: Heads,
    /// `head_dim`-wide RMSNorms of each query and key head, before RoPE.
    qk_norm: Option<(Norm, Norm)>,
    /// Which of the decoder's RoPEs this layer uses (Gemma 3: local or global).
    rope: usize,
}

impl Attention {
    pub(crate) fn new(qkv: Linear, o_proj: Linear, heads: Heads) -> Result<Self> {
        Self::with_options(qkv, o_proj, heads, None, 0)
    }

    pub(crate) fn with_options(
        qkv: Linear,
        o_proj: Linear,
        heads: Heads,
        qk_norm: Option<(Norm, Norm)>,
        rope: usize,
    ) -> Result<Self> {
        let (q, kv) = (heads.width(), heads.kv_width());
        if qkv.rows() != q + 2 * kv || o_proj.cols() != q {
            return Err(LlmError::Compute(format!(
                "attention of {} heads and {} KV heads of {}: QKV gives {}, the output projection takes {}",
                heads.heads,
                heads.kv_heads,
                heads.head_dim,
                qkv.rows(),
                o_proj.cols()
            )));
        }
        if let Some((q_norm, k_norm)) = &qk_norm
            && (q_norm.width() != heads.head_dim
                || k_norm.width() != heads.head_dim
                || !matches!((q_norm, k_norm), (Norm::Rms { .. }, Norm::Rms { .. })))
        {
            return Err(LlmError::Compute(format!(
                "q/k RMSNorms of {} and {} values for heads of {}",
                q_norm.width(),
                k_norm.width(),
                heads.head_dim
            )));
        }
        Ok(Self {
            qkv,
            o_proj,
            heads,
            qk_norm,
            rope,
        })
    }

    pub(crate) fn rope(&self) -> usize {
        self.rope
    }

    pub(crate) fn kv_width(&self) -> usize {
        self.heads.kv_width()
    }

    pub(super) fn qkv_rows(&self) -> usize {
        self.qkv.rows()
    }

    pub(super) fn q_width(&self) -> usize {
        self.heads.width()
    }

    /// `buf.normed` `[n, width]` → `buf.projected`; rotates (when `rope`) and caches the new
    /// keys, writes each new position's entropy when asked.
    fn forward(
        &self,
        ropes: &[Rope],
        cache: &mut KvCache,
        buf: &mut Buffers,
        entropy: Option<&mut [f32]>,
    ) -> Result<()> {
        let (q_size, kv_size) = (self.heads.width(), self.heads.kv_width());
        let head_dim = self.heads.head_dim;
        let stride = q_size + 2 * kv_size;
        self.qkv.forward_into(&buf.normed, &mut buf.qkv)?;
        let rope = ropes.get(self.rope);
        for (i, qkv) in buf.qkv.chunks_exact_mut(stride).enumerate() {
            let (q, kv) = qkv.split_at_mut(q_size);
            let (k, v) = kv.split_at_mut(kv_size);
            if let Some((
                Norm::Rms {
                    weight: qw,
                    eps: qe,
                },
                Norm::Rms {
                    weight: kw,
                    eps: ke,
                },
            )) = &self.qk_norm
            {
                ops::rms_norm_in_place(q, qw, *qe);
                ops::rms_norm_in_place(k, kw, *ke);
            }
            if let Some(rope) = rope {
                let pairs = rope.pairs();
                let (cos, sin) = (
                    &buf.cos[self.rope][i * pairs..][..pairs],
                    &buf.sin[self.rope][i * pairs..][..pairs],
                );
                rope.rotate(q, head_dim, cos, sin);
                rope.rotate(k, head_dim, cos, sin);
            }
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

/// The feed-forward half of a block. Sparsity is measured on the input of `down`.
pub(crate) enum Mlp {
    /// `down(act(gate(x)) * up(x))`, gate and up stacked into one product: llama's SwiGLU.
    Gated {
        gate_up: Linear,
        down: Linear,
        act: Activation,
    },
    /// `down(act(up(x)))`: GPT-2.
    Plain {
        up: Linear,
        down: Linear,
        act: Activation,
    },
}

impl Mlp {
    /// `gate` and `up` (each `[intermediate, width]`) stacked into one product.
    pub(crate) fn gated(gate: Linear, up: Linear, down: Linear, act: Activation) -> Result<Self> {
        let gate_up = Linear::stack(vec![gate, up])?;
        Self::check(gate_up.rows() / 2, &down)?;
        Ok(Self::Gated { gate_up, down, act })
    }

    /// Gate and up already stacked in the checkpoint (Phi-3's `gate_up_proj`), gate first.
    pub(crate) fn fused(gate_up: Linear, down: Linear, act: Activation) -> Result<Self> {
        if !gate_up.rows().is_multiple_of(2) {
            return Err(LlmError::Compute(format!(
                "the fused gate/up projection gives {} rows, not an even number",
                gate_up.rows()
            )));
        }
        Self::check(gate_up.rows() / 2, &down)?;
        Ok(Self::Gated { gate_up, down, act })
    }

    pub(crate) fn plain(up: Linear, down: Linear, act: Activation) -> Result<Self> {
        Self::check(up.rows(), &down)?;
        Ok(Self::Plain { up, down, act })
    }

    fn check(intermediate: usize, down: &Linear) -> Result<()> {
        if down.cols() != intermediate {
            return Err(LlmError::Compute(format!(
                "the MLP is {intermediate} wide but its down projection takes {}",
                down.cols()
            )));
        }
        Ok(())
    }

    /// Rows of the first product, and the width of the activations `down` reads.
    pub(crate) fn widths(&self) -> (usize, usize) {
        match self {
            Self::Gated { gate_up, down, .. } => (gate_up.rows(), down.cols()),
            Self::Plain { up, down, .. } => (up.rows(), down.cols()),
        }
    }

    /// `buf.normed` → `buf.projected`; writes the sparsity of `down`'s input per new position
    /// when asked.
    fn forward(&self, buf: &mut Buffers, sparsity: Option<&mut [f32]>) -> Result<()> {
        let (activations, down) = match self {
            Self::Gated { gate_up, down, act } => {
                gate_up.forward_into(&buf.normed, &mut buf.up)?;
                let i = down.cols();
                for (gate_up, gated) in buf
                    .up
                    .chunks_exact(2 * i)
                    .zip(buf.gated.chunks_exact_mut(i))
                {
                    let (gate, up) = gate_up.split_at(i);
                    act.gate(gate, up, gated);
                }
                (&buf.gated, down)
            }
            Self::Plain { up, down, act } => {
                up.forward_into(&buf.normed, &mut buf.up)?;
                act.apply_all(&mut buf.up);
                (&buf.up, down)
            }
        };
        if let Some(sparsity) = sparsity {
            for (row, out) in activations.chunks_exact(down.cols()).zip(sparsity) {
                *out = capture::mlp_sparsity(row);
            }
        }
        Ok(down.forward_into(activations, &mut buf.projected)?)
    }
}

/// One pre-norm transformer block: `x += attn(norm(x))`, then `x += mlp(norm(x))`; Gemma's
/// "sandwich" adds a norm on each branch's output before its residual add.
pub(crate) struct Block {
    pub(crate) attn_norm: Norm,
    pub(crate) attn: Attention,
    /// Gemma's `post_attention_layernorm`, on the attention output.
    pub(crate) post_attn_norm: Option<Norm>,
    pub(crate) mlp_norm: Norm,
    pub(crate) mlp: Mlp,
    /// Gemma's `post_feedforward_layernorm`, on the MLP output.
    pub(crate) post_mlp_norm: Option<Norm>,
}

impl Block {
    /// Advances `x` `[n, width]` through the block; `capture` takes this layer's attention
    /// entropy and MLP sparsity, one per new position.
    pub(super) fn forward(
        &self,
        x: &mut [f32],
        ropes: &[Rope],
        cache: &mut KvCache,
        buf: &mut Buffers,
        capture: Option<(&mut [f32], &mut [f32])>,
    ) -> Result<()> {
        let (entropy, sparsity) = capture.unzip();
        self.attn_norm.forward(x, &mut buf.normed);
        self.attn.forward(ropes, cache, buf, entropy)?;
        Self::residual(x, self.post_attn_norm.as_ref(), buf);
        self.mlp_norm.forward(x, &mut buf.normed);
        self.mlp.forward(buf, sparsity)?;
        Self::residual(x, self.post_mlp_norm.as_ref(), buf);
        Ok(())
    }

    /// `x += post_norm(branch)`, the branch's output in `buf.projected` (`buf.normed` is free by
    /// then and takes the normed branch).
    fn residual(x: &mut [f32], post_norm: Option<&Norm>, buf: &mut Buffers) {
        match post_norm {
            Some(norm) => {
                norm.forward(&buf.projected, &mut buf.normed);
                ops::add_into(x, &buf.normed);
            }
            None => ops::add_into(x, &buf.projected),
        }
    }
}
