//! Reads every weight of a model and measures it: the [`WeightStats`] the pieces are composed
//! from and `weights --stats` writes.
//!
//! Matrices are read one batch at a time (dequantized by the inventory) and measured in
//! parallel, one matrix per thread, so memory stays at a few matrices and the numbers do not
//! depend on the thread count.

use std::ops::ControlFlow;
use std::path::Path;

use rayon::prelude::*;

use super::key::model_key;
use super::stats::{
    Histogram, KeyStats, LayerStats, MatrixStats, ModelInfo, Moments, NormStats, Role, WeightStats,
};
use super::svd::singular_values;
use crate::llm::LlmError;
use crate::llm::inventory::{Entry, Inventory, Kind, WeightTensor};

/// Bins of every histogram.
pub const HISTOGRAM_BINS: usize = 64;
/// Leading singular values compared between consecutive blocks for `svd_delta`.
pub const DELTA_VALUES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Model(#[from] LlmError),
    #[error("the SVD of {0} did not converge")]
    Svd(String),
    #[error("cannot identify the model for the weights cache: {0}")]
    Cache(String),
    #[error("the analysis was cancelled")]
    Cancelled,
}

/// Measures every weight of the model at `path`. `progress(done, total)` is called after each
/// batch of a few matrices; returning `ControlFlow::Break` cancels ([`AnalysisError::Cancelled`]).
pub fn analyze(
    path: &Path,
    progress: impl FnMut(usize, usize) -> ControlFlow<()> + Send,
) -> Result<WeightStats, AnalysisError> {
    // A pool of its own: the CLI keeps rayon's global pool at one thread for the model.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(|| analyze_here(path, progress)),
        Err(_) => analyze_here(path, progress),
    }
}

fn analyze_here(
    path: &Path,
    mut progress: impl FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<WeightStats, AnalysisError> {
    let mut inventory = Inventory::open(path)?;
    let entries: Vec<Entry> = inventory.entries().to_vec();
    let batch = 2 * rayon::current_num_threads().max(1);
    let mut matrices = Vec::new();
    let mut norms = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let end = (start + batch).min(entries.len());
        let tensors = (start..end)
            .map(|i| inventory.read(i))
            .collect::<Result<Vec<_>, _>>()?;
        let measured: Vec<Result<Measured, AnalysisError>> = entries[start..end]
            .par_iter()
            .zip(tensors.par_iter())
            .map(|(entry, tensor)| measure(entry, tensor))
            .collect();
        for m in measured {
            match m? {
                Measured::Matrix(m) => matrices.push(m),
                Measured::Norm(n) => norms.push(n),
            }
        }
        start = end;
        if progress(start, entries.len()).is_break() {
            return Err(AnalysisError::Cancelled);
        }
    }
    let layers = (0..inventory.layers)
        .map(|l| layer_stats(l, &matrices))
        .collect();
    let gammas: Vec<&[f32]> = norms.iter().map(|n| n.gamma.as_slice()).collect();
    let key = model_key(&gammas);
    Ok(WeightStats {
        schema: WeightStats::SCHEMA,
        model: ModelInfo {
            path: path.display().to_string(),
            family: inventory.family.clone(),
            layers: inventory.layers,
            hidden: inventory.hidden,
        },
        matrices,
        norms,
        layers,
        key,
    })
}

/// The model's key alone: reads only the norms' γ vectors (milliseconds), for the plugin's
/// Model's Key scale.
pub fn model_key_of(path: &Path) -> Result<KeyStats, AnalysisError> {
    let mut inventory = Inventory::open(path)?;
    let norms: Vec<usize> = inventory
        .entries()
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, Kind::Norm(_)))
        .map(|(i, _)| i)
        .collect();
    let gammas = norms
        .into_iter()
        .map(|i| inventory.read(i).map(|t| t.values))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&[f32]> = gammas.iter().map(Vec::as_slice).collect();
    Ok(model_key(&refs))
}

enum Measured {
    Matrix(MatrixStats),
    Norm(NormStats),
}

fn measure(entry: &Entry, tensor: &WeightTensor) -> Result<Measured, AnalysisError> {
    let [rows, cols] = tensor.shape;
    Ok(match entry.kind {
        Kind::Norm(role) => Measured::Norm(NormStats {
            name: entry.name.clone(),
            role,
            layer: entry.layer,
            gamma: tensor.values.clone(),
            moments: moments(&tensor.values),
        }),
        Kind::Matrix(role) => {
            let (singular_values, svd) = singular_values(rows, cols, &tensor.values)
                .ok_or_else(|| AnalysisError::Svd(entry.name.clone()))?;
            let row_norms: Vec<f32> = tensor
                .values
                .chunks_exact(cols.max(1))
                .map(|row| {
                    row.iter()
                        .map(|&v| f64::from(v).powi(2))
                        .sum::<f64>()
                        .sqrt() as f32
                })
                .collect();
            let moments = moments(&tensor.values);
            Measured::Matrix(MatrixStats {
                name: entry.name.clone(),
                role,
                layer: entry.layer,
                shape: [rows, cols],
                dtype: entry.dtype.clone(),
                singular_values,
                svd,
                frobenius: frobenius(&tensor.values),
                histogram: histogram(&tensor.values, &moments, HISTOGRAM_BINS),
                moments,
                row_norms,
            })
        }
    })
}

