//! AVX2 kernels (x86_64 with AVX2, FMA and F16C). Integer products 32 bytes at a time with
//! `maddubs` (unsigned weight bytes × signed activation bytes, pairs summed to i16; every format
//! here stays below i16's limit: 2·63·127 at most), then `madd` with the block's scale (or 1)
//! to i32. Each function's whole body sits inside its `#[target_feature]` function (helpers are
//! `#[target_feature]` too, so they inline): compiled outside, every intrinsic became a call.
//!
//! # Safety (every `pub unsafe fn`)
//! The CPU has AVX2, FMA and F16C, and `row` holds exactly `x.len()` blocks of the format.

use std::arch::x86_64::*;

use crate::activations::{Q8Block, Q8KBlock};
use crate::blocks::{
    Q4_0_BYTES, Q4_1_BYTES, Q4_K_BYTES, Q5_K_BYTES, Q6_K_BYTES, Q8_0_BYTES, k_scales,
};

#[target_feature(enable = "avx2,fma,f16c")]
fn half(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// The f16 at `p`.
///
/// # Safety
/// `p..p + 2` is readable.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn half_at(p: *const u8) -> f32 {
    // SAFETY: the caller's.
    half(unsafe { p.cast::<u16>().read_unaligned() })
}

#[target_feature(enable = "avx2,fma,f16c")]
fn sum_f32(v: __m256) -> f32 {
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
}

/// `Σ w·x` of 32 unsigned weight bytes and 32 signed activation bytes, as eight i32 lanes,
/// each pair-sum multiplied by `scales` (i16 lanes).
#[target_feature(enable = "avx2,fma,f16c")]
fn scaled_dot(w: __m256i, x: __m256i, scales: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), scales)
}

/// A legacy block's 16 nibble bytes at `p` as 32 unsigned bytes: low nibbles, then high.
///
/// # Safety
/// `p..p + 16` is readable.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: the caller's.
    let q = unsafe { _mm_loadu_si128(p.cast()) };
    let low = _mm_set1_epi8(0x0f);
    _mm256_set_m128i(
        _mm_and_si128(_mm_srli_epi16(q, 4), low),
        _mm_and_si128(q, low),
    )
}

/// Q4_0 against `P` positions at once: each block's nibbles are unpacked once for all of them.
///
/// # Safety
/// See the module; every `xs[k]` holds the row's blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_0<const P: usize>(row: &[u8], xs: [&[Q8Block]; P]) -> [f32; P] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); P];
    let mut offset = [0.0f32; P];
    for b in 0..row.len() / Q4_0_BYTES {
        // SAFETY: block `b` is inside `row` and every `xs[k]` (the contract).
        unsafe {
            let p = row.as_ptr().add(b * Q4_0_BYTES);
            let d = half_at(p);
            let w = nibbles(p.add(2));
            for k in 0..P {
                let x = xs[k].get_unchecked(b);
                let q = _mm256_loadu_si256(x.q.as_ptr().cast());
                let dot = _mm256_cvtepi32_ps(scaled_dot(w, q, ones));
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.scale), dot, acc[k]);
                offset[k] += d * x.sum;
            }
        }
    }
    let mut out = [0.0f32; P];
    for k in 0..P {
        out[k] = sum_f32(acc[k]) - 8.0 * offset[k];
    }
    out
}

/// # Safety
/// See the module.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_1(row: &[u8], x: &[Q8Block]) -> f32 {
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    let mut minimum = 0.0f32;
    for (b, x) in x.iter().enumerate() {
        // SAFETY: block `b` is inside `row` (the module's contract).
        unsafe {
            let p = row.as_ptr().add(b * Q4_1_BYTES);
            let (d, m) = (half_at(p), half_at(p.add(2)));
            let xs = _mm256_loadu_si256(x.q.as_ptr().cast());
            let dot = _mm256_cvtepi32_ps(scaled_dot(nibbles(p.add(4)), xs, ones));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * x.scale), dot, acc);
            minimum += m * x.sum;
        }
    }
    sum_f32(acc) + minimum
}

