//! The slice kernels every architecture's step is built from: norms, rotary positions, causal
//! attention over a KV cache with its entropy, the MLP nonlinearities.
//!
//! Models step on plain `f32` slices, position-major (`[n_new, width]`), rather than on candle
//! tensors: a decode step is a few hundred small operations, and a tensor op's fixed cost
//! (allocation, dispatch) was a third of its time. The big products are
//! [`QLinear`](super::qlinear::QLinear)s; everything between them is here, once.

use candle_core::cpu::erf::erf_f32;

use rayon::prelude::*;

use super::qlinear::{dot_f32, has_avx2};

/// LayerNorm of each `weight.len()`-wide row of `x` into `out`, with the biased variance as
/// `torch.nn.LayerNorm` takes it.
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    let width = weight.len();
    for (x, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let mean = x.iter().sum::<f32>() / width as f32;
        let variance = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let scale = 1.0 / (variance + eps).sqrt();
        for (((o, v), w), b) in out.iter_mut().zip(x).zip(weight).zip(bias) {
            *o = (v - mean) * scale * w + b;
        }
    }
}

/// RMSNorm of each `weight.len()`-wide row of `x`, in place: the per-head q/k norms.
pub fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    let width = weight.len();
    for x in x.chunks_exact_mut(width) {
        let mean_square = x.iter().map(|v| v * v).sum::<f32>() / width as f32;
        let scale = 1.0 / (mean_square + eps).sqrt();
        for (v, w) in x.iter_mut().zip(weight) {
            *v = *v * scale * w;
        }
    }
}

/// RMSNorm of each `weight.len()`-wide row of `x` into `out`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let width = weight.len();
    for (x, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let mean_square = x.iter().map(|v| v * v).sum::<f32>() / width as f32;
        let scale = 1.0 / (mean_square + eps).sqrt();
        for ((o, v), w) in out.iter_mut().zip(x).zip(weight) {
            *o = v * scale * w;
        }
    }
}

/// `x += delta`, elementwise: the residual connections.
pub fn add_into(x: &mut [f32], delta: &[f32]) {
    for (x, d) in x.iter_mut().zip(delta) {
        *x += d;
    }
}

/// Adds `bias` to each `bias.len()`-wide row of `x`.
pub fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        add_into(row, bias);
    }
}

/// Which values of a head rotary position embedding rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Adjacent pairs `(2i, 2i + 1)`: GGUF, whose Q and K rows are permuted for it.
    Interleaved,
    /// `(i, i + half)`: transformers' `rotate_half`.
    Halves,
}

/// Rotary position embedding over the first `rope_dim` values of each head.
#[derive(Debug, Clone)]
pub struct Rope {
    /// One frequency per rotated pair, `rope_dim / 2` of them.
    inverse_frequencies: Vec<f32>,
    /// LongRoPE's second set: `(original, frequencies)`, used by a step whose positions reach
    /// past `original` (see [`Rope::angles`]).
    long: Option<(usize, Vec<f32>)>,
    /// Factor on every cos and sin (LongRoPE's attention scaling); 1 otherwise.
    scale: f32,
    layout: RopeLayout,
}

impl Rope {
    pub fn new(inverse_frequencies: Vec<f32>, layout: RopeLayout) -> Self {
        Self {
            inverse_frequencies,
            long: None,
            scale: 1.0,
            layout,
        }
    }

    /// LongRoPE (Phi-3 "longrope"/"su"): `short` frequencies while a step's positions stay within
    /// `original`, `long` ones for a step that reaches past it, cos and sin scaled by `scale`.
    /// The set is chosen per step from the step's last position, as transformers picks it per
    /// forward call (`seq_len = max(position_ids) + 1`): a prompt longer than `original` runs on
    /// the long set from its first position, and keys already cached keep the angles they were
    /// given. (llama.cpp picks one set for the whole context instead, by its size; matching
    /// transformers is what the references check.)
    pub fn long_rope(
        short: Vec<f32>,
        long: Vec<f32>,
        original: usize,
        scale: f32,
        layout: RopeLayout,
    ) -> Self {
        Self {
            inverse_frequencies: short,
            long: Some((original, long)),
            scale,
            layout,
        }
    }

