//! Exact t-SNE (van der Maaten & Hinton 2008) with the usual optimiser settings (those of
//! scikit-learn: perplexity 30, early exaggeration 12 for 250 iterations, momentum 0.5 then
//! 0.8, per-coordinate gains, learning rate max(n / 48, 50), 1000 iterations). Exact, not
//! Barnes–Hut: `map-plot` embeds about a thousand points, where the O(n²) gradient takes
//! seconds and has no approximation to explain.

use super::{EmbedError, gaussian, rows, squared_distances};
use crate::rng::SplitMix64;

/// The settings; [`Default`] is what `map-plot` uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TsneOptions {
    /// Effective neighbours per point; lowered to (n - 1) / 3 for few points.
    pub perplexity: f64,
    pub iterations: usize,
    pub exaggeration: f64,
    pub exaggeration_iterations: usize,
}

impl Default for TsneOptions {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            iterations: 1000,
            exaggeration: 12.0,
            exaggeration_iterations: 250,
        }
    }
}

/// Embed the rows of `data` (`[n][dim]`) in 2-D; the start is drawn from `seed`.
pub fn embed(
    data: &[f32],
    dim: usize,
    seed: u64,
    options: TsneOptions,
) -> Result<Vec<[f32; 2]>, EmbedError> {
    let n = rows(data, dim)?;
    let distances = squared_distances(data, dim);
    let perplexity = options.perplexity.min((n - 1) as f64 / 3.0).max(1.0);
    let p = joint_probabilities(&distances, n, perplexity);

    let mut rng = SplitMix64(seed);
    let mut y: Vec<f64> = (0..2 * n).map(|_| 1e-4 * gaussian(&mut rng)).collect();
    let mut update = vec![0.0f64; 2 * n];
    let mut gains = vec![1.0f64; 2 * n];
    let mut gradient = vec![0.0f64; 2 * n];
    let mut kernel = vec![0.0f64; n * n];
    let rate = (n as f64 / options.exaggeration / 4.0).max(50.0);
    for iteration in 0..options.iterations {
        let early = iteration < options.exaggeration_iterations;
        let exaggeration = if early { options.exaggeration } else { 1.0 };
        let momentum = if early { 0.5 } else { 0.8 };
        // Student-t kernel 1 / (1 + |yi - yj|²) of each pair (i < j) and its sum Z.
        let mut z = 0.0;
        for i in 0..n {
            let (xi, yi) = (y[2 * i], y[2 * i + 1]);
            for j in i + 1..n {
                let (dx, dy) = (xi - y[2 * j], yi - y[2 * j + 1]);
                let k = 1.0 / (1.0 + dx * dx + dy * dy);
                kernel[i * n + j] = k;
                z += 2.0 * k;
            }
        }
        let z = z.max(f64::MIN_POSITIVE);
        // dC/dyi = 4 Σj (pij - qij) kij (yi - yj), qij = kij / Z: each pair once, both ends.
        gradient.fill(0.0);
        for i in 0..n {
            let (xi, yi) = (y[2 * i], y[2 * i + 1]);
            let (mut gx, mut gy) = (0.0, 0.0);
            for j in i + 1..n {
                let k = kernel[i * n + j];
                let force = 4.0 * (exaggeration * p[i * n + j] - k / z) * k;
                let (fx, fy) = (force * (xi - y[2 * j]), force * (yi - y[2 * j + 1]));
                gx += fx;
                gy += fy;
                gradient[2 * j] -= fx;
                gradient[2 * j + 1] -= fy;
            }
            gradient[2 * i] += gx;
            gradient[2 * i + 1] += gy;
        }
        for ((g, u), (gain, yv)) in gradient
            .iter()
            .zip(update.iter_mut())
            .zip(gains.iter_mut().zip(y.iter_mut()))
        {
            // Grow the step while the gradient keeps its direction, shrink it when it turns.
            *gain = if (*g > 0.0) == (*u > 0.0) {
                (*gain * 0.8).max(0.01)
            } else {
                *gain + 0.2
            };
            *u = momentum * *u - rate * *gain * g;
            *yv += *u;
        }
        // Keep the picture centred (the cost does not see translations).
        for axis in 0..2 {
            let mean = (0..n).map(|i| y[2 * i + axis]).sum::<f64>() / n as f64;
            for i in 0..n {
                y[2 * i + axis] -= mean;
            }
        }
    }
    Ok((0..n)
        .map(|i| [y[2 * i] as f32, y[2 * i + 1] as f32])
        .collect())
}