/// Q8_0 against `P` positions at once.
///
/// # Safety
/// See the module; every `xs[k]` holds the row's blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0<const P: usize>(row: &[u8], xs: [&[Q8Block]; P]) -> [f32; P] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); P];
    for b in 0..row.len() / Q8_0_BYTES {
        // SAFETY: block `b` is inside `row` and every `xs[k]` (the contract).
        unsafe {
            let p = row.as_ptr().add(b * Q8_0_BYTES);
            let w = _mm256_loadu_si256(p.add(2).cast());
            let magnitude = _mm256_abs_epi8(w);
            let d = half_at(p);
            for k in 0..P {
                let x = xs[k].get_unchecked(b);
                let q = _mm256_loadu_si256(x.q.as_ptr().cast());
                // Signed × signed as |w| × (x with w's sign): |−128| reads as 128 unsigned, exact.
                let dot = scaled_dot(magnitude, _mm256_sign_epi8(q, w), ones);
                acc[k] =
                    _mm256_fmadd_ps(_mm256_set1_ps(d * x.scale), _mm256_cvtepi32_ps(dot), acc[k]);
            }
        }
    }
    let mut out = [0.0f32; P];
    for k in 0..P {
        out[k] = sum_f32(acc[k]);
    }
    out
}

/// The eight sub-block minimums, each twice, as sixteen i16 lanes: `madd` with an
/// activation block's sixteen per-16 sums gives `Σ m_j · Σqx_j` in eight lanes.
#[target_feature(enable = "avx2,fma,f16c")]
fn minimums(mins: &[u8; 8]) -> __m256i {
    let m = _mm_set1_epi64x(i64::from_le_bytes(*mins));
    _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m))
}

/// Q4_K against `P` positions at once: each super-block's scales and nibbles are unpacked
/// once for all of them (a prompt's product; `P = 1` is decode).
///
/// # Safety
/// See the module; every `xs[k]` holds the row's super-blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_k<const P: usize>(row: &[u8], xs: [&[Q8KBlock]; P]) -> [f32; P] {
    // SAFETY: the caller's.
    unsafe { k_nibbles::<P, false>(row, xs) }
}

/// Q5_K against `P` positions at once.
///
/// # Safety
/// See the module; every `xs[k]` holds the row's super-blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5_k<const P: usize>(row: &[u8], xs: [&[Q8KBlock]; P]) -> [f32; P] {
    // SAFETY: the caller's.
    unsafe { k_nibbles::<P, true>(row, xs) }
}

/// Bit `k` of every byte of `qh`, as 16 (the fifth bit of a Q5_K quant).
#[target_feature(enable = "avx2,fma,f16c")]
fn fifth_bit(qh: __m256i, k: usize) -> __m256i {
    let shifted = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(k as i32));
    _mm256_slli_epi16(_mm256_and_si256(shifted, _mm256_set1_epi8(1)), 4)
}

/// Q4_K, or with `FIFTH` Q5_K: the same super-block of scales, minimums and nibbles, Q5_K's
/// with 32 bytes of fifth bits before the nibbles. The products stay in each position's float
/// lanes to the end: `scale · (d · Σ s·q·x − dmin · Σ m·Σx)`.
///
/// # Safety
/// See the module; every `xs[k]` holds the row's super-blocks.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k_nibbles<const P: usize, const FIFTH: bool>(
    row: &[u8],
    xs: [&[Q8KBlock]; P],
) -> [f32; P] {
    let (block_bytes, nibbles_at) = if FIFTH {
        (Q5_K_BYTES, 48)
    } else {
        (Q4_K_BYTES, 16)
    };
    let low = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); P];
    for (b, block) in row.chunks_exact(block_bytes).enumerate() {
        let (scales, mins) = k_scales(&block[4..16]);
        let mut sum = [_mm256_setzero_si256(); P];
        // SAFETY: the block is `block_bytes` long, every `xs[k]` holds block `b` (the
        // contract) and its `q` 256 bytes: every load is inside.
        unsafe {
            let p = block.as_ptr();
            let qh = if FIFTH {
                _mm256_loadu_si256(p.add(16).cast())
            } else {
                _mm256_setzero_si256()
            };
            for c in 0..4 {
                let q = _mm256_loadu_si256(p.add(nibbles_at + 32 * c).cast());
                let mut w0 = _mm256_and_si256(q, low);
                let mut w1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
                if FIFTH {
                    // Bit 2c of each qh byte is the low nibbles' fifth bit, 2c + 1 the high's.
                    w0 = _mm256_or_si256(w0, fifth_bit(qh, 2 * c));
                    w1 = _mm256_or_si256(w1, fifth_bit(qh, 2 * c + 1));
                }
                let s0 = _mm256_set1_epi16(i16::from(scales[2 * c]));
                let s1 = _mm256_set1_epi16(i16::from(scales[2 * c + 1]));
                for k in 0..P {
                    let x = xs[k].get_unchecked(b).q.as_ptr();
                    let x0 = _mm256_loadu_si256(x.add(64 * c).cast());
                    let x1 = _mm256_loadu_si256(x.add(64 * c + 32).cast());
                    sum[k] = _mm256_add_epi32(sum[k], scaled_dot(w0, x0, s0));
                    sum[k] = _mm256_add_epi32(sum[k], scaled_dot(w1, x1, s1));
                }
            }
            let (d, dmin) = (half_at(p), half_at(p.add(2)));
            let mins = minimums(&mins);
            for k in 0..P {
                let x = xs[k].get_unchecked(b);
                let minimum = _mm256_madd_epi16(mins, _mm256_loadu_si256(x.sums.as_ptr().cast()));
                let sum = _mm256_cvtepi32_ps(sum[k]);
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(x.scale * d), sum, acc[k]);
                let minimum = _mm256_cvtepi32_ps(minimum);
                acc[k] = _mm256_fnmadd_ps(_mm256_set1_ps(x.scale * dmin), minimum, acc[k]);
            }
        }
    }
    let mut out = [0.0f32; P];
    for k in 0..P {
        out[k] = sum_f32(acc[k]);
    }
    out
}

