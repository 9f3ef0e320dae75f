//! The vocabulary projection of quantized models, computed with exact f32 activations.
//!
//! Candle's quantized matmul also quantizes the activation vector to 8 bits. Inside the blocks
//! that is harmless, but on the logits it moves values by about 1%, enough to flip near-ties:
//! on the default model's first answer token "The" leads "L" by 0.08 of 25, and the 8-bit path
//! picks "L". Here the weights stay quantized (Q8_0 as stored; other formats dequantized once)
//! and each row is dotted with the f32 activations, split over a few threads.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Result};

/// Bytes of one Q8_0 block: an f16 scale and 32 signed 8-bit weights.
const Q8_0_BLOCK: usize = 34;
const Q8_0_WEIGHTS: usize = 32;

pub enum LmHead {
    /// `rows * cols / 32` blocks, row-major, exactly as GGUF stores them.
    Q8_0 {
        rows: usize,
        cols: usize,
        blocks: Vec<u8>,
    },
    /// Dequantized weights, row-major `[rows * cols]`.
    Dense {
        rows: usize,
        cols: usize,
        weights: Vec<f32>,
    },
}

impl LmHead {
    pub fn from_qtensor(tensor: &QTensor) -> Result<Self> {
        let (rows, cols) = tensor.shape().dims2()?;
        if tensor.dtype() == GgmlDType::Q8_0 && cols % Q8_0_WEIGHTS == 0 {
            let blocks = tensor.data()?.into_owned();
            if blocks.len() == rows * cols / Q8_0_WEIGHTS * Q8_0_BLOCK {
                return Ok(Self::Q8_0 { rows, cols, blocks });
            }
        }
        let weights = tensor
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(Self::Dense {
            rows,
            cols,
            weights,
        })
    }

    /// Logits for one activation vector of length `cols`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let (rows, cols) = match self {
            Self::Q8_0 { rows, cols, .. } | Self::Dense { rows, cols, .. } => (*rows, *cols),
        };
        let mut logits = vec![0.0_f32; rows];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let chunk = rows.div_ceil(threads);
        std::thread::scope(|scope| {
            for (index, out) in logits.chunks_mut(chunk).enumerate() {
                let first = index * chunk;
                scope.spawn(move || {
                    for (offset, logit) in out.iter_mut().enumerate() {
                        *logit = self.row_dot(first + offset, cols, x);
                    }
                });
            }
        });
        logits
    }

    fn row_dot(&self, row: usize, cols: usize, x: &[f32]) -> f32 {
        match self {
            Self::Q8_0 { blocks, .. } => {
                let per_row = cols / Q8_0_WEIGHTS * Q8_0_BLOCK;
                let row_blocks = &blocks[row * per_row..(row + 1) * per_row];
                row_blocks
                    .chunks_exact(Q8_0_BLOCK)
                    .zip(x.chunks_exact(Q8_0_WEIGHTS))
                    .map(|(block, xs)| {
                        let scale = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                        let dot: f32 = block[2..]
                            .iter()
                            .zip(xs)
                            .map(|(&q, &x)| f32::from(q as i8) * x)
                            .sum();
                        scale * dot
                    })
                    .sum()
            }
            Self::Dense { weights, .. } => weights[row * cols..(row + 1) * cols]
                .iter()
                .zip(x)
                .map(|(w, x)| w * x)
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    #[test]
    fn q8_0_rows_match_the_dequantized_product() {
        let (rows, cols) = (5, 64);
        let weights: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let tensor = Tensor::from_vec(weights, (rows, cols), &Device::Cpu).expect("tensor");
        let q = QTensor::quantize(&tensor, GgmlDType::Q8_0).expect("quantize");
        let head = LmHead::from_qtensor(&q).expect("head");
        assert!(matches!(head, LmHead::Q8_0 { .. }));
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let dense = q.dequantize(&Device::Cpu).expect("dequantize");
        let expected = dense
            .matmul(&Tensor::from_vec(x.clone(), (cols, 1), &Device::Cpu).expect("x"))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .expect("reference product");
        for (got, want) in head.forward(&x).iter().zip(&expected) {
            assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        }
    }
}
