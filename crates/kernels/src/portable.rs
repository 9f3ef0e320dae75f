//! The reference integer kernels in plain Rust: what every SIMD path must reproduce (the same
//! integer sums, scaled in the same order up to float rounding), and the path on CPUs without one.
//! Callers have checked that the row holds as many blocks as the activations.

use crate::activations::{Q8Block, Q8KBlock};
use crate::blocks::{
    Q4_0_BYTES, Q4_1_BYTES, Q4_K_BYTES, Q5_K_BYTES, Q6_K_BYTES, Q8_0_BYTES, f16_at, k_scales,
};

/// `Σ nibble·q` over a Q4_0/Q4_1 block's 16 nibble bytes.
fn nibble_dot(qs: &[u8], x: &[i8; 32]) -> i32 {
    let (low, high) = x.split_at(16);
    qs.iter()
        .zip(low.iter().zip(high))
        .map(|(q, (&a, &b))| i32::from(q & 0x0f) * i32::from(a) + i32::from(q >> 4) * i32::from(b))
        .sum()
}

/// `Σ d·(q − 8)·x = d·(s·Σq·qx − 8·Σx)`.
pub fn q4_0(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(Q4_0_BYTES)
        .zip(x)
        .map(|(block, x)| {
            let d = f16_at(block, 0);
            d * (x.scale * nibble_dot(&block[2..], &x.q) as f32 - 8.0 * x.sum)
        })
        .sum()
}

/// `Σ (d·q + m)·x = d·s·Σq·qx + m·Σx`.
pub fn q4_1(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(Q4_1_BYTES)
        .zip(x)
        .map(|(block, x)| {
            let (d, m) = (f16_at(block, 0), f16_at(block, 2));
            d * x.scale * nibble_dot(&block[4..], &x.q) as f32 + m * x.sum
        })
        .sum()
}

/// `Σ d·q·x = d·s·Σq·qx`.
pub fn q8_0(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(Q8_0_BYTES)
        .zip(x)
        .map(|(block, x)| {
            let dot: i32 = block[2..]
                .iter()
                .zip(&x.q)
                .map(|(&w, &v)| i32::from(w as i8) * i32::from(v))
                .sum();
            f16_at(block, 0) * x.scale * dot as f32
        })
        .sum()
}

/// The shared tail of Q4_K and Q5_K: `s·(d·Σ sc_j·dot_j − dmin·Σ m_j·Σqx_j)` over sub-blocks.
fn k_total(block: &[u8], x: &Q8KBlock, dots: [i32; 8]) -> f32 {
    let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
    let (scales, mins) = k_scales(&block[4..16]);
    let mut scaled = 0i32;
    let mut minimum = 0i32;
    for j in 0..8 {
        scaled += i32::from(scales[j]) * dots[j];
        let sums = i32::from(x.sums[2 * j]) + i32::from(x.sums[2 * j + 1]);
        minimum += i32::from(mins[j]) * sums;
    }
    x.scale * (d * scaled as f32 - dmin * minimum as f32)
}

pub fn q4_k(row: &[u8], x: &[Q8KBlock]) -> f32 {
    row.chunks_exact(Q4_K_BYTES)
        .zip(x)
        .map(|(block, x)| {
            let mut dots = [0i32; 8];
            for chunk in 0..4 {
                let qs = &block[16 + 32 * chunk..][..32];
                let xs = &x.q[64 * chunk..][..64];
                for (l, &q) in qs.iter().enumerate() {
                    dots[2 * chunk] += i32::from(q & 0x0f) * i32::from(xs[l]);
                    dots[2 * chunk + 1] += i32::from(q >> 4) * i32::from(xs[32 + l]);
                }
            }
            k_total(block, x, dots)
        })
        .sum()
}

pub fn q5_k(row: &[u8], x: &[Q8KBlock]) -> f32 {
    row.chunks_exact(Q5_K_BYTES)
        .zip(x)
        .map(|(block, x)| {
            let qh = &block[16..48];
            let mut dots = [0i32; 8];
            for chunk in 0..4 {
                let qs = &block[48 + 32 * chunk..][..32];
                let xs = &x.q[64 * chunk..][..64];
                for (l, &q) in qs.iter().enumerate() {
                    let low = (q & 0x0f) | (((qh[l] >> (2 * chunk)) & 1) << 4);
                    let high = (q >> 4) | (((qh[l] >> (2 * chunk + 1)) & 1) << 4);
                    dots[2 * chunk] += i32::from(low) * i32::from(xs[l]);
                    dots[2 * chunk + 1] += i32::from(high) * i32::from(xs[32 + l]);
                }
            }
            k_total(block, x, dots)
        })
        .sum()
}

/// `Σ d·sc_g·(q − 32)·x = d·s·Σ_g sc_g·(Σq·qx − 32·Σqx)` over 16-value groups.
pub fn q6_k(row: &[u8], x: &[Q8KBlock]) -> f32 {
    row.chunks_exact(Q6_K_BYTES)
        .zip(x)
        .map(|(block, x)| {
            let mut dots = [0i32; 16];
            for (i, (dot, xs)) in dots.iter_mut().zip(x.q.chunks_exact(16)).enumerate() {
                for (l, &v) in xs.iter().enumerate() {
                    let (q, _) = crate::blocks::q6_k_quant(block, 16 * i + l);
                    *dot += i32::from(q) * i32::from(v);
                }
            }
            let mut total = 0i32;
            for (g, dot) in dots.iter().enumerate() {
                let scale = i32::from(block[192 + g] as i8);
                total += scale * (dot - 32 * i32::from(x.sums[g]));
            }
            f16_at(block, 208) * x.scale * total as f32
        })
        .sum()
}

/// Q4_1 against f32 activations (no activation rounding): `Σ d·Σq·x + m·Σx`, `sums` holding
/// each block's `Σx`.
pub fn q4_1_f32(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    row.chunks_exact(Q4_1_BYTES)
        .zip(x.chunks_exact(32))
        .zip(sums)
        .map(|((block, xs), &sum)| {
            let (low, high) = xs.split_at(16);
            let dot: f32 = block[4..]
                .iter()
                .zip(low.iter().zip(high))
                .map(|(q, (a, b))| f32::from(q & 0x0f) * a + f32::from(q >> 4) * b)
                .sum();
            f16_at(block, 0) * dot + f16_at(block, 2) * sum
        })
        .sum()
}

/// Q8_0 against f32 activations: `Σ d·Σq·x`.
pub fn q8_0_f32(row: &[u8], x: &[f32]) -> f32 {
    row.chunks_exact(Q8_0_BYTES)
        .zip(x.chunks_exact(32))
        .map(|(block, xs)| {
            let dot: f32 = block[2..]
                .iter()
                .zip(xs)
                .map(|(q, x)| f32::from(*q as i8) * x)
                .sum();
            f16_at(block, 0) * dot
        })
        .sum()
}
