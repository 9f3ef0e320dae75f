//! The activation vector quantized once per product to 8 bits, as llama.cpp does, so every
//! weight row is then an integer dot product. Legacy formats pair with 32-value blocks, the
//! k-quants with 256-value super-blocks carrying per-16 sums (for their minimums and offsets).
//!
//! Rounding: `q = round(x / s)` with `s = max|x| / 127` per block, so every value is off by at
//! most `s / 2`; the tests derive their bounds from that.

use crate::blocks::{BLOCK, SUPER};

/// 32 activations: `x ≈ scale · q`, and the exact `Σx` (a Q4_1 minimum or Q4_0 offset then
/// multiplies the true sum, not its rounded one).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Q8Block {
    pub scale: f32,
    pub sum: f32,
    pub q: [i8; BLOCK],
}

/// 256 activations: `x ≈ scale · q`, and `Σq` of each 16 values (what a k-quant's minimums
/// and Q6_K's offset of 32 multiply).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Q8KBlock {
    pub scale: f32,
    pub q: [i8; SUPER],
    pub sums: [i16; SUPER / 16],
}

/// Which blocking a weight format's dot product reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocking {
    /// [`Q8Block`]s of 32.
    Legacy,
    /// [`Q8KBlock`]s of 256.
    Super,
}

/// One activation vector, quantized for the formats of one [`Blocking`].
#[derive(Clone, Debug, PartialEq)]
pub enum Activations {
    Legacy(Vec<Q8Block>),
    Super(Vec<Q8KBlock>),
}

impl Activations {
    /// Quantizes `x` (a multiple of the blocking's size long, else `None`).
    pub fn quantize(blocking: Blocking, x: &[f32]) -> Option<Self> {
        let mut out = Self::empty(blocking);
        out.quantize_into(x).then_some(out)
    }

    /// No values yet; [`quantize_into`](Self::quantize_into) fills it.
    pub fn empty(blocking: Blocking) -> Self {
        match blocking {
            Blocking::Legacy => Self::Legacy(Vec::new()),
            Blocking::Super => Self::Super(Vec::new()),
        }
    }

    /// Re-quantizes `x` into this buffer (reusing its memory); false when `x`'s length is not
    /// a multiple of the blocking's size.
    pub fn quantize_into(&mut self, x: &[f32]) -> bool {
        match self {
            Self::Legacy(blocks) => {
                if !x.len().is_multiple_of(BLOCK) {
                    return false;
                }
                blocks.clear();
                blocks.extend(x.chunks_exact(BLOCK).map(quantize_block));
            }
            Self::Super(blocks) => {
                if !x.len().is_multiple_of(SUPER) {
                    return false;
                }
                blocks.clear();
                blocks.extend(x.chunks_exact(SUPER).map(quantize_super));
            }
        }
        true
    }

    pub fn blocking(&self) -> Blocking {
        match self {
            Self::Legacy(_) => Blocking::Legacy,
            Self::Super(_) => Blocking::Super,
        }
    }

    /// How many activations this holds.
    pub fn len(&self) -> usize {
        match self {
            Self::Legacy(blocks) => blocks.len() * BLOCK,
            Self::Super(blocks) => blocks.len() * SUPER,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as the kernels see them, `scale · q`.
    pub fn values(&self) -> Vec<f32> {
        match self {
            Self::Legacy(blocks) => blocks
                .iter()
                .flat_map(|b| b.q.map(|q| b.scale * f32::from(q)))
                .collect(),
            Self::Super(blocks) => blocks
                .iter()
                .flat_map(|b| b.q.map(|q| b.scale * f32::from(q)))
                .collect(),
        }
    }
}

/// `s = max|x| / 127` and `q = round(x / s)`, all zero for an all-zero block.
fn quantize_values(x: &[f32], q: &mut [i8]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = max / 127.0;
    let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        // The clamp only guards the last ulp of `max · (127 / max)`.
        *q = round_half_away(v * inverse).clamp(-127, 127) as i8;
    }
    scale
}

/// `v.round() as i32` clamped to ±128 (NaN gives 0, as `as` does), without the libm call
/// `round` is on x86_64 (5% of a prompt's time): the truncation and its remainder are exact,
/// so this is the same rounding, half away from zero.
#[inline]
fn round_half_away(v: f32) -> i32 {
    let v = v.clamp(-128.0, 128.0);
    let t = v as i32;
    let rest = v - t as f32;
    t + i32::from(rest >= 0.5) - i32::from(rest <= -0.5)
}

fn quantize_block(x: &[f32]) -> Q8Block {
    let mut q = [0i8; BLOCK];
    let scale = quantize_values(x, &mut q);
    Q8Block {
        scale,
        sum: x.iter().sum(),
        q,
    }
}

fn quantize_super(x: &[f32]) -> Q8KBlock {
    let mut q = [0i8; SUPER];
    let scale = quantize_values(x, &mut q);
    let mut sums = [0i16; SUPER / 16];
    for (sum, group) in sums.iter_mut().zip(q.chunks_exact(16)) {
        // At most 16 · 127 = 2032: fits.
        *sum = group.iter().map(|&v| i16::from(v)).sum();
    }
    Q8KBlock { scale, q, sums }
}

#[cfg(test)]
mod tests {
    /// Values on and one ulp either side of every quarter up to ±127, random ones up to ±150
    /// and the non-finite ones: the same integer as `round`, clamped to ±128.
    #[test]
    fn rounding_is_rounds() {
        let mut checked = 0;
        for whole in -127..=127 {
            for frac in [0.0f32, 0.25, 0.5, 0.75] {
                let v = whole as f32 + frac;
                for v in [
                    v,
                    f32::from_bits(v.to_bits() + 1),
                    f32::from_bits(v.to_bits().max(1) - 1),
                ] {
                    assert_eq!(super::round_half_away(v), v.round() as i32, "{v}");
                    checked += 1;
                }
            }
        }
        let mut state = 1u32;
        for _ in 0..1_000_000 {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = (state >> 8) as f32 / (1 << 24) as f32 * 300.0 - 150.0;
            let want = v.round().clamp(-128.0, 128.0) as i32;
            assert_eq!(super::round_half_away(v), want, "{v}");
        }
        assert_eq!(super::round_half_away(f32::NAN), 0);
        assert_eq!(super::round_half_away(f32::INFINITY), 128);
        assert_eq!(super::round_half_away(f32::NEG_INFINITY), -128);
        assert_eq!(checked, 255 * 12);
    }
}