/// The low two bits of every byte of `bits`, shifted to bits 4–5 (a Q6_K quant's high pair).
#[target_feature(enable = "avx2,fma,f16c")]
fn high_pair(bits: __m256i) -> __m256i {
    _mm256_slli_epi16(_mm256_and_si256(bits, _mm256_set1_epi8(3)), 4)
}

/// Q6_K against `P` positions at once.
///
/// # Safety
/// See the module; every `xs[k]` holds the row's super-blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q6_k<const P: usize>(row: &[u8], xs: [&[Q8KBlock]; P]) -> [f32; P] {
    let low = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); P];
    for (b, block) in row.chunks_exact(Q6_K_BYTES).enumerate() {
        let scales = &block[192..208];
        let mut sum = [_mm256_setzero_si256(); P];
        // SAFETY: the block is `Q6_K_BYTES` long, every `xs[k]` holds block `b` (the contract)
        // and its `q` 256 bytes: every load is inside.
        unsafe {
            let p = block.as_ptr();
            let scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192).cast()));
            for half in 0..2 {
                let ql0 = _mm256_loadu_si256(p.add(64 * half).cast());
                let ql1 = _mm256_loadu_si256(p.add(64 * half + 32).cast());
                let qh = _mm256_loadu_si256(p.add(128 + 32 * half).cast());
                let quants = [
                    _mm256_or_si256(_mm256_and_si256(ql0, low), high_pair(qh)),
                    _mm256_or_si256(
                        _mm256_and_si256(ql1, low),
                        high_pair(_mm256_srli_epi16(qh, 2)),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql0, 4), low),
                        high_pair(_mm256_srli_epi16(qh, 4)),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql1, 4), low),
                        high_pair(_mm256_srli_epi16(qh, 6)),
                    ),
                ];
                for (r, w) in quants.into_iter().enumerate() {
                    let at = 128 * half + 32 * r;
                    let g = at / 16;
                    let s = _mm256_set_m128i(
                        _mm_set1_epi16(i16::from(scales[g + 1] as i8)),
                        _mm_set1_epi16(i16::from(scales[g] as i8)),
                    );
                    for k in 0..P {
                        let x = xs[k].get_unchecked(b).q.as_ptr();
                        let x = _mm256_loadu_si256(x.add(at).cast());
                        sum[k] = _mm256_add_epi32(sum[k], scaled_dot(w, x, s));
                    }
                }
            }
            let d = half_at(p.add(208));
            for k in 0..P {
                let x = xs[k].get_unchecked(b);
                // The quants are stored +32: `Σ s·(q − 32)·x = Σ s·q·x − 32 · Σ s·Σx`.
                let sums = _mm256_loadu_si256(x.sums.as_ptr().cast());
                let offset = _mm256_slli_epi32(_mm256_madd_epi16(scales16, sums), 5);
                let sum = _mm256_cvtepi32_ps(_mm256_sub_epi32(sum[k], offset));
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.scale), sum, acc[k]);
            }
        }
    }
    let mut out = [0.0f32; P];
    for k in 0..P {
        out[k] = sum_f32(acc[k]);
    }
    out
}

/// A block's 32 f32 activations.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_32(xs: *const f32) -> [__m256; 4] {
    // SAFETY: the caller's: `xs..xs + 32` is readable.
    unsafe { [0, 8, 16, 24].map(|at| _mm256_loadu_ps(xs.add(at))) }
}

