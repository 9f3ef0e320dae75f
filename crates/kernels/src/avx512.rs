//! AVX-512 kernels: the formats read against f32 activations (Q4_1, Q8_0), where the work is
//! converting weights to floats and multiplying them (sixteen lanes do a block in half the
//! instructions of eight), and packed Q4_K against two positions at once with VNNI (a
//! prompt's bulk). The other integer kernels stay AVX2's.
//!
//! # Safety (every `pub unsafe fn`)
//! The CPU has AVX-512F besides AVX2, FMA and F16C (and what else a function names), and the
//! lengths are as each function says.

use std::arch::x86_64::*;

use crate::activations::Q8KBlock;
use crate::avx2::half_at;
use crate::avx2_packed::{Q4KClose, q6_k_close, stored};
use crate::blocks::{Q4_1_BYTES, Q8_0_BYTES};
use crate::packed::{GROUP_BYTES, PACK_ROWS, Q6_GROUP_BYTES};

/// Q4_1 against f32 activations; `sums` holds each block's `Σx`. Byte `j` holds weight `j` in
/// its low nibble and `j + 16` in its high one: the sixteen bytes widened to 32-bit lanes are
/// the low half of the block masked and the high half shifted.
///
/// # Safety
/// See the module; `sums` holds one sum per block.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn q4_1_f32(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let low_nibble = _mm512_set1_epi32(0x0f);
    let blocks = x.len() / 32;
    let block = |b: usize| {
        // SAFETY: `b < blocks`, in bounds by the caller's contract.
        unsafe {
            let p = row.as_ptr().add(b * Q4_1_BYTES);
            let xs = x.as_ptr().add(b * 32);
            let bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(p.add(4).cast()));
            let low = _mm512_cvtepi32_ps(_mm512_and_si512(bytes, low_nibble));
            let high = _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(bytes));
            let dot = _mm512_fmadd_ps(
                high,
                _mm512_loadu_ps(xs.add(16)),
                _mm512_mul_ps(low, _mm512_loadu_ps(xs)),
            );
            (_mm512_set1_ps(half_at(p)), dot, half_at(p.add(2)) * sums[b])
        }
    };
    // Even and odd blocks in two chains (in registers, hence the unrolled pair), so a block's
    // multiply-adds need not wait for the last block's.
    let (mut even, mut odd) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut even_minimum, mut odd_minimum) = (0.0_f32, 0.0_f32);
    let mut b = 0;
    while b + 2 <= blocks {
        let (d, dot, minimum) = block(b);
        even = _mm512_fmadd_ps(d, dot, even);
        even_minimum += minimum;
        let (d, dot, minimum) = block(b + 1);
        odd = _mm512_fmadd_ps(d, dot, odd);
        odd_minimum += minimum;
        b += 2;
    }
    if b < blocks {
        let (d, dot, minimum) = block(b);
        even = _mm512_fmadd_ps(d, dot, even);
        even_minimum += minimum;
    }
    _mm512_reduce_add_ps(_mm512_add_ps(even, odd)) + (even_minimum + odd_minimum)
}

/// Q8_0 against f32 activations.
///
/// # Safety
/// See the module.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn q8_0_f32(row: &[u8], x: &[f32]) -> f32 {
    let blocks = x.len() / 32;
    let block = |b: usize| {
        // SAFETY: `b < blocks`, in bounds by the caller's contract.
        unsafe {
            let p = row.as_ptr().add(b * Q8_0_BYTES);
            let xs = x.as_ptr().add(b * 32);
            let q = |at: usize| {
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(2 + at).cast())))
            };
            let dot = _mm512_fmadd_ps(
                q(16),
                _mm512_loadu_ps(xs.add(16)),
                _mm512_mul_ps(q(0), _mm512_loadu_ps(xs)),
            );
            (_mm512_set1_ps(half_at(p)), dot)
        }
    };
    // Two chains, as in [`q4_1_f32`].
    let (mut even, mut odd) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut b = 0;
    while b + 2 <= blocks {
        let (d, dot) = block(b);
        even = _mm512_fmadd_ps(d, dot, even);
        let (d, dot) = block(b + 1);
        odd = _mm512_fmadd_ps(d, dot, odd);
        b += 2;
    }
    if b < blocks {
        let (d, dot) = block(b);
        even = _mm512_fmadd_ps(d, dot, even);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(even, odd))
}