fn frobenius(values: &[f32]) -> f64 {
    values
        .iter()
        .map(|&v| f64::from(v).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Population moments in f64, two passes (mean first) for accuracy.
pub fn moments(values: &[f32]) -> Moments {
    if values.is_empty() {
        return Moments::default();
    }
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        let v = f64::from(v);
        let d = v - mean;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
        min = min.min(v);
        max = max.max(v);
    }
    let (m2, m3, m4) = (m2 / n, m3 / n, m4 / n);
    let (skewness, kurtosis) = if m2 > 0.0 {
        (m3 / m2.powf(1.5), m4 / (m2 * m2) - 3.0)
    } else {
        (0.0, 0.0)
    };
    Moments {
        mean,
        std: m2.sqrt(),
        skewness,
        kurtosis,
        min,
        max,
    }
}

/// `numpy.histogram(values, bins)`: equal bins over [min, max], the last one closed.
pub fn histogram(values: &[f32], moments: &Moments, bins: usize) -> Histogram {
    let mut counts = vec![0u64; bins];
    let (lo, hi) = (moments.min, moments.max);
    // NumPy widens an empty range to ±0.5 around the value.
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    };
    if bins > 0 && !values.is_empty() {
        let scale = bins as f64 / (hi - lo);
        for &v in values {
            let i = ((f64::from(v) - lo) * scale) as usize;
            counts[i.min(bins - 1)] += 1;
        }
    }
    Histogram {
        min: lo,
        max: hi,
        counts,
    }
}

fn layer_stats(layer: usize, matrices: &[MatrixStats]) -> LayerStats {
    let find = |role: Role, l: usize| {
        matrices
            .iter()
            .find(|m| m.role == role && m.layer == Some(l))
    };
    let energy = |roles: &[Role]| {
        roles
            .iter()
            .filter_map(|&r| find(r, layer))
            .map(|m| m.frobenius * m.frobenius)
            .sum::<f64>()
            .sqrt()
    };
    let (attention, mlp) = (energy(&Role::ATTENTION), energy(&Role::MLP));
    let tension = if mlp > 0.0 { attention / mlp } else { 0.0 };
    let svd_delta: Vec<(Role, f64)> = if layer == 0 {
        Vec::new()
    } else {
        Role::ATTENTION
            .iter()
            .chain(&Role::MLP)
            .filter_map(|&role| {
                let (a, b) = (find(role, layer - 1)?, find(role, layer)?);
                Some((
                    role,
                    spectrum_distance(&a.singular_values, &b.singular_values),
                ))
            })
            .collect()
    };
    let svd_delta_mean = if svd_delta.is_empty() {
        0.0
    } else {
        svd_delta.iter().map(|(_, d)| d).sum::<f64>() / svd_delta.len() as f64
    };
    LayerStats {
        index: layer,
        tension,
        svd_delta,
        svd_delta_mean,
    }
}

/// The L2 distance between the unit-normalized leading [`DELTA_VALUES`] singular values.
fn spectrum_distance(a: &[f32], b: &[f32]) -> f64 {
    let k = a.len().min(b.len()).min(DELTA_VALUES);
    let unit = |s: &[f32]| {
        let norm = s[..k]
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        s[..k]
            .iter()
            .map(|&v| if norm > 0.0 { f64::from(v) / norm } else { 0.0 })
            .collect::<Vec<_>>()
    };
    let (a, b) = (unit(a), unit(b));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_a_known_sample() {
        let m = moments(&[1.0, 2.0, 3.0, 4.0, 10.0]);
        assert!((m.mean - 4.0).abs() < 1e-12);
        assert!((m.std - 10f64.sqrt()).abs() < 1e-12);
        // Deviations −3, −2, −1, 0, 6: m2 = 10, m3 = 36, m4 = 278.8.
        assert!((m.skewness - 36.0 / 10f64.powf(1.5)).abs() < 1e-12, "{m:?}");
        assert!((m.kurtosis - (2.788 - 3.0)).abs() < 1e-12, "{m:?}");
        assert_eq!((m.min, m.max), (1.0, 10.0));
    }

    #[test]
    fn histogram_bins_like_numpy() {
        let values = [0.0, 0.1, 0.5, 0.99, 1.0];
        let h = histogram(&values, &moments(&values), 4);
        assert_eq!(
            h.counts,
            vec![2, 0, 1, 2],
            "the last bin includes the maximum"
        );
        let flat = histogram(&[2.0; 3], &moments(&[2.0; 3]), 2);
        assert_eq!((flat.min, flat.max, flat.counts), (1.5, 2.5, vec![0, 3]));
    }

    #[test]
    fn spectra_that_differ_only_in_scale_have_no_distance() {
        assert!(spectrum_distance(&[4.0, 2.0, 1.0], &[8.0, 4.0, 2.0]) < 1e-12);
        assert!(spectrum_distance(&[4.0, 2.0, 1.0], &[4.0, 0.0, 0.0]) > 0.1);
    }
}