    /// `cos` and `sin` of position `position`'s angles, one per pair, written into `cos`, `sin`
    /// (each `rope_dim / 2` long), for a step whose positions end at `end` (exclusive). Angles
    /// are `position * frequency` in f32, as transformers computes them.
    pub fn angles(&self, position: usize, end: usize, cos: &mut [f32], sin: &mut [f32]) {
        let frequencies = match &self.long {
            Some((original, long)) if end > *original => long,
            _ => &self.inverse_frequencies,
        };
        for ((f, c), s) in frequencies.iter().zip(cos).zip(sin) {
            let angle = position as f32 * f;
            *c = angle.cos() * self.scale;
            *s = angle.sin() * self.scale;
        }
    }

    /// Rotates every `head_dim`-wide head of `heads` by the angles from [`Rope::angles`].
    pub fn rotate(&self, heads: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
        let half = self.inverse_frequencies.len();
        for head in heads.chunks_exact_mut(head_dim) {
            match self.layout {
                RopeLayout::Interleaved => {
                    for (pair, (c, s)) in head[..2 * half]
                        .chunks_exact_mut(2)
                        .zip(cos.iter().zip(sin))
                    {
                        let (a, b) = (pair[0], pair[1]);
                        pair[0] = a * c - b * s;
                        pair[1] = a * s + b * c;
                    }
                }
                RopeLayout::Halves => {
                    let (first, second) = head[..2 * half].split_at_mut(half);
                    for (((a, b), c), s) in first.iter_mut().zip(second).zip(cos).zip(sin) {
                        let (x, y) = (*a, *b);
                        *a = x * c - y * s;
                        *b = y * c + x * s;
                    }
                }
            }
        }
    }

    /// Whether a step over positions `start..end` is the first to reach past LongRoPE's
    /// `original` with positions already cached: transformers (Phi-3's generation) then drops
    /// its cache and recomputes the whole sequence on the long factors.
    pub fn crosses_to_long(&self, start: usize, end: usize) -> bool {
        matches!(&self.long, Some((original, _)) if start > 0 && start <= *original && end > *original)
    }

    pub fn pairs(&self) -> usize {
        self.inverse_frequencies.len()
    }
}

/// One layer's keys and values, position-major `[positions, kv_heads * head_dim]`.
#[derive(Debug, Default)]
pub struct KvCache {
    keys: Vec<f32>,
    values: Vec<f32>,
}

impl KvCache {
    /// Appends one position's key and value rows.
    pub fn push(&mut self, key: &[f32], value: &[f32]) {
        self.keys.extend_from_slice(key);
        self.values.extend_from_slice(value);
    }

    /// Forgets positions from `positions` on (after a failed step).
    pub fn truncate(&mut self, positions: usize, kv_width: usize) {
        self.keys.truncate(positions * kv_width);
        self.values.truncate(positions * kv_width);
    }

    /// Forgets everything, keeping the memory for the next sequence.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
    }
}

/// The head layout of one attention layer.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub heads: usize,
    /// Key/value heads; each serves `heads / kv_heads` query heads (grouped-query attention).
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Factor on every query-key product (`1 / sqrt(head_dim)` in most models).
    pub scale: f32,
    /// Sliding-window attention: each query sees only the last `window` positions, itself
    /// included (transformers' `kv_idx > q_idx - sliding_window`); `None` sees them all.
    pub window: Option<usize>,
}

