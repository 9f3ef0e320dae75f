//! Linear layers for decoding: GGUF-quantized (or f32) weights, rows split over a private
//! thread pool.
//!
//! Quantized rows run the kernels of the `latent-choir-kernels` crate (AVX2, NEON or portable,
//! chosen at run time), straight off the stored blocks, except that on AVX2 Q4_K and Q6_K
//! layers are repacked at load into interleaved groups of eight rows (`kernels::pack`: one copy,
//! Q4_K's 2.8% larger), which decode and prompts both read: a prompt's product then runs about
//! 2.5× faster and decode's bit for bit as each of its positions. Q4_0 and the k-quants (Q4_K, Q5_K, Q6_K:
//! what `*-Q4_K_M.gguf` files hold) work as llama.cpp does: the activation vector is quantized
//! once per product to 8 bits (32-value blocks, or 256-value super-blocks with per-16 sums) and
//! each row is an integer dot product; a prompt's product reads each row once for all its
//! positions. Q4_1 and Q8_0 keep exact f32 activations (see [`exact_activations`]): the result
//! is the dequantized model's to rounding. Formats without a kernel (Q2_K, Q3_K, Q5_0, …) go
//! through candle's matmul.
//!
//! Decode is one matrix-vector product per layer, which a single core cannot keep the memory bus
//! busy with, so rows are split over [`pool`]. Models run their whole step inside
//! [`in_pool`], so the many small products of a step are forked from a pool thread (a cheap
//! work-stealing split) rather than injected from outside (a futex round trip each).

use std::sync::OnceLock;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Result, Tensor};
use latent_choir_kernels::{self as kernels, Activations, Format};
use rayon::prelude::*;

use super::weight_buffer::{Scratch, WeightBuffer};

enum Kernel {
    /// GGUF blocks of a format with an integer kernel, `row_bytes` per row.
    Blocks {
        format: Format,
        row_bytes: usize,
        data: WeightBuffer<u8>,
    },
    /// Q4_K rows interleaved in groups of eight ([`kernels::pack`]), `group_bytes` per group:
    /// decode and prompts both read them, in place of the GGUF blocks.
    Packed {
        format: Format,
        group_bytes: usize,
        data: WeightBuffer<u8>,
    },
    /// Row-major `[rows, cols]`.
    F32(WeightBuffer<f32>),
    /// Formats without a native kernel.
    Candle(QMatMul),
    /// Stacked layers whose formats differ, computed one after the other.
    Parts(Vec<QLinear>),
}

pub struct QLinear {
    rows: usize,
    cols: usize,
    kernel: Kernel,
}

/// The pool the products are split over: as many threads as cores, at most four (decode is
/// bandwidth-bound well before that).
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("latent-choir-matvec-{i}"))
            .build()
            .unwrap_or_else(|_| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .expect("a one-thread pool can always be built")
            })
    })
}

/// Runs `f` on the product pool (directly when already there).
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

/// The kernel crate's format for a GGUF type, when it has one.
fn native_format(dtype: GgmlDType) -> Option<Format> {
    Some(match dtype {
        GgmlDType::Q4_0 => Format::Q4_0,
        GgmlDType::Q4_1 => Format::Q4_1,
        GgmlDType::Q8_0 => Format::Q8_0,
        GgmlDType::Q4K => Format::Q4K,
        GgmlDType::Q5K => Format::Q5K,
        GgmlDType::Q6K => Format::Q6K,
        _ => return None,
    })
}

impl QLinear {
    /// `weight` is `[rows (out), cols (in)]` as GGUF stores it.
    pub fn new(weight: QTensor) -> Result<Self> {
        let (rows, cols) = weight.shape().dims2()?;
        let kernel = match (weight.dtype(), native_format(weight.dtype())) {
            (_, Some(format)) => {
                let data = weight.data()?;
                format
                    .row_bytes(cols)
                    .filter(|&row_bytes| data.len() == rows * row_bytes)
                    .map(|row_bytes| {
                        if kernels::packs(format, rows) {
                            let packed = kernels::packed_len(format, data.len(), cols);
                            let group_bytes = packed / (rows / kernels::PACK_ROWS);
                            Kernel::Packed {
                                format,
                                group_bytes,
                                data: WeightBuffer::filled(packed, |out| {
                                    pack_in_parallel(
                                        format,
                                        &data,
                                        (cols, row_bytes),
                                        group_bytes,
                                        out,
                                    )
                                }),
                            }
                        } else {
                            Kernel::Blocks {
                                format,
                                row_bytes,
                                data: WeightBuffer::from(&*data),
                            }
                        }
                    })
            }
            (GgmlDType::F32, None) => Some(Kernel::F32(WeightBuffer::from(
                &weight
                    .dequantize(&Device::Cpu)?
                    .flatten_all()?
                    .to_vec1::<f32>()?[..],
            ))),
            _ => None,
        };
        let kernel = match kernel {
            Some(kernel) => kernel,
            None => Kernel::Candle(QMatMul::from_qtensor(weight)?),
        };
        Ok(Self { rows, cols, kernel })
    }

