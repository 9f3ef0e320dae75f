//! UMAP (McInnes, Healy & Melville 2018), compact but faithful to the reference
//! implementation's steps: exact k nearest neighbours; per point the distance `ρ` to its
//! nearest neighbour and the width `σ` that makes its fuzzy memberships
//! `exp(-(d - ρ) / σ)` sum to log2 k; the fuzzy union `a + b - ab` of both directions;
//! a start from the data's first two principal axes scaled to ±10 (with a little noise);
//! then SGD on the fuzzy cross-entropy with the curve `1 / (1 + a d^2b)`, `a` and `b` fitted
//! to `min_dist`, each edge sampled in proportion to its weight, moving both ends, with
//! negative samples pushing the head away, and a learning rate falling linearly to 0.
//!
//! One thread and one seeded generator, so a seed fixes the picture bit for bit.

use nalgebra::{DMatrix, SymmetricEigen};

use super::{EmbedError, gaussian, rows, squared_distances};
use crate::rng::SplitMix64;

/// The settings; [`Default`] is the reference implementation's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UmapOptions {
    pub neighbours: usize,
    pub min_dist: f32,
    pub spread: f32,
    /// 500, as the reference uses for fewer than 10,000 points.
    pub epochs: usize,
    pub negative_samples: usize,
}

impl Default for UmapOptions {
    fn default() -> Self {
        Self {
            neighbours: 15,
            min_dist: 0.1,
            spread: 1.0,
            epochs: 500,
            negative_samples: 5,
        }
    }
}

/// Embed the rows of `data` (`[n][dim]`) in 2-D; the start's noise and the negative samples
/// are drawn from `seed`.
pub fn embed(
    data: &[f32],
    dim: usize,
    seed: u64,
    options: UmapOptions,
) -> Result<Vec<[f32; 2]>, EmbedError> {
    let n = rows(data, dim)?;
    let k = options.neighbours.clamp(2, n - 1);
    let graph = fuzzy_graph(data, dim, n, k);
    let (a, b) = fit_ab(options.spread, options.min_dist);
    let mut rng = SplitMix64(seed);
    let mut y = pca_start(data, dim, n, &mut rng);
    optimise(&mut y, &graph, a, b, options, &mut rng);
    Ok(y)
}

/// One directed entry of the symmetric fuzzy graph.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Edge {
    head: usize,
    tail: usize,
    weight: f32,
}

/// The fuzzy simplicial set: both directions of every undirected edge, in a fixed order.
fn fuzzy_graph(data: &[f32], dim: usize, n: usize, k: usize) -> Vec<Edge> {
    let squared = squared_distances(data, dim);
    let target = (k as f64).log2();
    let mean_distance = squared.iter().map(|d| d.sqrt()).sum::<f64>() / (n * n) as f64;
    // (i, j) → membership of j in i's neighbourhood, i's k nearest only.
    let mut directed: Vec<(usize, usize, f64)> = Vec::with_capacity(n * k);
    for i in 0..n {
        let mut order: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        order.sort_by(|&p, &q| {
            squared[i * n + p]
                .total_cmp(&squared[i * n + q])
                .then(p.cmp(&q))
        });
        order.truncate(k);
        let distances: Vec<f64> = order.iter().map(|&j| squared[i * n + j].sqrt()).collect();
        let rho = distances.iter().copied().find(|&d| d > 0.0).unwrap_or(0.0);
        let sigma = smooth_width(&distances, rho, target, mean_distance);
        for (&j, &d) in order.iter().zip(&distances) {
            let weight = if d <= rho {
                1.0
            } else {
                (-(d - rho) / sigma).exp()
            };
            directed.push((i, j, weight));
        }
    }
    // Fuzzy union: w = a + b - ab with a = w(i→j), b = w(j→i) (0 where absent).
    let mut undirected: Vec<(usize, usize, f64)> = directed
        .iter()
        .map(|&(i, j, w)| (i.min(j), i.max(j), w))
        .collect();
    undirected.sort_by(|p, q| (p.0, p.1).cmp(&(q.0, q.1)).then(p.2.total_cmp(&q.2)));
    let mut edges = Vec::with_capacity(undirected.len() * 2);
    let mut at = 0;
    while at < undirected.len() {
        let (i, j, first) = undirected[at];
        let mut weight = first;
        if let Some(&(p, q, second)) = undirected.get(at + 1)
            && (p, q) == (i, j)
        {
            weight = first + second - first * second;
            at += 1;
        }
        at += 1;
        for (head, tail) in [(i, j), (j, i)] {
            edges.push(Edge {
                head,
                tail,
                weight: weight as f32,
            });
        }
    }
    edges.sort_by_key(|e| (e.head, e.tail));
    edges
}