/// Symmetric joint probabilities `pij = (pj|i + pi|j) / 2n`, each row's Gaussian width found
/// by bisection on its precision so the row's entropy is ln(perplexity).
fn joint_probabilities(distances: &[f64], n: usize, perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let mut conditional = vec![0.0f64; n * n];
    for i in 0..n {
        let row = &distances[i * n..(i + 1) * n];
        let (mut beta, mut lo, mut hi) = (1.0f64, 0.0f64, f64::INFINITY);
        // Distances shifted by the row's smallest so exp never underflows to all zeros.
        let min = (0..n)
            .filter(|&j| j != i)
            .map(|j| row[j])
            .fold(f64::INFINITY, f64::min);
        let out = &mut conditional[i * n..(i + 1) * n];
        for _ in 0..100 {
            let mut sum = 0.0;
            let mut weighted = 0.0;
            for j in 0..n {
                out[j] = if j == i {
                    0.0
                } else {
                    (-(row[j] - min) * beta).exp()
                };
                sum += out[j];
                weighted += out[j] * (row[j] - min);
            }
            let sum = sum.max(f64::MIN_POSITIVE);
            // H = ln Σ + β ⟨d⟩ for p ∝ exp(-β d).
            let entropy = sum.ln() + beta * weighted / sum;
            for v in out.iter_mut() {
                *v /= sum;
            }
            let error = entropy - target;
            if error.abs() < 1e-5 {
                break;
            }
            if error > 0.0 {
                lo = beta;
                beta = if hi.is_finite() {
                    (beta + hi) / 2.0
                } else {
                    beta * 2.0
                };
            } else {
                hi = beta;
                beta = (beta + lo) / 2.0;
            }
        }
    }
    let mut joint = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            joint[i * n + j] =
                ((conditional[i * n + j] + conditional[j * n + i]) / (2.0 * n as f64)).max(1e-12);
        }
    }
    joint
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{blobs, clusters_apart, neighbour_purity};
    use super::*;

    fn quick() -> TsneOptions {
        TsneOptions {
            iterations: 400,
            ..TsneOptions::default()
        }
    }

    #[test]
    fn separated_clusters_stay_separated() {
        let (data, label) = blobs(3, 30, 8, 12.0);
        let y = embed(&data, 8, 1, quick()).unwrap();
        assert_eq!(y.len(), 90);
        assert!(y.iter().flatten().all(|v| v.is_finite()));
        assert!(neighbour_purity(&y, &label) > 0.97);
        assert!(clusters_apart(&y, &label, 3));
    }

    #[test]
    fn a_seed_gives_the_same_picture_and_another_seed_another() {
        let (data, _) = blobs(2, 12, 4, 6.0);
        let options = TsneOptions {
            iterations: 120,
            ..TsneOptions::default()
        };
        let a = embed(&data, 4, 5, options).unwrap();
        assert_eq!(a, embed(&data, 4, 5, options).unwrap());
        assert_ne!(a, embed(&data, 4, 6, options).unwrap());
    }

    #[test]
    fn rows_sum_to_one_at_the_asked_perplexity() {
        let (data, _) = blobs(2, 20, 3, 4.0);
        let d = squared_distances(&data, 3);
        let p = joint_probabilities(&d, 40, 10.0);
        let total: f64 = p.iter().sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        assert!((0..40).all(|i| (p[i * 40 + i] - 1e-12).abs() < 1e-15));
    }
}
