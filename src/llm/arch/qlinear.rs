//! Linear layers for decoding: GGUF-quantized (or f32) weights against exact f32 activations,
//! rows split over a private thread pool.
//!
//! Candle's quantized matmul also quantizes the activation vector to 8 bits. That moves the
//! default model's hidden states by about 1% and its logits enough to flip near-ties: its first
//! answer token "The" leads "L" by 0.08 of 25, and the 8-bit path picks "L". Here the weights stay
//! quantized as stored and are unpacked block by block against f32 activations, so the result is
//! the dequantized model's to rounding. Q4_1 and Q8_0 (what the default model uses) and f32 have
//! native kernels, written with explicit AVX2 intrinsics so their speed does not hang on what the
//! auto-vectoriser makes of the surrounding code; other formats go through candle's matmul.
//!
//! Decode is one matrix-vector product per layer, which a single core cannot keep the memory bus
//! busy with, so rows are split over [`pool`]. Models run their whole step inside
//! [`in_pool`], so the many small products of a step are forked from a pool thread (a cheap
//! work-stealing split) rather than injected from outside (a futex round trip each).

use std::sync::OnceLock;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Result, Tensor};
use rayon::prelude::*;

use super::weight_buffer::{Scratch, WeightBuffer};

const BLOCK: usize = 32;
/// Bytes per block: Q4_1 is two f16 (scale, minimum) and 16 bytes of nibbles; Q8_0 one f16
/// scale and 32 signed bytes.
const Q4_1_BYTES: usize = 20;
const Q8_0_BYTES: usize = 34;