/// σ such that `Σ exp(-max(0, d - ρ) / σ)` over the neighbours is `target` (log2 k), by
/// bisection; never below a thousandth of the mean distance (as the reference), so a point
/// inside a clump of duplicates does not get a zero width.
fn smooth_width(distances: &[f64], rho: f64, target: f64, mean_distance: f64) -> f64 {
    let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
    for _ in 0..64 {
        let sum: f64 = distances
            .iter()
            .map(|&d| (-(d - rho).max(0.0) / mid).exp())
            .sum();
        if (sum - target).abs() < 1e-5 {
            break;
        }
        if sum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            mid = if hi.is_finite() {
                (lo + hi) / 2.0
            } else {
                mid * 2.0
            };
        }
    }
    mid.max(1e-3 * mean_distance).max(f64::MIN_POSITIVE)
}

/// `a`, `b` of `1 / (1 + a x^2b)` closest (least squares over [0, 3 spread]) to 1 up to
/// `min_dist` and `exp(-(x - min_dist) / spread)` beyond: a coarse grid, then finer grids
/// around the best point.
pub fn fit_ab(spread: f32, min_dist: f32) -> (f32, f32) {
    let (spread, min_dist) = (f64::from(spread), f64::from(min_dist));
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let target: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let cost = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&target)
            .map(|(&x, &t)| {
                let f = 1.0 / (1.0 + a * x.powf(2.0 * b));
                (f - t) * (f - t)
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 1.0f64);
    let (mut step_a, mut step_b) = (1.0f64, 0.25f64);
    for _ in 0..40 {
        let mut best = (cost(a, b), a, b);
        for da in -4..=4 {
            for db in -4..=4 {
                let (ca, cb) = (a + f64::from(da) * step_a, b + f64::from(db) * step_b);
                if ca <= 0.0 || cb <= 0.0 {
                    continue;
                }
                let c = cost(ca, cb);
                if c < best.0 {
                    best = (c, ca, cb);
                }
            }
        }
        (a, b) = (best.1, best.2);
        step_a /= 2.0;
        step_b /= 2.0;
    }
    (a as f32, b as f32)
}

/// The rows' coordinates on their first two principal axes (signs fixed: each axis's
/// largest entry positive), scaled so the farthest coordinate is 10, plus N(0, 1e-4) noise:
/// the reference implementation's "pca" start.
fn pca_start(data: &[f32], dim: usize, n: usize, rng: &mut SplitMix64) -> Vec<[f32; 2]> {
    let mean: Vec<f64> = (0..dim)
        .map(|d| (0..n).map(|i| f64::from(data[i * dim + d])).sum::<f64>() / n as f64)
        .collect();
    let mut covariance = DMatrix::<f64>::zeros(dim, dim);
    for i in 0..n {
        let row = &data[i * dim..(i + 1) * dim];
        for p in 0..dim {
            let x = f64::from(row[p]) - mean[p];
            for q in p..dim {
                covariance[(p, q)] += x * (f64::from(row[q]) - mean[q]);
            }
        }
    }
    for p in 0..dim {
        for q in 0..p {
            covariance[(p, q)] = covariance[(q, p)];
        }
    }
    let eigen = SymmetricEigen::new(covariance);
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&p, &q| eigen.eigenvalues[q].total_cmp(&eigen.eigenvalues[p]));
    let axes: Vec<Vec<f64>> = order
        .iter()
        .take(2)
        .map(|&c| {
            let v: Vec<f64> = eigen.eigenvectors.column(c).iter().copied().collect();
            let largest = v
                .iter()
                .copied()
                .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            let sign = if largest < 0.0 { -1.0 } else { 1.0 };
            v.into_iter().map(|x| x * sign).collect()
        })
        .collect();
    let mut y: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            let row = &data[i * dim..(i + 1) * dim];
            let along = |axis: Option<&Vec<f64>>| {
                axis.map_or(0.0, |axis| {
                    row.iter()
                        .zip(&mean)
                        .zip(axis)
                        .map(|((&x, m), w)| (f64::from(x) - m) * w)
                        .sum()
                })
            };
            [along(axes.first()), along(axes.get(1))]
        })
        .collect();
    let largest = y
        .iter()
        .flatten()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    for p in &mut y {
        for v in p.iter_mut() {
            *v = *v * 10.0 / largest + 1e-4 * gaussian(rng);
        }
    }
    y.into_iter().map(|[u, v]| [u as f32, v as f32]).collect()
}

/// Gradient steps are clipped to this, as in the reference.
const CLIP: f32 = 4.0;

