//! Principal components from an accumulated covariance: a symmetric eigendecomposition in pure
//! Rust (faer's, on one thread so a map does not depend on scheduling), the top K eigenvectors
//! by eigenvalue. faer's blocked tridiagonalization and divide and conquer decompose a
//! 576-wide covariance about ten times faster than nalgebra's `SymmetricEigen` did, which
//! was a tenth of a map fit.
//!
//! Signs are fixed so maps are reproducible: an eigenvector's sign is arbitrary, so each
//! component is flipped to make its largest-magnitude entry positive (the first such entry on a
//! tie). scikit-learn ≥ 1.5 uses the same rule for `PCA.components_`.

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{ComputeEigenvectors, self_adjoint_evd, self_adjoint_evd_scratch};
use faer::{Mat, Par};

use super::covariance::Covariance;
use super::error::{MapError, Result};

/// One layer's principal components, in f64 until they are stored.
#[derive(Debug, Clone)]
pub struct Pca {
    pub mean: Vec<f64>,
    /// `[K][width]`, unit vectors, by decreasing variance.
    pub components: Vec<Vec<f64>>,
    /// Variance along each component (the eigenvalue; denominator `n - 1`).
    pub explained_variance: Vec<f64>,
    /// Trace of the covariance: the variance of all directions together.
    pub total_variance: f64,
}

impl Pca {
    /// Fit `k` components. Errors if `k` is not in `1..=width` or fewer than two vectors were
    /// accumulated.
    pub fn fit(accumulated: &Covariance, k: usize) -> Result<Self> {
        let width = accumulated.width();
        if k == 0 || k > width {
            return Err(MapError::BadComponentCount {
                components: k,
                width,
            });
        }
        let covariance = accumulated
            .covariance()
            .ok_or(MapError::TooFewTokens(accumulated.count()))?;
        if covariance.iter().any(|v| !v.is_finite()) {
            return Err(MapError::Fit(
                "the hidden states hold non-finite values (NaN or infinity)".to_owned(),
            ));
        }
        let total_variance = covariance.trace();
        let (values, vectors) = eigen(&covariance)
            .ok_or_else(|| MapError::Fit("the eigendecomposition did not converge".to_owned()))?;
        // faer orders the eigenvalues ascending: the largest are last.
        let mut components = Vec::with_capacity(k);
        let mut explained_variance = Vec::with_capacity(k);
        for index in (0..width).rev().take(k) {
            let mut vector: Vec<f64> = vectors.col(index).iter().copied().collect();
            fix_sign(&mut vector);
            components.push(vector);
            // Rounding can leave a zero eigenvalue slightly negative.
            explained_variance.push(values[index].max(0.0));
        }
        Ok(Self {
            mean: accumulated.mean(),
            components,
            explained_variance,
            total_variance,
        })
    }

    /// `explained_variance / total_variance`, per component (0 when there is no variance).
    pub fn explained_variance_ratio(&self) -> Vec<f64> {
        ratio(&self.explained_variance, self.total_variance)
    }
}

/// Eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix; `None` if the
/// decomposition fails to converge.
fn eigen(matrix: &nalgebra::DMatrix<f64>) -> Option<(Vec<f64>, Mat<f64>)> {
    let width = matrix.nrows();
    let a = Mat::<f64>::from_fn(width, width, |i, j| matrix[(i, j)]);
    let mut values = Diag::<f64>::zeros(width);
    let mut vectors = Mat::<f64>::zeros(width, width);
    let scratch = self_adjoint_evd_scratch::<f64>(
        width,
        ComputeEigenvectors::Yes,
        Par::Seq,
        Default::default(),
    );
    let mut buffer = MemBuffer::try_new(scratch).ok()?;
    self_adjoint_evd(
        a.as_ref(),
        values.as_mut(),
        Some(vectors.as_mut()),
        Par::Seq,
        MemStack::new(&mut buffer),
        Default::default(),
    )
    .ok()?;
    let values = values.column_vector().iter().copied().collect();
    Some((values, vectors))
}

pub(crate) fn ratio(variances: &[f64], total: f64) -> Vec<f64> {
    variances
        .iter()
        .map(|v| if total > 0.0 { v / total } else { 0.0 })
        .collect()
}