enum Kernel {
    Q4_1(WeightBuffer<u8>),
    Q8_0(WeightBuffer<u8>),
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

impl QLinear {
    /// `weight` is `[rows (out), cols (in)]` as GGUF stores it.
    pub fn new(weight: QTensor) -> Result<Self> {
        let (rows, cols) = weight.shape().dims2()?;
        let native = |bytes_per_block: usize| -> Result<Option<WeightBuffer<u8>>> {
            let data = weight.data()?;
            let expected = rows * cols / BLOCK * bytes_per_block;
            Ok((cols % BLOCK == 0 && data.len() == expected).then(|| WeightBuffer::from(&*data)))
        };
        let kernel = match weight.dtype() {
            GgmlDType::Q4_1 => native(Q4_1_BYTES)?.map(Kernel::Q4_1),
            GgmlDType::Q8_0 => native(Q8_0_BYTES)?.map(Kernel::Q8_0),
            GgmlDType::F32 => Some(Kernel::F32(WeightBuffer::from(
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
        let same = |a: &Kernel, b: &Kernel| {
            matches!(
                (a, b),
                (Kernel::Q4_1(_), Kernel::Q4_1(_))
                    | (Kernel::Q8_0(_), Kernel::Q8_0(_))
                    | (Kernel::F32(_), Kernel::F32(_))
            )
        };
        if !parts.iter().all(|p| same(&p.kernel, &parts[0].kernel)) {
            return Ok(Self {
                rows,
                cols,
                kernel: Kernel::Parts(parts),
            });
        }
        fn bytes(k: &Kernel) -> Option<&[u8]> {
            match k {
                Kernel::Q4_1(data) | Kernel::Q8_0(data) => Some(data),
                _ => None,
            }
        }
        fn floats(k: &Kernel) -> Option<&[f32]> {
            match k {
                Kernel::F32(data) => Some(data),
                _ => None,
            }
        }
        let kernel = match &parts[0].kernel {
            Kernel::Q4_1(_) | Kernel::Q8_0(_) => {
                let data = parts
                    .iter()
                    .filter_map(|p| bytes(&p.kernel))
                    .collect::<Vec<_>>();
                let data = WeightBuffer::concat(&data);
                match parts[0].kernel {
                    Kernel::Q4_1(_) => Kernel::Q4_1(data),
                    _ => Kernel::Q8_0(data),
                }
            }
            Kernel::F32(_) => {
                let data = parts
                    .iter()
                    .filter_map(|p| floats(&p.kernel))
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

    /// One input vector: each row is a dot product straight off the stored blocks. The format
    /// is matched here, once per product, so the row loop calls one kernel.
    fn matvec(&self, x: &[f32], out: &mut [f32]) {
        let cols = self.cols;
        match &self.kernel {
            Kernel::Q4_1(data) => {
                let sums = block_sums(x);
                let bytes = cols / BLOCK * Q4_1_BYTES;
                rows_into(out, |row| dot_q4_1(&data[row * bytes..][..bytes], x, &sums));
            }
            Kernel::Q8_0(data) => {
                let bytes = cols / BLOCK * Q8_0_BYTES;
                rows_into(out, |row| dot_q8_0(&data[row * bytes..][..bytes], x));
            }
            Kernel::F32(data) => rows_into(out, |row| dot_f32(&data[row * cols..][..cols], x)),
            Kernel::Candle(_) | Kernel::Parts(_) => {
                unreachable!("only native kernels reach matvec")
            }
        }
    }

    /// Several input vectors (a prompt): each row is unpacked once, then dotted with every one.
    fn matmul(&self, input: &[f32], n: usize, out: &mut [f32]) {
        let (rows, cols) = (self.rows, self.cols);
        let chunk = rows_per_task(rows);
        let mut by_row = vec![0.0_f32; rows * n];
        if let Kernel::Q4_1(data) = &self.kernel {
            // The positions quantised once; every row then multiplies in integers.
            let xq: Vec<Vec<Q8Block>> = input.chunks_exact(cols).map(quantize_q8).collect();
            let bytes = cols / BLOCK * Q4_1_BYTES;
            by_row
                .par_chunks_mut(chunk * n)
                .enumerate()
                .for_each(|(task, out)| {
                    for (offset, row_out) in out.chunks_mut(n).enumerate() {
                        let row = &data[(task * chunk + offset) * bytes..][..bytes];
                        for (value, xq) in row_out.iter_mut().zip(&xq) {
                            *value = dot_q4_1_q8(row, xq);
                        }
                    }
                });
            for row in 0..rows {
                for pos in 0..n {
                    out[pos * rows + row] = by_row[row * n + pos];
                }
            }
            return;
        }
        by_row
            .par_chunks_mut(chunk * n)
            .enumerate()
            .for_each(|(task, out)| {
                let mut row_values = Scratch::zeroed(cols);
                for (offset, row_out) in out.chunks_mut(n).enumerate() {
                    let row = task * chunk + offset;
                    let weights = match &self.kernel {
                        Kernel::F32(data) => &data[row * cols..(row + 1) * cols],
                        _ => {
                            self.unpack_row(row, &mut row_values);
                            &row_values
                        }
                    };
                    let at = |pos: usize| &input[pos * cols..(pos + 1) * cols];
                    let mut groups = row_out.chunks_exact_mut(4);
                    let mut pos = 0;
                    for group in &mut groups {
                        let x = [at(pos), at(pos + 1), at(pos + 2), at(pos + 3)];
                        group.copy_from_slice(&dot4_f32(weights, x));
                        pos += 4;
                    }
                    for value in groups.into_remainder() {
                        *value = dot_f32(weights, at(pos));
                        pos += 1;
                    }
                }
            });
        for row in 0..rows {
            for pos in 0..n {
                out[pos * rows + row] = by_row[row * n + pos];
            }
        }
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
        let blocks = self.cols / BLOCK;
        match &self.kernel {
            Kernel::Q4_1(data) => {
                let data = &data[row * blocks * Q4_1_BYTES..][..blocks * Q4_1_BYTES];
                for (block, values) in data
                    .chunks_exact(Q4_1_BYTES)
                    .zip(out.chunks_exact_mut(BLOCK))
                {
                    let d = f16_at(block, 0);
                    let m = f16_at(block, 2);
                    let (low, high) = values.split_at_mut(BLOCK / 2);
                    for ((q, lo), hi) in block[4..].iter().zip(low).zip(high) {
                        *lo = d * f32::from(q & 0x0f) + m;
                        *hi = d * f32::from(q >> 4) + m;
                    }
                }
            }
            Kernel::Q8_0(data) => {
                let data = &data[row * blocks * Q8_0_BYTES..][..blocks * Q8_0_BYTES];
                for (block, values) in data
                    .chunks_exact(Q8_0_BYTES)
                    .zip(out.chunks_exact_mut(BLOCK))
                {
                    let d = f16_at(block, 0);
                    for (q, value) in block[2..].iter().zip(values) {
                        *value = d * f32::from(*q as i8);
                    }
                }
            }
            Kernel::F32(data) => out.copy_from_slice(&data[row * self.cols..(row + 1) * self.cols]),
            Kernel::Candle(_) | Kernel::Parts(_) => {
                unreachable!("only native kernels reach unpack_row")
            }
        }
    }
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

/// Block sums of x serve Q4_1's minimum term: sum(m * x) = m * sum(x).
fn block_sums(x: &[f32]) -> Vec<f32> {
    x.chunks_exact(BLOCK).map(|b| b.iter().sum()).collect()
}

/// A block of activations quantised to 8 bits for integer dot products: `q = round(x / scale)`
/// with `scale = max|x| / 127`, and the exact sum of the block's `x` for Q4_1's minimum term.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Q8Block {
    pub scale: f32,
    pub sum: f32,
    pub q: [i8; BLOCK],
}

/// `x` (a multiple of [`BLOCK`] long) as [`Q8Block`]s.
pub(crate) fn quantize_q8(x: &[f32]) -> Vec<Q8Block> {
    x.chunks_exact(BLOCK)
        .map(|block| {
            let max = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = max / 127.0;
            let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut q = [0i8; BLOCK];
            for (q, &v) in q.iter_mut().zip(block) {
                *q = (v * inverse).round().clamp(-127.0, 127.0) as i8;
            }
            Q8Block {
                scale,
                sum: block.iter().sum(),
                q,
            }
        })
        .collect()
}

/// A Q4_1 row against quantised activations: `Σ_blocks d·dx·Σ(q·qx) + m·Σx`, the products in
/// integers (32 per instruction with AVX2) — what makes a prompt's product compute-cheap.
pub(crate) fn dot_q4_1_q8(data: &[u8], x: &[Q8Block]) -> f32 {
    assert_eq!(data.len(), x.len() * Q4_1_BYTES);
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C, and the lengths were checked above.
        return unsafe { avx2::dot_q4_1_q8(data, x) };
    }
    let mut sum = 0.0_f32;
    for (block, xq) in data.chunks_exact(Q4_1_BYTES).zip(x) {
        let (low, high) = xq.q.split_at(BLOCK / 2);
        let qx: i32 = block[4..]
            .iter()
            .zip(low.iter().zip(high))
            .map(|(q, (&a, &b))| {
                i32::from(q & 0x0f) * i32::from(a) + i32::from(q >> 4) * i32::from(b)
            })
            .sum();
        sum += f16_at(block, 0) * xq.scale * qx as f32 + f16_at(block, 2) * xq.sum;
    }
    sum
}

fn f16_at(block: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
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

fn dot_q4_1(data: &[u8], x: &[f32], block_sums: &[f32]) -> f32 {
    let blocks = x.len() / BLOCK;
    assert!(data.len() == blocks * Q4_1_BYTES && block_sums.len() >= blocks);
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C, and the lengths were checked above.
        return unsafe { avx2::dot_q4_1(data, x, block_sums) };
    }
    let mut sum = 0.0_f32;
    for ((block, xs), &block_sum) in data
        .chunks_exact(Q4_1_BYTES)
        .zip(x.chunks_exact(BLOCK))
        .zip(block_sums)
    {
        let (low, high) = xs.split_at(BLOCK / 2);
        let qx: f32 = block[4..]
            .iter()
            .zip(low.iter().zip(high))
            .map(|(q, (a, b))| f32::from(q & 0x0f) * a + f32::from(q >> 4) * b)
            .sum();
        sum += f16_at(block, 0) * qx + f16_at(block, 2) * block_sum;
    }
    sum
}

fn dot_q8_0(data: &[u8], x: &[f32]) -> f32 {
    let blocks = x.len() / BLOCK;
    assert!(data.len() == blocks * Q8_0_BYTES);
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C, and the length was checked above.
        return unsafe { avx2::dot_q8_0(data, x) };
    }
    data.chunks_exact(Q8_0_BYTES)
        .zip(x.chunks_exact(BLOCK))
        .map(|(block, xs)| {
            let qx: f32 = block[2..]
                .iter()
                .zip(xs)
                .map(|(q, x)| f32::from(*q as i8) * x)
                .sum();
            f16_at(block, 0) * qx
        })
        .sum()
}

/// Dot product of two equally long slices.
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

    use super::{BLOCK, Q4_1_BYTES, Q8_0_BYTES};

    #[target_feature(enable = "avx2,fma")]
    fn sum_lanes(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
    }

    /// Eight unsigned bytes (the low half of `bytes`) as eight floats.
    #[target_feature(enable = "avx2,fma")]
    fn u8x8_to_f32(bytes: __m128i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes))
    }

    /// # Safety
    /// `data` holds `x.len() / 32` Q4_1 blocks, `block_sums` at least as many sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1(data: &[u8], x: &[f32], block_sums: &[f32]) -> f32 {
        let low_nibbles = _mm_set1_epi8(0x0f);
        let mut acc = _mm256_setzero_ps();
        let mut minimum_term = 0.0_f32;
        for block in 0..x.len() / BLOCK {
            // SAFETY: in bounds by the caller's contract.
            unsafe {
                let bytes = data.as_ptr().add(block * Q4_1_BYTES);
                let xs = x.as_ptr().add(block * BLOCK);
                let scales = _mm_cvtph_ps(_mm_cvtsi32_si128(bytes.cast::<i32>().read_unaligned()));
                let q = _mm_loadu_si128(bytes.add(4).cast());
                let low = _mm_and_si128(q, low_nibbles);
                let high = _mm_and_si128(_mm_srli_epi16(q, 4), low_nibbles);
                let w0 = u8x8_to_f32(low);
                let w1 = u8x8_to_f32(_mm_unpackhi_epi64(low, low));
                let w2 = u8x8_to_f32(high);
                let w3 = u8x8_to_f32(_mm_unpackhi_epi64(high, high));
                let a = _mm256_fmadd_ps(
                    w1,
                    _mm256_loadu_ps(xs.add(8)),
                    _mm256_mul_ps(w0, _mm256_loadu_ps(xs)),
                );
                let b = _mm256_fmadd_ps(
                    w3,
                    _mm256_loadu_ps(xs.add(24)),
                    _mm256_mul_ps(w2, _mm256_loadu_ps(xs.add(16))),
                );
                acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(scales), _mm256_add_ps(a, b), acc);
                minimum_term +=
                    _mm_cvtss_f32(_mm_movehdup_ps(scales)) * *block_sums.get_unchecked(block);
            }
        }
        sum_lanes(acc) + minimum_term
    }

