//! Linear layers over GGUF-quantized weights, computed with exact f32 activations.
//!
//! Candle's quantized matmul also quantizes the activation vector to 8 bits. That moves the
//! default model's hidden states by about 1% and its logits enough to flip near-ties: its first
//! answer token "The" leads "L" by 0.08 of 25, and the 8-bit path picks "L". Here the weights stay
//! quantized as stored and are unpacked block by block against f32 activations, so the result is
//! the dequantized model's to rounding. Q4_1 and Q8_0 (what the default model uses) have native
//! kernels; other formats go through candle's quantized matmul.
//!
//! Rows are split over a private thread pool: decode is a matrix-vector product per layer, which
//! a single core cannot keep the memory bus busy with.

use std::sync::OnceLock;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Result, Tensor};
use rayon::prelude::*;

const BLOCK: usize = 32;
/// Bytes per block: Q4_1 is two f16 (scale, minimum) and 16 bytes of nibbles; Q8_0 one f16
/// scale and 32 signed bytes.
const Q4_1_BYTES: usize = 20;
const Q8_0_BYTES: usize = 34;
/// Rows per parallel task: small enough to balance two cores, large enough to amortise.
const ROWS_PER_TASK: usize = 64;

enum Kernel {
    Q4_1(Vec<u8>),
    Q8_0(Vec<u8>),
    Candle(QMatMul),
}

pub struct QLinear {
    rows: usize,
    cols: usize,
    kernel: Kernel,
}

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

impl QLinear {
    /// `weight` is `[rows (out), cols (in)]` as GGUF stores it.
    pub fn new(weight: QTensor) -> Result<Self> {
        let (rows, cols) = weight.shape().dims2()?;
        let native = |bytes_per_block: usize| -> Result<Option<Vec<u8>>> {
            let data = weight.data()?;
            let expected = rows * cols / BLOCK * bytes_per_block;
            Ok((cols % BLOCK == 0 && data.len() == expected).then(|| data.into_owned()))
        };
        let kernel = match weight.dtype() {
            GgmlDType::Q4_1 => native(Q4_1_BYTES)?.map(Kernel::Q4_1),
            GgmlDType::Q8_0 => native(Q8_0_BYTES)?.map(Kernel::Q8_0),
            _ => None,
        };
        let kernel = match kernel {
            Some(kernel) => kernel,
            None => Kernel::Candle(QMatMul::from_qtensor(weight)?),
        };
        Ok(Self { rows, cols, kernel })
    }

    /// `x` is `[..., cols]`; the result `[..., rows]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Kernel::Candle(matmul) = &self.kernel {
            return matmul.forward(x);
        }
        let mut shape = x.dims().to_vec();
        let input = x.flatten_all()?.to_vec1::<f32>()?;
        let out = self.forward_slice(&input);
        if let Some(last) = shape.last_mut() {
            *last = self.rows;
        }
        Tensor::from_vec(out, shape, x.device())
    }

    /// `input` holds `n` vectors of `cols`; returns `n` vectors of `rows`, position-major.
    pub fn forward_slice(&self, input: &[f32]) -> Vec<f32> {
        let (rows, cols) = (self.rows, self.cols);
        let n = input.len() / cols;
        // Block sums of x serve Q4_1's minimum term: sum(m * x) = m * sum(x).
        let block_sums: Vec<f32> = input.chunks_exact(BLOCK).map(|b| b.iter().sum()).collect();
        let mut by_row = vec![0.0_f32; rows * n];
        pool().install(|| {
            by_row
                .par_chunks_mut(ROWS_PER_TASK * n)
                .enumerate()
                .for_each(|(task, out)| {
                    let first = task * ROWS_PER_TASK;
                    for (offset, row_out) in out.chunks_mut(n).enumerate() {
                        let row = first + offset;
                        for (pos, value) in row_out.iter_mut().enumerate() {
                            let x = &input[pos * cols..(pos + 1) * cols];
                            let sums = &block_sums[pos * cols / BLOCK..(pos + 1) * cols / BLOCK];
                            *value = self.row_dot(row, x, sums);
                        }
                    }
                });
        });
        if n == 1 {
            return by_row;
        }
        let mut out = vec![0.0_f32; rows * n];
        for row in 0..rows {
            for pos in 0..n {
                out[pos * rows + row] = by_row[row * n + pos];
            }
        }
        out
    }

    fn row_dot(&self, row: usize, x: &[f32], block_sums: &[f32]) -> f32 {
        let blocks_per_row = self.cols / BLOCK;
        match &self.kernel {
            Kernel::Q4_1(data) => {
                let bytes = blocks_per_row * Q4_1_BYTES;
                dot_q4_1(&data[row * bytes..][..bytes], x, block_sums)
            }
            Kernel::Q8_0(data) => {
                let bytes = blocks_per_row * Q8_0_BYTES;
                dot_q8_0(&data[row * bytes..][..bytes], x)
            }
            Kernel::Candle(_) => unreachable!("candle kernels never reach row_dot"),
        }
    }
}

