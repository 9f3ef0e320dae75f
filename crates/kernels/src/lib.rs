//! Latent Choir's quantized kernels: the GGUF block formats the models arrive in (Q4_0, Q4_1,
//! Q8_0, Q4_K, Q5_K, Q6_K), their dequantization, and weight-row · activation dot products in
//! integers against activations quantized once per product to 8 bits, as llama.cpp computes
//! them. Paths chosen once at run time: AVX2+FMA+F16C on x86_64 (AVX-512 for the f32-activation
//! kernels where the CPU has it), NEON on aarch64 (with SDOT when the CPU has `dotprod`), and
//! portable Rust everywhere else. The SIMD paths compute the
//! portable path's integer sums; only the order of the float sums differs.
//!
//! A separate crate without dependencies so that it cross-compiles and tests alone for aarch64
//! (`cargo xtask test-aarch64`). The API is safe: lengths are checked once per call, and the
//! `unsafe` stays inside the SIMD modules.

mod activations;
mod blocks;
mod packed;
mod portable;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_packed;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(test)]
mod tests;

use std::sync::OnceLock;

pub use activations::{Activations, Blocking, Q8Block, Q8KBlock};
pub use blocks::{BLOCK, SUPER, f16_to_f32};
pub use packed::{PACK_ROWS, packable};

/// A GGUF weight format with a native kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Q4_0,
    Q4_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Q4_0,
        Format::Q4_1,
        Format::Q8_0,
        Format::Q4K,
        Format::Q5K,
        Format::Q6K,
    ];

    /// Values per block.
    pub const fn block_values(self) -> usize {
        match self.blocking() {
            Blocking::Legacy => BLOCK,
            Blocking::Super => SUPER,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            Format::Q4_0 => blocks::Q4_0_BYTES,
            Format::Q4_1 => blocks::Q4_1_BYTES,
            Format::Q8_0 => blocks::Q8_0_BYTES,
            Format::Q4K => blocks::Q4_K_BYTES,
            Format::Q5K => blocks::Q5_K_BYTES,
            Format::Q6K => blocks::Q6_K_BYTES,
        }
    }

    /// The activation blocking its dot product reads.
    pub const fn blocking(self) -> Blocking {
        match self {
            Format::Q4_0 | Format::Q4_1 | Format::Q8_0 => Blocking::Legacy,
            Format::Q4K | Format::Q5K | Format::Q6K => Blocking::Super,
        }
    }

    /// Whether [`dot_f32_activations`] takes it.
    pub const fn has_f32_activations(self) -> bool {
        matches!(self, Format::Q4_1 | Format::Q8_0)
    }

    /// Bytes of a row of `cols` values; `None` when `cols` is not a whole number of blocks.
    pub const fn row_bytes(self, cols: usize) -> Option<usize> {
        if cols.is_multiple_of(self.block_values()) {
            Some(cols / self.block_values() * self.block_bytes())
        } else {
            None
        }
    }
}

/// A row's bytes do not hold what was asked of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LengthError {
    pub format: Format,
    pub bytes: usize,
    pub values: usize,
}

impl std::fmt::Display for LengthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes are not {} values of {:?} ({} values in {} bytes per block)",
            self.bytes,
            self.values,
            self.format,
            self.format.block_values(),
            self.format.block_bytes()
        )
    }
}

impl std::error::Error for LengthError {}

/// Dequantizes `row` (whole blocks of `format`) into `out`, one value per weight.
pub fn dequantize(format: Format, row: &[u8], out: &mut [f32]) -> Result<(), LengthError> {
    if format.row_bytes(out.len()) != Some(row.len()) {
        return Err(LengthError {
            format,
            bytes: row.len(),
            values: out.len(),
        });
    }
    for (block, values) in row
        .chunks_exact(format.block_bytes())
        .zip(out.chunks_exact_mut(format.block_values()))
    {
        blocks::dequantize_block(format, block, values);
    }
    Ok(())
}

/// Each 32-value block's `Σx`, which [`dot_f32_activations`] takes for Q4_1's minimums.
pub fn block_sums(x: &[f32]) -> Vec<f32> {
    x.chunks_exact(BLOCK).map(|b| b.iter().sum()).collect()
}