impl Heads {
    pub fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    pub fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// Below this many query-key products (heads × keys × head_dim) a position's heads run one
/// after the other; above it they are split over the pool, worth its fork from a few hundred
/// keys on.
const PARALLEL_ATTENTION: usize = 1 << 17;

/// One head's index, output, scratch and entropy, as the head iterators of [`attend`] zip them.
type HeadSlots<'a> = (usize, ((&'a mut [f32], &'a mut [f32]), &'a mut f32));

/// Causal softmax attention of the `n_new` newest positions, whose keys and values are already
/// the last `n_new` in `cache`. Query `i` is the first `heads * head_dim` values of
/// `queries[i * stride..]` (a fused QKV row); its output goes to `out[i * heads * head_dim..]`.
/// Query head `h` reads KV head `h / (heads / kv_heads)`, as transformers' `repeat_kv`. When
/// `entropy` is given, it receives each new position's attention entropy, mean over heads.
/// `probs` is scratch space, grown as needed.
pub fn attend(
    shape: &Heads,
    cache: &KvCache,
    queries: &[f32],
    stride: usize,
    probs: &mut Vec<f32>,
    out: &mut [f32],
    mut entropy: Option<&mut [f32]>,
) {
    let (width, kv_width, head_dim) = (shape.width(), shape.kv_width(), shape.head_dim);
    let positions = cache.keys.len() / kv_width;
    let n_new = out.len() / width;
    let first = positions - n_new;
    probs.resize(shape.heads * positions, 0.0);
    let mut head_entropy = vec![0.0_f32; shape.heads];
    for i in 0..n_new {
        let n_keys = first + i + 1;
        let start = shape.window.map_or(0, |w| n_keys.saturating_sub(w));
        let q = &queries[i * stride..][..width];
        let out = &mut out[i * width..][..width];
        let one_head = |(h, ((out, probs), entropy)): HeadSlots<'_>| {
            let q = &q[h * head_dim..][..head_dim];
            *entropy = attend_head(shape, cache, h, q, start, &mut probs[..n_keys - start], out);
        };
        if shape.heads * (n_keys - start) * head_dim >= PARALLEL_ATTENTION {
            out.par_chunks_exact_mut(head_dim)
                .zip(probs.par_chunks_exact_mut(positions))
                .zip(head_entropy.par_iter_mut())
                .enumerate()
                .for_each(one_head);
        } else {
            out.chunks_exact_mut(head_dim)
                .zip(probs.chunks_exact_mut(positions))
                .zip(head_entropy.iter_mut())
                .enumerate()
                .for_each(one_head);
        }
        if let Some(entropy) = entropy.as_deref_mut() {
            // Summed in head order, so the result does not hang on how the pool split the work.
            entropy[i] = head_entropy.iter().sum::<f32>() / shape.heads as f32;
        }
    }
}

/// One query head over the `probs.len()` cached positions from `start` on: writes its output
/// to `out` and returns the entropy of its attention distribution.
fn attend_head(
    shape: &Heads,
    cache: &KvCache,
    head: usize,
    q: &[f32],
    start: usize,
    probs: &mut [f32],
    out: &mut [f32],
) -> f32 {
    let (kv_width, head_dim) = (shape.kv_width(), shape.head_dim);
    let kv_offset = (head / (shape.heads / shape.kv_heads)) * head_dim;
    let kv_offset = start * kv_width + kv_offset;
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        let keys = &cache.keys[kv_offset..];
        let values = &cache.values[kv_offset..];
        #[target_feature(enable = "avx2,fma")]
        fn on_avx2(body: impl FnOnce() -> f32) -> f32 {
            body()
        }
        // SAFETY: the CPU has AVX2 and FMA; the key and value rows `scores` and
        // `weighted_sum` read are the cached positions from `start` on (they assert it).
        return unsafe {
            on_avx2(|| {
                if head_dim.is_multiple_of(32) {
                    avx2::scores(q, keys, kv_width, shape.scale, probs);
                    let entropy = softmax_entropy_body(probs);
                    avx2::weighted_sum(probs, values, kv_width, out);
                    entropy
                } else {
                    // Other head sizes: the plain loops, compiled for AVX2 here.
                    attend_rows(shape, cache, kv_offset, q, probs, out)
                }
            })
        };
    }
    attend_rows(shape, cache, kv_offset, q, probs, out)
}