/// Flip `vector` so its largest-magnitude entry (the first, on a tie) is positive.
fn fix_sign(vector: &mut [f64]) {
    let mut largest = 0.0f64;
    let mut sign = 1.0;
    for &x in vector.iter() {
        if x.abs() > largest {
            largest = x.abs();
            sign = x.signum();
        }
    }
    if sign < 0.0 {
        vector.iter_mut().for_each(|x| *x = -*x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    /// Test data from the project's generator.
    struct Rng(crate::rng::SplitMix64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0.next_u64()
        }

        fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        /// Standard normal (Box–Muller).
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
    }

    /// A random orthonormal basis of R^width (columns), from the QR of a Gaussian matrix.
    fn random_basis(width: usize, rng: &mut Rng) -> DMatrix<f64> {
        let gaussian = DMatrix::from_fn(width, width, |_, _| rng.normal());
        gaussian.qr().q()
    }

    #[test]
    fn known_principal_axes_are_recovered() {
        const WIDTH: usize = 32;
        const SAMPLES: usize = 4000;
        const K: usize = 6;
        let mut rng = Rng(crate::rng::SplitMix64(7));
        let basis = random_basis(WIDTH, &mut rng);
        // Standard deviations halving along the first K axes (16 … 0.5), a floor of 0.1 below.
        // The sampling error of an eigenvector's angle is about sqrt(Σ λᵢλⱼ / (n (λᵢ - λⱼ)²)):
        // here below 0.02 rad, so |cos| > 0.999 holds with room to spare.
        let sigma: Vec<f64> = (0..WIDTH)
            .map(|i| if i < K { 16.0 / f64::from(1 << i) } else { 0.1 })
            .collect();
        let offset: Vec<f64> = (0..WIDTH).map(|i| 50.0 + i as f64).collect();
        let rows: Vec<f32> = (0..SAMPLES)
            .flat_map(|_| {
                let z: Vec<f64> = sigma.iter().map(|s| s * rng.normal()).collect();
                let x = &basis * nalgebra::DVector::from_vec(z);
                x.iter()
                    .zip(&offset)
                    .map(|(x, o)| (x + o) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut acc = Covariance::new(WIDTH);
        for batch in rows.chunks(37 * WIDTH) {
            acc.add_batch(batch);
        }
        let pca = Pca::fit(&acc, K).expect("fit");
        for (k, s) in sigma.iter().enumerate().take(K) {
            let axis = basis.column(k);
            let cos: f64 = pca.components[k]
                .iter()
                .zip(axis.iter())
                .map(|(a, b)| a * b)
                .sum();
            assert!(cos.abs() > 0.999, "component {k}: |cos| = {}", cos.abs());
            let expected = s * s;
            let error = (pca.explained_variance[k] - expected).abs() / expected;
            // A sample variance of 4000 draws: standard error sqrt(2/4000) ≈ 2.2 %.
            assert!(
                error < 0.07,
                "component {k}: variance {} vs {expected}",
                pca.explained_variance[k]
            );
            let norm: f64 = pca.components[k].iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-9);
            // The sign rule holds.
            let largest = pca.components[k]
                .iter()
                .copied()
                .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            assert!(largest > 0.0);
        }
        for (m, o) in pca.mean.iter().zip(&offset) {
            assert!((m - o).abs() < 0.5, "mean {m} vs {o}");
        }
        let total: f64 = sigma.iter().map(|s| s * s).sum();
        assert!((pca.total_variance - total).abs() / total < 0.05);
    }

    #[test]
    fn bad_component_counts_and_too_little_data_are_errors() {
        let mut acc = Covariance::new(4);
        acc.add_batch(&[1.0, 2.0, 3.0, 4.0]);
        assert!(matches!(
            Pca::fit(&acc, 0),
            Err(MapError::BadComponentCount { .. })
        ));
        assert!(matches!(
            Pca::fit(&acc, 5),
            Err(MapError::BadComponentCount { .. })
        ));
        assert!(matches!(Pca::fit(&acc, 2), Err(MapError::TooFewTokens(1))));
        acc.add_batch(&[2.0, 2.0, 3.0, 4.0]);
        let pca = Pca::fit(&acc, 4).expect("two rows fit");
        // One direction of variance: along the first axis, positive by the sign rule.
        assert!((pca.components[0][0] - 1.0).abs() < 1e-12);
        assert!((pca.explained_variance[0] - 0.5).abs() < 1e-12);
        assert!(pca.explained_variance[1..].iter().all(|&v| v.abs() < 1e-12));
    }
}