/// `row · x` with `x` in f32: no activation rounding, the dequantized row's product to f32
/// rounding, for a model whose reference tests pin its states closer than 8-bit activations
/// allow. Q4_1 and Q8_0 only ([`Format::has_f32_activations`]); AVX2 or portable. `sums` is
/// [`block_sums`] of `x`. Panics on other formats or mismatched lengths.
pub fn dot_f32_activations(format: Format, row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    dot_f32_activations_on(Path::detected(), format, row, x, sums)
}

/// [`dot_f32_activations`] for several rows at once: `rows` holds `out.len()` consecutive rows.
/// Checked and dispatched once, so a decode's short rows pay no per-row call overhead.
pub fn dot_f32_activations_rows(
    format: Format,
    rows: &[u8],
    x: &[f32],
    sums: &[f32],
    out: &mut [f32],
) {
    assert!(
        format.has_f32_activations(),
        "{format:?} has no f32-activation kernel"
    );
    let bytes = format.row_bytes(x.len()).unwrap_or(0);
    assert_eq!(
        rows.len(),
        bytes * out.len(),
        "{} rows of {bytes} bytes",
        out.len()
    );
    assert_eq!(sums.len(), x.len() / BLOCK, "one sum per block");
    if bytes == 0 {
        out.fill(0.0);
        return;
    }
    let path = Path::detected();
    for (row, out) in rows.chunks_exact(bytes).zip(out) {
        *out = f32_activations_checked(path, format, row, x, sums);
    }
}

/// [`dot_f32_activations`] on a chosen path.
pub fn dot_f32_activations_on(
    path: Path,
    format: Format,
    row: &[u8],
    x: &[f32],
    sums: &[f32],
) -> f32 {
    assert!(
        format.has_f32_activations(),
        "{format:?} has no f32-activation kernel"
    );
    assert_eq!(
        format.row_bytes(x.len()),
        Some(row.len()),
        "a {format:?} row of {} bytes against {} activations",
        row.len(),
        x.len()
    );
    assert_eq!(sums.len(), x.len() / BLOCK, "one sum per block");
    let path = if path.runs_here() {
        path
    } else {
        Path::Portable
    };
    f32_activations_checked(path, format, row, x, sums)
}

/// The f32-activation dispatch itself; `path` runs here and the lengths match.
#[inline]
fn f32_activations_checked(path: Path, format: Format, row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    match path {
        // SAFETY: `Path::Avx512` runs here (the callers checked) so the CPU has AVX-512F, AVX2,
        // FMA and F16C; the lengths were checked.
        Path::Avx512 => unsafe {
            return match format {
                Format::Q4_1 => avx512::q4_1_f32(row, x, sums),
                _ => avx512::q8_0_f32(row, x),
            };
        },
        // SAFETY: `Path::Avx2` runs here, so the CPU has AVX2, FMA and F16C.
        Path::Avx2 => unsafe {
            return match format {
                Format::Q4_1 => avx2::q4_1_f32(row, x, sums),
                _ => avx2::q8_0_f32(row, x),
            };
        },
        _ => {}
    }
    #[cfg(target_arch = "aarch64")]
    if matches!(path, Path::Neon | Path::NeonDot) {
        // SAFETY: the path runs here, so the CPU has NEON; the lengths were checked.
        return unsafe {
            match format {
                Format::Q4_1 => neon::f32_activations::q4_1_f32(row, x, sums),
                _ => neon::f32_activations::q8_0_f32(row, x),
            }
        };
    }
    let _ = path;
    match format {
        Format::Q4_1 => portable::q4_1_f32(row, x, sums),
        _ => portable::q8_0_f32(row, x),
    }
}

/// Which code computes the dots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Portable,
    /// x86_64 with AVX2, FMA and F16C.
    Avx2,
    /// [`Path::Avx2`] on a CPU with AVX-512F, BW and VNNI too: the f32-activation kernels take
    /// 512-bit lanes, a prompt's packed Q4_K products take two positions per vector and
    /// `vpdpbusd`; everything else is AVX2's.
    Avx512,
    /// aarch64 NEON, widening multiplies.
    Neon,
    /// aarch64 NEON with the `dotprod` SDOT instruction.
    NeonDot,
}

impl Path {
    /// The fastest path this CPU runs; detected once.
    pub fn detected() -> Path {
        static PATH: OnceLock<Path> = OnceLock::new();
        *PATH.get_or_init(|| {
            let fastest = Path::ALL.into_iter().rev().find(|path| path.supported());
            fastest.unwrap_or(Path::Portable)
        })
    }

