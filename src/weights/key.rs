//! The model's own key, read from its norms.
//!
//! Every LayerNorm/RMSNorm γ vector (each block's two and the final one) is a row; after
//! centring the columns, PCA (an SVD) gives each row a score on the principal components.
//!
//! * **Major or minor**: the skewness of the PC2 scores. ≥ 0 (the layers lean towards a few
//!   bright outliers) is major; < 0 minor.
//! * **Which minor**: the excess kurtosis of the PC3 scores. > 0 (heavy-tailed: a few layers
//!   stand apart) is harmonic minor, with its raised leading tone; ≤ 0 Dorian.
//! * **Root**: the hidden dimension PC1 weighs most (largest |loading|), modulo 12, as a pitch
//!   class (0 = C).
//!
//! A component's sign is arbitrary; each is oriented so that its largest-magnitude loading is
//! positive (scikit-learn's convention since 1.5), which fixes the sign of PC2's skewness. When
//! the γ vectors do not vary at all (a freshly initialised model: every γ is 1), or there are
//! too few of them for a component, the missing statistics count as 0, which reads as C major.

use faer::Mat;

use super::stats::KeyStats;
use crate::music::scale::Scale;

/// Total variance below which the γ vectors count as identical.
const FLAT: f64 = 1e-12;

/// The key of `gammas` (equal-length γ vectors; others are ignored).
pub fn model_key(gammas: &[&[f32]]) -> KeyStats {
    let width = gammas.first().map_or(0, |g| g.len());
    let rows: Vec<&[f32]> = gammas
        .iter()
        .copied()
        .filter(|g| g.len() == width)
        .collect();
    let components = principal_scores(&rows, width);
    let (root_dimension, pc2, pc3) = match &components {
        Some(c) => (c.root_dimension, c.scores.get(1), c.scores.get(2)),
        None => (0, None, None),
    };
    let pc2_skewness = pc2.map_or(0.0, |s| standardized_moment(s, 3));
    let pc3_kurtosis = pc3.map_or(0.0, |s| standardized_moment(s, 4) - 3.0);
    let scale = if pc2_skewness >= 0.0 {
        Scale::Major
    } else if pc3_kurtosis > 0.0 {
        Scale::HarmonicMinor
    } else {
        Scale::Dorian
    };
    KeyStats {
        root: (root_dimension % 12) as u8,
        scale: scale.name().to_owned(),
        pc2_skewness,
        pc3_kurtosis,
        root_dimension,
        vectors: rows.len(),
    }
}

struct Components {
    /// Scores of every row on PC1, PC2, PC3 (as many as exist).
    scores: Vec<Vec<f64>>,
    root_dimension: usize,
}

fn principal_scores(rows: &[&[f32]], width: usize) -> Option<Components> {
    let n = rows.len();
    if n < 2 || width == 0 {
        return None;
    }
    let mean: Vec<f64> = (0..width)
        .map(|j| rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / n as f64)
        .collect();
    let centred = Mat::<f64>::from_fn(n, width, |i, j| f64::from(rows[i][j]) - mean[j]);
    let total: f64 = (0..n)
        .flat_map(|i| (0..width).map(move |j| (i, j)))
        .map(|(i, j)| centred[(i, j)].powi(2))
        .sum();
    if total < FLAT {
        return None;
    }
    let svd = centred.thin_svd().ok()?;
    let (u, s, v) = (svd.U(), svd.S(), svd.V());
    let count = 3.min(n.min(width));
    let mut scores = Vec::with_capacity(count);
    let mut root_dimension = 0;
    for k in 0..count {
        let sigma = s[k];
        if sigma * sigma < FLAT {
            break;
        }
        let loadings = v.col(k);
        let (top, &value) = loadings
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()).then(b.0.cmp(&a.0)))?;
        let sign = if value < 0.0 { -1.0 } else { 1.0 };
        if k == 0 {
            root_dimension = top;
        }
        scores.push((0..n).map(|i| sign * u[(i, k)] * sigma).collect());
    }
    Some(Components {
        scores,
        root_dimension,
    })
}

