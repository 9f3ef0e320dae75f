//! Mean and covariance of a stream of vectors, accumulated batch by batch so memory stays at
//! one `width × width` matrix however long the corpus is.
//!
//! Sums are kept in f64 around a *shift* (the mean of the first batch) rather than around
//! zero: hidden states sit far from the origin in a few directions (GPT-2's residual stream
//! has entries in the thousands), and `Σxxᵀ - n·x̄x̄ᵀ` around zero would cancel away most of the
//! digits the covariance needs.
//!
//! Rows wait in a pending block until [`PENDING_ROWS`] have come, then go into the scatter as
//! one rank-k update `S += YᵀY`. A corpus line is ~20 positions: updating per line read and
//! wrote the whole `width²` scatter for a thin product (SmolLM2-135M's fit: 14 s of its two
//! minutes, memory-bound); one update per few hundred rows is a real matrix product.

use nalgebra::DMatrix;

/// Rows gathered before one scatter update.
const PENDING_ROWS: usize = 256;

pub struct Covariance {
    width: usize,
    /// Empty until the first batch sets it.
    shift: Vec<f64>,
    /// `Σ (x - shift)`, pending rows included.
    sum: Vec<f64>,
    /// `Σ (x - shift)(x - shift)ᵀ`, upper triangle only, pending rows not yet included.
    scatter: DMatrix<f64>,
    /// Rows not yet in `scatter`, row-major.
    pending: Vec<f32>,
    count: u64,
}

impl Covariance {
    pub fn new(width: usize) -> Self {
        Self {
            width,
            shift: Vec::new(),
            sum: vec![0.0; width],
            scatter: DMatrix::zeros(width, width),
            pending: Vec::new(),
            count: 0,
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Vectors seen so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Add `rows`, `n × width` row-major (`n` may be 0).
    ///
    /// # Panics
    /// If `rows.len()` is not a multiple of the width: a caller bug, not a data problem.
    pub fn add_batch(&mut self, rows: &[f32]) {
        let width = self.width;
        assert!(
            width > 0 && rows.len().is_multiple_of(width),
            "a batch of {} values is not whole rows of width {width}",
            rows.len()
        );
        let n = rows.len() / width;
        if n == 0 {
            return;
        }
        if self.shift.is_empty() {
            let mut shift = vec![0.0; width];
            for row in rows.chunks_exact(width) {
                for (s, &x) in shift.iter_mut().zip(row) {
                    *s += f64::from(x);
                }
            }
            shift.iter_mut().for_each(|s| *s /= n as f64);
            self.shift = shift;
        }
        for row in rows.chunks_exact(width) {
            for ((s, &x), shift) in self.sum.iter_mut().zip(row).zip(&self.shift) {
                *s += f64::from(x) - shift;
            }
        }
        self.count += n as u64;
        if self.pending.capacity() == 0 {
            self.pending.reserve_exact(PENDING_ROWS * width);
        }
        self.pending.extend_from_slice(rows);
        if self.pending.len() >= PENDING_ROWS * width {
            add_scatter(&mut self.scatter, &self.shift, &self.pending, width);
            self.pending.clear();
        }
    }

    /// The mean of everything added (zeros before anything was).
    pub fn mean(&self) -> Vec<f64> {
        if self.count == 0 {
            return vec![0.0; self.width];
        }
        let n = self.count as f64;
        self.shift
            .iter()
            .zip(&self.sum)
            .map(|(shift, sum)| shift + sum / n)
            .collect()
    }

    /// The sample covariance (denominator `n - 1`, as scikit-learn's PCA), symmetric; `None`
    /// with fewer than two vectors.
    pub fn covariance(&self) -> Option<DMatrix<f64>> {
        if self.count < 2 {
            return None;
        }
        let mut scatter = self.scatter.clone();
        add_scatter(&mut scatter, &self.shift, &self.pending, self.width);
        let n = self.count as f64;
        let width = self.width;
        // Only the upper triangle of the scatter is kept.
        let mut covariance = DMatrix::from_fn(width, width, |i, j| {
            let (i, j) = (i.min(j), i.max(j));
            (scatter[(i, j)] - self.sum[i] * self.sum[j] / n) / (n - 1.0)
        });
        covariance.fill_lower_triangle_with_upper_triangle();
        Some(covariance)
    }
}

/// Columns per block of the triangular update.
const BLOCK: usize = 64;

/// `scatter += YᵀY` for the shifted `rows` (row-major, whole rows of `width`), on the upper
/// triangle only (block columns down to the diagonal): the product is symmetric, and the
/// lower half is half of a fit's covariance time.
fn add_scatter(scatter: &mut DMatrix<f64>, shift: &[f64], rows: &[f32], width: usize) {
    let n = rows.len() / width;
    if n == 0 {
        return;
    }
    // Column j of `yt` is row j of the batch, shifted: `yt` is Yᵀ (width × n), laid out
    // column-major exactly as the batch is row-major.
    let yt = DMatrix::from_iterator(
        width,
        n,
        rows.iter()
            .zip(shift.iter().cycle())
            .map(|(&x, shift)| f64::from(x) - shift),
    );
    let y = yt.transpose();
    for start in (0..width).step_by(BLOCK) {
        let columns = BLOCK.min(width - start);
        let end = start + columns;
        scatter.view_mut((0, start), (end, columns)).gemm(
            1.0,
            &yt.rows(0, end),
            &y.columns(start, columns),
            1.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic data set far from the origin.
    fn data(n: usize, width: usize) -> Vec<f32> {
        let mut state = 0x1234_5678_u64;
        (0..n * width)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                1000.0 * (i % width) as f32 + noise * (1 + i % 3) as f32
            })
            .collect()
    }

    /// Two-pass reference in f64.
    fn reference(rows: &[f32], width: usize) -> (Vec<f64>, DMatrix<f64>) {
        let n = rows.len() / width;
        let mut mean = vec![0.0; width];
        for row in rows.chunks_exact(width) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += f64::from(x) / n as f64;
            }
        }
        let covariance = DMatrix::from_fn(width, width, |i, j| {
            rows.chunks_exact(width)
                .map(|r| (f64::from(r[i]) - mean[i]) * (f64::from(r[j]) - mean[j]))
                .sum::<f64>()
                / (n - 1) as f64
        });
        (mean, covariance)
    }