/// One head's scores, softmax and weighted sum in plain loops, its key and value rows at
/// `kv_offset` on; inlined, so that under AVX2 its loops are compiled for it.
#[inline(always)]
fn attend_rows(
    shape: &Heads,
    cache: &KvCache,
    kv_offset: usize,
    q: &[f32],
    probs: &mut [f32],
    out: &mut [f32],
) -> f32 {
    let (kv_width, head_dim) = (shape.kv_width(), shape.head_dim);
    for (t, p) in probs.iter_mut().enumerate() {
        let k = &cache.keys[t * kv_width + kv_offset..][..head_dim];
        *p = dot_f32(q, k) * shape.scale;
    }
    let entropy = softmax_entropy_body(probs);
    out.fill(0.0);
    for (t, &p) in probs.iter().enumerate() {
        let v = &cache.values[t * kv_width + kv_offset..][..head_dim];
        for (o, v) in out.iter_mut().zip(v) {
            *o += p * v;
        }
    }
    entropy
}

/// Attention's two loops over the keys in AVX2, for heads of a multiple of 32 values.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `probs[t] = q · keys[t · stride..] · scale`, eight keys at a time: eight sums in
    /// registers, then folded into one vector of the eight dots.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `keys` holds `probs.len()` rows `stride` apart, each at least
    /// `q.len()` long, and `q.len()` is a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, probs: &mut [f32]) {
        let (n, dim) = (probs.len(), q.len());
        assert!(
            n == 0 || keys.len() >= (n - 1) * stride + dim,
            "the keys read"
        );
        let factor = _mm256_set1_ps(scale);
        let mut t = 0;
        // SAFETY: every load is inside a key row or `q` (the contract).
        unsafe {
            while t + 8 <= n {
                let mut acc = [_mm256_setzero_ps(); 8];
                for c in (0..dim).step_by(8) {
                    let qv = _mm256_loadu_ps(q.as_ptr().add(c));
                    for (j, acc) in acc.iter_mut().enumerate() {
                        let k = keys.as_ptr().add((t + j) * stride + c);
                        *acc = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k), *acc);
                    }
                }
                let low = _mm256_hadd_ps(
                    _mm256_hadd_ps(acc[0], acc[1]),
                    _mm256_hadd_ps(acc[2], acc[3]),
                );
                let high = _mm256_hadd_ps(
                    _mm256_hadd_ps(acc[4], acc[5]),
                    _mm256_hadd_ps(acc[6], acc[7]),
                );
                // Lane j of each 128-bit half holds key j's (j + 4's) half sum.
                let dots = _mm256_add_ps(
                    _mm256_permute2f128_ps::<0x20>(low, high),
                    _mm256_permute2f128_ps::<0x31>(low, high),
                );
                _mm256_storeu_ps(probs.as_mut_ptr().add(t), _mm256_mul_ps(dots, factor));
                t += 8;
            }
            for (t, p) in probs.iter_mut().enumerate().skip(t) {
                *p = super::dot_f32(q, &keys[t * stride..][..dim]) * scale;
            }
        }
    }

    /// `out = Σ probs[t] · values[t · stride..]`, 32 values of `out` at a time kept in
    /// registers over all the keys, even and odd keys in separate sums.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `values` holds `probs.len()` rows `stride` apart, each at
    /// least `out.len()` long, and `out.len()` is a multiple of 32.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn weighted_sum(probs: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
        let n = probs.len();
        assert!(
            n == 0 || values.len() >= (n - 1) * stride + out.len(),
            "the values read"
        );
        for c in (0..out.len()).step_by(32) {
            let mut even = [_mm256_setzero_ps(); 4];
            let mut odd = [_mm256_setzero_ps(); 4];
            // SAFETY: every load is inside a value row, the store inside `out` (the contract).
            unsafe {
                let row = |t: usize| values.as_ptr().add(t * stride + c);
                let mut t = 0;
                while t + 2 <= n {
                    let (p, v) = (_mm256_set1_ps(probs[t]), row(t));
                    let (p1, v1) = (_mm256_set1_ps(probs[t + 1]), row(t + 1));
                    for i in 0..4 {
                        even[i] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v.add(8 * i)), even[i]);
                        odd[i] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1.add(8 * i)), odd[i]);
                    }
                    t += 2;
                }
                if t < n {
                    let (p, v) = (_mm256_set1_ps(probs[t]), row(t));
                    for (i, even) in even.iter_mut().enumerate() {
                        *even = _mm256_fmadd_ps(p, _mm256_loadu_ps(v.add(8 * i)), *even);
                    }
                }
                for i in 0..4 {
                    let sum = _mm256_add_ps(even[i], odd[i]);
                    _mm256_storeu_ps(out.as_mut_ptr().add(c + 8 * i), sum);
                }
            }
        }
    }
}

