//! The AVX2 kernels of the packed Q4_K and Q6_K layouts (see `packed`): one row per 32-bit lane. Each
//! weight vector (eight rows × four values, in nibbles) is unpacked once and met by `P`
//! positions' four activation bytes, broadcast; a sub-block's eight byte products per row add
//! up in 16 bits (at most 8 · 2 · 15 · 127 = 30480, no overflow) before one `madd` with the
//! eight rows' scales.
//!
//! # Safety (every `pub unsafe fn`)
//! The CPU has AVX2, FMA and F16C; `group` holds whole super-blocks of one group and every
//! `xs[k]` at least as many activation blocks.

use std::arch::x86_64::*;

use crate::activations::Q8KBlock;
use crate::packed::{GROUP_BYTES, PACK_ROWS, Q6_GROUP_BYTES};

/// Eight bytes at `p`, each twice, as sixteen i16 lanes: lane `2r` and `2r + 1` hold byte `r`.
///
/// # Safety
/// `p..p + 8` is readable.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn doubled(p: *const u8) -> __m256i {
    // SAFETY: the caller's.
    let m = unsafe { _mm_loadl_epi64(p.cast()) };
    _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m))
}

/// The four activation bytes at `p` in every 32-bit lane.
///
/// # Safety
/// `p..p + 4` is readable.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn broadcast(p: *const i8) -> __m256i {
    // SAFETY: the caller's.
    _mm256_set1_epi32(unsafe { p.cast::<i32>().read_unaligned() })
}

/// One group of eight packed Q4_K rows against `P` positions: `out[k][r]` is row `r` · `xs[k]`.
///
/// # Safety
/// See the module.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_k_group<const P: usize>(
    group: &[u8],
    xs: [&[Q8KBlock]; P],
) -> [[f32; PACK_ROWS]; P] {
    let low = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); P];
    for (b, packed) in group.chunks_exact(GROUP_BYTES).enumerate() {
        let p = packed.as_ptr();
        let mut scaled = [_mm256_setzero_si256(); P];
        // SAFETY: the super-block is `GROUP_BYTES` long and every `xs[k]` holds block `b` (the
        // contract): every load is inside.
        unsafe {
            for j in 0..8 {
                let mut dots = [_mm256_setzero_si256(); P];
                for k in 0..4 {
                    let q = _mm256_loadu_si256(p.add(160 + 128 * j + 32 * k).cast());
                    let w0 = _mm256_and_si256(q, low);
                    let w1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
                    for (dots, x) in dots.iter_mut().zip(xs) {
                        let x = x.get_unchecked(b).q.as_ptr().add(32 * j + 4 * k);
                        let lo = _mm256_maddubs_epi16(w0, broadcast(x));
                        let hi = _mm256_maddubs_epi16(w1, broadcast(x.add(16)));
                        *dots = _mm256_add_epi16(*dots, _mm256_add_epi16(lo, hi));
                    }
                }
                let scales = doubled(p.add(32 + 8 * j));
                for (scaled, dots) in scaled.iter_mut().zip(dots) {
                    *scaled = _mm256_add_epi32(*scaled, _mm256_madd_epi16(dots, scales));
                }
            }
            let close = Q4KClose::at(p);
            for k in 0..P {
                acc[k] = close.add(xs[k].get_unchecked(b), scaled[k], acc[k]);
            }
        }
    }
    acc.map(|acc| stored(acc))
}

/// The eight rows' dot products in lanes, as floats.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn stored(acc: __m256) -> [f32; PACK_ROWS] {
    let mut out = [0.0f32; PACK_ROWS];
    // SAFETY: `out` is eight floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), acc) };
    out
}

/// A packed Q4_K super-block's float steps, after its integer sums: its eight rows' `d`,
/// `dmin` and minimums. Shared by every kernel of the layout, so they all give the same bits.
pub(crate) struct Q4KClose {
    d: __m256,
    dmin: __m256,
    mins: [__m256i; 4],
}

impl Q4KClose {
    /// # Safety
    /// `p` is a packed Q4_K super-block (`GROUP_BYTES` readable).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn at(p: *const u8) -> Self {
        // SAFETY: the caller's.
        unsafe {
            Self {
                d: _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
                dmin: _mm256_cvtph_ps(_mm_loadu_si128(p.add(16).cast())),
                mins: [0, 1, 2, 3].map(|pair| {
                    _mm256_cvtepu8_epi16(_mm_loadu_si128(p.add(96 + 16 * pair).cast()))
                }),
            }
        }
    }

    /// `acc` plus the super-block's share for position `x`, whose scaled integer sums per row
    /// are `scaled`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn add(&self, x: &Q8KBlock, scaled: __m256i, acc: __m256) -> __m256 {
        // Each 32-value sub-block's Σq: i32 element 0 holds sub-blocks 0 and 1, 1 holds 2 and
        // 3, 4 and 5 the rest.
        // SAFETY: `sums` is sixteen i16s.
        let sums = unsafe { _mm256_loadu_si256(x.sums.as_ptr().cast()) };
        let pairs = _mm256_hadd_epi16(sums, sums);
        let mut minimum = _mm256_setzero_si256();
        for (pair, at) in [0, 1, 4, 5].into_iter().enumerate() {
            let sums = _mm256_permutevar8x32_epi32(pairs, _mm256_set1_epi32(at));
            minimum = _mm256_add_epi32(minimum, _mm256_madd_epi16(self.mins[pair], sums));
        }
        let scale = _mm256_set1_ps(x.scale);
        let sum = _mm256_cvtepi32_ps(scaled);
        let acc = _mm256_fmadd_ps(_mm256_mul_ps(self.d, scale), sum, acc);
        let minimum = _mm256_cvtepi32_ps(minimum);
        _mm256_fnmadd_ps(_mm256_mul_ps(self.dmin, scale), minimum, acc)
    }
}