    /// Every path in declaration order, each x86_64 or aarch64 one after those it builds on.
    const ALL: [Path; 5] = [
        Path::Portable,
        Path::Avx2,
        Path::Avx512,
        Path::Neon,
        Path::NeonDot,
    ];

    /// Whether the CPU has what this path's kernels need.
    fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = || {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            };
            match self {
                Path::Portable => true,
                Path::Avx2 => avx2(),
                Path::Avx512 => {
                    avx2()
                        && is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512bw")
                        && is_x86_feature_detected!("avx512vnni")
                }
                Path::Neon | Path::NeonDot => false,
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            match self {
                Path::Portable => true,
                Path::Neon => std::arch::is_aarch64_feature_detected!("neon"),
                Path::NeonDot => std::arch::is_aarch64_feature_detected!("dotprod"),
                _ => false,
            }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            self == Path::Portable
        }
    }

    /// Whether this CPU runs this path.
    pub fn runs_here(self) -> bool {
        static SUPPORTED: OnceLock<[bool; 5]> = OnceLock::new();
        // `ALL` is in declaration order, so a path's discriminant is its index.
        SUPPORTED.get_or_init(|| Path::ALL.map(Path::supported))[self as usize]
    }

    /// Whether this path runs the AVX2 kernels (all but those its extensions replace).
    fn is_avx2(self) -> bool {
        matches!(self, Path::Avx2 | Path::Avx512)
    }

    /// Every path this CPU can run, portable first (for tests and benchmarks).
    pub fn available() -> Vec<Path> {
        Path::ALL
            .into_iter()
            .filter(|path| path.runs_here())
            .collect()
    }
}

/// `row · x` for one weight row of `format`: `row` is whole blocks covering `x`, which must be
/// quantized for the format's [`Blocking`]. Panics when they do not match (a caller's bug:
/// layers check their shapes when they load).
pub fn dot(format: Format, row: &[u8], x: &Activations) -> f32 {
    check(format, row.len(), x);
    dot_checked(Path::detected(), format, row, x)
}

/// [`dot`] for several rows at once: `rows` holds `out.len()` consecutive rows.
pub fn dot_rows(format: Format, rows: &[u8], x: &Activations, out: &mut [f32]) {
    let path = Path::detected();
    let bytes = format.row_bytes(x.len()).unwrap_or(0);
    check(format, bytes, x);
    assert_eq!(
        rows.len(),
        bytes * out.len(),
        "{} rows of {bytes} bytes",
        out.len()
    );
    if bytes == 0 {
        out.fill(0.0);
        return;
    }
    for (row, out) in rows.chunks_exact(bytes).zip(out) {
        *out = dot_checked(path, format, row, x);
    }
}

/// A tile of weight rows against a prompt's positions: `out[r · n + p] = rows[r] · xs[p]`
/// for `n = xs.len()`. Positions go four at a time: on AVX2 (and on NEON for Q4_K and Q6_K, a
/// Q4_K_M file's formats) a row's blocks are unpacked once for all four, and the four
/// activation vectors stay in cache for every row of the tile, so a caller passes a few
/// kilobytes of rows at a time.
pub fn dot_tile(format: Format, rows: &[u8], xs: &[Activations], out: &mut [f32]) {
    let n = xs.len();
    let Some(first) = xs.first() else {
        assert!(out.is_empty(), "no positions, no outputs");
        return;
    };
    let bytes = format.row_bytes(first.len()).unwrap_or(0);
    for x in xs {
        check(format, bytes, x);
    }
    assert_eq!(out.len() % n, 0, "a whole number of rows of outputs");
    assert_eq!(
        rows.len(),
        bytes * (out.len() / n),
        "one row per {n} outputs"
    );
    if bytes == 0 {
        out.fill(0.0);
        return;
    }
    let path = Path::detected();
    let mut start = 0;
    while start < n {
        let group = &xs[start..n.min(start + 4)];
        for (row, out) in rows.chunks_exact(bytes).zip(out.chunks_exact_mut(n)) {
            let out = &mut out[start..start + group.len()];
            if !dot_four(path, format, row, group, out) {
                for (x, out) in group.iter().zip(out) {
                    *out = dot_checked(path, format, row, x);
                }
            }
        }
        start += group.len();
    }
}

