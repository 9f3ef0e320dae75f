//! Q4_K rows repacked at load into groups of [`PACK_ROWS`] interleaved rows, so one pass reads
//! eight rows' blocks from contiguous memory with one row per 32-bit lane. A 32-value sub-block
//! of eight rows is then four 32-byte vectors (each row's four values per lane, in nibbles): its
//! eight byte products add up in 16 bits before one scale multiply, where the row layout needs
//! a multiply per 32 values. A prompt's product ([`dot_packed`] over several positions) and
//! decode's (one position) run the same code per position, so they agree bit for bit.
//!
//! One group's super-block, [`GROUP_BYTES`] (8 · 148, against 8 · 144 as stored):
//!
//! | bytes | holds |
//! |---|---|
//! | 0..16 | the eight rows' f16 `d` |
//! | 16..32 | their f16 `dmin` |
//! | 32..96 | scales, `[sub-block j][row r]`, 6 bits each |
//! | 96..160 | minimums, `[pair p][row r][j = 2p, 2p + 1]` |
//! | 160..1184 | quants, `[sub-block j][k < 4][row r][t < 4]`: low nibble value `32j + 4k + t`, high nibble value `32j + 16 + 4k + t` |
//!
//! Per row and position the sum is `Σ_b s_b · (d · I_b − dmin · M_b)` with integers `I_b`
//! (scaled quant sums) and `M_b` (minimums times activation sums), accumulated in f32 with one
//! fused multiply-add each, in super-block order: the portable code here does exactly what the
//! AVX2 lanes do. It differs from the row kernels' [`crate::dot`] in float order only (those
//! split each super-block over eight lanes and add them at the end).

use crate::Format;
use crate::activations::Q8KBlock;
use crate::blocks::{Q4_K_BYTES, f16_at, k_scales};

/// Rows per interleaved group.
pub const PACK_ROWS: usize = 8;
/// Bytes of one super-block of a group of [`PACK_ROWS`] Q4_K rows.
pub const GROUP_BYTES: usize = 160 + 128 * 8;

const D: usize = 0;
const DMIN: usize = 16;
const SCALES: usize = 32;
const MINS: usize = 96;
const QUANTS: usize = 160;

/// Whether [`crate::pack`] takes `format` (and `rows` of it).
pub fn packable(format: Format, rows: usize) -> bool {
    format == Format::Q4K && rows.is_multiple_of(PACK_ROWS)
}

/// `rows` (consecutive Q4_K rows of `row_bytes`) in the packed layout, group after group.
pub(crate) fn pack(rows: &[u8], row_bytes: usize) -> Vec<u8> {
    let blocks = row_bytes / Q4_K_BYTES;
    let groups = rows.len() / row_bytes / PACK_ROWS;
    let mut out = vec![0u8; groups * blocks * GROUP_BYTES];
    for (g, group) in out.chunks_exact_mut(blocks * GROUP_BYTES).enumerate() {
        for (b, packed) in group.chunks_exact_mut(GROUP_BYTES).enumerate() {
            for r in 0..PACK_ROWS {
                let row = g * PACK_ROWS + r;
                let block = &rows[row * row_bytes + b * Q4_K_BYTES..][..Q4_K_BYTES];
                pack_block(block, r, packed);
            }
        }
    }
    out
}

/// Row `r`'s super-block `block` into its places in the group's `packed`.
fn pack_block(block: &[u8], r: usize, packed: &mut [u8]) {
    packed[D + 2 * r..][..2].copy_from_slice(&block[0..2]);
    packed[DMIN + 2 * r..][..2].copy_from_slice(&block[2..4]);
    let (scales, mins) = k_scales(&block[4..16]);
    for j in 0..8 {
        packed[SCALES + 8 * j + r] = scales[j];
        packed[MINS + 16 * (j / 2) + 2 * r + j % 2] = mins[j];
    }
    // Sub-block j is the low (j even) or high (j odd) nibbles of GGUF's bytes 32·(j/2)..+32.
    for j in 0..8 {
        let bytes = &block[16 + 32 * (j / 2)..][..32];
        let shift = 4 * (j % 2);
        for k in 0..4 {
            for t in 0..4 {
                let low = (bytes[4 * k + t] >> shift) & 0x0f;
                let high = (bytes[16 + 4 * k + t] >> shift) & 0x0f;
                packed[QUANTS + 128 * j + 32 * k + 4 * r + t] = low | (high << 4);
            }
        }
    }
}