/// A packed Q6_K super-block's float step for one position: `acc` plus `d · scale` times the
/// integer sum, less the +32 the quants are stored with (`Σ s·(q − 32)·x = Σ s·q·x − 32 · Σ
/// s·Σx`, `offset` being `Σ s·Σx`). Shared by every kernel of the layout.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_k_close(
    d: __m256,
    x: &Q8KBlock,
    sum: __m256i,
    offset: __m256i,
    acc: __m256,
) -> __m256 {
    let sum = _mm256_sub_epi32(sum, _mm256_slli_epi32(offset, 5));
    let scale = _mm256_set1_ps(x.scale);
    _mm256_fmadd_ps(_mm256_mul_ps(d, scale), _mm256_cvtepi32_ps(sum), acc)
}

/// The top two bits of quant vector `k` (bits `2k..2k + 2` of each `qh` byte) at bits 4–5.
#[target_feature(enable = "avx2,fma,f16c")]
fn top_pair(qh: __m256i, k: usize) -> __m256i {
    let moved = match k {
        0 => _mm256_slli_epi16(qh, 4),
        1 => _mm256_slli_epi16(qh, 2),
        2 => qh,
        _ => _mm256_srli_epi16(qh, 2),
    };
    _mm256_and_si256(moved, _mm256_set1_epi8(0x30))
}

/// Quant vector `k`'s two halves of a sub-block, from its low bits at `p` and its `qh`.
///
/// # Safety
/// `p..p + 32` is readable.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_weights(p: *const u8, qh0: __m256i, qh1: __m256i, k: usize) -> (__m256i, __m256i) {
    let low = _mm256_set1_epi8(0x0f);
    // SAFETY: the caller's.
    let q = unsafe { _mm256_loadu_si256(p.cast()) };
    let w0 = _mm256_or_si256(_mm256_and_si256(q, low), top_pair(qh0, k));
    let w1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
    (w0, _mm256_or_si256(w1, top_pair(qh1, k)))
}

/// One group of eight packed Q6_K rows against `P` positions: `out[k][r]` is row `r` · `xs[k]`.
///
/// # Safety
/// See the module.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q6_k_group<const P: usize>(
    group: &[u8],
    xs: [&[Q8KBlock]; P],
) -> [[f32; PACK_ROWS]; P] {
    // Each row's first (second) 16-bit scale in both of its 16-bit lanes.
    let first = _mm256_setr_epi8(
        0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12,
        13, 12, 13,
    );
    let second = _mm256_add_epi8(first, _mm256_set1_epi8(2));
    let mut acc = [_mm256_setzero_ps(); P];
    for (b, packed) in group.chunks_exact(Q6_GROUP_BYTES).enumerate() {
        let p = packed.as_ptr();
        let mut sum = [_mm256_setzero_si256(); P];
        let mut offset = [_mm256_setzero_si256(); P];
        // SAFETY: the super-block is `Q6_GROUP_BYTES` long and every `xs[k]` holds block `b`
        // (the contract): every load is inside.
        unsafe {
            for j in 0..8 {
                let sub = p.add(16 + 208 * j);
                let scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(sub.cast()));
                let (s0, s1) = (
                    _mm256_shuffle_epi8(scales, first),
                    _mm256_shuffle_epi8(scales, second),
                );
                let qh0 = _mm256_loadu_si256(sub.add(16).cast());
                let qh1 = _mm256_loadu_si256(sub.add(48).cast());
                for pair in 0..2 {
                    let w = [
                        q6_weights(sub.add(80 + 64 * pair), qh0, qh1, 2 * pair),
                        q6_weights(sub.add(112 + 64 * pair), qh0, qh1, 2 * pair + 1),
                    ];
                    for (sum, x) in sum.iter_mut().zip(xs) {
                        // Two vectors' products per 16-bit lane: at most 2 · 2 · 63 · 127.
                        let x = x.get_unchecked(b).q.as_ptr().add(32 * j + 8 * pair);
                        let lo = _mm256_add_epi16(
                            _mm256_maddubs_epi16(w[0].0, broadcast(x)),
                            _mm256_maddubs_epi16(w[1].0, broadcast(x.add(4))),
                        );
                        let hi = _mm256_add_epi16(
                            _mm256_maddubs_epi16(w[0].1, broadcast(x.add(16))),
                            _mm256_maddubs_epi16(w[1].1, broadcast(x.add(20))),
                        );
                        let scaled =
                            _mm256_add_epi32(_mm256_madd_epi16(lo, s0), _mm256_madd_epi16(hi, s1));
                        *sum = _mm256_add_epi32(*sum, scaled);
                    }
                }
                for (offset, x) in offset.iter_mut().zip(xs) {
                    // The sub-block's two 16-value sums against the rows' two scales.
                    let sums = x.get_unchecked(b).sums.as_ptr().add(2 * j);
                    let sums = _mm256_set1_epi32(sums.cast::<i32>().read_unaligned());
                    *offset = _mm256_add_epi32(*offset, _mm256_madd_epi16(scales, sums));
                }
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(p.cast()));
            for k in 0..P {
                acc[k] = q6_k_close(d, xs[k].get_unchecked(b), sum[k], offset[k], acc[k]);
            }
        }
    }
    acc.map(|acc| stored(acc))
}