/// E[(x − μ)^k] / σ^k over the population; 0 when the values do not vary.
fn standardized_moment(values: &[f64], k: i32) -> f64 {
    let n = values.len() as f64;
    if values.is_empty() {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / n;
    let m2 = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    if m2 < FLAT {
        return 0.0;
    }
    let mk = values.iter().map(|v| (v - mean).powi(k)).sum::<f64>() / n;
    mk / m2.powf(f64::from(k) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// γ vectors built from chosen scores on three coordinate directions, so the PCA's answer is
    /// known: row i = 1 + a_i·e_dim1 + b_i·e_dim2 + c_i·e_dim3 with var(a) ≫ var(b) ≫ var(c),
    /// the scores centred and made uncorrelated first (Gram–Schmidt) so the components do not mix.
    fn gammas(a: &[f32], b: &[f32], c: &[f32], dims: [usize; 3]) -> Vec<Vec<f32>> {
        let centred = |x: &[f32]| {
            let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64;
            x.iter().map(|&v| f64::from(v) - mean).collect::<Vec<f64>>()
        };
        let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>();
        let without = |x: Vec<f64>, basis: &[&[f64]]| {
            basis.iter().fold(x, |x, e| {
                let along = dot(&x, e) / dot(e, e);
                x.iter().zip(e.iter()).map(|(v, w)| v - along * w).collect()
            })
        };
        let a = centred(a);
        let b = without(centred(b), &[&a]);
        let c = without(centred(c), &[&a, &b]);
        (0..a.len())
            .map(|i| {
                let mut g = vec![1.0f32; 40];
                g[dims[0]] += a[i] as f32;
                g[dims[1]] += b[i] as f32;
                g[dims[2]] += c[i] as f32;
                g
            })
            .collect()
    }

    fn key_of(rows: &[Vec<f32>]) -> KeyStats {
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        model_key(&refs)
    }

    // PC1 wide and symmetric; PC3 small, light- or heavy-tailed.
    const A: [f32; 8] = [-80.0, -60.0, -40.0, -20.0, 20.0, 40.0, 60.0, 80.0];
    const C_LIGHT: [f32; 8] = [-0.05, 0.05, -0.05, 0.05, -0.05, 0.05, -0.05, 0.05];
    const C_HEAVY: [f32; 8] = [0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    // PC2 with one large positive outlier (skewed right) and its mirror (skewed left).
    const B_RIGHT: [f32; 8] = [-1.0, -1.0, -1.0, 4.0, -1.0, 1.0, -1.0, 0.0];

    #[test]
    fn a_right_skewed_pc2_is_major_and_pc1_picks_the_root() {
        let rows = gammas(&A, &B_RIGHT, &C_LIGHT, [26, 5, 9]);
        let key = key_of(&rows);
        assert!(key.pc2_skewness > 0.5, "{key:?}");
        assert_eq!(key.scale, "Major");
        assert_eq!(key.root_dimension, 26);
        assert_eq!(key.root, 2, "dimension 26 mod 12 is D");
        assert_eq!(key.vectors, 8);
    }

    #[test]
    fn a_left_skewed_pc2_is_minor_and_pc3_kurtosis_picks_which() {
        let left: Vec<f32> = B_RIGHT.iter().map(|v| -v).collect();
        let heavy = key_of(&gammas(&A, &left, &C_HEAVY, [3, 7, 11]));
        assert!(heavy.pc2_skewness < -0.5, "{heavy:?}");
        assert!(heavy.pc3_kurtosis > 0.0, "{heavy:?}");
        assert_eq!(heavy.scale, "Harmonic minor");
        let light = key_of(&gammas(&A, &left, &C_LIGHT, [3, 7, 11]));
        assert!(light.pc3_kurtosis <= 0.0, "{light:?}");
        assert_eq!(light.scale, "Dorian");
        assert_eq!(light.root, 3);
    }

    #[test]
    fn the_key_does_not_depend_on_the_order_of_the_layers() {
        let mut rows = gammas(&A, &B_RIGHT, &C_LIGHT, [26, 5, 9]);
        let key = key_of(&rows);
        rows.reverse();
        let reversed = key_of(&rows);
        assert_eq!((reversed.root, &reversed.scale), (key.root, &key.scale));
        assert!((reversed.pc2_skewness - key.pc2_skewness).abs() < 1e-9);
    }

    #[test]
    fn identical_or_too_few_vectors_read_as_c_major() {
        let flat = vec![vec![1.0f32; 16]; 9];
        let key = key_of(&flat);
        assert_eq!((key.root, key.scale.as_str()), (0, "Major"));
        let one = key_of(&flat[..1]);
        assert_eq!((one.root, one.scale.as_str()), (0, "Major"));
        assert_eq!(model_key(&[]).scale, "Major");
    }
}
