//! 2-D pictures of a hidden state's tokens other than its PCA plane, for `map-plot`: exact
//! t-SNE ([`tsne`]) and UMAP ([`umap`]), both written here so that a seed gives the same
//! picture bit for bit (the crates.io implementations draw their start from an unseeded or
//! parallel source, or run their SGD Hogwild-style on several threads).
//!
//! Both take points as rows of `f32` (`map-plot` gives them each token's 16 raw PCA
//! coordinates of the layer: the space the music hears, and free of the few huge outlier
//! dimensions of the raw residual stream that would otherwise decide every distance) and
//! run on one thread, in a fixed order, with [`crate::rng::SplitMix64`] seeded by the caller.

pub mod tsne;
pub mod umap;

use std::fmt;
use std::str::FromStr;

use crate::rng::SplitMix64;

/// How `map-plot` lays a hidden state's tokens out in 2-D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// The map's own PC1/PC2 plane (linear, shared by every picture of the model).
    Pca,
    /// t-SNE: neighbourhoods kept, distances between groups not.
    Tsne,
    /// UMAP: neighbourhoods kept, more of the global layout than t-SNE.
    Umap,
}

impl Embedding {
    pub const ALL: [Embedding; 3] = [Embedding::Pca, Embedding::Tsne, Embedding::Umap];

    pub fn name(self) -> &'static str {
        match self {
            Embedding::Pca => "pca",
            Embedding::Tsne => "tsne",
            Embedding::Umap => "umap",
        }
    }

    /// How an axis of this embedding is named on a plot.
    pub fn axis_name(self) -> &'static str {
        match self {
            Embedding::Pca => "PC",
            Embedding::Tsne => "t-SNE ",
            Embedding::Umap => "UMAP ",
        }
    }
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Embedding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Embedding::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown embedding {s:?}: choose pca, tsne or umap"))
    }
}

/// Why points could not be embedded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    #[error("{found} points are too few to embed (at least {needed})")]
    TooFewPoints { found: usize, needed: usize },
    #[error("{len} values are not rows of {dim}")]
    Shape { len: usize, dim: usize },
    #[error("point {0} has a non-finite coordinate")]
    NonFinite(usize),
}

/// Fewest points either method embeds.
pub const MIN_POINTS: usize = 4;

/// `data` as `n` rows of `dim`, checked: the shape, at least [`MIN_POINTS`], finite values.
pub(crate) fn rows(data: &[f32], dim: usize) -> Result<usize, EmbedError> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(EmbedError::Shape {
            len: data.len(),
            dim,
        });
    }
    let n = data.len() / dim;
    if n < MIN_POINTS {
        return Err(EmbedError::TooFewPoints {
            found: n,
            needed: MIN_POINTS,
        });
    }
    if let Some(bad) = data.iter().position(|v| !v.is_finite()) {
        return Err(EmbedError::NonFinite(bad / dim));
    }
    Ok(n)
}

/// Squared Euclidean distances between all rows, `[n][n]`, in f64.
pub(crate) fn squared_distances(data: &[f32], dim: usize) -> Vec<f64> {
    let n = data.len() / dim;
    let mut d = vec![0.0f64; n * n];
    for i in 0..n {
        let a = &data[i * dim..(i + 1) * dim];
        for j in i + 1..n {
            let b = &data[j * dim..(j + 1) * dim];
            let s: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| {
                    let t = f64::from(x - y);
                    t * t
                })
                .sum();
            d[i * n + j] = s;
            d[j * n + i] = s;
        }
    }
    d
}

/// A standard normal draw (Box–Muller), from `rng` alone so a seed fixes it.
pub(crate) fn gaussian(rng: &mut SplitMix64) -> f64 {
    let u = 1.0 - rng.next_f64(); // (0, 1]: ln is finite
    let v = rng.next_f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
pub(crate) mod test_data {
    use super::*;

    /// `clusters` Gaussian blobs of `per` points in `dim` dimensions, centres `gap` apart
    /// along different axes, unit spread; rows and each row's cluster.
    pub fn blobs(clusters: usize, per: usize, dim: usize, gap: f32) -> (Vec<f32>, Vec<usize>) {
        let mut rng = SplitMix64(7);
        let mut data = Vec::new();
        let mut label = Vec::new();
        for c in 0..clusters {
            for _ in 0..per {
                for d in 0..dim {
                    let centre = if d == c % dim { gap } else { 0.0 };
                    data.push(centre + gaussian(&mut rng) as f32);
                }
                label.push(c);
            }
        }
        (data, label)
    }

    /// Fraction of points whose nearest other point in `y` is of their own cluster.
    pub fn neighbour_purity(y: &[[f32; 2]], label: &[usize]) -> f64 {
        let mut same = 0;
        for (i, a) in y.iter().enumerate() {
            let nearest = y
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .min_by(|(_, p), (_, q)| {
                    let dp = (p[0] - a[0]).powi(2) + (p[1] - a[1]).powi(2);
                    let dq = (q[0] - a[0]).powi(2) + (q[1] - a[1]).powi(2);
                    dp.total_cmp(&dq)
                })
                .map(|(j, _)| j);
            if nearest.is_some_and(|j| label[j] == label[i]) {
                same += 1;
            }
        }
        same as f64 / y.len() as f64
    }

    /// Whether every cluster's bounding box in `y` is apart from every other's.
    pub fn clusters_apart(y: &[[f32; 2]], label: &[usize], clusters: usize) -> bool {
        let boxes: Vec<[f32; 4]> = (0..clusters)
            .map(|c| {
                let mut b = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
                for (p, _) in y.iter().zip(label).filter(|(_, l)| **l == c) {
                    b = [
                        b[0].min(p[0]),
                        b[1].min(p[1]),
                        b[2].max(p[0]),
                        b[3].max(p[1]),
                    ];
                }
                b
            })
            .collect();
        (0..clusters).all(|a| {
            (a + 1..clusters).all(|b| {
                let (p, q) = (boxes[a], boxes[b]);
                p[2] < q[0] || q[2] < p[0] || p[3] < q[1] || q[3] < p[1]
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_say_what_is_known() {
        for e in Embedding::ALL {
            assert_eq!(e.name().parse::<Embedding>(), Ok(e));
        }
        assert_eq!("UMAP".parse::<Embedding>(), Ok(Embedding::Umap));
        let err = "isomap".parse::<Embedding>().unwrap_err();
        assert!(err.contains("pca, tsne or umap"), "{err}");
    }

    #[test]
    fn rows_are_checked() {
        assert_eq!(rows(&[0.0; 12], 3), Ok(4));
        assert!(matches!(rows(&[0.0; 10], 3), Err(EmbedError::Shape { .. })));
        assert!(matches!(
            rows(&[0.0; 9], 3),
            Err(EmbedError::TooFewPoints { found: 3, .. })
        ));
        let mut bad = vec![0.0; 12];
        bad[7] = f32::NAN;
        assert_eq!(rows(&bad, 3), Err(EmbedError::NonFinite(2)));
    }
}