fn optimise(
    y: &mut [[f32; 2]],
    graph: &[Edge],
    a: f32,
    b: f32,
    options: UmapOptions,
    rng: &mut SplitMix64,
) {
    let n = y.len();
    let epochs = options.epochs.max(1);
    let max_weight = graph.iter().map(|e| e.weight).fold(0.0f32, f32::max);
    // Edges too weak to be sampled once in all epochs are dropped.
    let edges: Vec<Edge> = graph
        .iter()
        .copied()
        .filter(|e| e.weight >= max_weight / epochs as f32 && e.weight > 0.0)
        .collect();
    let every: Vec<f32> = edges.iter().map(|e| max_weight / e.weight).collect();
    let negative_every: Vec<f32> = every
        .iter()
        .map(|e| e / options.negative_samples.max(1) as f32)
        .collect();
    let mut next = every.clone();
    let mut next_negative = negative_every.clone();
    let clip = |v: f32| v.clamp(-CLIP, CLIP);
    for epoch in 0..epochs {
        let alpha = 1.0 - epoch as f32 / epochs as f32;
        let now = epoch as f32;
        for (e, edge) in edges.iter().enumerate() {
            if next[e] > now {
                continue;
            }
            let (i, j) = (edge.head, edge.tail);
            let d2 = (y[i][0] - y[j][0]).powi(2) + (y[i][1] - y[j][1]).powi(2);
            let attract = if d2 > 0.0 {
                -2.0 * a * b * d2.powf(b - 1.0) / (a * d2.powf(b) + 1.0)
            } else {
                0.0
            };
            let step = [y[i][0] - y[j][0], y[i][1] - y[j][1]].map(|d| clip(attract * d) * alpha);
            y[i] = [y[i][0] + step[0], y[i][1] + step[1]];
            y[j] = [y[j][0] - step[0], y[j][1] - step[1]];
            next[e] += every[e];
            let negatives = ((now - next_negative[e]) / negative_every[e]).max(0.0) as usize;
            for _ in 0..negatives {
                let other = (rng.next_u64() % n as u64) as usize;
                if other == i {
                    continue;
                }
                let d2 = (y[i][0] - y[other][0]).powi(2) + (y[i][1] - y[other][1]).powi(2);
                let repel = if d2 > 0.0 {
                    2.0 * b / ((0.001 + d2) * (a * d2.powf(b) + 1.0))
                } else {
                    0.0
                };
                let step = [y[i][0] - y[other][0], y[i][1] - y[other][1]]
                    .map(|d| if repel > 0.0 { clip(repel * d) } else { CLIP });
                y[i] = [y[i][0] + step[0] * alpha, y[i][1] + step[1] * alpha];
            }
            next_negative[e] += negatives as f32 * negative_every[e];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{blobs, clusters_apart, neighbour_purity};
    use super::*;

    #[test]
    fn a_and_b_match_the_reference_for_its_defaults() {
        // umap-learn's find_ab_params(1.0, 0.1) gives a ≈ 1.577, b ≈ 0.895.
        let (a, b) = fit_ab(1.0, 0.1);
        assert!((a - 1.577).abs() < 0.02, "a = {a}");
        assert!((b - 0.895).abs() < 0.01, "b = {b}");
    }

    #[test]
    fn the_graph_is_symmetric_with_memberships_in_0_1() {
        let (data, _) = blobs(2, 15, 3, 5.0);
        let graph = fuzzy_graph(&data, 3, 30, 5);
        for e in &graph {
            assert!(e.weight > 0.0 && e.weight <= 1.0, "{e:?}");
            assert!(graph.contains(&Edge {
                head: e.tail,
                tail: e.head,
                weight: e.weight,
            }));
        }
        // Every point's nearest neighbour has membership 1.
        assert!((0..30).all(|i| graph.iter().any(|e| e.head == i && e.weight == 1.0)));
    }

    #[test]
    fn separated_clusters_stay_separated() {
        let (data, label) = blobs(3, 30, 8, 12.0);
        let y = embed(&data, 8, 1, UmapOptions::default()).unwrap();
        assert_eq!(y.len(), 90);
        assert!(y.iter().flatten().all(|v| v.is_finite()));
        assert!(neighbour_purity(&y, &label) > 0.97);
        assert!(clusters_apart(&y, &label, 3));
    }

    #[test]
    fn a_seed_gives_the_same_picture_and_another_seed_another() {
        let (data, _) = blobs(2, 12, 4, 6.0);
        let options = UmapOptions {
            epochs: 60,
            ..UmapOptions::default()
        };
        let a = embed(&data, 4, 5, options).unwrap();
        assert_eq!(a, embed(&data, 4, 5, options).unwrap());
        assert_ne!(a, embed(&data, 4, 6, options).unwrap());
    }
}