/// Whether `rows` of `format` should be [`pack`]ed on this CPU: [`packable`] and the detected
/// path has the packed kernel (AVX2; NEON and portable keep the row layout, which is faster
/// for them).
pub fn packs(format: Format, rows: usize) -> bool {
    packable(format, rows) && Path::detected().is_avx2()
}

/// `rows` (consecutive rows of `cols` values of `format`) interleaved for [`dot_packed`], the
/// the same size but for Q4_K's scales stored unpacked (+2.8%; Q6_K's are the same size). Panics unless
/// [`packable`] and the lengths match.
pub fn pack(format: Format, rows: &[u8], cols: usize) -> Vec<u8> {
    let mut out = vec![0u8; packed_len(format, rows.len(), cols)];
    pack_into(format, rows, cols, &mut out);
    out
}

/// The bytes [`pack`] makes of `bytes` bytes of rows of `cols` values of `format`.
pub fn packed_len(format: Format, bytes: usize, cols: usize) -> usize {
    let row_bytes = format.row_bytes(cols).unwrap_or(0);
    let blocks = row_bytes / format.block_bytes();
    let groups = bytes.checked_div(row_bytes).unwrap_or(0) / PACK_ROWS;
    groups * blocks * packed::group_bytes(format)
}

/// [`pack`] into `out`, which is [`packed_len`] long. Groups are independent, so whole groups
/// of rows may be packed apart (in parallel) into the matching parts of the packed bytes.
pub fn pack_into(format: Format, rows: &[u8], cols: usize, out: &mut [u8]) {
    let row_bytes = format.row_bytes(cols).unwrap_or(0);
    assert!(
        row_bytes > 0 && rows.len().is_multiple_of(row_bytes),
        "{} bytes are not rows of {cols} {format:?} values",
        rows.len()
    );
    assert!(
        packable(format, rows.len() / row_bytes),
        "{format:?} in {} rows does not pack",
        rows.len() / row_bytes
    );
    assert_eq!(
        out.len(),
        packed_len(format, rows.len(), cols),
        "the packed length"
    );
    packed::pack(format, rows, row_bytes, out);
}

/// Row `row` of [`pack`]ed rows of `cols` values, back in GGUF's bytes (`out` one row long).
pub fn unpack_row(format: Format, groups: &[u8], cols: usize, row: usize, out: &mut [u8]) {
    let blocks = cols / format.block_values();
    assert!(
        packable(format, PACK_ROWS) && format.row_bytes(cols) == Some(out.len()),
        "a row of {cols} {format:?} values into {} bytes",
        out.len()
    );
    assert!(
        (row / PACK_ROWS + 1) * blocks * packed::group_bytes(format) <= groups.len(),
        "row {row} is past the packed rows"
    );
    packed::unpack_row(format, groups, blocks, row, out);
}

/// [`pack`]ed rows against `xs.len()` positions: `out[p · stride + r] = row r · xs[p]`, `out`
/// being `xs.len() · stride` long and `stride` at least the row count. Every position, one or
/// many, takes the same steps, so a prompt's product equals its positions' single products.
pub fn dot_packed(
    format: Format,
    groups: &[u8],
    xs: &[Activations],
    out: &mut [f32],
    stride: usize,
) {
    dot_packed_on(Path::detected(), format, groups, xs, out, stride);
}

