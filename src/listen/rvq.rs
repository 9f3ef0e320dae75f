//! Residual vector quantisation with fixed, versioned codebooks.
//!
//! A family's feature vector is centred and projected onto its 16 principal axes (fitted with
//! the codebooks), put on an integer grid, and quantised in 4 residual stages of 256 codewords.
//! Everything after the projection is integer arithmetic: squared distances are exact, ties go
//! to the lower index, so a feature vector gives the same tokens on every CPU. (The encoders
//! before it are floating point; the grid absorbs their last-bit differences except where a
//! value sits exactly on a grid boundary.)

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};

use super::error::ListenError;
use crate::rng::SplitMix64;

pub const STAGES: usize = 4;
pub const CODEWORDS: usize = 256;
/// Projected dimensions per family.
pub const DIMS: usize = 16;
/// Grid steps per unit of the projected (PC1-normalised) feature.
const GRID: f64 = 256.0;
const LIMIT: f64 = (1 << 20) as f64;

/// The codebooks every build embeds (fitted by `tools/listen/fit_codebooks.sh`).
const BUILTIN: &[u8] = include_bytes!("../../assets/listen/codebooks-v1.safetensors");

/// One token family's quantiser.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub input_dims: usize,
    mean: Vec<f32>,
    /// `DIMS × input_dims`, row-major.
    projection: Vec<f32>,
    /// `STAGES × CODEWORDS × DIMS`.
    codebooks: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Codebooks {
    pub id: String,
    pub sha256: String,
    pub semantic: Family,
    pub acoustic: Family,
    /// Mean length of a projected semantic vector: custom encoders' features are scaled to it.
    pub semantic_norm: f32,
}

impl Family {
    /// Centred and projected, before the grid.
    pub fn project(&self, feature: &[f32]) -> [f64; DIMS] {
        std::array::from_fn(|d| {
            let row = &self.projection[d * self.input_dims..(d + 1) * self.input_dims];
            let mut sum = 0.0f64;
            for ((&x, &m), &p) in feature.iter().zip(&self.mean).zip(row) {
                sum += f64::from(x - m) * f64::from(p);
            }
            sum
        })
    }

    /// The 4 tokens of a feature vector of `input_dims` values.
    pub fn encode(&self, feature: &[f32]) -> [u16; STAGES] {
        self.encode_projected(&self.project(feature))
    }

    /// The 4 tokens of a vector already in the projected space.
    pub fn encode_projected(&self, projected: &[f64; DIMS]) -> [u16; STAGES] {
        let mut residual = to_grid(projected);
        std::array::from_fn(|stage| {
            let index = nearest(self.stage(stage), &residual);
            let word = &self.stage(stage)[index * DIMS..(index + 1) * DIMS];
            for (r, w) in residual.iter_mut().zip(word) {
                *r -= i64::from(*w);
            }
            index as u16
        })
    }

    fn stage(&self, stage: usize) -> &[i32] {
        &self.codebooks[stage * CODEWORDS * DIMS..(stage + 1) * CODEWORDS * DIMS]
    }
}

pub fn to_grid(projected: &[f64; DIMS]) -> [i64; DIMS] {
    std::array::from_fn(|d| {
        let v = projected[d] * GRID;
        if v.is_finite() {
            v.round().clamp(-LIMIT, LIMIT) as i64
        } else {
            0
        }
    })
}

/// The codeword closest to `point`; exact integer distances, the lower index on a tie.
pub fn nearest(words: &[i32], point: &[i64; DIMS]) -> usize {
    let mut best = (i64::MAX, 0);
    for (index, word) in words.chunks_exact(DIMS).enumerate() {
        let distance: i64 = word
            .iter()
            .zip(point)
            .map(|(&w, &p)| (p - i64::from(w)) * (p - i64::from(w)))
            .sum();
        if distance < best.0 {
            best = (distance, index);
        }
    }
    best.1
}

