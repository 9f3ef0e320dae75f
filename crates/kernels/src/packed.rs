//! Q4_K and Q6_K rows repacked at load into groups of [`PACK_ROWS`] interleaved rows, so one pass reads
//! eight rows' blocks from contiguous memory with one row per 32-bit lane. A 32-value sub-block
//! of eight rows is then four 32-byte vectors (each row's four values per lane, in nibbles): its
//! eight byte products add up in 16 bits before one scale multiply, where the row layout needs
//! a multiply per 32 values. A prompt's product ([`dot_packed`] over several positions) and
//! decode's (one position) run the same code per position, so they agree bit for bit.
//!
//! One Q4_K group's super-block, [`GROUP_BYTES`] (8 · 148, against 8 · 144 as stored):
//!
//! | bytes | holds |
//! |---|---|
//! | 0..16 | the eight rows' f16 `d` |
//! | 16..32 | their f16 `dmin` |
//! | 32..96 | scales, `[sub-block j][row r]`, 6 bits each |
//! | 96..160 | minimums, `[pair p][row r][j = 2p, 2p + 1]` |
//! | 160..1184 | quants, `[sub-block j][k < 4][row r][t < 4]`: low nibble value `32j + 4k + t`, high nibble value `32j + 16 + 4k + t` |
//!
//!
//! One Q6_K group's super-block, [`Q6_GROUP_BYTES`] (8 · 210, as stored): the same nibble
//! vectors hold the quants' low four bits, and a byte of `qh` holds the top two bits of the
//! four values of one lane and half of sub-block `j` (`k` in bits `2k..2k + 2`), so each of
//! the nibble vectors' bytes has its two `qh` bytes at the same lane. Products of 16 values
//! reach 4 · 2 · 63 · 127 > i16, so the kernel scales each pair of vectors.
//!
//! | bytes | holds |
//! |---|---|
//! | 0..16 | the eight rows' f16 `d` |
//! | then per sub-block `j`, 208 each: |
//! | +0..16 | scales, `[row r][16-value half h]`, signed |
//! | +16..80 | top two bits, `[half h][row r][t < 4]` |
//! | +80..208 | low four bits, as Q4_K's quants of one sub-block |
//!
//! Per row and position the Q4_K sum is `Σ_b s_b · (d · I_b − dmin · M_b)` with integers `I_b`
//! (scaled quant sums) and `M_b` (minimums times activation sums), accumulated in f32 with one
//! fused multiply-add each, in super-block order: the portable code here does exactly what the
//! AVX2 lanes do (Q6_K: `Σ_b s_b · d · I_b`, its offset of 32 inside `I_b`). It differs from the row kernels' [`crate::dot`] in float order only (those
//! split each super-block over eight lanes and add them at the end).

use crate::Format;
use crate::activations::Q8KBlock;
use crate::blocks::{f16_at, k_scales};

/// Rows per interleaved group.
pub const PACK_ROWS: usize = 8;
/// Bytes of one super-block of a group of [`PACK_ROWS`] Q4_K rows.
pub const GROUP_BYTES: usize = 160 + 128 * 8;
/// Bytes of one super-block of a group of [`PACK_ROWS`] Q6_K rows.
pub const Q6_GROUP_BYTES: usize = 16 + 128 + 128 * 8 + 64 * 8;

/// Sub-block `j`'s scales, top bits and low bits follow each other from `16 + Q6_SUB · j`, so a
/// pass over a super-block reads forward (three interleaved regions left a decode from memory
/// at half the bandwidth: the prefetchers did not follow).
const Q6_SUB: usize = 16 + 64 + 128;
const Q6_SCALES: usize = 16;
const Q6_HIGH: usize = 32;
const Q6_LOW: usize = 96;

/// Bytes of one super-block of a packed group of `format`.
pub(crate) fn group_bytes(format: Format) -> usize {
    match format {
        Format::Q6K => Q6_GROUP_BYTES,
        _ => GROUP_BYTES,
    }
}

/// Value `32j + 16h + 4k + t` of a sub-block's packed vectors: the byte and nibble it sits at.
fn packed_at(i: usize) -> (usize, usize, usize, bool) {
    let (j, within) = (i / 32, i % 32);
    (j, within % 16 / 4, within % 4, within >= 16)
}

const D: usize = 0;
const DMIN: usize = 16;
const SCALES: usize = 32;
const MINS: usize = 96;
const QUANTS: usize = 160;

/// Whether [`crate::pack`] takes `format` (and `rows` of it).
pub fn packable(format: Format, rows: usize) -> bool {
    matches!(format, Format::Q4K | Format::Q6K) && rows.is_multiple_of(PACK_ROWS)
}

/// `rows` (consecutive rows of `format`, `row_bytes` each) in the packed layout, group after
/// group, into `out` (exactly as long).
pub(crate) fn pack(format: Format, rows: &[u8], row_bytes: usize, out: &mut [u8]) {
    let (block_bytes, group_bytes) = (format.block_bytes(), group_bytes(format));
    let blocks = row_bytes / block_bytes;
    for (g, group) in out.chunks_exact_mut(blocks * group_bytes).enumerate() {
        for (b, packed) in group.chunks_exact_mut(group_bytes).enumerate() {
            for r in 0..PACK_ROWS {
                let row = g * PACK_ROWS + r;
                let block = &rows[row * row_bytes + b * block_bytes..][..block_bytes];
                if format == Format::Q6K {
                    pack_q6_block(block, r, packed);
                } else {
                    pack_block(block, r, packed);
                }
            }
        }
    }
}