/// [`dot_packed`] on a chosen path (which must run here); every path gives the same bits.
pub fn dot_packed_on(
    path: Path,
    format: Format,
    groups: &[u8],
    xs: &[Activations],
    out: &mut [f32],
    stride: usize,
) {
    assert!(path.runs_here(), "{path:?} cannot run on this CPU");
    assert!(
        packable(format, PACK_ROWS),
        "{format:?} has no packed kernel"
    );
    let n = xs.len();
    assert_eq!(out.len(), n * stride, "{n} positions of {stride} outputs");
    let Some(first) = xs.first() else {
        return;
    };
    let blocks = first.len() / SUPER;
    let group_bytes = blocks * packed::group_bytes(format);
    let xs: Vec<&[Q8KBlock]> = xs
        .iter()
        .map(|x| match x {
            Activations::Super(x) if x.len() == blocks => &x[..],
            _ => panic!("{format:?} reads {blocks} super-blocks of activations per position"),
        })
        .collect();
    if group_bytes == 0 {
        out.fill(0.0);
        return;
    }
    assert!(
        groups.len().is_multiple_of(group_bytes)
            && groups.len() / group_bytes * PACK_ROWS <= stride,
        "{} packed bytes are not groups of {group_bytes} within {stride} rows",
        groups.len()
    );
    // Positions in runs whose activations stay in a core's L2 (128 KiB) while every group
    // meets them; each group is then read once per run.
    let run = (ACTIVATIONS_IN_CACHE / (blocks * std::mem::size_of::<Q8KBlock>())).max(4) / 4 * 4;
    let mut first = 0;
    while first < n {
        let last = n.min(first + run);
        #[cfg(target_arch = "x86_64")]
        if path == Path::Avx512 && last - first >= 2 {
            let xs = &xs[first..last];
            // SAFETY: `Path::Avx512` runs here (asserted above); every position holds
            // `blocks` blocks.
            let pairs: Vec<avx512::PairActivations> = xs
                .chunks_exact(2)
                .map(|two| unsafe { avx512::PairActivations::new(two[0], two[1]) })
                .collect();
            for (g, group) in groups.chunks_exact(group_bytes).enumerate() {
                let write = |p: usize, dots: [f32; PACK_ROWS]| {
                    out[(first + p) * stride + g * PACK_ROWS..][..PACK_ROWS].copy_from_slice(&dots);
                };
                if format == Format::Q6K {
                    packed_group_pairs::<true>(group, xs, &pairs, write);
                } else {
                    packed_group_pairs::<false>(group, xs, &pairs, write);
                }
            }
            first = last;
            continue;
        }
        for (g, group) in groups.chunks_exact(group_bytes).enumerate() {
            let mut write = |p: usize, dots: [f32; PACK_ROWS]| {
                out[p * stride + g * PACK_ROWS..][..PACK_ROWS].copy_from_slice(&dots);
            };
            let xs = &xs[first..last];
            if format == Format::Q6K {
                packed_group::<true>(path, group, xs, |p, dots| write(first + p, dots));
            } else {
                packed_group::<false>(path, group, xs, |p, dots| write(first + p, dots));
            }
        }
        first = last;
    }
}

/// One group of packed rows (Q6_K when `Q6`, else Q4_K) against `xs` on [`Path::Avx512`],
/// `pairs` holding `xs` two by two: eight positions at a time, then four, then two, then a
/// last one on AVX2's kernel.
#[cfg(target_arch = "x86_64")]
fn packed_group_pairs<const Q6: bool>(
    group: &[u8],
    xs: &[&[Q8KBlock]],
    pairs: &[avx512::PairActivations],
    mut write: impl FnMut(usize, [f32; PACK_ROWS]),
) {
    /// `N` pairs from pair `n` on.
    fn run<const Q6: bool, const N: usize>(
        group: &[u8],
        xs: &[&[Q8KBlock]],
        pairs: &[avx512::PairActivations],
        n: usize,
        write: &mut impl FnMut(usize, [f32; PACK_ROWS]),
    ) {
        let positions: [[&[Q8KBlock]; 2]; N] =
            std::array::from_fn(|i| [xs[2 * (n + i)], xs[2 * (n + i) + 1]]);
        let pairs: [&avx512::PairActivations; N] = std::array::from_fn(|i| &pairs[n + i]);
        // SAFETY: `Path::Avx512` runs here (the caller checked), so the CPU has AVX-512F, BW
        // and VNNI, AVX2, FMA and F16C; the group is whole super-blocks and every position
        // and pair holds as many.
        let dots = unsafe {
            if Q6 {
                avx512::q6_k_group_pairs::<N>(group, pairs, positions)
            } else {
                avx512::q4_k_group_pairs::<N>(group, pairs, positions)
            }
        };
        for (k, dots) in dots.into_iter().flatten().enumerate() {
            write(2 * n + k, dots);
        }
    }
    let mut n = 0;
    while n + 4 <= pairs.len() {
        run::<Q6, 4>(group, xs, pairs, n, &mut write);
        n += 4;
    }
    if n + 2 <= pairs.len() {
        run::<Q6, 2>(group, xs, pairs, n, &mut write);
        n += 2;
    }
    if n < pairs.len() {
        run::<Q6, 1>(group, xs, pairs, n, &mut write);
    }
    if xs.len() % 2 == 1 {
        let last = xs.len() - 1;
        // SAFETY: as above.
        let dots = unsafe {
            if Q6 {
                avx2_packed::q6_k_group::<1>(group, [xs[last]])
            } else {
                avx2_packed::q4_k_group::<1>(group, [xs[last]])
            }
        };
        write(last, dots[0]);
    }
}