    #[test]
    fn batches_in_any_split_equal_one_batch_and_the_two_pass_reference() {
        let width = 12;
        let rows = data(300, width);
        let mut whole = Covariance::new(width);
        whole.add_batch(&rows);
        let mut split = Covariance::new(width);
        // Uneven batches, including empty and single-row ones (the small-product path).
        for sizes in [0, 1, 7, 3, 0, 100, 2, 187] {
            let done = split.count() as usize * width;
            split.add_batch(&rows[done..done + sizes * width]);
        }
        assert_eq!(split.count(), 300);
        let (mean, covariance) = reference(&rows, width);
        for acc in [&whole, &split] {
            let got = acc.covariance().expect("enough rows");
            for (a, b) in acc.mean().iter().zip(&mean) {
                assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} vs {b}");
            }
            for (a, b) in got.iter().zip(covariance.iter()) {
                assert!((a - b).abs() < 1e-9, "{a} vs {b}");
            }
        }
        let (a, b) = (whole.covariance().unwrap(), split.covariance().unwrap());
        assert!((a - b).abs().max() < 1e-10);
    }

    #[test]
    fn widths_over_several_blocks_match_the_reference() {
        // 150 columns: two whole blocks and a partial one; 600 rows: two updates and pending.
        let width = 150;
        let rows = data(600, width);
        let mut acc = Covariance::new(width);
        for batch in rows.chunks(37 * width) {
            acc.add_batch(batch);
        }
        let (_, covariance) = reference(&rows, width);
        let got = acc.covariance().expect("enough rows");
        for (a, b) in got.iter().zip(covariance.iter()) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn fewer_than_two_rows_have_no_covariance() {
        let mut acc = Covariance::new(3);
        assert!(acc.covariance().is_none());
        assert_eq!(acc.mean(), [0.0; 3]);
        acc.add_batch(&[1.0, 2.0, 3.0]);
        assert!(acc.covariance().is_none());
        assert_eq!(acc.mean(), [1.0, 2.0, 3.0]);
    }
}