    /// # Safety
    /// `data` holds `x.len()` Q4_1 blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1_q8(data: &[u8], x: &[super::Q8Block]) -> f32 {
        let low_nibbles = _mm_set1_epi8(0x0f);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut minimum_term = 0.0_f32;
        for (block, xq) in x.iter().enumerate() {
            // SAFETY: in bounds by the caller's contract.
            unsafe {
                let bytes = data.as_ptr().add(block * Q4_1_BYTES);
                let scales = _mm_cvtph_ps(_mm_cvtsi32_si128(bytes.cast::<i32>().read_unaligned()));
                let q = _mm_loadu_si128(bytes.add(4).cast());
                let low = _mm_and_si128(q, low_nibbles);
                let high = _mm_and_si128(_mm_srli_epi16(q, 4), low_nibbles);
                // Elements 0..16 are the low nibbles, 16..32 the high ones.
                let weights = _mm256_set_m128i(high, low);
                let xs = _mm256_loadu_si256(xq.q.as_ptr().cast());
                let pairs = _mm256_maddubs_epi16(weights, xs);
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                let d = _mm_cvtss_f32(scales) * xq.scale;
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d), sums, acc);
                minimum_term += _mm_cvtss_f32(_mm_movehdup_ps(scales)) * xq.sum;
            }
        }
        sum_lanes(acc) + minimum_term
    }

    /// # Safety
    /// `data` holds `x.len() / 32` Q8_0 blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0(data: &[u8], x: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for block in 0..x.len() / BLOCK {
            // SAFETY: in bounds by the caller's contract.
            unsafe {
                let bytes = data.as_ptr().add(block * Q8_0_BYTES);
                let xs = x.as_ptr().add(block * BLOCK);
                let scale = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                    bytes.cast::<u16>().read_unaligned(),
                )));
                let q = |at: usize| {
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                        bytes.add(2 + at).cast(),
                    )))
                };
                let a = _mm256_fmadd_ps(
                    q(8),
                    _mm256_loadu_ps(xs.add(8)),
                    _mm256_mul_ps(q(0), _mm256_loadu_ps(xs)),
                );
                let b = _mm256_fmadd_ps(
                    q(24),
                    _mm256_loadu_ps(xs.add(24)),
                    _mm256_mul_ps(q(16), _mm256_loadu_ps(xs.add(16))),
                );
                acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(scale), _mm256_add_ps(a, b), acc);
            }
        }
        sum_lanes(acc)
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
    fn the_integer_q4_1_dot_matches_the_float_one_within_the_activations_rounding() {
        let cols = 256;
        let q = QTensor::quantize(&weights(3, cols, 7), GgmlDType::Q4_1).expect("quantize");
        let linear = QLinear::new(q).expect("linear");
        let Kernel::Q4_1(data) = &linear.kernel else {
            panic!("Q4_1 is native")
        };
        let bytes = cols / BLOCK * Q4_1_BYTES;
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let xq = quantize_q8(&x);
        let sums = block_sums(&x);
        for row in 0..3 {
            let data = &data[row * bytes..][..bytes];
            let exact = dot_q4_1(data, &x, &sums);
            let integer = dot_q4_1_q8(data, &xq);
            // Each x is off by at most half a step (max|x| / 254) of its block.
            let bound: f32 = data
                .chunks_exact(Q4_1_BYTES)
                .zip(&xq)
                .map(|(b, xq)| {
                    (f16_at(b, 0).abs() * 15.0 + f16_at(b, 2).abs()) * xq.scale * 0.5 * 32.0
                })
                .sum();
            assert!(
                (exact - integer).abs() <= bound,
                "{exact} vs {integer} (bound {bound})"
            );
            // The integer sums themselves, block by block in f64.
            let reference: f64 = data
                .chunks_exact(Q4_1_BYTES)
                .zip(&xq)
                .map(|(b, xq)| {
                    let (low, high) = xq.q.split_at(BLOCK / 2);
                    let q: i64 = b[4..]
                        .iter()
                        .zip(low.iter().zip(high))
                        .map(|(q, (&a, &c))| {
                            i64::from(q & 0x0f) * i64::from(a) + i64::from(q >> 4) * i64::from(c)
                        })
                        .sum();
                    f64::from(f16_at(b, 0)) * f64::from(xq.scale) * q as f64
                        + f64::from(f16_at(b, 2)) * f64::from(xq.sum)
                })
                .sum();
            assert!(
                (f64::from(integer) - reference).abs() < 1e-4 * reference.abs().max(1.0),
                "{integer} vs {reference}"
            );
        }
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
            let got = dot4_f32(&w, [&xs[0], &xs[1], &xs[2], &xs[3]]);
            for (k, x) in xs.iter().enumerate() {
                let want: f64 = w
                    .iter()
                    .zip(x)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                assert!(
                    (f64::from(got[k]) - want).abs() < 1e-4,
                    "{len} {k}: {} vs {want}",
                    got[k]
                );
            }
        }
    }

    #[test]
    fn native_kernels_match_the_dequantized_product() {
        let (rows, cols) = (70, 96);
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0, GgmlDType::F32] {
            let q = QTensor::quantize(&weights(rows, cols, 0), dtype).expect("quantize");
            let dense = q.dequantize(&Device::Cpu).expect("dequantize");
            let linear = QLinear::new(q).expect("linear");
            assert!(
                !matches!(linear.kernel, Kernel::Candle(_)),
                "{dtype:?} is native"
            );
            for n in [1, 5, 11] {
                let x = input(n, cols);
                let got = linear.forward(&x).expect("forward");
                let want = x
                    .broadcast_matmul(&dense.t().expect("t"))
                    .expect("reference");
                let diff = max_difference(&got, &want);
                // A Q4_1 prompt multiplies 8-bit activations: each off by up to half a step
                // of its block's max|x| / 127 (here |x| ≤ 1, |w| ≤ 2, 96 columns: ≤ 0.76).
                let tolerance = if dtype == GgmlDType::Q4_1 && n > 1 {
                    0.2
                } else {
                    1e-4
                };
                assert!(
                    diff < tolerance,
                    "{dtype:?}, {n} positions: max error {diff}"
                );
            }
        }
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