/// `Σq·x` of one Q4_1 block at `p`, in eight lanes. Byte `j` holds weight `j` in its low nibble
/// and weight `j + 16` in its high one, so eight bytes widened to 32-bit lanes give eight low
/// weights (masked) and eight high ones (shifted), with no byte shuffles.
///
/// # Safety
/// `p..p + Q4_1_BYTES` is readable.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_block(p: *const u8, x: &[__m256; 4]) -> __m256 {
    let low_nibble = _mm256_set1_epi32(0x0f);
    // SAFETY: the caller's.
    let (first, second) = unsafe {
        (
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(4).cast())),
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(12).cast())),
        )
    };
    let w0 = _mm256_cvtepi32_ps(_mm256_and_si256(first, low_nibble));
    let w1 = _mm256_cvtepi32_ps(_mm256_and_si256(second, low_nibble));
    let w2 = _mm256_cvtepi32_ps(_mm256_srli_epi32(first, 4));
    let w3 = _mm256_cvtepi32_ps(_mm256_srli_epi32(second, 4));
    let a = _mm256_fmadd_ps(w1, x[1], _mm256_mul_ps(w0, x[0]));
    let b = _mm256_fmadd_ps(w3, x[3], _mm256_mul_ps(w2, x[2]));
    _mm256_add_ps(a, b)
}

/// `Σq·x` of one Q8_0 block at `p`, in eight lanes.
///
/// # Safety
/// `p..p + Q8_0_BYTES` is readable.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_block(p: *const u8, x: &[__m256; 4]) -> __m256 {
    // SAFETY: the caller's.
    let q = |at: usize| unsafe {
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p.add(2 + at).cast())))
    };
    let a = _mm256_fmadd_ps(q(8), x[1], _mm256_mul_ps(q(0), x[0]));
    let b = _mm256_fmadd_ps(q(24), x[3], _mm256_mul_ps(q(16), x[2]));
    _mm256_add_ps(a, b)
}

/// Q4_1 against f32 activations; `sums` holds each block's `Σx`.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `row` holds `x.len() / 32` blocks and `sums` as many sums.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_1_f32(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let blocks = x.len() / 32;
    let block = |b: usize| {
        // SAFETY: `b < blocks`, in bounds by the caller's contract.
        unsafe {
            let p = row.as_ptr().add(b * Q4_1_BYTES);
            let dot = q4_1_block(p, &load_32(x.as_ptr().add(b * 32)));
            (_mm256_set1_ps(half_at(p)), dot, half_at(p.add(2)) * sums[b])
        }
    };
    // Even and odd blocks in two chains (in registers, hence the unrolled pair), so a block's
    // multiply-adds need not wait for the last block's.
    let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let (mut even_minimum, mut odd_minimum) = (0.0_f32, 0.0_f32);
    let mut b = 0;
    while b + 2 <= blocks {
        let (d, dot, minimum) = block(b);
        even = _mm256_fmadd_ps(d, dot, even);
        even_minimum += minimum;
        let (d, dot, minimum) = block(b + 1);
        odd = _mm256_fmadd_ps(d, dot, odd);
        odd_minimum += minimum;
        b += 2;
    }
    if b < blocks {
        let (d, dot, minimum) = block(b);
        even = _mm256_fmadd_ps(d, dot, even);
        even_minimum += minimum;
    }
    sum_f32(_mm256_add_ps(even, odd)) + (even_minimum + odd_minimum)
}

/// Q8_0 against f32 activations.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `row` holds `x.len() / 32` blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0_f32(row: &[u8], x: &[f32]) -> f32 {
    let blocks = x.len() / 32;
    let block = |b: usize| {
        // SAFETY: `b < blocks`, in bounds by the caller's contract.
        unsafe {
            let p = row.as_ptr().add(b * Q8_0_BYTES);
            let dot = q8_0_block(p, &load_32(x.as_ptr().add(b * 32)));
            (_mm256_set1_ps(half_at(p)), dot)
        }
    };
    // Two chains, as in [`q4_1_f32`].
    let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut b = 0;
    while b + 2 <= blocks {
        let (d, dot) = block(b);
        even = _mm256_fmadd_ps(d, dot, even);
        let (d, dot) = block(b + 1);
        odd = _mm256_fmadd_ps(d, dot, odd);
        b += 2;
    }
    if b < blocks {
        let (d, dot) = block(b);
        even = _mm256_fmadd_ps(d, dot, even);
    }
    sum_f32(_mm256_add_ps(even, odd))
}
