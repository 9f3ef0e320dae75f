//! Every SIMD path against the portable one on random blocks (every byte random, so every
//! packing of scales, minimums and high bits occurs, plus blocks of extremes), and the portable
//! integer dot against the exact dot of the dequantized row, within the bound the 8-bit
//! activations' rounding allows.

use super::*;
use crate::blocks::f16_at;

/// The unit roundoff of f32.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// SplitMix64: reproducible bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// A finite f16 of either sign with magnitude in about [2^-10, 2^-1].
    fn scale(&mut self) -> [u8; 2] {
        let sign = (self.next() & 1) as u16;
        let exponent = 5 + (self.next() % 10) as u16;
        let mantissa = (self.next() & 0x3ff) as u16;
        ((sign << 15) | (exponent << 10) | mantissa).to_le_bytes()
    }
}

/// Byte offsets of a format's f16 fields within its block.
fn f16_fields(format: Format) -> &'static [usize] {
    match format {
        Format::Q4_0 | Format::Q8_0 => &[0],
        Format::Q4_1 | Format::Q4K | Format::Q5K => &[0, 2],
        Format::Q6K => &[208],
    }
}

/// How a block's bytes are filled.
#[derive(Clone, Copy, Debug)]
enum Fill {
    Random,
    /// Every byte but the f16 scales 0xff: top scales and minimums, all high bits set,
    /// Q8_0's −1 and Q6_K's scales −1.
    Ones,
    /// Every byte but the f16 scales 0: zero scales, no high bits.
    Zeros,
    /// Alternating 0x80 / 0x7f: Q8_0's −128 and 127, Q6_K's extreme scales, scale bytes with
    /// only their top bit (a 6-bit packing's spill) set.
    Extremes,
}

fn random_row(rng: &mut Rng, format: Format, blocks: usize, fill: Fill) -> Vec<u8> {
    let mut row = Vec::with_capacity(blocks * format.block_bytes());
    for _ in 0..blocks {
        let mut block: Vec<u8> = (0..format.block_bytes())
            .map(|i| match fill {
                Fill::Random => rng.byte(),
                Fill::Ones => 0xff,
                Fill::Zeros => 0,
                Fill::Extremes => {
                    if i % 2 == 0 {
                        0x80
                    } else {
                        0x7f
                    }
                }
            })
            .collect();
        for &at in f16_fields(format) {
            block[at..at + 2].copy_from_slice(&rng.scale());
        }
        row.extend(block);
    }
    row
}

/// Activations of varied size, with an all-zero block and a block with one outlier.
fn random_x(rng: &mut Rng, len: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..len)
        .map(|i| rng.unit() * (1 + i % 7) as f32 * 0.5)
        .collect();
    if len >= 64 {
        x[..32].fill(0.0);
        x[40] = 60.0;
    }
    x
}

/// A row's dequantized weights `w` and, per value, the offset `o` within them: `w = a + o`,
/// where `a` multiplies the quantized activations and `o` a sum (`−8d` for Q4_0, `m` for Q4_1,
/// `−dmin·m` for the k-quants with minimums, `−32·d·sc` for Q6_K, none for Q8_0).
fn weights_and_offsets(format: Format, row: &[u8]) -> (Vec<f64>, Vec<f64>) {
    let n = row.len() / format.block_bytes() * format.block_values();
    let mut weights = vec![0.0f32; n];
    dequantize(format, row, &mut weights).expect("whole blocks");
    let mut offsets = vec![0.0f64; n];
    for (block, values) in row
        .chunks_exact(format.block_bytes())
        .zip(offsets.chunks_exact_mut(format.block_values()))
    {
        match format {
            Format::Q4_0 => values.fill(-8.0 * f64::from(f16_at(block, 0))),
            Format::Q4_1 => values.fill(f64::from(f16_at(block, 2))),
            Format::Q8_0 => {}
            Format::Q4K | Format::Q5K => {
                let (_, mins) = blocks::k_scales(&block[4..16]);
                let dmin = f64::from(f16_at(block, 2));
                for (i, v) in values.iter_mut().enumerate() {
                    *v = -dmin * f64::from(mins[i / 32]);
                }
            }
            Format::Q6K => {
                let d = f64::from(f16_at(block, 208));
                for (i, v) in values.iter_mut().enumerate() {
                    *v = -32.0 * d * f64::from(block[192 + i / 16] as i8);
                }
            }
        }
    }
    (weights.into_iter().map(f64::from).collect(), offsets)
}

