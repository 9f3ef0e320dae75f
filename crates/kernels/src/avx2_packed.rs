//! The AVX2 kernel of the packed Q4_K layout (see `packed`): one row per 32-bit lane. Each
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
use crate::packed::{GROUP_BYTES, PACK_ROWS};

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
            let d = _mm256_cvtph_ps(_mm_loadu_si128(p.cast()));
            let dmin = _mm256_cvtph_ps(_mm_loadu_si128(p.add(16).cast()));
            let mins = [0, 1, 2, 3]
                .map(|pair| _mm256_cvtepu8_epi16(_mm_loadu_si128(p.add(96 + 16 * pair).cast())));
            for k in 0..P {
                let x = xs[k].get_unchecked(b);
                // Each 32-value sub-block's Σq: i32 element 0 holds sub-blocks 0 and 1, 1 holds
                // 2 and 3, 4 and 5 the rest.
                let sums = _mm256_loadu_si256(x.sums.as_ptr().cast());
                let pairs = _mm256_hadd_epi16(sums, sums);
                let mut minimum = _mm256_setzero_si256();
                for (pair, at) in [0, 1, 4, 5].into_iter().enumerate() {
                    let sums = _mm256_permutevar8x32_epi32(pairs, _mm256_set1_epi32(at));
                    minimum = _mm256_add_epi32(minimum, _mm256_madd_epi16(mins[pair], sums));
                }
                let scale = _mm256_set1_ps(x.scale);
                let sum = _mm256_cvtepi32_ps(scaled[k]);
                acc[k] = _mm256_fmadd_ps(_mm256_mul_ps(d, scale), sum, acc[k]);
                let minimum = _mm256_cvtepi32_ps(minimum);
                acc[k] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, scale), minimum, acc[k]);
            }
        }
    }
    let mut out = [[0.0f32; PACK_ROWS]; P];
    for (out, acc) in out.iter_mut().zip(acc) {
        // SAFETY: `out` is eight floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), acc) };
    }
    out
}
