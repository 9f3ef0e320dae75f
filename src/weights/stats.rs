//! What the analysis finds in a model's weights: the data every piece is composed from, and the
//! `weights --stats` JSON (schema in `docs/weights-stats.md`).

use serde::{Deserialize, Serialize};

pub use crate::llm::inventory::{NormRole, Role};
use crate::music::scale::{Root, Scale};

/// Moments of a tensor's values (population statistics, as NumPy/SciPy compute them).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Moments {
    pub mean: f64,
    pub std: f64,
    /// Third standardized moment.
    pub skewness: f64,
    /// Fourth standardized moment minus 3 (Fisher: a Gaussian has 0).
    pub kurtosis: f64,
    pub min: f64,
    pub max: f64,
}

/// Equal-width bins from `min` to `max` (the last bin includes `max`), as `numpy.histogram`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    pub counts: Vec<u64>,
}

/// How the singular values were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SvdMethod {
    /// Every singular value, from a dense SVD (faer, f32).
    Full,
    /// The top `k` from randomized subspace iteration (fixed seed, `iterations` power steps).
    TopK { k: usize, iterations: usize },
}

/// One weight matrix, dequantized, oriented out × in (rows are output features).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixStats {
    /// The tensor's name in the checkpoint (for GPT-2's split `c_attn`, the name and `[q]` etc.).
    pub name: String,
    pub role: Role,
    /// The block it belongs to; `None` for embeddings and the head.
    pub layer: Option<usize>,
    /// [rows (out), cols (in)].
    pub shape: [usize; 2],
    /// The stored type ("F32", "BF16", "Q4_1", …).
    pub dtype: String,
    /// Descending.
    pub singular_values: Vec<f32>,
    pub svd: SvdMethod,
    pub frobenius: f64,
    pub moments: Moments,
    pub histogram: Histogram,
    /// The L2 norm of every row.
    pub row_norms: Vec<f32>,
}

/// One norm's scale vector γ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormStats {
    pub name: String,
    pub role: NormRole,
    pub layer: Option<usize>,
    pub gamma: Vec<f32>,
    pub moments: Moments,
}

/// What belongs to one block as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    pub index: usize,
    /// ‖attention‖ / ‖MLP‖: the Frobenius norm of q, k, v, o together over that of the MLP
    /// matrices together. Above 1 attention dominates the block.
    pub tension: f64,
    /// How far each matrix's singular-value profile moved from the block before (the L2
    /// distance of the unit-normalized leading spectra, per role); empty for block 0.
    pub svd_delta: Vec<(Role, f64)>,
    /// The mean of `svd_delta`; 0 for block 0.
    pub svd_delta_mean: f64,
}

/// The model's own key, from its norms' γ vectors (`weights::key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyStats {
    /// 0 = C … 11 = B.
    pub root: u8,
    /// The scale's display name ("Major", "Harmonic minor", "Dorian").
    pub scale: String,
    /// Skewness of the γ vectors' PC2 scores: ≥ 0 major, < 0 minor.
    pub pc2_skewness: f64,
    /// Excess kurtosis of the PC3 scores: > 0 harmonic minor, ≤ 0 Dorian (minor only).
    pub pc3_kurtosis: f64,
    /// The hidden dimension PC1 leans on most; the root is it modulo 12 (see `weights::key`).
    pub root_dimension: usize,
    /// How many γ vectors went into the PCA.
    pub vectors: usize,
}

impl KeyStats {
    /// The key as the music layer plays it (`None` for a scale name from elsewhere).
    pub fn scale_and_root(&self) -> Option<(Scale, Root)> {
        Some((
            Scale::from_name(&self.scale)?,
            Root::from_pitch_class(self.root % 12),
        ))
    }

    /// "C# Major".
    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            Root::from_pitch_class(self.root % 12).name(),
            self.scale
        )
    }
}

/// Where the weights came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub path: String,
    /// "gpt2", "llama", "gguf-llama".
    pub family: String,
    pub layers: usize,
    pub hidden: usize,
}

/// Everything `weights --stats` writes. The pieces read it through the accessors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightStats {
    /// Version of this layout; bumped when a field changes meaning.
    pub schema: u32,
    pub model: ModelInfo,
    pub matrices: Vec<MatrixStats>,
    pub norms: Vec<NormStats>,
    pub layers: Vec<LayerStats>,
    pub key: KeyStats,
}

impl WeightStats {
    pub const SCHEMA: u32 = 1;

    /// The matrix of `role` in block `layer` (`None` for embeddings/head).
    pub fn matrix(&self, role: Role, layer: Option<usize>) -> Option<&MatrixStats> {
        self.matrices
            .iter()
            .find(|m| m.role == role && m.layer == layer)
    }

    /// Every block's matrix of `role`, in layer order (skipping blocks without one).
    pub fn per_layer(&self, role: Role) -> Vec<&MatrixStats> {
        (0..self.model.layers)
            .filter_map(|l| self.matrix(role, Some(l)))
            .collect()
    }

    /// The norm of `role` in block `layer` (`None` for the final norm).
    pub fn norm(&self, role: NormRole, layer: Option<usize>) -> Option<&NormStats> {
        self.norms
            .iter()
            .find(|n| n.role == role && n.layer == layer)
    }

    /// The token embeddings (every family has them).
    pub fn embedding(&self) -> Option<&MatrixStats> {
        self.matrix(Role::Embedding, None)
    }
}