/// Each activation's rounding bound: half its block's step, `s / 2`, the step itself rounded
/// (`x · (1/s)` costs two more roundings).
fn rounding(x: &Activations) -> Vec<f64> {
    let half = |scale: f32, count: usize| vec![f64::from(scale) / 2.0 * (1.0 + 4.0 * U); count];
    match x {
        Activations::Legacy(blocks) => blocks.iter().flat_map(|b| half(b.scale, BLOCK)).collect(),
        Activations::Super(blocks) => blocks.iter().flat_map(|b| half(b.scale, SUPER)).collect(),
    }
}

/// The size of every intermediate term, `Σ (|a| + |o|)·(|x| + r)`: float rounding of the kernel's
/// sums is bounded by a few ulps of it per term added.
fn term_size(weights: &[f64], offsets: &[f64], x: &[f32], r: &[f64]) -> f64 {
    weights
        .iter()
        .zip(offsets)
        .zip(x.iter().zip(r))
        .map(|((w, o), (x, r))| ((w - o).abs() + o.abs()) * (f64::from(*x).abs() + r))
        .sum()
}

const FILLS: [Fill; 4] = [Fill::Random, Fill::Ones, Fill::Zeros, Fill::Extremes];

#[test]
fn every_simd_path_equals_the_portable_one() {
    let mut rng = Rng(1);
    let paths = Path::available();
    println!("paths on this CPU: {paths:?}");
    for format in Format::ALL {
        for fill in FILLS {
            for blocks in [1, 2, 7] {
                let cols = blocks * format.block_values();
                let row = random_row(&mut rng, format, blocks, fill);
                let values = random_x(&mut rng, cols);
                let x = Activations::quantize(format.blocking(), &values).expect("whole blocks");
                let want = dot_on(Path::Portable, format, &row, &x);
                // Both compute the same integer sums; their float sums of per-block terms
                // differ in order only: within (blocks + a few) roundings of the terms' size.
                let (weights, offsets) = weights_and_offsets(format, &row);
                let size = term_size(&weights, &offsets, &values, &rounding(&x));
                let bound = 4.0 * (blocks as f64 + 8.0) * U * size;
                for &path in &paths {
                    let got = dot_on(path, format, &row, &x);
                    assert!(
                        (f64::from(got) - f64::from(want)).abs() <= bound,
                        "{format:?} {fill:?} {blocks} blocks on {path:?}: {got} vs portable {want} (bound {bound})"
                    );
                }
            }
        }
    }
}

/// The integer dot against `Σ w·x` in f64 over the dequantized row. Its error is the
/// activations' rounding met by the weight part it multiplies: `|Σ c·(x − s·q)| ≤ Σ |c|·s/2`,
/// where `c` is the whole weight, except for Q4_0 and Q4_1, whose offsets multiply the exact
/// `Σx` (`c = a = d·q`); plus the float rounding of the kernel's own sums.
#[test]
fn the_integer_dot_is_the_exact_dot_within_the_activations_rounding() {
    let mut rng = Rng(2);
    for format in Format::ALL {
        for fill in FILLS {
            for blocks in [1, 3, 9] {
                let cols = blocks * format.block_values();
                let row = random_row(&mut rng, format, blocks, fill);
                let values = random_x(&mut rng, cols);
                let x = Activations::quantize(format.blocking(), &values).expect("whole blocks");
                let (weights, offsets) = weights_and_offsets(format, &row);
                let r = rounding(&x);
                let exact: f64 = weights
                    .iter()
                    .zip(&values)
                    .map(|(w, v)| w * f64::from(*v))
                    .sum();
                let rounding_bound: f64 = weights
                    .iter()
                    .zip(&offsets)
                    .zip(&r)
                    .map(|((w, o), r)| match format {
                        Format::Q4_0 | Format::Q4_1 => (w - o).abs() * r,
                        _ => w.abs() * r,
                    })
                    .sum();
                // The dequantized f32 weights themselves are one rounding off `a + o`.
                let size = term_size(&weights, &offsets, &values, &r);
                let bound = rounding_bound + 4.0 * (blocks as f64 + 8.0) * U * size;
                for path in Path::available() {
                    let got = f64::from(dot_on(path, format, &row, &x));
                    assert!(
                        (got - exact).abs() <= bound,
                        "{format:?} {fill:?} {blocks} blocks on {path:?}: {got} vs exact {exact} (bound {bound}: rounding {rounding_bound})"
                    );
                }
            }
        }
    }
}