impl Codebooks {
    /// The embedded codebooks.
    pub fn builtin() -> Result<Self, ListenError> {
        Self::from_bytes(BUILTIN)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ListenError> {
        let broken = |message: String| ListenError::Codebooks {
            name: "file".into(),
            message,
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| broken(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let id = meta
            .get("id")
            .cloned()
            .ok_or_else(|| broken("no id in the metadata".into()))?;
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| broken(e.to_string()))?;
        let floats = |name: &str| -> Result<(Vec<usize>, Vec<f32>), ListenError> {
            let view = tensors
                .tensor(name)
                .map_err(|e| broken(format!("{name}: {e}")))?;
            if view.dtype() != Dtype::F32 {
                return Err(broken(format!("{name} is not f32")));
            }
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok((view.shape().to_vec(), values))
        };
        let family = |name: &str| -> Result<Family, ListenError> {
            let (mean_shape, mean) = floats(&format!("{name}.mean"))?;
            let (projection_shape, projection) = floats(&format!("{name}.projection"))?;
            let view = tensors
                .tensor(&format!("{name}.codebooks"))
                .map_err(|e| broken(format!("{name}.codebooks: {e}")))?;
            if view.dtype() != Dtype::I32 || view.shape() != [STAGES, CODEWORDS, DIMS] {
                return Err(broken(format!(
                    "{name}.codebooks must be i32 [{STAGES}, {CODEWORDS}, {DIMS}]"
                )));
            }
            let input_dims = mean_shape.first().copied().unwrap_or(0);
            if mean_shape.len() != 1 || projection_shape != [DIMS, input_dims] {
                return Err(broken(format!(
                    "{name}: mean and projection shapes disagree"
                )));
            }
            let codebooks = view
                .data()
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok(Family {
                input_dims,
                mean,
                projection,
                codebooks,
            })
        };
        let semantic_norm = meta
            .get("semantic_norm")
            .and_then(|v| v.parse::<f32>().ok())
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| broken("semantic_norm missing".into()))?;
        Ok(Self {
            id,
            sha256: hex(&Sha256::digest(bytes)),
            semantic: family("semantic")?,
            acoustic: family("acoustic")?,
            semantic_norm,
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let i32_bytes = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, family) in [("semantic", &self.semantic), ("acoustic", &self.acoustic)] {
            owned.push((
                format!("{name}.mean"),
                Dtype::F32,
                vec![family.input_dims],
                f32_bytes(&family.mean),
            ));
            owned.push((
                format!("{name}.projection"),
                Dtype::F32,
                vec![DIMS, family.input_dims],
                f32_bytes(&family.projection),
            ));
            owned.push((
                format!("{name}.codebooks"),
                Dtype::I32,
                vec![STAGES, CODEWORDS, DIMS],
                i32_bytes(&family.codebooks),
            ));
        }
        let views = owned
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|view| (name.clone(), view))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let metadata = HashMap::from([
            ("id".to_owned(), self.id.clone()),
            ("semantic_norm".to_owned(), format!("{}", self.semantic_norm)),
            (
                "semantic_features".to_owned(),
                "Basic Pitch posteriors per frame: note mean (88), onset max (88), contour mean per semitone (88)".to_owned(),
            ),
            ("acoustic_features".to_owned(), "log-mel dB means (64 bands, 30 Hz to 10 kHz)".to_owned()),
        ]);
        safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fits one family: principal axes of the features (scaled so PC1 has unit spread), then
/// k-means (k-means++ start from `seed`, Lloyd iterations) per residual stage.
pub fn fit_family(features: &[Vec<f32>], seed: u64) -> Result<Family, String> {
    let input_dims = features
        .first()
        .map(Vec::len)
        .ok_or("no feature frames to fit on")?;
    if features.len() < CODEWORDS * 4 {
        return Err(format!(
            "{} frames are too few to fit {CODEWORDS} codewords; give more reference audio",
            features.len()
        ));
    }
    let n = features.len() as f64;
    let mut mean = vec![0.0f64; input_dims];
    for f in features {
        for (m, &x) in mean.iter_mut().zip(f) {
            *m += f64::from(x) / n;
        }
    }
    let mut covariance = nalgebra::DMatrix::<f64>::zeros(input_dims, input_dims);
    for f in features {
        let centred: Vec<f64> = f
            .iter()
            .zip(&mean)
            .map(|(&x, m)| f64::from(x) - m)
            .collect();
        for i in 0..input_dims {
            for j in i..input_dims {
                covariance[(i, j)] += centred[i] * centred[j] / n;
            }
        }
    }
    for i in 0..input_dims {
        for j in 0..i {
            covariance[(i, j)] = covariance[(j, i)];
        }
    }
    let eigen = nalgebra::SymmetricEigen::new(covariance);
    let mut order: Vec<usize> = (0..input_dims).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let spread = eigen.eigenvalues[order[0]].max(1e-12).sqrt();
    let mut projection = vec![0.0f32; DIMS * input_dims];
    for (d, &axis) in order.iter().take(DIMS).enumerate() {
        let column = eigen.eigenvectors.column(axis);
        // Sign fixed so the largest component is positive: refits give the same axes.
        let largest = (0..input_dims)
            .max_by(|&a, &b| column[a].abs().total_cmp(&column[b].abs()))
            .unwrap_or(0);
        let sign = if column[largest] < 0.0 { -1.0 } else { 1.0 };
        for i in 0..input_dims {
            projection[d * input_dims + i] = (sign * column[i] / spread) as f32;
        }
    }
    let mut family = Family {
        input_dims,
        mean: mean.iter().map(|&m| m as f32).collect(),
        projection,
        codebooks: Vec::with_capacity(STAGES * CODEWORDS * DIMS),
    };
    let mut residuals: Vec<[i64; DIMS]> = features
        .iter()
        .map(|f| to_grid(&family.project(f)))
        .collect();
    let mut rng = SplitMix64(seed);
    for _ in 0..STAGES {
        let words = kmeans(&residuals, &mut rng);
        for r in &mut residuals {
            let index = nearest(&words, r);
            for (v, w) in r.iter_mut().zip(&words[index * DIMS..(index + 1) * DIMS]) {
                *v -= i64::from(*w);
            }
        }
        family.codebooks.extend_from_slice(&words);
    }
    Ok(family)
}

fn kmeans(points: &[[i64; DIMS]], rng: &mut SplitMix64) -> Vec<i32> {
    let distance = |a: &[i64; DIMS], b: &[f64]| -> f64 {
        a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum()
    };
    // k-means++ seeding.
    let first = (rng.next_u64() % points.len() as u64) as usize;
    let mut centres: Vec<Vec<f64>> = vec![points[first].iter().map(|&v| v as f64).collect()];
    let mut closest: Vec<f64> = points.iter().map(|p| distance(p, &centres[0])).collect();
    while centres.len() < CODEWORDS {
        let total: f64 = closest.iter().sum();
        let pick = if total > 0.0 {
            let mut target = rng.next_f64() * total;
            closest
                .iter()
                .position(|&d| {
                    target -= d;
                    target <= 0.0
                })
                .unwrap_or(points.len() - 1)
        } else {
            (rng.next_u64() % points.len() as u64) as usize
        };
        let centre: Vec<f64> = points[pick].iter().map(|&v| v as f64).collect();
        for (c, p) in closest.iter_mut().zip(points) {
            *c = c.min(distance(p, &centre));
        }
        centres.push(centre);
    }
    for _ in 0..20 {
        let mut sums = vec![[0.0f64; DIMS]; CODEWORDS];
        let mut counts = vec![0usize; CODEWORDS];
        let mut worst = (0.0f64, 0usize);
        for (i, p) in points.iter().enumerate() {
            let (index, d) = centres
                .iter()
                .enumerate()
                .map(|(j, c)| (j, distance(p, c)))
                .fold(
                    (0, f64::INFINITY),
                    |best, x| if x.1 < best.1 { x } else { best },
                );
            counts[index] += 1;
            for (s, &v) in sums[index].iter_mut().zip(p) {
                *s += v as f64;
            }
            if d > worst.0 {
                worst = (d, i);
            }
        }
        for (j, centre) in centres.iter_mut().enumerate() {
            if counts[j] == 0 {
                // An empty cell takes the worst-served point.
                *centre = points[worst.1].iter().map(|&v| v as f64).collect();
            } else {
                for (c, s) in centre.iter_mut().zip(&sums[j]) {
                    *c = s / counts[j] as f64;
                }
            }
        }
    }
    centres
        .iter()
        .flat_map(|c| c.iter().map(|&v| v.round() as i32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equidistant_points_take_the_lower_codeword_and_last_bit_noise_changes_nothing() {
        let mut words = vec![0i32; 3 * DIMS];
        words[DIMS] = 10; // word 1 at +10 on the first axis
        words[2 * DIMS] = -10; // word 2 at −10
        let mut point = [0i64; DIMS];
        point[0] = 5; // exactly between word 0 and word 1
        assert_eq!(nearest(&words, &point), 0);
        point[0] = -5; // exactly between word 0 and word 2
        assert_eq!(nearest(&words, &point), 0);
        // A projected value a few ulps either side of a grid point lands on the same step.
        let centre = 5.0 / GRID;
        for ulps in [-3i64, -1, 1, 3] {
            let nudged = f64::from_bits((centre.to_bits() as i64 + ulps) as u64);
            let mut projected = [0.0; DIMS];
            projected[0] = nudged;
            assert_eq!(to_grid(&projected)[0], 5, "{ulps} ulps");
        }
    }

    #[test]
    fn the_builtin_codebooks_load_and_round_trip() {
        let books = Codebooks::builtin().expect("builtin codebooks");
        assert_eq!(books.semantic.input_dims, 264);
        assert_eq!(books.acoustic.input_dims, super::super::mel::BANDS);
        let again = Codebooks::from_bytes(&books.to_bytes().expect("serialise")).expect("reload");
        assert_eq!(again.semantic, books.semantic);
        assert_eq!(again.acoustic, books.acoustic);
        assert!(Codebooks::from_bytes(b"not a codebook").is_err());
    }
}