    /// An f32 layer from a `[rows, cols]` tensor.
    pub fn from_f32(weight: &Tensor) -> Result<Self> {
        let (rows, cols) = weight.dims2()?;
        let data = weight.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self {
            rows,
            cols,
            kernel: Kernel::F32(WeightBuffer::from(&data[..])),
        })
    }

    /// Stacks layers that read the same input (Q, K and V; gate and up) into one, so a single
    /// parallel pass computes them all; outputs come out concatenated in order.
    pub fn stack(parts: Vec<QLinear>) -> Result<Self> {
        let Some(cols) = parts.first().map(|p| p.cols) else {
            candle_core::bail!("nothing to stack");
        };
        if parts.iter().any(|p| p.cols != cols) {
            candle_core::bail!("stacked layers must share their input width");
        }
        let rows = parts.iter().map(|p| p.rows).sum();
        let same = |a: &Kernel, b: &Kernel| match (a, b) {
            (Kernel::Blocks { format: a, .. }, Kernel::Blocks { format: b, .. }) => a == b,
            (Kernel::Packed { format: a, .. }, Kernel::Packed { format: b, .. }) => a == b,
            (Kernel::F32(_), Kernel::F32(_)) => true,
            _ => false,
        };
        if !parts.iter().all(|p| same(&p.kernel, &parts[0].kernel)) {
            return Ok(Self {
                rows,
                cols,
                kernel: Kernel::Parts(parts),
            });
        }
        let kernel = match &parts[0].kernel {
            &Kernel::Blocks {
                format, row_bytes, ..
            } => {
                let data = parts
                    .iter()
                    .filter_map(|p| match &p.kernel {
                        Kernel::Blocks { data, .. } => Some(&data[..]),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                Kernel::Blocks {
                    format,
                    row_bytes,
                    data: WeightBuffer::concat(&data),
                }
            }
            &Kernel::Packed {
                format,
                group_bytes,
                ..
            } => {
                // Every part is whole groups of the same width: the groups follow each other.
                let data = parts
                    .iter()
                    .filter_map(|p| match &p.kernel {
                        Kernel::Packed { data, .. } => Some(&data[..]),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                Kernel::Packed {
                    format,
                    group_bytes,
                    data: WeightBuffer::concat(&data),
                }
            }
            Kernel::F32(_) => {
                let data = parts
                    .iter()
                    .filter_map(|p| match &p.kernel {
                        Kernel::F32(data) => Some(&data[..]),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                Kernel::F32(WeightBuffer::concat(&data))
            }
            Kernel::Candle(_) | Kernel::Parts(_) => {
                unreachable!("checked above that all parts share a native kernel")
            }
        };
        Ok(Self { rows, cols, kernel })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `x` is `[..., cols]`; the result `[..., rows]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut shape = x.dims().to_vec();
        let input = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0.0_f32; input.len() / self.cols * self.rows];
        self.forward_into(&input, &mut out)?;
        if let Some(last) = shape.last_mut() {
            *last = self.rows;
        }
        Tensor::from_vec(out, shape, x.device())
    }

    /// `input` holds `n` vectors of `cols`; `out` receives `n` vectors of `rows`, position-major.
    pub fn forward_into(&self, input: &[f32], out: &mut [f32]) -> Result<()> {
        let (rows, cols) = (self.rows, self.cols);
        let n = input.len() / cols;
        if input.len() != n * cols || out.len() != n * rows {
            candle_core::bail!(
                "linear [{rows}, {cols}]: input of {} and output of {} values",
                input.len(),
                out.len()
            );
        }
        match &self.kernel {
            Kernel::Candle(matmul) => {
                let x = Tensor::from_slice(input, (n, cols), &Device::Cpu)?;
                let y = matmul.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
                out.copy_from_slice(&y);
                return Ok(());
            }
            Kernel::Parts(parts) => return self.forward_parts(parts, input, out),
            _ => {}
        }
        in_pool(|| {
            if n == 1 {
                self.matvec(input, out);
            } else {
                self.matmul(input, n, out);
            }
        });
        Ok(())
    }

    /// One input vector: quantized once, then each row is an integer dot product straight off
    /// the stored blocks. The format is matched here, once per product, and each task of rows
    /// is one call into the kernel crate.
    fn matvec(&self, x: &[f32], out: &mut [f32]) {
        let cols = self.cols;
        match &self.kernel {
            &Kernel::Blocks {
                format,
                row_bytes,
                ref data,
            } => {
                let chunk = rows_per_task(out.len());
                if exact_activations(format) {
                    let sums = kernels::block_sums(x);
                    out.par_chunks_mut(chunk)
                        .enumerate()
                        .for_each(|(task, out)| {
                            let rows = &data[task * chunk * row_bytes..][..out.len() * row_bytes];
                            kernels::dot_f32_activations_rows(format, rows, x, &sums, out);
                        });
                    return;
                }
                let Some(x) = Activations::quantize(format.blocking(), x) else {
                    unreachable!("cols is a whole number of blocks (checked on load)")
                };
                out.par_chunks_mut(chunk)
                    .enumerate()
                    .for_each(|(task, out)| {
                        let rows = &data[task * chunk * row_bytes..][..out.len() * row_bytes];
                        kernels::dot_rows(format, rows, &x, out);
                    });
            }
            &Kernel::Packed {
                format,
                group_bytes,
                ref data,
            } => {
                let Some(x) = Activations::quantize(format.blocking(), x) else {
                    unreachable!("cols is a whole number of blocks (checked on load)")
                };
                let x = std::slice::from_ref(&x);
                // Tasks are whole groups: `rows_per_task` is a multiple of eight.
                let chunk = rows_per_task(out.len());
                out.par_chunks_mut(chunk)
                    .enumerate()
                    .for_each(|(task, out)| {
                        let groups = packed_groups(data, group_bytes, task * chunk, out.len());
                        let stride = out.len();
                        kernels::dot_packed(format, groups, x, out, stride);
                    });
            }
            Kernel::F32(data) => rows_into(out, |row| dot_f32(&data[row * cols..][..cols], x)),
            Kernel::Candle(_) | Kernel::Parts(_) => {
                unreachable!("only native kernels reach matvec")
            }
        }
    }

    /// Several input vectors (a prompt). Rows go in tiles of [`TILE_ROWS`]: a tile (unpacked to
    /// f32 where the format keeps f32 activations) stays in cache while the positions pass
    /// through it four at a time, so the positions are read once per tile rather than once per
    /// row, and each load of a position serves the tile's rows.
    fn matmul(&self, input: &[f32], n: usize, out: &mut [f32]) {
        let (rows, cols) = (self.rows, self.cols);
        let chunk = rows_per_task(rows);
        if let &Kernel::Packed {
            format,
            group_bytes,
            ref data,
        } = &self.kernel
        {
            let xs = quantize_positions(format, input, cols);
            // Each task's rows, position-major (`n` runs of its rows), then gathered in place.
            let mut by_task = vec![0.0_f32; rows * n];
            by_task
                .par_chunks_mut(chunk * n)
                .enumerate()
                .for_each(|(task, out)| {
                    let count = out.len() / n;
                    let groups = packed_groups(data, group_bytes, task * chunk, count);
                    kernels::dot_packed(format, groups, &xs, out, count);
                });
            out.par_chunks_mut(rows).enumerate().for_each(|(pos, out)| {
                for (task, part) in by_task.chunks(chunk * n).enumerate() {
                    let count = part.len() / n;
                    out[task * chunk..][..count].copy_from_slice(&part[pos * count..][..count]);
                }
            });
            return;
        }
        let mut by_row = vec![0.0_f32; rows * n];
        if let &Kernel::Blocks {
            format,
            row_bytes,
            ref data,
        } = &self.kernel
            && !exact_activations(format)
        {
            let xs = quantize_positions(format, input, cols);
            by_row
                .par_chunks_mut(chunk * n)
                .enumerate()
                .for_each(|(task, out)| {
                    let first = task * chunk;
                    for (tile, out) in out.chunks_mut(TILE_ROWS * n).enumerate() {
                        let start = (first + tile * TILE_ROWS) * row_bytes;
                        let tile_rows = &data[start..][..out.len() / n * row_bytes];
                        kernels::dot_tile(format, tile_rows, &xs, out);
                    }
                });
        } else {
            by_row
                .par_chunks_mut(chunk * n)
                .enumerate()
                .for_each(|(task, out)| {
                    let mut unpacked = Scratch::zeroed(TILE_ROWS * cols);
                    for (tile, out) in out.chunks_mut(TILE_ROWS * n).enumerate() {
                        let first = task * chunk + tile * TILE_ROWS;
                        let count = out.len() / n;
                        let weights = match &self.kernel {
                            Kernel::F32(data) => &data[first * cols..(first + count) * cols],
                            _ => {
                                for (offset, values) in
                                    unpacked.chunks_exact_mut(cols).take(count).enumerate()
                                {
                                    self.unpack_row(first + offset, values);
                                }
                                &unpacked[..count * cols]
                            }
                        };
                        tile_f32(weights, input, cols, out);
                    }
                });
        }
        // Row-major to position-major, in parallel: each task writes `TRANSPOSE` positions
        // (as many sequential streams) from short runs of every row.
        out.par_chunks_mut(rows * TRANSPOSE)
            .enumerate()
            .for_each(|(block, out)| {
                let (first, count) = (block * TRANSPOSE, out.len() / rows);
                for (row, values) in by_row.chunks_exact(n).enumerate() {
                    for (k, &value) in values[first..first + count].iter().enumerate() {
                        out[k * rows + row] = value;
                    }
                }
            });
    }

    fn forward_parts(&self, parts: &[QLinear], input: &[f32], out: &mut [f32]) -> Result<()> {
        let n = input.len() / self.cols;
        let mut first = 0;
        for part in parts {
            let mut y = vec![0.0_f32; n * part.rows];
            part.forward_into(input, &mut y)?;
            for pos in 0..n {
                out[pos * self.rows + first..][..part.rows]
                    .copy_from_slice(&y[pos * part.rows..][..part.rows]);
            }
            first += part.rows;
        }
        Ok(())
    }

    /// The dequantized values of one row whatever the format, `out` being `cols` long.
    fn row_values(&self, row: usize, out: &mut [f32]) -> Result<()> {
        if row >= self.rows || out.len() != self.cols {
            candle_core::bail!(
                "row {row} of [{}, {}] into {} values",
                self.rows,
                self.cols,
                out.len()
            );
        }
        match &self.kernel {
            Kernel::Candle(matmul) => {
                let id = Tensor::new(&[row as u32], &Device::Cpu)?;
                let values = matmul.embedding(&id)?.flatten_all()?.to_vec1::<f32>()?;
                out.copy_from_slice(&values);
            }
            Kernel::Parts(parts) => {
                let mut first = 0;
                for part in parts {
                    if row < first + part.rows {
                        return part.row_values(row - first, out);
                    }
                    first += part.rows;
                }
            }
            _ => self.unpack_row(row, out),
        }
        Ok(())
    }

    /// The dequantized values of one row of a native kernel, `out` being `cols` long.
    fn unpack_row(&self, row: usize, out: &mut [f32]) {
        match &self.kernel {
            &Kernel::Blocks {
                format,
                row_bytes,
                ref data,
            } => {
                let row = &data[row * row_bytes..][..row_bytes];
                if let Err(err) = kernels::dequantize(format, row, out) {
                    unreachable!("rows are whole blocks (checked on load): {err}")
                }
            }
            &Kernel::Packed {
                format, ref data, ..
            } => {
                let Some(row_bytes) = format.row_bytes(self.cols) else {
                    unreachable!("rows are whole blocks (checked on load)")
                };
                let mut block = vec![0u8; row_bytes];
                kernels::unpack_row(format, data, self.cols, row, &mut block);
                if let Err(err) = kernels::dequantize(format, &block, out) {
                    unreachable!("rows are whole blocks (checked on load): {err}")
                }
            }
            Kernel::F32(data) => out.copy_from_slice(&data[row * self.cols..(row + 1) * self.cols]),
            Kernel::Candle(_) | Kernel::Parts(_) => {
                unreachable!("only native kernels reach unpack_row")
            }
        }
    }
}

/// Each `cols`-wide position of `input` quantized for `format`, in parallel.
fn quantize_positions(format: Format, input: &[f32], cols: usize) -> Vec<Activations> {
    input
        .par_chunks_exact(cols)
        .map(|x| Activations::quantize(format.blocking(), x))
        .collect::<Option<_>>()
        .unwrap_or_default()
}

/// [`kernels::pack`] on the pool, 64 groups of rows per task (groups are packed alone).
fn pack_in_parallel(
    format: Format,
    rows: &[u8],
    (cols, row_bytes): (usize, usize),
    group_bytes: usize,
    out: &mut [u8],
) {
    const GROUPS: usize = 64;
    in_pool(|| {
        out.par_chunks_mut(GROUPS * group_bytes)
            .zip(rows.par_chunks(GROUPS * kernels::PACK_ROWS * row_bytes))
            .for_each(|(out, rows)| kernels::pack_into(format, rows, cols, out));
    });
}

/// The packed groups of `count` rows from row `first` (both multiples of eight).
fn packed_groups(data: &[u8], group_bytes: usize, first: usize, count: usize) -> &[u8] {
    let per = kernels::PACK_ROWS;
    &data[first / per * group_bytes..][..count / per * group_bytes]
}

/// Positions per task of the row-major to position-major copy: 16 floats are a cache line.
const TRANSPOSE: usize = 16;

/// Whether `format`'s products keep f32 activations. Q4_1 and Q8_0, the default model's
/// formats, do: its `transformers` reference pins every hidden state to 1e-4 of its range, and
/// 8-bit activations (measured here with these kernels) move layer 1's states by 2.6% of their
/// range (1.03 of 38.9; the greedy answers stayed the same), as they moved candle's. Q4_0 and
/// the k-quants quantize their activations as llama.cpp does; before they had native kernels
/// they went through candle's matmul, which quantizes them too.
fn exact_activations(format: Format) -> bool {
    format.has_f32_activations()
}

/// A model's linear layer: dense (f32) or quantized weights, both through the split kernels
/// of [`QLinear`] (one `match` per product, none per row), plus an optional bias.
pub struct Linear {
    weight: QLinear,
    bias: Option<Vec<f32>>,
}

impl Linear {
    /// `bias`, when given, has one value per output.
    pub fn new(weight: QLinear, bias: Option<Vec<f32>>) -> Result<Self> {
        if bias.as_ref().is_some_and(|b| b.len() != weight.rows) {
            candle_core::bail!("bias does not match the {} outputs", weight.rows);
        }
        Ok(Self { weight, bias })
    }

    /// An f32 layer: `weight` is `[out, in]`, `bias` `[out]`.
    pub fn dense(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let bias = bias
            .map(|b| b.flatten_all()?.to_vec1::<f32>())
            .transpose()?;
        Self::new(QLinear::from_f32(weight)?, bias)
    }

    /// Stacks layers that read the same input (see [`QLinear::stack`]); a part without a bias
    /// contributes zeros when another has one.
    pub fn stack(parts: Vec<Linear>) -> Result<Self> {
        let bias = parts.iter().any(|p| p.bias.is_some()).then(|| {
            parts
                .iter()
                .flat_map(|p| match &p.bias {
                    Some(b) => b.clone(),
                    None => vec![0.0; p.weight.rows],
                })
                .collect()
        });
        let weight = QLinear::stack(parts.into_iter().map(|p| p.weight).collect())?;
        Ok(Self { weight, bias })
    }

    pub fn rows(&self) -> usize {
        self.weight.rows
    }

    pub fn cols(&self) -> usize {
        self.weight.cols
    }

    /// `input` holds `n` vectors of `cols`; `out` receives `n` vectors of `rows`.
    pub fn forward_into(&self, input: &[f32], out: &mut [f32]) -> Result<()> {
        self.weight.forward_into(input, out)?;
        if let Some(bias) = &self.bias {
            for row in out.chunks_exact_mut(self.weight.rows) {
                row.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
            }
        }
        Ok(())
    }

    /// Row `row` of the weight, dequantized: an embedding lookup (also of a tied LM head).
    pub fn weight_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        self.weight.row_values(row, out)
    }
}

/// GB/s the product pool's threads read from memory: a buffer of `bytes` like the weights
/// (see [`WeightBuffer`]), one contiguous share per thread, summed with the f32 kernel; the
/// best of `passes`. A decode that reads every weight once per token cannot beat this
/// bandwidth divided by the weights' size.
pub fn read_bandwidth(bytes: usize, passes: usize) -> f64 {
    let data = WeightBuffer::from(&vec![1.0_f32; bytes / 4][..]);
    let share = data.len().div_ceil(pool().current_num_threads()).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..passes {
        let start = std::time::Instant::now();
        std::hint::black_box(read_through_pool(&data, share));
        best = best.min(start.elapsed().as_secs_f64());
    }
    bytes as f64 / best / 1e9
}

/// Reads all of `data` on the product pool in pieces of `piece` values, as decode's kernel does.
fn read_through_pool(data: &[f32], piece: usize) -> f32 {
    in_pool(|| data.par_chunks(piece).map(|c| dot_f32(c, c)).sum())
}

/// `out[row] = dot(row)` for every row, split over the pool in tasks of whole rows.
fn rows_into(out: &mut [f32], dot: impl Fn(usize) -> f32 + Sync) {
    let chunk = rows_per_task(out.len());
    out.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(task, out)| {
            for (offset, value) in out.iter_mut().enumerate() {
                *value = dot(task * chunk + offset);
            }
        });
}

/// Enough tasks for work stealing to even out two to four cores, each a multiple of 8 rows.
fn rows_per_task(rows: usize) -> usize {
    let tasks = pool().current_num_threads() * 4;
    rows.div_ceil(tasks).next_multiple_of(8).max(8)
}

/// Rows per tile of a prompt's product: 16 rows of a 2048-wide f32 layer are 128 KiB, within
/// a core's L2 beside the four positions they meet at a time.
const TILE_ROWS: usize = 16;

/// `out[r · n + p] = weights[r] · input[p]` for a tile of f32 rows (`cols` each) and the `n`
/// positions of `input`: two rows against four positions per pass (eight sums in registers,
/// six loads per eight multiply-adds), the leftovers one by one.
fn tile_f32(weights: &[f32], input: &[f32], cols: usize, out: &mut [f32]) {
    let n = input.len() / cols;
    let at = |pos: usize| &input[pos * cols..(pos + 1) * cols];
    let row = |r: usize| &weights[r * cols..(r + 1) * cols];
    let count = weights.len() / cols;
    let mut pos = 0;
    while pos + 4 <= n {
        let x = [at(pos), at(pos + 1), at(pos + 2), at(pos + 3)];
        let mut r = 0;
        while r + 2 <= count {
            let dots = dot2x4_f32([row(r), row(r + 1)], x);
            for (k, dots) in dots.iter().enumerate() {
                out[(r + k) * n + pos..][..4].copy_from_slice(dots);
            }
            r += 2;
        }
        if r < count {
            out[r * n + pos..][..4].copy_from_slice(&dot4_f32(row(r), x));
        }
        pos += 4;
    }
    for pos in pos..n {
        for r in 0..count {
            out[r * n + pos] = dot_f32(row(r), at(pos));
        }
    }
}

/// Whether the AVX2 kernels (with FMA and F16C) can run here; checked once.
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the AVX-512 f32 kernels can run here (AVX-512F besides AVX2 and FMA); checked once.
/// A prompt's f32 product is bound by multiply-adds, and sixteen lanes halve their count.
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| has_avx2() && is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `w` dotted with four vectors at once (a prompt's positions): each load of `w` serves four
/// products, so the loop is bound by arithmetic rather than loads.
pub(crate) fn dot4_f32(w: &[f32], x: [&[f32]; 4]) -> [f32; 4] {
    assert!(x.iter().all(|x| x.len() == w.len()));
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA, and the lengths are equal.
        return unsafe { avx2::dot4_f32(w, x) };
    }
    x.map(|x| w.iter().zip(x).map(|(a, b)| a * b).sum())
}

/// Two rows dotted with four vectors: the register tile of a prompt's f32 product.
pub(crate) fn dot2x4_f32(w: [&[f32]; 2], x: [&[f32]; 4]) -> [[f32; 4]; 2] {
    assert!(w.iter().chain(&x).all(|v| v.len() == w[0].len()));
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F, AVX2 and FMA, and the lengths are equal.
        return unsafe { avx512::dot2x4_f32(w, x) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA, and the lengths are equal.
        return unsafe { avx2::dot2x4_f32(w, x) };
    }
    w.map(|w| x.map(|x| w.iter().zip(x).map(|(a, b)| a * b).sum()))
}

pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA, and the lengths are equal.
        return unsafe { avx2::dot_f32(a, b) };
    }
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    fn sum_lanes(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
    }

    /// # Safety
    /// Every `x` has the length of `w`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4_f32(w: &[f32], x: [&[f32]; 4]) -> [f32; 4] {
        let n = w.len();
        let mut acc = [[_mm256_setzero_ps(); 4]; 2];
        let mut i = 0;
        // SAFETY: every load below is inside `0..n`, the length of `w` and of every `x`.
        unsafe {
            while i + 16 <= n {
                for (half, acc) in acc.iter_mut().enumerate() {
                    let at = i + 8 * half;
                    let weights = _mm256_loadu_ps(w.as_ptr().add(at));
                    for (acc, x) in acc.iter_mut().zip(x) {
                        *acc = _mm256_fmadd_ps(weights, _mm256_loadu_ps(x.as_ptr().add(at)), *acc);
                    }
                }
                i += 16;
            }
            while i + 8 <= n {
                let weights = _mm256_loadu_ps(w.as_ptr().add(i));
                for (acc, x) in acc[0].iter_mut().zip(x) {
                    *acc = _mm256_fmadd_ps(weights, _mm256_loadu_ps(x.as_ptr().add(i)), *acc);
                }
                i += 8;
            }
        }
        let mut out = [0.0f32; 4];
        for (k, out) in out.iter_mut().enumerate() {
            let tail: f32 = w[i..].iter().zip(&x[k][i..]).map(|(a, b)| a * b).sum();
            *out = sum_lanes(_mm256_add_ps(acc[0][k], acc[1][k])) + tail;
        }
        out
    }

    /// # Safety
    /// Both `w` and every `x` have the same length.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot2x4_f32(w: [&[f32]; 2], x: [&[f32]; 4]) -> [[f32; 4]; 2] {
        let n = w[0].len();
        let mut acc = [[_mm256_setzero_ps(); 4]; 2];
        let mut i = 0;
        // SAFETY: every load below is inside `0..n`, the length of every slice.
        unsafe {
            while i + 8 <= n {
                let weights = [
                    _mm256_loadu_ps(w[0].as_ptr().add(i)),
                    _mm256_loadu_ps(w[1].as_ptr().add(i)),
                ];
                for (k, x) in x.iter().enumerate() {
                    let x = _mm256_loadu_ps(x.as_ptr().add(i));
                    acc[0][k] = _mm256_fmadd_ps(weights[0], x, acc[0][k]);
                    acc[1][k] = _mm256_fmadd_ps(weights[1], x, acc[1][k]);
                }
                i += 8;
            }
        }
        let mut out = [[0.0f32; 4]; 2];
        for (r, out) in out.iter_mut().enumerate() {
            for (k, out) in out.iter_mut().enumerate() {
                let tail: f32 = w[r][i..].iter().zip(&x[k][i..]).map(|(a, b)| a * b).sum();
                *out = sum_lanes(acc[r][k]) + tail;
            }
        }
        out
    }

    /// # Safety
    /// `a` and `b` have the same length.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: every load below is inside `0..n`.
        unsafe {
            while i + 32 <= n {
                for (k, acc) in acc.iter_mut().enumerate() {
                    let at = i + 8 * k;
                    *acc = _mm256_fmadd_ps(
                        _mm256_loadu_ps(a.as_ptr().add(at)),
                        _mm256_loadu_ps(b.as_ptr().add(at)),
                        *acc,
                    );
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] = _mm256_fmadd_ps(
                    _mm256_loadu_ps(a.as_ptr().add(i)),
                    _mm256_loadu_ps(b.as_ptr().add(i)),
                    acc[0],
                );
                i += 8;
            }
        }
        let total = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let tail: f32 = a[i..].iter().zip(&b[i..]).map(|(a, b)| a * b).sum();
        sum_lanes(total) + tail
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Two rows dotted with four vectors in 512-bit lanes, as `avx2::dot2x4_f32`.
    ///
    /// # Safety
    /// The CPU has AVX-512F, AVX2 and FMA; both `w` and every `x` have the same length.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn dot2x4_f32(w: [&[f32]; 2], x: [&[f32]; 4]) -> [[f32; 4]; 2] {
        let n = w[0].len();
        let mut acc = [[_mm512_setzero_ps(); 4]; 2];
        let mut i = 0;
        // SAFETY: every load below is inside `0..n`, the length of every slice.
        unsafe {
            while i + 16 <= n {
                let weights = [
                    _mm512_loadu_ps(w[0].as_ptr().add(i)),
                    _mm512_loadu_ps(w[1].as_ptr().add(i)),
                ];
                for (k, x) in x.iter().enumerate() {
                    let x = _mm512_loadu_ps(x.as_ptr().add(i));
                    acc[0][k] = _mm512_fmadd_ps(weights[0], x, acc[0][k]);
                    acc[1][k] = _mm512_fmadd_ps(weights[1], x, acc[1][k]);
                }
                i += 16;
            }
        }
        let mut out = [[0.0f32; 4]; 2];
        for (r, out) in out.iter_mut().enumerate() {
            for (k, out) in out.iter_mut().enumerate() {
                let tail: f32 = w[r][i..].iter().zip(&x[k][i..]).map(|(a, b)| a * b).sum();
                *out = _mm512_reduce_add_ps(acc[r][k]) + tail;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(rows: usize, cols: usize, salt: usize) -> Tensor {
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| (((i + salt) * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        Tensor::from_vec(values, (rows, cols), &Device::Cpu).expect("weights")
    }

    fn max_difference(got: &Tensor, want: &Tensor) -> f32 {
        assert_eq!(got.dims(), want.dims());
        (got - want)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .expect("difference")
    }

    fn input(n: usize, cols: usize) -> Tensor {
        let x: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.37).sin()).collect();
        Tensor::from_vec(x, (1, n, cols), &Device::Cpu).expect("x")
    }

    #[test]
    fn four_dots_at_once_equal_four_dots() {
        for len in [0, 7, 8, 16, 45, 576] {
            let w: Vec<f32> = (0..len).map(|i| (i as f32 * 0.91).cos()).collect();
            let xs: Vec<Vec<f32>> = (0..4)
                .map(|k| {
                    (0..len)
                        .map(|i| ((i * 3 + k) as f32 * 0.37).sin())
                        .collect()
                })
                .collect();
            let v: Vec<f32> = (0..len).map(|i| (i as f32 * 0.53).sin() - 0.2).collect();
            let x = [&xs[0][..], &xs[1], &xs[2], &xs[3]];
            let got = dot4_f32(&w, x);
            let mut pairs = vec![dot2x4_f32([&w, &v], x)];
            // On an AVX-512 machine the dispatch takes the 512-bit kernel: test AVX2's too.
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: the CPU has AVX2 and FMA, and the lengths are equal.
                pairs.push(unsafe { avx2::dot2x4_f32([&w, &v], x) });
            }
            for (k, x) in xs.iter().enumerate() {
                let exact = |w: &[f32]| -> f64 {
                    w.iter()
                        .zip(x)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum()
                };
                let want = exact(&w);
                assert!(
                    (f64::from(got[k]) - want).abs() < 1e-4,
                    "{len} {k}: {} vs {want}",
                    got[k]
                );
                for pair in &pairs {
                    for (r, want) in [want, exact(&v)].into_iter().enumerate() {
                        assert!(
                            (f64::from(pair[r][k]) - want).abs() < 1e-4,
                            "{len} row {r} position {k}: {} vs {want}",
                            pair[r][k]
                        );
                    }
                }
            }
        }
    }

    /// Every format with a kernel, as candle (GGUF's writer here) names it.
    const NATIVE: [GgmlDType; 6] = [
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q8_0,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ];

    /// Our block decoding is GGUF's: candle's own quantizer writes the blocks, and our
    /// dequantization of every row equals candle's, bit for bit.
    #[test]
    fn blocks_decode_as_candle_decodes_them() {
        let (rows, cols) = (6, 512);
        for dtype in NATIVE {
            // Varied rows: different scales, minimums and signs per block.
            let values: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 7919 % 1009) as f32 / 504.0 - 1.0) * (1.0 + (i / 256 % 5) as f32))
                .collect();
            let dense = Tensor::from_vec(values, (rows, cols), &Device::Cpu).expect("dense");
            let q = QTensor::quantize(&dense, dtype).expect("quantize");
            let want = q
                .dequantize(&Device::Cpu)
                .and_then(|t| t.to_vec2::<f32>())
                .expect("dequantize");
            let linear = QLinear::new(q).expect("linear");
            assert!(
                matches!(linear.kernel, Kernel::Blocks { .. }),
                "{dtype:?} is native"
            );
            let mut got = vec![0.0; cols];
            for (row, want) in want.iter().enumerate() {
                linear.unpack_row(row, &mut got);
                assert_eq!(&got, want, "{dtype:?} row {row}");
            }
        }
    }

    #[test]
    fn native_kernels_match_the_dequantized_product() {
        // Tasks of 24 to 40 rows (four to two threads): whole tiles, short ones, an odd last one.
        let (rows, cols) = (301, 512);
        for dtype in NATIVE.into_iter().chain([GgmlDType::F32]) {
            let q = QTensor::quantize(&weights(rows, cols, 0), dtype).expect("quantize");
            let dense = q.dequantize(&Device::Cpu).expect("dequantize");
            let linear = QLinear::new(q).expect("linear");
            assert!(
                !matches!(linear.kernel, Kernel::Candle(_)),
                "{dtype:?} is native"
            );
            let w = dense.to_vec2::<f32>().expect("rows");
            for n in [1, 5, 11] {
                let x = input(n, cols);
                let got = linear.forward(&x).expect("forward");
                let want = x
                    .broadcast_matmul(&dense.t().expect("t"))
                    .expect("reference");
                let diff = max_difference(&got, &want);
                // Otherwise 8-bit activations: each x is off by at most half its block's step,
                // max|x| / 254 (|x| ≤ 1 here, blocks of 32 or 256 alike), met by the weight
                // part that multiplies it: all of w, except for Q4_0 and Q4_1, whose offset
                // meets the exact Σx, leaving w − offset, at most |w| + max|w| of its block.
                // Plus f32 rounding.
                let legacy_offset = matches!(dtype, GgmlDType::Q4_0 | GgmlDType::Q4_1);
                let row_bound = |r: &Vec<f32>| -> f32 {
                    r.chunks(32)
                        .map(|b| {
                            let sum: f32 = b.iter().map(|v| v.abs()).sum();
                            let max = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                            if legacy_offset { sum + 32.0 * max } else { sum }
                        })
                        .sum()
                };
                // Q4_1 and Q8_0 keep f32 activations: exact to rounding.
                let exact = matches!(dtype, GgmlDType::F32 | GgmlDType::Q4_1 | GgmlDType::Q8_0);
                let tolerance = if exact {
                    1e-4
                } else {
                    w.iter().map(row_bound).fold(0.0f32, f32::max) / 254.0 * 1.001 + 1e-4
                };
                assert!(
                    diff < tolerance,
                    "{dtype:?}, {n} positions: max error {diff} > {tolerance}"
                );
            }
        }
    }

    /// Q4_K and Q6_K in whole groups of eight rows are packed (where the CPU has the kernel):
    /// a prompt's product equals each position's own product (decode) bit for bit, and both
    /// the dequantized product within the activations' rounding.
    #[test]
    fn packed_prompts_equal_their_positions_decoded() {
        for (dtype, format) in [(GgmlDType::Q4K, Format::Q4K), (GgmlDType::Q6K, Format::Q6K)] {
            packed_prompt_equals_its_positions(dtype, format);
        }
    }

    fn packed_prompt_equals_its_positions(dtype: GgmlDType, format: Format) {
        let (rows, cols) = (304, 512);
        let q = QTensor::quantize(&weights(rows, cols, 4), dtype).expect("quantize");
        let dense = q.dequantize(&Device::Cpu).expect("dequantize");
        let linear = QLinear::new(q).expect("linear");
        assert_eq!(
            matches!(linear.kernel, Kernel::Packed { .. }),
            kernels::packs(format, rows)
        );
        let n = 11;
        let x = input(n, cols);
        let prompt = linear.forward(&x).expect("prompt");
        let prompt = prompt
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values");
        for pos in 0..n {
            let one = x.narrow(1, pos, 1).expect("position");
            let decoded = linear.forward(&one).expect("decode");
            let decoded = decoded
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("values");
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&prompt[pos * rows..][..rows]),
                bits(&decoded),
                "{dtype:?} position {pos}"
            );
        }
        let want = x
            .broadcast_matmul(&dense.t().expect("t"))
            .expect("reference");
        let got = linear.forward(&x).expect("forward");
        let w = dense.to_vec2::<f32>().expect("rows");
        let bound = w
            .iter()
            .map(|r| r.iter().map(|v| v.abs()).sum::<f32>())
            .fold(0.0f32, f32::max)
            / 254.0
            * 1.001
            + 1e-4;
        let diff = max_difference(&got, &want);
        assert!(diff < bound, "{dtype:?}: max error {diff} > {bound}");
    }

    #[test]
    fn stacked_layers_equal_their_parts() {
        use GgmlDType::{F32, Q4_1, Q4K, Q8_0};
        let cols = 256;
        for dtypes in [
            [Q4_1; 3],
            [Q8_0; 3],
            [Q4K; 3],
            [Q4_1, Q8_0, F32],
            [Q4K, Q4K, Q8_0],
        ] {
            let parts: Vec<QTensor> = [(40, 1), (16, 2), (16, 3)]
                .iter()
                .zip(dtypes)
                .map(|(&(rows, salt), dtype)| {
                    QTensor::quantize(&weights(rows, cols, salt), dtype).expect("quantize")
                })
                .collect();
            let x = input(3, cols);
            let separate: Vec<Tensor> = parts
                .iter()
                .zip(dtypes)
                .map(|(p, dtype)| {
                    let dense = p.dequantize(&Device::Cpu).expect("dequantize");
                    QLinear::new(QTensor::quantize(&dense, dtype).expect("requantize"))
                        .and_then(|l| l.forward(&x))
                        .expect("part")
                })
                .collect();
            let want = Tensor::cat(&separate, 2).expect("cat");
            let stacked = QLinear::stack(
                parts
                    .into_iter()
                    .map(|p| QLinear::new(p).expect("linear"))
                    .collect(),
            )
            .expect("stack");
            assert_eq!(stacked.rows(), 72);
            let diff = max_difference(&stacked.forward(&x).expect("forward"), &want);
            assert!(diff < 1e-4, "{dtypes:?}: stacked differs by {diff}");
        }
    }

    #[test]
    fn weight_rows_are_the_dequantized_rows() {
        let (rows, cols) = (8, 256);
        for dtype in [
            GgmlDType::Q4_1,
            GgmlDType::Q8_0,
            GgmlDType::F32,
            GgmlDType::Q4K,
        ] {
            let q = QTensor::quantize(&weights(rows, cols, 0), dtype).expect("quantize");
            let dense = q
                .dequantize(&Device::Cpu)
                .and_then(|t| t.to_vec2::<f32>())
                .expect("dequantize");
            let linear = Linear::new(QLinear::new(q).expect("linear"), None).expect("linear");
            let mut got = vec![0.0; cols];
            for (row, want) in dense.iter().enumerate() {
                linear.weight_row(row, &mut got).expect("row");
                assert_eq!(&got, want, "{dtype:?} row {row}");
            }
            assert!(linear.weight_row(rows, &mut got).is_err(), "{dtype:?}");
        }
    }

    /// The k-quant kernels against candle's matmul (what these formats ran before), at a
    /// ~1B llama's shapes (width 2048, MLP 5632): a matrix-vector product (decode) and a
    /// 64-position product (prefill), per format. A measurement, not a check (the kernel crate
    /// and candle are both built at opt-level 3 in every profile): run by hand with
    /// `cargo test --features standalone,assert_process_allocs --lib kernels_against_candle -- --ignored --nocapture`.
    #[test]
    #[ignore = "a benchmark: prints timings"]
    fn kernels_against_candle() {
        use std::time::Instant;
        let time = |f: &mut dyn FnMut()| {
            f();
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let start = Instant::now();
                f();
                best = best.min(start.elapsed().as_secs_f64());
            }
            best
        };
        for dtype in [
            GgmlDType::Q4K,
            GgmlDType::Q6K,
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
        ] {
            for (rows, cols) in [(2048, 2048), (5632, 2048), (2048, 5632)] {
                let q = QTensor::quantize(&weights(rows, cols, 1), dtype).expect("quantize");
                let bytes = q.storage_size_in_bytes();
                let ours =
                    QLinear::new(QTensor::quantize(&weights(rows, cols, 1), dtype).expect("q"))
                        .expect("linear");
                let candle = QMatMul::from_qtensor(q).expect("candle");
                for n in [1, 64] {
                    let input: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.37).sin()).collect();
                    let mut out = vec![0.0f32; n * rows];
                    let x = Tensor::from_slice(&input, (n, cols), &Device::Cpu).expect("x");
                    let t_ours = time(&mut || ours.forward_into(&input, &mut out).expect("ours"));
                    let t_candle = time(&mut || {
                        std::hint::black_box(candle.forward(&x).expect("candle"));
                    });
                    println!(
                        "{dtype:?} [{rows}, {cols}] n={n:3}: ours {:8.3} ms ({:5.1} GB/s), candle {:8.3} ms ({:5.1} GB/s), {:4.1}x",
                        t_ours * 1e3,
                        bytes as f64 / t_ours / 1e9,
                        t_candle * 1e3,
                        bytes as f64 / t_candle / 1e9,
                        t_candle / t_ours
                    );
                }
            }
        }
    }

    /// Decode's memory traffic at GPT-2 124M's shapes: GB/s of the f32 mat-vecs per shape, in
    /// step order, against plain reads of the same buffers and of the same bytes on ordinary
    /// pages. A measurement, not a check: run by hand with
    /// `cargo test --release --lib bandwidth -- --ignored --nocapture`.
    #[test]
    #[ignore = "a benchmark: prints GB/s, takes ~half a GB"]
    fn bandwidth_at_gpt2_shapes() {
        use std::time::Instant;
        const SHAPES: [(&str, usize, usize); 4] = [
            ("attn.c_attn", 2304, 768),
            ("attn.c_proj", 768, 768),
            ("mlp.c_fc", 3072, 768),
            ("mlp.c_proj", 768, 3072),
        ];
        const PASSES: usize = 10;
        let filled = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 2500.0)
                .collect()
        };
        let dense = |rows: usize, cols: usize| QLinear {
            rows,
            cols,
            kernel: Kernel::F32(WeightBuffer::from(&filled(rows * cols)[..])),
        };
        let mut layers: Vec<(&str, QLinear)> = Vec::new();
        for _ in 0..12 {
            layers.extend(SHAPES.iter().map(|&(name, r, c)| (name, dense(r, c))));
        }
        layers.push(("lm_head", dense(50257, 768)));
        let x = filled(3072);
        let mut outs: Vec<Vec<f32>> = layers.iter().map(|(_, l)| vec![0.0; l.rows]).collect();
        let mut seconds = std::collections::BTreeMap::<&str, (f64, usize)>::new();
        let start = Instant::now();
        for _ in 0..PASSES {
            in_pool(|| {
                for ((name, layer), out) in layers.iter().zip(&mut outs) {
                    let t = Instant::now();
                    layer.matvec(&x[..layer.cols], out);
                    let entry = seconds.entry(name).or_default();
                    entry.0 += t.elapsed().as_secs_f64();
                    entry.1 += layer.rows * layer.cols * 4;
                }
            });
        }
        let total = start.elapsed().as_secs_f64();
        let bytes: usize = layers.iter().map(|(_, l)| l.rows * l.cols * 4).sum();
        for (name, (secs, moved)) in &seconds {
            println!("matvec {name:12} {:5.1} GB/s", *moved as f64 / secs / 1e9);
        }
        println!(
            "matvec all    {:5.1} GB/s, {:.1} passes/s over {:.0} MB",
            (bytes * PASSES) as f64 / total / 1e9,
            PASSES as f64 / total,
            bytes as f64 / 1e6
        );
        let read = |data: &[f32]| read_through_pool(data, 1 << 16);
        let start = Instant::now();
        for _ in 0..PASSES {
            for (_, layer) in &layers {
                if let Kernel::F32(data) = &layer.kernel {
                    std::hint::black_box(read(data));
                }
            }
        }
        let huge = (bytes * PASSES) as f64 / start.elapsed().as_secs_f64() / 1e9;
        println!("plain read of the same buffers {huge:5.1} GB/s");
        let ordinary = filled(bytes / 4);
        let start = Instant::now();
        for _ in 0..PASSES {
            std::hint::black_box(read(&ordinary));
        }
        let small_pages = (bytes * PASSES) as f64 / start.elapsed().as_secs_f64() / 1e9;
        println!("plain read of one Vec (4 KB pages) {small_pages:5.1} GB/s");
    }
}