/// Activations already on the 8-bit grid (`x = c·k`, integers `k` up to ±127) quantize without
/// error, so the integer dot is the exact one up to float rounding alone: the bound above is
/// not hiding a wrong term.
#[test]
fn activations_on_the_grid_make_the_integer_dot_exact() {
    let mut rng = Rng(3);
    for format in Format::ALL {
        let blocks = 4;
        let cols = blocks * format.block_values();
        let row = random_row(&mut rng, format, blocks, Fill::Random);
        let step = 0.015625f32;
        let values: Vec<f32> = (0..cols)
            .map(|i| {
                let k = if i % format.block_values() == 0 {
                    127
                } else {
                    (rng.next() % 255) as i32 - 127
                };
                step * k as f32
            })
            .collect();
        let x = Activations::quantize(format.blocking(), &values).expect("whole blocks");
        assert_eq!(
            x.values(),
            values,
            "{format:?}: on the grid, quantizing is exact"
        );
        let (weights, offsets) = weights_and_offsets(format, &row);
        let exact: f64 = weights
            .iter()
            .zip(&values)
            .map(|(w, v)| w * f64::from(*v))
            .sum();
        let size = term_size(&weights, &offsets, &values, &vec![0.0; cols]);
        let bound = 4.0 * (blocks as f64 + 8.0) * U * size;
        for path in Path::available() {
            let got = f64::from(dot_on(path, format, &row, &x));
            assert!(
                (got - exact).abs() <= bound,
                "{format:?} on {path:?}: {got} vs {exact} (bound {bound})"
            );
        }
    }
}

#[test]
fn rows_and_positions_equal_single_dots() {
    let mut rng = Rng(4);
    for format in Format::ALL {
        let cols = 2 * format.block_values();
        let bytes = format.row_bytes(cols).expect("whole blocks");
        let rows = random_row(
            &mut rng,
            format,
            5 * cols / format.block_values(),
            Fill::Random,
        );
        // Eleven positions: two groups of four (the one-pass kernels) and a remainder of three.
        let xs: Vec<Activations> = (0..11)
            .map(|_| {
                Activations::quantize(format.blocking(), &random_x(&mut rng, cols)).expect("x")
            })
            .collect();
        let mut out = vec![0.0; 5];
        dot_rows(format, &rows, &xs[0], &mut out);
        for (row, got) in rows.chunks_exact(bytes).zip(&out) {
            assert_eq!(*got, dot(format, row, &xs[0]), "{format:?} rows");
        }
        let mut out = vec![0.0; 5 * xs.len()];
        dot_tile(format, &rows, &xs, &mut out);
        for (row, got) in rows.chunks_exact(bytes).zip(out.chunks_exact(xs.len())) {
            for (x, got) in xs.iter().zip(got) {
                assert_eq!(*got, dot(format, row, x), "{format:?} tile");
            }
        }
    }
}

#[test]
fn half_floats_decode_exactly() {
    for (bits, want) in [
        (0x3c00u16, 1.0f32),
        (0xc000, -2.0),
        (0x7bff, 65504.0),
        (0x0001, 2f32.powi(-24)),
        (0x03ff, 1023.0 * 2f32.powi(-24)),
        (0x0400, 2f32.powi(-14)),
        (0x8000, -0.0),
        (0x7c00, f32::INFINITY),
        (0x3555, 0.333_251_95),
    ] {
        assert_eq!(f16_to_f32(bits).to_bits(), want.to_bits(), "{bits:#06x}");
    }
    assert!(f16_to_f32(0x7e00).is_nan());
}

#[test]
fn lengths_are_checked() {
    assert!(Format::Q4K.row_bytes(255).is_none());
    assert_eq!(Format::Q6K.row_bytes(512), Some(420));
    let mut out = vec![0.0; 32];
    assert!(dequantize(Format::Q4_1, &[0; 19], &mut out).is_err());
    assert!(Activations::quantize(Blocking::Super, &[0.0; 32]).is_none());
    let x = Activations::quantize(Blocking::Legacy, &[1.0; 64]).expect("two blocks");
    let wrong_length = std::panic::catch_unwind(|| dot(Format::Q8_0, &[0; 34], &x));
    assert!(wrong_length.is_err());
}