/// Bytes of activations a packed product keeps in cache at a time.
const ACTIVATIONS_IN_CACHE: usize = 128 << 10;

/// One group of packed rows (Q6_K when `Q6`, else Q4_K) against `xs`, `write(p, dots)` for
/// each position: four at a time where the path has the kernel, then one by one.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn packed_group<const Q6: bool>(
    path: Path,
    group: &[u8],
    xs: &[&[Q8KBlock]],
    mut write: impl FnMut(usize, [f32; PACK_ROWS]),
) {
    #[cfg(target_arch = "x86_64")]
    if path.is_avx2() {
        let mut p = 0;
        while p + 4 <= xs.len() {
            let four = [xs[p], xs[p + 1], xs[p + 2], xs[p + 3]];
            // SAFETY: the path runs here (the caller checked), so the CPU has AVX2, FMA and
            // F16C; the group is whole super-blocks and every position holds as many.
            let dots = unsafe {
                if Q6 {
                    avx2_packed::q6_k_group::<4>(group, four)
                } else {
                    avx2_packed::q4_k_group::<4>(group, four)
                }
            };
            for (k, dots) in dots.into_iter().enumerate() {
                write(p + k, dots);
            }
            p += 4;
        }
        for (p, x) in xs.iter().enumerate().skip(p) {
            // SAFETY: as above.
            let dots = unsafe {
                if Q6 {
                    avx2_packed::q6_k_group::<1>(group, [x])
                } else {
                    avx2_packed::q4_k_group::<1>(group, [x])
                }
            };
            write(p, dots[0]);
        }
        return;
    }
    for (p, x) in xs.iter().enumerate() {
        if Q6 {
            write(p, packed::q6_k_group(group, x));
        } else {
            write(p, packed::q4_k_group(group, x));
        }
    }
}

/// Four positions in one pass over `row`, where a path has such a kernel; `false` otherwise.
/// Each position's sums run in the same order as [`dot_checked`]'s, so the results are equal.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(unused_variables)
)]
fn dot_four(path: Path, format: Format, row: &[u8], xs: &[Activations], out: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if path.is_avx2() {
        if let Some(xs) = legacy_four(xs) {
            // SAFETY: `Path::Avx2` is only detected with AVX2, FMA and F16C; `check` matched
            // every position's blocks to the row's.
            let dots = unsafe {
                match format {
                    Format::Q4_0 => avx2::q4_0::<4>(row, xs),
                    Format::Q8_0 => avx2::q8_0::<4>(row, xs),
                    _ => return false,
                }
            };
            out.copy_from_slice(&dots);
            return true;
        }
        if let Some(xs) = super_four(xs) {
            // SAFETY: as above.
            let dots = unsafe {
                match format {
                    Format::Q4K => avx2::q4_k::<4>(row, xs),
                    Format::Q5K => avx2::q5_k::<4>(row, xs),
                    _ => avx2::q6_k::<4>(row, xs),
                }
            };
            out.copy_from_slice(&dots);
            return true;
        }
    }
    #[cfg(target_arch = "aarch64")]
    if matches!(path, Path::Neon | Path::NeonDot)
        && let Some(xs) = super_four(xs)
    {
        // SAFETY: NeonDot is only detected with `dotprod`, Neon with NEON; `check` matched
        // every position's blocks to the row's.
        let dots = unsafe {
            match (format, path == Path::NeonDot) {
                (Format::Q4K, false) => neon::plain::q4_k::<4>(row, xs),
                (Format::Q6K, false) => neon::plain::q6_k::<4>(row, xs),
                (Format::Q4K, true) => neon::sdot::q4_k::<4>(row, xs),
                (Format::Q6K, true) => neon::sdot::q6_k::<4>(row, xs),
                _ => return false,
            }
        };
        out.copy_from_slice(&dots);
        return true;
    }
    false
}