/// Row `r` of a group's super-block back in GGUF's bytes (`out` is [`Q4_K_BYTES`] long).
fn unpack_block(packed: &[u8], r: usize, out: &mut [u8]) {
    out[0..2].copy_from_slice(&packed[D + 2 * r..][..2]);
    out[2..4].copy_from_slice(&packed[DMIN + 2 * r..][..2]);
    let scale = |j: usize| packed[SCALES + 8 * j + r];
    let min = |j: usize| packed[MINS + 16 * (j / 2) + 2 * r + j % 2];
    // The inverse of `k_scales`: every bit of the 12 bytes is one of these.
    for j in 0..4 {
        out[4 + j] = scale(j) | ((scale(j + 4) >> 4) << 6);
        out[8 + j] = min(j) | ((min(j + 4) >> 4) << 6);
        out[12 + j] = (scale(j + 4) & 0x0f) | ((min(j + 4) & 0x0f) << 4);
    }
    let quant = |i: usize| {
        let (j, within) = (i / 32, i % 32);
        let (k, t, high) = (within % 16 / 4, within % 4, within >= 16);
        let byte = packed[QUANTS + 128 * j + 32 * k + 4 * r + t];
        if high { byte >> 4 } else { byte & 0x0f }
    };
    for chunk in 0..4 {
        for l in 0..32 {
            out[16 + 32 * chunk + l] = quant(64 * chunk + l) | (quant(64 * chunk + 32 + l) << 4);
        }
    }
}

/// Row `row` of packed `groups` (`blocks` super-blocks per row) back in GGUF's bytes.
pub(crate) fn unpack_row(groups: &[u8], blocks: usize, row: usize, out: &mut [u8]) {
    let group = &groups[row / PACK_ROWS * blocks * GROUP_BYTES..][..blocks * GROUP_BYTES];
    for (packed, out) in group
        .chunks_exact(GROUP_BYTES)
        .zip(out.chunks_exact_mut(Q4_K_BYTES))
    {
        unpack_block(packed, row % PACK_ROWS, out);
    }
}

/// One group against one position: the eight rows' dots, as the AVX2 kernel computes them.
pub(crate) fn q4_k_group(group: &[u8], x: &[Q8KBlock]) -> [f32; PACK_ROWS] {
    let mut acc = [0.0f32; PACK_ROWS];
    for (packed, x) in group.chunks_exact(GROUP_BYTES).zip(x) {
        for (r, acc) in acc.iter_mut().enumerate() {
            let mut scaled = 0i32;
            let mut minimum = 0i32;
            for j in 0..8 {
                let mut dot = 0i32;
                for k in 0..4 {
                    for t in 0..4 {
                        let byte = packed[QUANTS + 128 * j + 32 * k + 4 * r + t];
                        let at = 32 * j + 4 * k + t;
                        dot += i32::from(byte & 0x0f) * i32::from(x.q[at]);
                        dot += i32::from(byte >> 4) * i32::from(x.q[at + 16]);
                    }
                }
                scaled += i32::from(packed[SCALES + 8 * j + r]) * dot;
                let sums = i32::from(x.sums[2 * j]) + i32::from(x.sums[2 * j + 1]);
                minimum += i32::from(packed[MINS + 16 * (j / 2) + 2 * r + j % 2]) * sums;
            }
            let d = f16_at(packed, D + 2 * r) * x.scale;
            let dmin = f16_at(packed, DMIN + 2 * r) * x.scale;
            *acc = d.mul_add(scaled as f32, *acc);
            *acc = (-dmin).mul_add(minimum as f32, *acc);
        }
    }
    acc
}