/// The f32-activation kernels: every path against the exact f64 dot of the dequantized row,
/// within the float rounding of their sums alone.
#[test]
fn f32_activation_kernels_are_exact_to_rounding() {
    let mut rng = Rng(5);
    for format in [Format::Q4_1, Format::Q8_0] {
        assert!(format.has_f32_activations());
        for fill in FILLS {
            let blocks = 9;
            let row = random_row(&mut rng, format, blocks, fill);
            let x = random_x(&mut rng, blocks * BLOCK);
            let sums = block_sums(&x);
            let (weights, offsets) = weights_and_offsets(format, &row);
            let exact: f64 = weights.iter().zip(&x).map(|(w, v)| w * f64::from(*v)).sum();
            let size = term_size(&weights, &offsets, &x, &vec![0.0; x.len()]);
            let bound = 4.0 * (blocks as f64 + 40.0) * U * size;
            // Seven rows: a group of four (the AVX2 multi-row kernel) and three alone, each
            // the one-row kernel's value to the bit.
            let others: Vec<Vec<u8>> = (0..6)
                .map(|_| random_row(&mut rng, format, blocks, fill))
                .collect();
            let rows: Vec<u8> = [row.clone()]
                .iter()
                .chain(&others)
                .flatten()
                .copied()
                .collect();
            let mut by_rows = vec![0.0f32; 7];
            dot_f32_activations_rows(format, &rows, &x, &sums, &mut by_rows);
            for (one, got) in rows.chunks_exact(row.len()).zip(&by_rows) {
                assert_eq!(*got, dot_f32_activations(format, one, &x, &sums));
            }
            for path in Path::available() {
                let got = f64::from(dot_f32_activations_on(path, format, &row, &x, &sums));
                assert!(
                    (got - exact).abs() <= bound,
                    "{format:?} {fill:?} on {path:?}: {got} vs {exact} (bound {bound})"
                );
            }
        }
    }
    assert!(!Format::Q4K.has_f32_activations());
}

/// Packing keeps every byte: each row comes back as it went in, whatever its scale bits.
#[test]
fn packed_rows_unpack_to_the_same_bytes() {
    let mut rng = Rng(7);
    for (format, fill) in [Format::Q4K, Format::Q6K]
        .into_iter()
        .flat_map(|f| FILLS.map(|fill| (f, fill)))
    {
        for blocks in [1, 3] {
            let cols = blocks * SUPER;
            let row_bytes = format.row_bytes(cols).expect("whole blocks");
            let rows: Vec<u8> = (0..16)
                .flat_map(|_| random_row(&mut rng, format, blocks, fill))
                .collect();
            let packed = pack(format, &rows, cols);
            assert_eq!(packed.len(), 2 * blocks * packed::group_bytes(format));
            let mut back = vec![0u8; row_bytes];
            for (r, want) in rows.chunks_exact(row_bytes).enumerate() {
                unpack_row(format, &packed, cols, r, &mut back);
                assert_eq!(
                    &back[..],
                    want,
                    "{format:?} {fill:?} {blocks} blocks, row {r}"
                );
            }
        }
    }
}