/// Exactly four legacy-blocked positions.
#[cfg(target_arch = "x86_64")]
fn legacy_four(xs: &[Activations]) -> Option<[&[Q8Block]; 4]> {
    match xs {
        [
            Activations::Legacy(a),
            Activations::Legacy(b),
            Activations::Legacy(c),
            Activations::Legacy(d),
        ] => Some([a, b, c, d]),
        _ => None,
    }
}

/// Exactly four super-blocked positions.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn super_four(xs: &[Activations]) -> Option<[&[Q8KBlock]; 4]> {
    match xs {
        [
            Activations::Super(a),
            Activations::Super(b),
            Activations::Super(c),
            Activations::Super(d),
        ] => Some([a, b, c, d]),
        _ => None,
    }
}

/// [`dot`] on a chosen path (which must be in [`Path::available`]).
pub fn dot_on(path: Path, format: Format, row: &[u8], x: &Activations) -> f32 {
    check(format, row.len(), x);
    assert!(path.runs_here(), "{path:?} cannot run on this CPU");
    dot_checked(path, format, row, x)
}

/// Panics unless `row_bytes` of `format` cover `x` exactly; returns the row's byte count.
fn check(format: Format, row_bytes: usize, x: &Activations) -> usize {
    assert_eq!(
        format.blocking(),
        x.blocking(),
        "{format:?} reads {:?} activations",
        format.blocking()
    );
    let want = format.row_bytes(x.len());
    assert_eq!(
        want,
        Some(row_bytes),
        "a {format:?} row of {row_bytes} bytes against {} activations",
        x.len()
    );
    row_bytes
}

/// The dispatch itself; `path` runs here and the lengths match.
#[inline]
fn dot_checked(path: Path, format: Format, row: &[u8], x: &Activations) -> f32 {
    match (x, path) {
        #[cfg(target_arch = "x86_64")]
        (Activations::Legacy(x), Path::Avx2 | Path::Avx512) => {
            // SAFETY: `Path::Avx2` is only ever detected (or accepted) with AVX2, FMA and F16C,
            // and `check` matched the row's blocks to `x`'s.
            unsafe {
                match format {
                    Format::Q4_0 => avx2::q4_0::<1>(row, [x])[0],
                    Format::Q4_1 => avx2::q4_1(row, x),
                    _ => avx2::q8_0::<1>(row, [x])[0],
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        (Activations::Super(x), Path::Avx2 | Path::Avx512) => {
            // SAFETY: as above.
            unsafe {
                match format {
                    Format::Q4K => avx2::q4_k::<1>(row, [x])[0],
                    Format::Q5K => avx2::q5_k::<1>(row, [x])[0],
                    _ => avx2::q6_k::<1>(row, [x])[0],
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        (Activations::Legacy(x), Path::Neon | Path::NeonDot) => {
            // SAFETY: NeonDot is only detected with `dotprod`, and the lengths match.
            unsafe {
                match (format, path == Path::NeonDot) {
                    (Format::Q4_0, false) => neon::plain::q4_0(row, x),
                    (Format::Q4_1, false) => neon::plain::q4_1(row, x),
                    (_, false) => neon::plain::q8_0(row, x),
                    (Format::Q4_0, true) => neon::sdot::q4_0(row, x),
                    (Format::Q4_1, true) => neon::sdot::q4_1(row, x),
                    (_, true) => neon::sdot::q8_0(row, x),
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        (Activations::Super(x), Path::Neon | Path::NeonDot) => {
            // SAFETY: as above.
            unsafe {
                match (format, path == Path::NeonDot) {
                    (Format::Q4K, false) => neon::plain::q4_k::<1>(row, [x])[0],
                    (Format::Q5K, false) => neon::plain::q5_k(row, x),
                    (_, false) => neon::plain::q6_k::<1>(row, [x])[0],
                    (Format::Q4K, true) => neon::sdot::q4_k::<1>(row, [x])[0],
                    (Format::Q5K, true) => neon::sdot::q5_k(row, x),
                    (_, true) => neon::sdot::q6_k::<1>(row, [x])[0],
                }
            }
        }
        (Activations::Legacy(x), _) => match format {
            Format::Q4_0 => portable::q4_0(row, x),
            Format::Q4_1 => portable::q4_1(row, x),
            _ => portable::q8_0(row, x),
        },
        (Activations::Super(x), _) => match format {
            Format::Q4K => portable::q4_k(row, x),
            Format::Q5K => portable::q5_k(row, x),
            _ => portable::q6_k(row, x),
        },
    }
}