/// Row `r`'s Q6_K super-block `block` into its places in the group's `packed`.
fn pack_q6_block(block: &[u8], r: usize, packed: &mut [u8]) {
    packed[D + 2 * r..][..2].copy_from_slice(&block[208..210]);
    for g in 0..16 {
        packed[Q6_SCALES + Q6_SUB * (g / 2) + 2 * r + g % 2] = block[192 + g];
    }
    // GGUF's quants in order first (see `q6_k_quant`), then each into its place.
    let mut quants = [0u8; 256];
    for (half, quants) in quants.chunks_exact_mut(128).enumerate() {
        let (ql, qh) = (&block[64 * half..][..64], &block[128 + 32 * half..][..32]);
        for l in 0..32 {
            quants[l] = (ql[l] & 0x0f) | ((qh[l] & 3) << 4);
            quants[32 + l] = (ql[32 + l] & 0x0f) | (((qh[l] >> 2) & 3) << 4);
            quants[64 + l] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            quants[96 + l] = (ql[32 + l] >> 4) | ((qh[l] >> 6) << 4);
        }
    }
    for (i, &q) in quants.iter().enumerate() {
        let (j, k, t, high) = packed_at(i);
        packed[Q6_LOW + Q6_SUB * j + 32 * k + 4 * r + t] |= (q & 0x0f) << (4 * usize::from(high));
        packed[Q6_HIGH + Q6_SUB * j + 32 * usize::from(high) + 4 * r + t] |= (q >> 4) << (2 * k);
    }
}

/// Row `r` of a group's Q6_K super-block back in GGUF's bytes (`out` is one block long).
fn unpack_q6_block(packed: &[u8], r: usize, out: &mut [u8]) {
    out.fill(0);
    out[208..210].copy_from_slice(&packed[D + 2 * r..][..2]);
    for g in 0..16 {
        out[192 + g] = packed[Q6_SCALES + Q6_SUB * (g / 2) + 2 * r + g % 2];
    }
    for i in 0..256 {
        let (j, k, t, high) = packed_at(i);
        let low =
            packed[Q6_LOW + Q6_SUB * j + 32 * k + 4 * r + t] >> (4 * usize::from(high)) & 0x0f;
        let top = packed[Q6_HIGH + Q6_SUB * j + 32 * usize::from(high) + 4 * r + t] >> (2 * k) & 3;
        // GGUF's places (see `q6_k_quant`).
        let (half, within) = (i / 128, i % 128);
        let (quarter, l) = (within / 32, within % 32);
        out[64 * half + l + 32 * (quarter & 1)] |= low << (4 * (quarter / 2));
        out[128 + 32 * half + l] |= top << (2 * quarter);
    }
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

/// Row `r` of a group's super-block back in GGUF's bytes (`out` is one block long).
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
pub(crate) fn unpack_row(format: Format, groups: &[u8], blocks: usize, row: usize, out: &mut [u8]) {
    let size = group_bytes(format) * blocks;
    let group = &groups[row / PACK_ROWS * size..][..size];
    let (r, block_bytes) = (row % PACK_ROWS, format.block_bytes());
    for (packed, out) in group
        .chunks_exact(group_bytes(format))
        .zip(out.chunks_exact_mut(block_bytes))
    {
        if format == Format::Q6K {
            unpack_q6_block(packed, r, out);
        } else {
            unpack_block(packed, r, out);
        }
    }
}

/// One Q6_K group against one position, as the AVX2 kernel computes it.
pub(crate) fn q6_k_group(group: &[u8], x: &[Q8KBlock]) -> [f32; PACK_ROWS] {
    let mut acc = [0.0f32; PACK_ROWS];
    for (packed, x) in group.chunks_exact(Q6_GROUP_BYTES).zip(x) {
        for (r, acc) in acc.iter_mut().enumerate() {
            let mut sum = 0i32;
            for i in 0..256 {
                let (j, k, t, high) = packed_at(i);
                let h = usize::from(high);
                let low = packed[Q6_LOW + Q6_SUB * j + 32 * k + 4 * r + t] >> (4 * h) & 0x0f;
                let top = packed[Q6_HIGH + Q6_SUB * j + 32 * h + 4 * r + t] >> (2 * k) & 3;
                let scale = packed[Q6_SCALES + Q6_SUB * j + 2 * r + h] as i8;
                sum += i32::from(scale) * i32::from(low | (top << 4)) * i32::from(x.q[i]);
            }
            for g in 0..16 {
                let scale = packed[Q6_SCALES + Q6_SUB * (g / 2) + 2 * r + g % 2] as i8;
                sum -= 32 * i32::from(scale) * i32::from(x.sums[g]);
            }
            let d = f16_at(packed, D + 2 * r) * x.scale;
            *acc = d.mul_add(sum as f32, *acc);
        }
    }
    acc
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