/// Lanes of the accumulators: independent sums the compiler turns into one SIMD register, since
/// it may not reorder a single floating-point sum by itself.
const LANES: usize = 8;

/// Runs `$body` compiled for AVX2 + FMA when the CPU has them (checked once), else for the
/// baseline target. The body is plain Rust written so that it vectorises.
macro_rules! multiversion {
    ($name:ident, $generic:ident, ($($arg:ident: $ty:ty),*), $body:block) => {
        #[inline(always)]
        fn $generic($($arg: $ty),*) -> f32 $body

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2($($arg: $ty),*) -> f32 {
            $generic($($arg),*)
        }

        pub(super) fn $name($($arg: $ty),*) -> f32 {
            #[cfg(target_arch = "x86_64")]
            {
                static HAS_AVX2: OnceLock<bool> = OnceLock::new();
                if *HAS_AVX2.get_or_init(|| {
                    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
                }) {
                    // SAFETY: the CPU was just checked for AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

mod q4_1 {
    use super::*;

    multiversion!(dot, dot_generic, (data: &[u8], x: &[f32], block_sums: &[f32]), {
        let mut acc = [0.0_f32; LANES];
        let mut minimum_term = 0.0_f32;
        for ((block, xs), &sum) in data
            .chunks_exact(Q4_1_BYTES)
            .zip(x.chunks_exact(BLOCK))
            .zip(block_sums)
        {
            let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
            let m = half::f16::from_le_bytes([block[2], block[3]]).to_f32();
            let (low, high) = xs.split_at(BLOCK / 2);
            let mut qx = [0.0_f32; LANES];
            for half_block in 0..2 {
                let q = &block[4 + half_block * LANES..][..LANES];
                let a = &low[half_block * LANES..][..LANES];
                let b = &high[half_block * LANES..][..LANES];
                for lane in 0..LANES {
                    qx[lane] += f32::from(q[lane] & 0x0f) * a[lane] + f32::from(q[lane] >> 4) * b[lane];
                }
            }
            for lane in 0..LANES {
                acc[lane] += d * qx[lane];
            }
            minimum_term += m * sum;
        }
        acc.iter().sum::<f32>() + minimum_term
    });
}

mod q8_0 {
    use super::*;

    multiversion!(dot, dot_generic, (data: &[u8], x: &[f32]), {
        let mut acc = [0.0_f32; LANES];
        for (block, xs) in data.chunks_exact(Q8_0_BYTES).zip(x.chunks_exact(BLOCK)) {
            let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
            let mut qx = [0.0_f32; LANES];
            for part in 0..BLOCK / LANES {
                let q = &block[2 + part * LANES..][..LANES];
                let a = &xs[part * LANES..][..LANES];
                for lane in 0..LANES {
                    qx[lane] += f32::from(q[lane] as i8) * a[lane];
                }
            }
            for lane in 0..LANES {
                acc[lane] += d * qx[lane];
            }
        }
        acc.iter().sum()
    });
}

use q4_1::dot as dot_q4_1;
use q8_0::dot as dot_q8_0;

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn check(dtype: GgmlDType, n: usize) {
        let (rows, cols) = (70, 96);
        let weights: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let w = Tensor::from_vec(weights, (rows, cols), &Device::Cpu).expect("weights");
        let q = QTensor::quantize(&w, dtype).expect("quantize");
        let dense = q.dequantize(&Device::Cpu).expect("dequantize");
        let linear = QLinear::new(q).expect("linear");
        assert!(
            !matches!(linear.kernel, Kernel::Candle(_)),
            "{dtype:?} has a native kernel"
        );
        let x: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = Tensor::from_vec(x, (1, n, cols), &Device::Cpu).expect("x");
        let got = linear.forward(&x).expect("forward");
        let want = x
            .broadcast_matmul(&dense.t().expect("t"))
            .expect("reference");
        assert_eq!(got.dims(), want.dims());
        let diff = (got - want)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .expect("difference");
        assert!(diff < 1e-4, "{dtype:?}, {n} positions: max error {diff}");
    }

    #[test]
    fn native_kernels_match_the_dequantized_product() {
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            for n in [1, 5] {
                check(dtype, n);
            }
        }
    }
}
