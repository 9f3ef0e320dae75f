//! Concept directions: one unit vector r̂ in a model's hidden-state space that points from one
//! set of prompts (the negative pole) to another (the positive, tense pole), e.g. from harmless
//! to harmful requests (the "refusal direction"). Every token's hidden state at every layer is
//! projected on it (dot(h, r̂)), and the projection, normalised by where the two prompt sets
//! sit at that layer, is the token's *tension* in 0…1 that the music follows.
//!
//! ```text
//!  positive / negative prompts ──model (reset per prompt)──▶ mean hidden state per prompt
//!     and layer (position 0 left out) ──pos − neg, final half of the states──▶ rows
//!  rows ──PCA (centred), first component, oriented──▶ r̂ + per-layer pole statistics ──▶ file
//!  new token's hidden states ──dot(h, r̂)──▶ projection per state ──poles──▶ tension 0…1
//! ```
//!
//! * [`prompts`]: prompt files and the shipped sets (`assets/directions/`).
//! * [`fit`](mod@fit): the fit; [`file`](mod@file): the direction on disk (safetensors);
//!   [`cache`]: one file per model and set in the user's cache, fitted on first use.

pub mod cache;
pub mod error;
pub mod file;
pub mod fit;
pub mod prompts;

pub use cache::{DirectionCache, DirectionChoice, ensure_direction};
pub use error::DirectionError;
pub use prompts::{PromptPair, PromptSet, SHIPPED_NAMES};

/// How the two prompt sets were matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// Same count: line *i* with line *i*.
    Paired,
    /// Different counts: each prompt against the other set's mean.
    Groups,
}

impl Pairing {
    pub fn name(self) -> &'static str {
        match self {
            Pairing::Paired => "paired",
            Pairing::Groups => "groups",
        }
    }
}

/// Where the two poles sit along r̂ at one hidden state: the mean and spread of the
/// projections of the prompts' mean states.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PoleStats {
    pub positive_mean: f32,
    pub positive_std: f32,
    pub negative_mean: f32,
    pub negative_std: f32,
}

impl PoleStats {
    /// `projection` as tension: 0 at the negative pole's mean, 1 at the positive's, clamped.
    /// A layer where the poles coincide reads 0 (it cannot tell them apart).
    pub fn tension(&self, projection: f32) -> f32 {
        let span = self.positive_mean - self.negative_mean;
        if !projection.is_finite() || !span.is_finite() || span.abs() < 1e-6 {
            return 0.0;
        }
        ((projection - self.negative_mean) / span).clamp(0.0, 1.0)
    }
}

/// What a direction is and what it was fitted on.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionMetadata {
    /// The set's name (`refusal`, or what `fit-direction --name` said).
    pub name: String,
    /// Hex sha256 of the model's weights ([`crate::activation::identify`]).
    pub model_identity: String,
    pub model_name: String,
    pub n_layers: usize,
    pub width: usize,
    pub positive_sha256: String,
    pub negative_sha256: String,
    pub positive_count: usize,
    pub negative_count: usize,
    pub pairing: Pairing,
    /// The hidden states whose differences were pooled: ⌊(L+1)/2⌋ … L.
    pub layers: Vec<usize>,
    /// Of the pooled differences' variance, the share along r̂.
    pub explained_variance_ratio: f32,
    pub tool_version: String,
}

/// A fitted direction: r̂ and the poles at every hidden state.
#[derive(Debug, Clone, PartialEq)]
pub struct ConceptDirection {
    metadata: DirectionMetadata,
    vector: Vec<f32>,
    /// One per hidden state (`n_layers + 1`).
    poles: Vec<PoleStats>,
}

impl ConceptDirection {
    /// Checks the shapes: `vector` of the width, unit length, finite; one pole per state; the
    /// layers used among the states.
    pub fn new(
        metadata: DirectionMetadata,
        vector: Vec<f32>,
        poles: Vec<PoleStats>,
    ) -> std::result::Result<Self, String> {
        if vector.len() != metadata.width {
            return Err(format!(
                "the direction has {} values, the width is {}",
                vector.len(),
                metadata.width
            ));
        }
        if poles.len() != metadata.n_layers + 1 {
            return Err(format!(
                "{} pole statistics for {} hidden states",
                poles.len(),
                metadata.n_layers + 1
            ));
        }
        let norm = vector
            .iter()
            .map(|v| f64::from(*v).powi(2))
            .sum::<f64>()
            .sqrt();
        if !norm.is_finite() || (norm - 1.0).abs() > 1e-3 {
            return Err(format!(
                "the direction is not a unit vector (length {norm})"
            ));
        }
        let finite = |p: &PoleStats| {
            [
                p.positive_mean,
                p.positive_std,
                p.negative_mean,
                p.negative_std,
            ]
            .iter()
            .all(|v| v.is_finite())
        };
        if !poles.iter().all(finite) {
            return Err("the pole statistics hold non-finite values".to_owned());
        }
        if metadata.layers.is_empty() || metadata.layers.iter().any(|&l| l > metadata.n_layers) {
            return Err(format!(
                "layers used {:?} are not among the {} hidden states",
                metadata.layers,
                metadata.n_layers + 1
            ));
        }
        Ok(Self {
            metadata,
            vector,
            poles,
        })
    }