/// Softmax in place; returns the distribution's entropy in nats. With `p = e^(s - max) / Z`,
/// `-sum(p ln p) = ln Z - sum(p (s - max))`: one logarithm per head instead of one per key.
pub fn softmax_entropy(values: &mut [f32]) -> f32 {
    softmax_entropy_body(values)
}

#[inline(always)]
fn softmax_entropy_body(values: &mut [f32]) -> f32 {
    let max = values.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let (mut sum, mut weighted) = (0.0_f32, 0.0_f32);
    for v in values.iter_mut() {
        let shifted = *v - max;
        *v = exp(shifted);
        sum += *v;
        weighted += *v * shifted;
    }
    let inverse = 1.0 / sum;
    for v in values.iter_mut() {
        *v *= inverse;
    }
    (sum.ln() - weighted * inverse).max(0.0)
}

/// The MLP nonlinearities of the supported checkpoints.
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
    /// The activation a `config.json` names, if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "gelu" => Self::GeluErf,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            _ => return None,
        })
    }

    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::GeluTanh => gelu_tanh(x),
            Self::GeluErf => 0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2)),
            Self::Relu => x.max(0.0),
            Self::Silu => silu(x),
        }
    }

    /// Applies the activation to every value of `x`.
    pub fn apply_all(self, x: &mut [f32]) {
        // One branch per slice, not per value, so each loop is a plain (vectorised) map.
        match self {
            Self::GeluTanh => map(x, gelu_tanh),
            Self::Silu => map(x, silu),
            Self::Relu => map(x, |v| v.max(0.0)),
            Self::GeluErf => x.iter_mut().for_each(|v| *v = self.apply(*v)),
        }
    }

    /// `out = act(gate) * up`, elementwise: a gated MLP (SwiGLU and its kin).
    pub fn gate(self, gate: &[f32], up: &[f32], out: &mut [f32]) {
        match self {
            Self::Silu => zip_map(gate, up, out, |g, u| silu(g) * u),
            Self::GeluTanh => zip_map(gate, up, out, |g, u| gelu_tanh(g) * u),
            _ => zip_map(gate, up, out, |g, u| self.apply(g) * u),
        }
    }
}

/// GELU's tanh approximation, GPT-2's `gelu_new`, through `(1 + tanh y) / 2 = sigmoid(2y)`.
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    const TWO_SQRT_TWO_OVER_PI: f32 = 2.0 * 0.797_884_6;
    x / (1.0 + exp(-TWO_SQRT_TWO_OVER_PI * x * (1.0 + 0.044_715 * x * x)))
}

