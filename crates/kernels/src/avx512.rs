//! AVX-512 kernels for the formats read against f32 activations (Q4_1, Q8_0), where the work
//! is converting weights to floats and multiplying them: sixteen lanes do a block in half the
//! instructions of eight. The integer kernels stay AVX2's.
//!
//! # Safety (every `pub unsafe fn`)
//! The CPU has AVX-512F besides AVX2, FMA and F16C, and `row` holds exactly `x.len() / 32`
//! blocks of the format.

use std::arch::x86_64::*;

use crate::blocks::{Q4_1_BYTES, Q8_0_BYTES};

/// The f16 at `p` as f32.
///
/// # Safety
/// `p..p + 2` is readable.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn half_at(p: *const u8) -> f32 {
    // SAFETY: the caller's.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

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