/// Two positions' Q8_K activations laid out for [`q4_k_group_pairs`]: for each super-block
/// and sub-block `j`, one 512-bit vector of eight pairs of 32-bit lanes, pair `2k + h` holding
/// the first and the second position's four bytes of quant vector `k`, nibble half `h`. One
/// load per sub-block, and one permute spreads each pair over the two halves of a vector.
pub struct PairActivations {
    vectors: Vec<__m512i>,
}

impl PairActivations {
    /// # Safety
    /// The CPU has AVX-512F; `a` and `b` are equally long.
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub unsafe fn new(a: &[Q8KBlock], b: &[Q8KBlock]) -> Self {
        let four = |x: &Q8KBlock, at: usize| {
            i32::from_le_bytes([x.q[at], x.q[at + 1], x.q[at + 2], x.q[at + 3]].map(|v| v as u8))
        };
        let mut vectors = Vec::with_capacity(a.len() * 8);
        for (a, b) in a.iter().zip(b) {
            for j in 0..8 {
                let mut lanes = [0i32; 16];
                for k in 0..4 {
                    for (h, half) in [0, 16].into_iter().enumerate() {
                        let at = 32 * j + 4 * k + half;
                        lanes[2 * (2 * k + h)] = four(a, at);
                        lanes[2 * (2 * k + h) + 1] = four(b, at);
                    }
                }
                // SAFETY: `lanes` is sixteen i32s.
                vectors.push(unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) });
            }
        }
        Self { vectors }
    }
}

/// One group of eight packed Q4_K rows against `N` pairs of positions (`xs[n]` being pair
/// `n`'s blocks, `pairs[n]` the same laid out): `out[2n + i][r]` is row `r` · `xs[n][i]`.
/// Each 512-bit vector multiplies the group's weights (in both halves) by two positions at
/// once, and `vpdpbusd` adds four byte products into a 32-bit lane per instruction: the AVX2
/// kernel's integers in about half its instructions. The float steps are the AVX2 kernel's own
/// ([`Q4KClose`]), so the results are equal to the bit.
///
/// # Safety
/// The CPU has AVX-512F, AVX-512BW and AVX-512 VNNI besides AVX2, FMA and F16C; `group` holds
/// whole super-blocks of one group, and every position and pair at least as many blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub unsafe fn q4_k_group_pairs<const N: usize>(
    group: &[u8],
    pairs: [&PairActivations; N],
    xs: [[&[Q8KBlock]; 2]; N],
) -> [[[f32; PACK_ROWS]; 2]; N] {
    let low = _mm512_set1_epi8(0x0f);
    let spread = spreads();
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    for (b, packed) in group.chunks_exact(GROUP_BYTES).enumerate() {
        let p = packed.as_ptr();
        let mut scaled = [_mm512_setzero_si512(); N];
        // SAFETY: the super-block is `GROUP_BYTES` long and every position and pair holds
        // block `b` (the contract): every load is inside.
        unsafe {
            for j in 0..8 {
                let mut dots = [_mm512_setzero_si512(); N];
                let x: [__m512i; N] = std::array::from_fn(|n| pairs[n].vectors[8 * b + j]);
                for k in 0..4 {
                    let q = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                        p.add(160 + 128 * j + 32 * k).cast(),
                    ));
                    let w0 = _mm512_and_si512(q, low);
                    let w1 = _mm512_and_si512(_mm512_srli_epi16::<4>(q), low);
                    for (dots, x) in dots.iter_mut().zip(x) {
                        let x0 = _mm512_permutexvar_epi32(spread[2 * k], x);
                        let x1 = _mm512_permutexvar_epi32(spread[2 * k + 1], x);
                        *dots = _mm512_dpbusd_epi32(*dots, w0, x0);
                        *dots = _mm512_dpbusd_epi32(*dots, w1, x1);
                    }
                }
                let scales = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(32 + 8 * j).cast()));
                let scales = _mm512_broadcast_i64x4(scales);
                for (scaled, dots) in scaled.iter_mut().zip(dots) {
                    *scaled = _mm512_add_epi32(*scaled, _mm512_mullo_epi32(dots, scales));
                }
            }
            let close = Q4KClose::at(p);
            for n in 0..N {
                let halves = halves(scaled[n]);
                for i in 0..2 {
                    acc[n][i] = close.add(xs[n][i].get_unchecked(b), halves[i], acc[n][i]);
                }
            }
        }
    }
    acc.map(|pair| pair.map(|acc| stored(acc)))
}

/// A pair's two positions: the low and the high eight lanes.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn halves(v: __m512i) -> [__m256i; 2] {
    [_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v)]
}

