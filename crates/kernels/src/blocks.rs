//! The GGUF block layouts, byte for byte as ggml writes them, and their scalar dequantization.
//! Everything else reads blocks through these offsets.

/// Values per block of the legacy formats (Q4_0, Q4_1, Q8_0).
pub const BLOCK: usize = 32;
/// Values per super-block of the k-quants (Q4_K, Q5_K, Q6_K).
pub const SUPER: usize = 256;

/// Q4_0: f16 scale `d`, 16 bytes of nibbles; `x = d·(q − 8)`. Value `j < 16` is the low nibble
/// of byte `j`, value `j + 16` its high nibble.
pub const Q4_0_BYTES: usize = 2 + 16;
/// Q4_1: f16 scale `d`, f16 minimum `m`, 16 bytes of nibbles (as Q4_0); `x = d·q + m`.
pub const Q4_1_BYTES: usize = 4 + 16;
/// Q8_0: f16 scale `d`, 32 signed bytes; `x = d·q`.
pub const Q8_0_BYTES: usize = 2 + 32;
/// Q4_K: f16 `d`, f16 `dmin`, 12 bytes of packed 6-bit scales and minimums for the eight
/// 32-value sub-blocks, 128 bytes of nibbles; `x = d·sc·q − dmin·m`.
pub const Q4_K_BYTES: usize = 4 + 12 + 128;
/// Q5_K: as Q4_K plus 32 bytes holding each value's fifth bit (`qh`) before the nibbles.
pub const Q5_K_BYTES: usize = 4 + 12 + 32 + 128;
/// Q6_K: 128 bytes of low nibbles (`ql`), 64 bytes of high 2-bit pairs (`qh`), 16 signed 8-bit
/// scales (one per 16 values), f16 `d` last; `x = d·sc·(q − 32)`.
pub const Q6_K_BYTES: usize = 128 + 64 + 16 + 2;

/// IEEE half precision to single, exactly (subnormals, infinities and NaN included).
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits & 0x8000) << 16;
    let exponent = u32::from(bits >> 10) & 0x1f;
    let mantissa = u32::from(bits & 0x03ff);
    let magnitude = match (exponent, mantissa) {
        (0, 0) => 0,
        // Subnormal: mantissa · 2^-24, exact in f32.
        (0, m) => (m as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        (0x1f, m) => 0x7f80_0000 | (m << 13),
        (e, m) => ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// The f16 at `block[at..at + 2]` (little-endian).
#[inline]
pub fn f16_at(block: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([block[at], block[at + 1]]))
}

/// The eight 6-bit scales and eight 6-bit minimums of a Q4_K/Q5_K super-block from its 12
/// packed bytes: sub-blocks 0–3 keep theirs in the low six bits of bytes 0–3 (scales) and
/// 4–7 (minimums); sub-blocks 4–7 take their low four bits from bytes 8–11 (scale low nibble,
/// minimum high nibble) and their top two bits from the spare top bits of bytes 0–3 / 4–7.
#[inline]
pub fn k_scales(packed: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut scales = [0u8; 8];
    let mut mins = [0u8; 8];
    for j in 0..4 {
        scales[j] = packed[j] & 63;
        mins[j] = packed[j + 4] & 63;
    }
    for j in 4..8 {
        scales[j] = (packed[j + 4] & 0x0f) | ((packed[j - 4] >> 6) << 4);
        mins[j] = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
    }
    (scales, mins)
}

/// Value `i` (0..256) of a Q4_K super-block: its quant (0..16) and sub-block (0..8).
#[inline]
pub fn q4_k_quant(block: &[u8], i: usize) -> (u8, usize) {
    let (chunk, within) = (i / 64, i % 64);
    let byte = block[16 + 32 * chunk + within % 32];
    let q = if within < 32 { byte & 0x0f } else { byte >> 4 };
    (q, i / 32)
}

/// Value `i` (0..256) of a Q5_K super-block: its quant (0..32) and sub-block (0..8).
#[inline]
pub fn q5_k_quant(block: &[u8], i: usize) -> (u8, usize) {
    let (chunk, within) = (i / 64, i % 64);
    let byte = block[48 + 32 * chunk + within % 32];
    let low = if within < 32 { byte & 0x0f } else { byte >> 4 };
    let high = (block[16 + within % 32] >> (i / 32)) & 1;
    (low | (high << 4), i / 32)
}

/// Value `i` (0..256) of a Q6_K super-block: its quant (0..64, before the −32) and 16-value group.
#[inline]
pub fn q6_k_quant(block: &[u8], i: usize) -> (u8, usize) {
    let (half, within) = (i / 128, i % 128);
    let (quarter, l) = (within / 32, within % 32);
    let ql = block[64 * half + l + 32 * (quarter & 1)];
    let low = if quarter < 2 { ql & 0x0f } else { ql >> 4 };
    let high = (block[128 + 32 * half + l] >> (2 * quarter)) & 3;
    (low | (high << 4), i / 16)
}

/// Dequantizes one block of `format` into `out` (the block's value count long).
pub fn dequantize_block(format: crate::Format, block: &[u8], out: &mut [f32]) {
    use crate::Format;
    match format {
        Format::Q4_0 => {
            let d = f16_at(block, 0);
            let (low, high) = out.split_at_mut(16);
            for ((q, lo), hi) in block[2..].iter().zip(low).zip(high) {
                *lo = d * (f32::from(q & 0x0f) - 8.0);
                *hi = d * (f32::from(q >> 4) - 8.0);
            }
        }
        Format::Q4_1 => {
            let (d, m) = (f16_at(block, 0), f16_at(block, 2));
            let (low, high) = out.split_at_mut(16);
            for ((q, lo), hi) in block[4..].iter().zip(low).zip(high) {
                *lo = d * f32::from(q & 0x0f) + m;
                *hi = d * f32::from(q >> 4) + m;
            }
        }
        Format::Q8_0 => {
            let d = f16_at(block, 0);
            for (q, value) in block[2..].iter().zip(out) {
                *value = d * f32::from(*q as i8);
            }
        }
        Format::Q4K | Format::Q5K => {
            let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
            let (scales, mins) = k_scales(&block[4..16]);
            for (i, value) in out.iter_mut().enumerate() {
                let (q, sub) = if format == Format::Q4K {
                    q4_k_quant(block, i)
                } else {
                    q5_k_quant(block, i)
                };
                *value = d * f32::from(scales[sub]) * f32::from(q) - dmin * f32::from(mins[sub]);
            }
        }
        Format::Q6K => {
            let d = f16_at(block, 208);
            for (i, value) in out.iter_mut().enumerate() {
                let (q, group) = q6_k_quant(block, i);
                let scale = f32::from(block[192 + group] as i8);
                *value = d * scale * (f32::from(q) - 32.0);
            }
        }
    }
}
