//! Singular values of a weight matrix, with faer, always single-threaded inside one matrix (the
//! analysis runs matrices in parallel instead), so the numbers do not depend on scheduling.
//!
//! Up to [`FULL_LIMIT`] along the short side every singular value comes from a dense SVD; wider
//! matrices (billion-parameter models) get the top [`TOP_K`] from randomized subspace iteration
//! (Halko, Martinsson & Tropp 2011, algorithm 4.4) with a fixed seed.

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::svd::{ComputeSvdVectors, svd, svd_scratch};
use faer::{Accum, Mat, MatRef, Par};

use super::stats::SvdMethod;
use crate::rng::SplitMix64;

/// The short side up to which the whole spectrum is computed (every matrix of the default model
/// and of GPT-2 small).
pub const FULL_LIMIT: usize = 1024;
/// Singular values kept for wider matrices.
pub const TOP_K: usize = 128;
const OVERSAMPLE: usize = 16;
const POWER_ITERATIONS: usize = 2;
const SEED: u64 = 0x5eed_5bd0;

/// Descending singular values of the `rows × cols` row-major matrix `values`, and how they were
/// found. `None` if faer's SVD does not converge (it reports it; practically never).
pub fn singular_values(rows: usize, cols: usize, values: &[f32]) -> Option<(Vec<f32>, SvdMethod)> {
    let a = MatRef::from_row_major_slice(values, rows, cols);
    if rows.min(cols) <= FULL_LIMIT {
        return dense(a).map(|s| (s, SvdMethod::Full));
    }
    let s = randomized(a)?;
    Some((
        s,
        SvdMethod::TopK {
            k: TOP_K,
            iterations: POWER_ITERATIONS,
        },
    ))
}

fn dense(a: MatRef<'_, f32>) -> Option<Vec<f32>> {
    let (m, n) = a.shape();
    let mut s = Diag::<f32>::zeros(m.min(n));
    let scratch = svd_scratch::<f32>(
        m,
        n,
        ComputeSvdVectors::No,
        ComputeSvdVectors::No,
        Par::Seq,
        Default::default(),
    );
    let mut buffer = MemBuffer::new(scratch);
    svd(
        a,
        s.as_mut(),
        None,
        None,
        Par::Seq,
        MemStack::new(&mut buffer),
        Default::default(),
    )
    .ok()?;
    Some(s.column_vector().iter().copied().collect())
}

/// The top [`TOP_K`] singular values of a wide matrix: an orthonormal basis Q of A·Ω's range
/// refined by power iterations, then the dense SVD of the small QᵀA.
fn randomized(a: MatRef<'_, f32>) -> Option<Vec<f32>> {
    let (m, n) = a.shape();
    let l = (TOP_K + OVERSAMPLE).min(m.min(n));
    let mut rng = SplitMix64(SEED);
    let omega = Mat::<f32>::from_fn(n, l, |_, _| {
        // A sum of uniforms is Gaussian enough for a sketch and exactly reproducible.
        let u: f64 = (0..4).map(|_| rng.next_f64()).sum();
        (u - 2.0) as f32
    });
    let mut q = orthonormal(&product(a, omega.as_ref()));
    for _ in 0..POWER_ITERATIONS {
        let z = orthonormal(&product(a.transpose(), q.as_ref()));
        q = orthonormal(&product(a, z.as_ref()));
    }
    let b = product(q.transpose(), a);
    let mut s = dense(b.as_ref())?;
    s.truncate(TOP_K);
    Some(s)
}

fn product(a: MatRef<'_, f32>, b: MatRef<'_, f32>) -> Mat<f32> {
    let mut out = Mat::<f32>::zeros(a.nrows(), b.ncols());
    faer::linalg::matmul::matmul(out.as_mut(), Accum::Replace, a, b, 1.0, Par::Seq);
    out
}

fn orthonormal(a: &Mat<f32>) -> Mat<f32> {
    a.qr().compute_thin_Q()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// U·diag(s)·Vᵀ from Householder-free orthogonal factors: rotations of the identity.
    fn with_spectrum(rows: usize, cols: usize, s: &[f32]) -> Vec<f32> {
        let rotation = |n: usize, angle: f32| {
            Mat::<f32>::from_fn(n, n, |i, j| {
                let (c, v) = (angle.cos(), angle.sin());
                match (i, j) {
                    (0, 0) | (1, 1) => c,
                    (0, 1) => -v,
                    (1, 0) => v,
                    _ if i == j => 1.0,
                    _ => 0.0,
                }
            })
        };
        let sigma = Mat::<f32>::from_fn(rows, cols, |i, j| {
            if i == j {
                s.get(i).copied().unwrap_or(0.0)
            } else {
                0.0
            }
        });
        let u = rotation(rows, 0.3);
        let v = rotation(cols, 1.1);
        let a = product(product(u.as_ref(), sigma.as_ref()).as_ref(), v.transpose());
        (0..rows)
            .flat_map(|i| (0..cols).map(move |j| (i, j)))
            .map(|(i, j)| a[(i, j)])
            .collect()
    }

    #[test]
    fn dense_recovers_a_known_spectrum_in_descending_order() {
        let s = [1.0, 5.0, 3.0, 0.5];
        let a = with_spectrum(6, 4, &s);
        let (found, method) = singular_values(6, 4, &a).unwrap();
        assert_eq!(method, SvdMethod::Full);
        for (f, e) in found.iter().zip([5.0, 3.0, 1.0, 0.5]) {
            assert!((f - e).abs() < 1e-5, "{found:?}");
        }
    }

    #[test]
    fn randomized_finds_the_leading_values_of_a_low_rank_matrix() {
        let (m, n) = (64, 1100);
        let mut rng = SplitMix64(3);
        let u: Vec<f32> = (0..m * 3).map(|_| rng.next_f64() as f32 - 0.5).collect();
        let v: Vec<f32> = (0..3 * n).map(|_| rng.next_f64() as f32 - 0.5).collect();
        let u = MatRef::from_row_major_slice(&u, m, 3);
        let v = MatRef::from_row_major_slice(&v, 3, n);
        let a = product(u, v);
        let exact = dense(a.as_ref()).unwrap();
        let sketched = randomized(a.as_ref()).unwrap();
        for i in 0..3 {
            assert!(
                (exact[i] - sketched[i]).abs() < 1e-3 * exact[0],
                "{i}: {} vs {}",
                exact[i],
                sketched[i]
            );
        }
        assert!(sketched[3] < 1e-3 * exact[0]);
    }
}