/// The permutes that spread pair `c` of a sub-block's activation vector over the two halves:
/// its first lane in the low eight, its second in the high eight.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn spreads() -> [__m512i; 8] {
    std::array::from_fn(|c| {
        let (a, b) = (2 * c as i32, 2 * c as i32 + 1);
        _mm512_setr_epi32(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b)
    })
}

/// The top two bits of quant vector `k` (bits `2k..2k + 2` of each `qh` byte) at bits 4–5.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
fn top_pair(qh: __m512i, k: usize) -> __m512i {
    let moved = match k {
        0 => _mm512_slli_epi16::<4>(qh),
        1 => _mm512_slli_epi16::<2>(qh),
        2 => qh,
        _ => _mm512_srli_epi16::<2>(qh),
    };
    _mm512_and_si512(moved, _mm512_set1_epi8(0x30))
}

/// One group of eight packed Q6_K rows against `N` pairs of positions, as
/// [`q4_k_group_pairs`]: equal to the bit to the AVX2 kernel's results.
///
/// # Safety
/// As [`q4_k_group_pairs`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub unsafe fn q6_k_group_pairs<const N: usize>(
    group: &[u8],
    pairs: [&PairActivations; N],
    xs: [[&[Q8KBlock]; 2]; N],
) -> [[[f32; PACK_ROWS]; 2]; N] {
    let low = _mm512_set1_epi8(0x0f);
    let spread = spreads();
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    for (b, packed) in group.chunks_exact(Q6_GROUP_BYTES).enumerate() {
        let p = packed.as_ptr();
        let mut sum = [_mm512_setzero_si512(); N];
        let mut offset = [[_mm256_setzero_si256(); 2]; N];
        // SAFETY: the super-block is `Q6_GROUP_BYTES` long and every position and pair holds
        // block `b` (the contract): every load is inside.
        unsafe {
            for j in 0..8 {
                let sub = p.add(16 + 208 * j);
                // Row `r`'s two scales as the two 16-bit halves of lane `r`.
                let scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(sub.cast()));
                let first =
                    _mm512_broadcast_i64x4(_mm256_srai_epi32(_mm256_slli_epi32(scales, 16), 16));
                let second = _mm512_broadcast_i64x4(_mm256_srai_epi32(scales, 16));
                let qh0 = _mm512_broadcast_i64x4(_mm256_loadu_si256(sub.add(16).cast()));
                let qh1 = _mm512_broadcast_i64x4(_mm256_loadu_si256(sub.add(48).cast()));
                let x: [__m512i; N] = std::array::from_fn(|n| pairs[n].vectors[8 * b + j]);
                let mut dots = [[_mm512_setzero_si512(); 2]; N];
                for k in 0..4 {
                    let q = _mm512_broadcast_i64x4(_mm256_loadu_si256(sub.add(80 + 32 * k).cast()));
                    let w0 = _mm512_or_si512(_mm512_and_si512(q, low), top_pair(qh0, k));
                    let w1 = _mm512_and_si512(_mm512_srli_epi16::<4>(q), low);
                    let w1 = _mm512_or_si512(w1, top_pair(qh1, k));
                    for (dots, x) in dots.iter_mut().zip(x) {
                        let x0 = _mm512_permutexvar_epi32(spread[2 * k], x);
                        let x1 = _mm512_permutexvar_epi32(spread[2 * k + 1], x);
                        dots[0] = _mm512_dpbusd_epi32(dots[0], w0, x0);
                        dots[1] = _mm512_dpbusd_epi32(dots[1], w1, x1);
                    }
                }
                for (sum, dots) in sum.iter_mut().zip(dots) {
                    let scaled = _mm512_add_epi32(
                        _mm512_mullo_epi32(dots[0], first),
                        _mm512_mullo_epi32(dots[1], second),
                    );
                    *sum = _mm512_add_epi32(*sum, scaled);
                }
                for (offset, xs) in offset.iter_mut().zip(xs) {
                    for (offset, x) in offset.iter_mut().zip(xs) {
                        // The sub-block's two 16-value sums against the rows' two scales.
                        let sums = x.get_unchecked(b).sums.as_ptr().add(2 * j);
                        let sums = _mm256_set1_epi32(sums.cast::<i32>().read_unaligned());
                        *offset = _mm256_add_epi32(*offset, _mm256_madd_epi16(scales, sums));
                    }
                }
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(p.cast()));
            for n in 0..N {
                let halves = halves(sum[n]);
                for i in 0..2 {
                    let x = xs[n][i].get_unchecked(b);
                    acc[n][i] = q6_k_close(d, x, halves[i], offset[n][i], acc[n][i]);
                }
            }
        }
    }
    acc.map(|pair| pair.map(|acc| stored(acc)))
}