#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `e^x` within 2 ulp (Cephes' `expf` polynomial), made of plain arithmetic so that loops over
/// slices vectorise, unlike calls into libm. Saturates to `e^88.3` above and to 0 below
/// `-87.3`, where f32 runs out of normal numbers.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const HIGH: f32 = 88.3;
    const LOW: f32 = -87.3;
    /// Adding 1.5 * 2^23 rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(LOW, HIGH);
    let shifted = clamped * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let n_int = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    // r = x - n ln 2, with ln 2 split so the product is exact.
    let r = clamped - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    if x < LOW { 0.0 } else { y * scale }
}

/// `x[i] = f(x[i])`, compiled for AVX2 where the CPU has it.
fn map(x: &mut [f32], f: impl Fn(f32) -> f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        #[target_feature(enable = "avx2,fma")]
        fn map_avx2(x: &mut [f32], f: impl Fn(f32) -> f32) {
            x.iter_mut().for_each(|v| *v = f(*v));
        }
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { map_avx2(x, f) };
    }
    x.iter_mut().for_each(|v| *v = f(*v));
}

/// `out[i] = f(a[i], b[i])`, compiled for AVX2 where the CPU has it.
fn zip_map(a: &[f32], b: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    let body = |out: &mut [f32]| {
        for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
            *o = f(*a, *b);
        }
    };
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        #[target_feature(enable = "avx2,fma")]
        fn run_avx2(out: &mut [f32], body: impl Fn(&mut [f32])) {
            body(out);
        }
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { run_avx2(out, body) };
    }
    body(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::capture;

    #[test]
    fn entropy_from_the_softmax_equals_the_direct_sum() {
        let scores = [0.3_f32, -1.2, 2.5, 0.0, 2.4, -30.0];
        let mut probs = scores;
        let entropy = softmax_entropy(&mut probs);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((entropy - capture::entropy(&probs)).abs() < 1e-5);
        let mut single = [4.0_f32];
        assert_eq!(softmax_entropy(&mut single), 0.0);
    }

    #[test]
    fn layer_norm_centres_and_scales_each_row() {
        let x = [1.0_f32, 2.0, 3.0, 4.0, -2.0, 0.0, 2.0, 4.0];
        let (weight, bias) = ([2.0_f32; 4], [0.5_f32; 4]);
        let mut out = [0.0_f32; 8];
        layer_norm(&x, &weight, &bias, 0.0, &mut out);
        for row in out.chunks_exact(4) {
            let normed: Vec<f32> = row.iter().map(|v| (v - 0.5) / 2.0).collect();
            let mean = normed.iter().sum::<f32>() / 4.0;
            let variance = normed.iter().map(|v| v * v).sum::<f32>() / 4.0;
            assert!(
                mean.abs() < 1e-6 && (variance - 1.0).abs() < 1e-5,
                "{row:?}"
            );
        }
    }

    #[test]
    fn both_rope_layouts_rotate_the_same_pairs_by_the_same_angles() {
        let frequencies = vec![1.0_f32, 0.1];
        let (mut cos, mut sin) = ([0.0; 2], [0.0; 2]);
        let interleaved = Rope::new(frequencies.clone(), RopeLayout::Interleaved);
        interleaved.angles(3, 4, &mut cos, &mut sin);
        let mut adjacent = [1.0_f32, 2.0, 3.0, 4.0];
        interleaved.rotate(&mut adjacent, 4, &cos, &sin);
        let mut halves = [1.0_f32, 3.0, 2.0, 4.0];
        Rope::new(frequencies, RopeLayout::Halves).rotate(&mut halves, 4, &cos, &sin);
        assert_eq!([adjacent[0], adjacent[2], adjacent[1], adjacent[3]], halves);
        let norm = |a: f32, b: f32| (a * a + b * b).sqrt();
        assert!((norm(adjacent[0], adjacent[1]) - norm(1.0, 2.0)).abs() < 1e-5);
        assert!((adjacent[0] - (3.0_f32.cos() - 2.0 * 3.0_f32.sin())).abs() < 1e-5);
    }

    #[test]
    fn attention_of_the_first_position_copies_its_value() {
        let shape = Heads {
            heads: 2,
            kv_heads: 1,
            head_dim: 2,
            scale: 1.0,
            window: None,
        };
        let mut cache = KvCache::default();
        cache.push(&[1.0, 0.0], &[5.0, 6.0]);
        cache.push(&[0.0, 1.0], &[7.0, 8.0]);
        // Two new positions; queries strided 6 apart as in a fused QKV row.
        let queries = [0.0, 0.0, 0.0, 0.0, 9.0, 9.0, 0.0, 0.0, 1e4, 0.0, 9.0, 9.0];
        let (mut probs, mut out, mut entropy) = (Vec::new(), [0.0_f32; 8], [0.0_f32; 2]);
        attend(
            &shape,
            &cache,
            &queries,
            6,
            &mut probs,
            &mut out,
            Some(&mut entropy),
        );
        // Position 0 sees only itself; position 1, head 0 weighs both keys equally, head 1
        // (a huge score on the first key) only the first.
        assert_eq!(&out[..4], &[5.0, 6.0, 5.0, 6.0]);
        assert_eq!(&out[4..], &[6.0, 7.0, 5.0, 6.0]);
        assert_eq!(entropy[0], 0.0);
        assert!((entropy[1] - 2f32.ln() / 2.0).abs() < 1e-6);
    }

    #[test]
    fn a_sliding_window_hides_the_older_keys() {
        let shape = Heads {
            heads: 1,
            kv_heads: 1,
            head_dim: 1,
            scale: 1.0,
            window: Some(2),
        };
        let mut cache = KvCache::default();
        for (k, v) in [(0.0, 100.0), (0.0, 1.0), (0.0, 3.0)] {
            cache.push(&[k], &[v]);
        }
        // The third position sees itself and the one before: equal scores, values 1 and 3.
        let (mut probs, mut out, mut entropy) = (Vec::new(), [0.0_f32], [0.0_f32]);
        attend(
            &shape,
            &cache,
            &[1.0],
            1,
            &mut probs,
            &mut out,
            Some(&mut entropy),
        );
        assert_eq!(out, [2.0]);
        assert!((entropy[0] - 2f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn long_rope_switches_sets_and_scales() {
        let rope = Rope::long_rope(vec![1.0], vec![0.5], 4, 2.0, RopeLayout::Halves);
        let (mut cos, mut sin) = ([0.0], [0.0]);
        rope.angles(3, 4, &mut cos, &mut sin);
        assert_eq!((cos[0], sin[0]), (2.0 * 3f32.cos(), 2.0 * 3f32.sin()));
        rope.angles(3, 5, &mut cos, &mut sin);
        assert_eq!((cos[0], sin[0]), (2.0 * 1.5f32.cos(), 2.0 * 1.5f32.sin()));
        assert!(rope.crosses_to_long(4, 5) && !rope.crosses_to_long(0, 5));
        assert!(!rope.crosses_to_long(5, 6) && !rope.crosses_to_long(2, 4));
    }

    #[test]
    fn polynomial_exp_matches_libm() {
        // Every normal result, from e^-87 to e^88.
        for i in -985..=1000 {
            let x = i as f32 * 0.0883;
            let (got, want) = (exp(x), x.exp());
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, libm says {want}"
            );
        }
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(100.0).is_finite());
        let mut probs = [0.0_f32, -200.0];
        softmax_entropy(&mut probs);
        assert_eq!(probs, [1.0, 0.0]);
    }

    #[test]
    fn heads_split_over_the_pool_give_what_they_give_one_by_one() {
        let shape = Heads {
            heads: 4,
            kv_heads: 2,
            head_dim: 64,
            scale: 0.125,
            window: None,
        };
        let keys = PARALLEL_ATTENTION / (shape.heads * shape.head_dim) + 10;
        let kv_width = shape.kv_width();
        let value = |i: usize| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 2.0;
        let mut cache = KvCache::default();
        for t in 0..keys {
            let row: Vec<f32> = (0..kv_width).map(|j| value(t * kv_width + j)).collect();
            let other: Vec<f32> = (0..kv_width).map(|j| value(t * kv_width + j + 5)).collect();
            cache.push(&row, &other);
        }
        let query: Vec<f32> = (0..shape.width()).map(|j| value(j + 11)).collect();
        let (mut probs, mut out, mut entropy) = (Vec::new(), vec![0.0; shape.width()], [0.0]);
        attend(
            &shape,
            &cache,
            &query,
            shape.width(),
            &mut probs,
            &mut out,
            Some(&mut entropy),
        );
        let mut total = 0.0_f32;
        for h in 0..shape.heads {
            let mut probs = vec![0.0; keys];
            let mut want = vec![0.0; shape.head_dim];
            let q = &query[h * shape.head_dim..][..shape.head_dim];
            total += attend_head(&shape, &cache, h, q, 0, &mut probs, &mut want);
            assert_eq!(
                &out[h * shape.head_dim..][..shape.head_dim],
                &want[..],
                "head {h}"
            );
        }
        assert_eq!(entropy[0], total / shape.heads as f32);
        assert!(entropy[0] > 0.0);
    }

    /// Every head size the AVX2 loops take (and one they leave), key counts around their runs
    /// of eight and two, against the softmax-weighted sum in f64.
    #[test]
    fn attention_heads_match_the_definition() {
        let value = |i: usize| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 2.0;
        for head_dim in [32, 64, 96, 128, 40] {
            for keys in [1, 2, 7, 8, 9, 17, 40] {
                let shape = Heads {
                    heads: 2,
                    kv_heads: 1,
                    head_dim,
                    scale: 0.3,
                    window: None,
                };
                let mut cache = KvCache::default();
                for t in 0..keys {
                    let row: Vec<f32> = (0..head_dim).map(|j| value(t * head_dim + j)).collect();
                    let other: Vec<f32> = (0..head_dim).map(|j| value(t * 31 + j + 5)).collect();
                    cache.push(&row, &other);
                }
                let q: Vec<f32> = (0..head_dim).map(|j| value(j * 3 + 11)).collect();
                let (mut probs, mut out) = (vec![0.0; keys], vec![0.0; head_dim]);
                let entropy = attend_head(&shape, &cache, 1, &q, 0, &mut probs, &mut out);
                let scores: Vec<f64> = (0..keys)
                    .map(|t| {
                        let k = &cache.keys[t * head_dim..][..head_dim];
                        let dot: f64 = q.iter().zip(k).map(|(a, b)| f64::from(a * b)).sum();
                        dot * 0.3
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                let p: Vec<f64> = scores.iter().map(|s| (s - max).exp() / total).collect();
                let want_entropy: f64 = -p.iter().map(|p| p * p.ln()).sum::<f64>();
                assert!(
                    (f64::from(entropy) - want_entropy).abs() < 1e-5,
                    "{head_dim} {keys}"
                );
                for (d, got) in out.iter().enumerate() {
                    let want: f64 = (0..keys)
                        .map(|t| p[t] * f64::from(cache.values[t * head_dim + d]))
                        .sum();
                    assert!(
                        (f64::from(*got) - want).abs() < 1e-5,
                        "head_dim {head_dim}, {keys} keys, value {d}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn activations_match_their_definitions() {
        assert_eq!(
            Activation::from_name("gelu_new"),
            Some(Activation::GeluTanh)
        );
        assert_eq!(Activation::from_name("tanh"), None);
        assert!((Activation::GeluErf.apply(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu_tanh(-3.0) + 0.003_637_4).abs() < 1e-6);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        let mut x = [-1.0_f32, 2.0];
        Activation::Relu.apply_all(&mut x);
        assert_eq!(x, [0.0, 2.0]);
    }
}
