//! Latent Choir's quantized kernels: the GGUF block formats the models arrive in (Q4_0, Q4_1,
//! Q8_0, Q4_K, Q5_K, Q6_K), their dequantization, and weight-row · activation dot products in
//! integers against activations quantized once per product to 8 bits, as llama.cpp computes
//! them. Three paths, chosen once at run time: AVX2+FMA+F16C on x86_64, NEON on aarch64 (with
//! SDOT when the CPU has `dotprod`), and portable Rust everywhere else. The SIMD paths compute the
//! portable path's integer sums; only the order of the float sums differs.
//!
//! A separate crate without dependencies so that it cross-compiles and tests alone for aarch64
//! (`cargo xtask test-aarch64`). The API is safe: lengths are checked once per call, and the
//! `unsafe` stays inside the SIMD modules.

mod activations;
mod blocks;
mod portable;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(test)]
mod tests;

use std::sync::OnceLock;

pub use activations::{Activations, Blocking, Q8Block, Q8KBlock};
pub use blocks::{BLOCK, SUPER, f16_to_f32};

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
    let rows = rows.chunks_exact(bytes).zip(out);
    #[cfg(target_arch = "x86_64")]
    if Path::detected() == Path::Avx2 {
        for (row, out) in rows {
            // SAFETY: the CPU has AVX2, FMA and F16C, and the lengths were checked above.
            *out = unsafe {
                match format {
                    Format::Q4_1 => avx2::q4_1_f32(row, x, sums),
                    _ => avx2::q8_0_f32(row, x),
                }
            };
        }
        return;
    }
    for (row, out) in rows {
        *out = match format {
            Format::Q4_1 => portable::q4_1_f32(row, x, sums),
            _ => portable::q8_0_f32(row, x),
        };
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
    #[cfg(target_arch = "x86_64")]
    if path == Path::Avx2 && path.runs_here() {
        // SAFETY: the CPU has AVX2, FMA and F16C, and the lengths were checked above.
        return unsafe {
            match format {
                Format::Q4_1 => avx2::q4_1_f32(row, x, sums),
                _ => avx2::q8_0_f32(row, x),
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
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                return Path::Avx2;
            }
            #[cfg(target_arch = "aarch64")]
            {
                if std::arch::is_aarch64_feature_detected!("dotprod") {
                    return Path::NeonDot;
                }
                if std::arch::is_aarch64_feature_detected!("neon") {
                    return Path::Neon;
                }
            }
            Path::Portable
        })
    }

    /// Whether this CPU runs this path.
    pub fn runs_here(self) -> bool {
        let detected = Path::detected();
        self == Path::Portable
            || self == detected
            || (self, detected) == (Path::Neon, Path::NeonDot)
    }

    /// Every path this CPU can run, portable first (for tests and benchmarks).
    pub fn available() -> Vec<Path> {
        let mut paths = vec![Path::Portable];
        match Path::detected() {
            Path::NeonDot => paths.extend([Path::Neon, Path::NeonDot]),
            Path::Portable => {}
            other => paths.push(other),
        }
        paths
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

/// Four positions in one pass over `row`, where a path has such a kernel; `false` otherwise.
/// Each position's sums run in the same order as [`dot_checked`]'s, so the results are equal.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(unused_variables)
)]
fn dot_four(path: Path, format: Format, row: &[u8], xs: &[Activations], out: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if path == Path::Avx2 {
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
        (Activations::Legacy(x), Path::Avx2) => {
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
        (Activations::Super(x), Path::Avx2) => {
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