/// The packed product, on every path, for any number of positions (four at a time and the
/// tail one by one), equals the single position's packed product bit for bit; and it is the
/// row kernel's dot within the float reordering bound of `every_simd_path_equals_the_portable_one`
/// (same integers, f32 sums in another order).
#[test]
fn packed_products_equal_single_positions_and_the_row_dots() {
    let mut rng = Rng(8);
    let paths = Path::available();
    for (format, fill) in [Format::Q4K, Format::Q6K]
        .into_iter()
        .flat_map(|f| FILLS.map(|fill| (f, fill)))
    {
        for (blocks, groups) in [(1, 1), (2, 3), (7, 2)] {
            let cols = blocks * SUPER;
            let row_bytes = format.row_bytes(cols).expect("whole blocks");
            let count = groups * PACK_ROWS;
            let rows: Vec<u8> = (0..count)
                .flat_map(|_| random_row(&mut rng, format, blocks, fill))
                .collect();
            let packed = pack(format, &rows, cols);
            let values: Vec<Vec<f32>> = (0..9).map(|_| random_x(&mut rng, cols)).collect();
            let xs: Vec<Activations> = values
                .iter()
                .map(|v| Activations::quantize(Blocking::Super, v).expect("whole blocks"))
                .collect();
            // One position at a time on the portable path: the reference.
            let stride = count + 3;
            let mut want = vec![0.0f32; stride];
            let mut single = vec![vec![0.0f32; count]; xs.len()];
            for (x, single) in xs.iter().zip(&mut single) {
                dot_packed_on(
                    Path::Portable,
                    format,
                    &packed,
                    std::slice::from_ref(x),
                    &mut want,
                    stride,
                );
                single.copy_from_slice(&want[..count]);
            }
            for &path in &paths {
                for n in [1, 3, 4, 5, 9] {
                    let mut out = vec![f32::NAN; n * stride];
                    dot_packed_on(path, format, &packed, &xs[..n], &mut out, stride);
                    for (p, single) in single.iter().enumerate().take(n) {
                        for (r, want) in single.iter().enumerate() {
                            let got = out[p * stride + r];
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{format:?} {fill:?} {blocks} blocks on {path:?}, {n} positions: row {r} position {p}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
            for (p, single) in single.iter().enumerate() {
                for (r, row) in rows.chunks_exact(row_bytes).enumerate() {
                    let dot = dot_on(Path::Portable, format, row, &xs[p]);
                    let (weights, offsets) = weights_and_offsets(format, row);
                    let size = term_size(&weights, &offsets, &values[p], &rounding(&xs[p]));
                    let bound = 4.0 * (blocks as f64 + 8.0) * U * size;
                    assert!(
                        (f64::from(single[r]) - f64::from(dot)).abs() <= bound,
                        "{format:?} {fill:?} {blocks} blocks: row {r} position {p}: packed {} vs row dot {dot} (bound {bound})",
                        single[r]
                    );
                }
            }
        }
    }
}

#[test]
fn packing_is_checked() {
    let format = Format::Q4K;
    assert!(packable(format, 16) && !packable(format, 12) && packable(Format::Q6K, 16));
    assert!(!packable(Format::Q5K, 16) && !packable(Format::Q4_0, 16));
    let rows = vec![0u8; 12 * Q4K_ROW];
    assert!(std::panic::catch_unwind(|| pack(format, &rows, SUPER)).is_err());
    let packed = pack(format, &rows[..8 * Q4K_ROW], SUPER);
    let x = Activations::quantize(Blocking::Super, &[0.5; 2 * SUPER]).expect("whole blocks");
    let mut out = vec![0.0; 8];
    let wrong_width = std::panic::catch_unwind(move || {
        dot_packed(format, &packed, &[x], &mut out, 8);
    });
    assert!(
        wrong_width.is_err(),
        "two super-blocks of activations against rows of one"
    );
}

const Q4K_ROW: usize = blocks::Q4_K_BYTES;

/// Prompts longer than one run of cached positions (64 at seven super-blocks) come out the
/// same as each position alone.
#[test]
fn long_packed_prompts_equal_single_positions() {
    let mut rng = Rng(9);
    for format in [Format::Q4K, Format::Q6K] {
        let blocks = 7;
        let cols = blocks * SUPER;
        let rows: Vec<u8> = (0..2 * PACK_ROWS)
            .flat_map(|_| random_row(&mut rng, format, blocks, Fill::Random))
            .collect();
        let packed = pack(format, &rows, cols);
        let xs: Vec<Activations> = (0..150)
            .map(|_| {
                Activations::quantize(Blocking::Super, &random_x(&mut rng, cols)).expect("blocks")
            })
            .collect();
        let stride = 2 * PACK_ROWS;
        let mut all = vec![0.0f32; xs.len() * stride];
        dot_packed(format, &packed, &xs, &mut all, stride);
        let mut one = vec![0.0f32; stride];
        for (p, x) in xs.iter().enumerate() {
            dot_packed(format, &packed, std::slice::from_ref(x), &mut one, stride);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&all[p * stride..][..stride]),
                bits(&one),
                "{format:?} position {p}"
            );
        }
    }
}