    pub fn metadata(&self) -> &DirectionMetadata {
        &self.metadata
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// r̂, unit length.
    pub fn vector(&self) -> &[f32] {
        &self.vector
    }

    pub fn poles(&self) -> &[PoleStats] {
        &self.poles
    }

    pub fn n_states(&self) -> usize {
        self.poles.len()
    }

    /// dot(h, r̂) for one hidden state `h` of the width.
    pub fn project(&self, h: &[f32]) -> f32 {
        h.iter().zip(&self.vector).map(|(a, b)| a * b).sum()
    }

    /// One token's hidden states (layer-major, `n_states × width`) projected: one value per
    /// state into `out`.
    pub fn project_states(&self, hidden: &[f32], out: &mut [f32]) {
        let width = self.metadata.width.max(1);
        for (slot, h) in out.iter_mut().zip(hidden.chunks_exact(width)) {
            *slot = self.project(h);
        }
    }

    /// Each state's projection as tension (0…1) by that state's poles.
    pub fn layer_tension(&self, projections: &[f32], out: &mut [f32]) {
        for ((slot, &p), poles) in out.iter_mut().zip(projections).zip(&self.poles) {
            *slot = poles.tension(p);
        }
    }

    /// The token's tension: the mean of the used layers' tension (the layers the direction
    /// was fitted on, where it means most).
    pub fn tension(&self, projections: &[f32]) -> f32 {
        let (sum, count) = self
            .metadata
            .layers
            .iter()
            .filter_map(|&l| Some(self.poles.get(l)?.tension(*projections.get(l)?)))
            .fold((0.0, 0usize), |(s, c), t| (s + t, c + 1));
        if count == 0 { 0.0 } else { sum / count as f32 }
    }
}

/// The hidden states a direction pools: the final half of `n_states` (⌊n/2⌋ … n − 1).
pub fn final_half(n_states: usize) -> std::ops::Range<usize> {
    n_states / 2..n_states
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn toy(width: usize, n_layers: usize) -> ConceptDirection {
        let mut vector = vec![0.0; width];
        vector[0] = 1.0;
        let metadata = DirectionMetadata {
            name: "toy".to_owned(),
            model_identity: "ab".repeat(32),
            model_name: "tiny".to_owned(),
            n_layers,
            width,
            positive_sha256: "p".to_owned(),
            negative_sha256: "n".to_owned(),
            positive_count: 2,
            negative_count: 2,
            pairing: Pairing::Paired,
            layers: final_half(n_layers + 1).collect(),
            explained_variance_ratio: 0.5,
            tool_version: "0".to_owned(),
        };
        let poles = (0..=n_layers)
            .map(|l| PoleStats {
                positive_mean: 2.0 + l as f32,
                positive_std: 0.1,
                negative_mean: -1.0,
                negative_std: 0.1,
            })
            .collect();
        ConceptDirection::new(metadata, vector, poles).unwrap()
    }

    #[test]
    fn tension_is_zero_at_the_negative_pole_and_one_at_the_positive() {
        let poles = PoleStats {
            positive_mean: 3.0,
            positive_std: 0.0,
            negative_mean: -1.0,
            negative_std: 0.0,
        };
        assert_eq!(poles.tension(-1.0), 0.0);
        assert_eq!(poles.tension(3.0), 1.0);
        assert_eq!(poles.tension(1.0), 0.5);
        assert_eq!(poles.tension(-9.0), 0.0);
        assert_eq!(poles.tension(9.0), 1.0);
        assert_eq!(poles.tension(f32::NAN), 0.0);
        let flat = PoleStats {
            positive_mean: 1.0,
            negative_mean: 1.0,
            ..poles
        };
        assert_eq!(flat.tension(5.0), 0.0);
    }

    #[test]
    fn a_token_is_projected_per_state_and_its_tension_averages_the_used_layers() {
        let direction = toy(3, 2);
        assert_eq!(direction.metadata().layers, [1, 2]);
        let hidden = [0.5, 9.0, 9.0, 2.5, 0.0, 0.0, 4.0, 1.0, 1.0];
        let mut projections = [0.0; 3];
        direction.project_states(&hidden, &mut projections);
        assert_eq!(projections, [0.5, 2.5, 4.0]);
        let mut tension = [0.0; 3];
        direction.layer_tension(&projections, &mut tension);
        // Layer 1: (2.5 + 1) / (3 + 1); layer 2: (4 + 1) / (4 + 1).
        assert!((tension[1] - 0.875).abs() < 1e-6);
        assert_eq!(tension[2], 1.0);
        assert!((direction.tension(&projections) - 0.9375).abs() < 1e-6);
    }

    #[test]
    fn shapes_are_checked() {
        let good = toy(3, 2);
        let meta = good.metadata().clone();
        assert!(
            ConceptDirection::new(meta.clone(), vec![1.0, 0.0], good.poles().to_vec()).is_err()
        );
        assert!(
            ConceptDirection::new(meta.clone(), vec![2.0, 0.0, 0.0], good.poles().to_vec())
                .is_err()
        );
        assert!(ConceptDirection::new(meta, vec![1.0, 0.0, 0.0], vec![]).is_err());
    }
}
