//! A projection map: one PCA per hidden state of a model (embedding output, every block, the
//! final norm), and the projection of new tokens through it into normalised coordinates.
//!
//! A token's coordinate on component `k` of layer `l` is `c = (h_l - mean_l) · component_k`,
//! normalised to `2 (c - lo_k) / (hi_k - lo_k) - 1` with the component's 2nd–98th percentile
//! range, then **clamped to [-1, 1]**: the ranges leave 4 % of tokens outside on purpose, and
//! what consumes the coordinates (pitch, scales) wants a bounded value. A component whose range
//! is empty (`hi == lo`, a direction the corpus never moved along) gives 0, as does a
//! non-finite hidden state — the audio side must never see NaN.
//!
//! A map may carry a [`CorpusCloud`]: a sample of the fit's own corpus tokens at their
//! normalised (PC1, PC2), per hidden state, so a picture (the editor's trajectory plot,
//! `map-plot`) can draw the corpus behind new tokens without running the corpus again.

use std::path::Path;
use std::sync::Arc;

use super::error::{MapError, Result};
use super::identity::ModelIdentity;
use super::pca::ratio;
use crate::llm::ModelInfo;

/// One hidden state's PCA, as stored (f32).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerMap {
    /// `[width]`
    pub mean: Vec<f32>,
    /// `[K][width]` row-major, unit rows, by decreasing variance.
    pub components: Vec<f32>,
    /// `[K]`, variance along each component (denominator `n - 1`).
    pub explained_variance: Vec<f32>,
    /// Sum of the variances of all `width` directions (the covariance's trace), for ratios.
    pub total_variance: f32,
    /// `[K]`, 2nd percentile of the fit sample's coordinates.
    pub lo: Vec<f32>,
    /// `[K]`, 98th percentile.
    pub hi: Vec<f32>,
}

impl LayerMap {
    /// `explained_variance / total_variance` for each component.
    pub fn explained_variance_ratio(&self) -> Vec<f64> {
        let variances: Vec<f64> = self.explained_variance.iter().map(|&v| v.into()).collect();
        ratio(&variances, self.total_variance.into())
    }
}

/// What a map says about itself (stored as the safetensors header's metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapMetadata {
    /// The model's weights hash ([`ModelIdentity::sha256`]).
    pub model_identity: String,
    /// For messages only.
    pub model_name: String,
    pub n_layers: usize,
    pub width: usize,
    /// K
    pub components: usize,
    /// `embedded` or the corpus file's name.
    pub corpus_source: String,
    pub corpus_sha256: String,
    /// Lines the fit ran (all of the corpus's, or those [`super::fit::choose_lines`] chose).
    pub corpus_lines: usize,
    /// Positions fitted.
    pub tokens: u64,
    /// Whether position 0 of each corpus line (the attention sink) was left out of the fit
    /// (see [`super::fit`]); stored as `positions` = `skip-first` or `every`. Maps written
    /// before the key existed kept every position and read as `false`.
    pub skip_first: bool,
    /// The `latent_choir` version that fitted it.
    pub tool_version: String,
}

/// Most corpus points a fit keeps per hidden state in its [`CorpusCloud`]: enough to show the
/// corpus's shape, few enough to draw every frame (and 8 KB per state on disk).
pub const CLOUD_POINTS: usize = 1000;

/// Per hidden state, sampled corpus tokens at their normalised (PC1, PC2), exactly as
/// [`ProjectionMap::project_into`] places a token (so clamped to [-1, 1]; PC2 is 0 for a
/// one-component map). Shared behind an `Arc`: the worker hands it to the editor as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusCloud {
    layers: Vec<Vec<[f32; 2]>>,
}

impl CorpusCloud {
    /// One list of points per hidden state; every coordinate must be finite and in [-1, 1].
    pub fn new(layers: Vec<Vec<[f32; 2]>>) -> std::result::Result<Self, InvalidMap> {
        for (i, points) in layers.iter().enumerate() {
            if let Some(bad) = points
                .iter()
                .flatten()
                .find(|v| !v.is_finite() || v.abs() > 1.0)
            {
                return Err(InvalidMap(format!(
                    "layer.{i}.cloud holds {bad}, not a coordinate in [-1, 1]"
                )));
            }
        }
        Ok(Self { layers })
    }

    /// Hidden states covered (the map's `n_layers + 1`).
    pub fn n_states(&self) -> usize {
        self.layers.len()
    }

    /// The points of hidden state `state`; empty past the last state.
    pub fn layer(&self, state: usize) -> &[[f32; 2]] {
        self.layers.get(state).map_or(&[], Vec::as_slice)
    }
}

#[derive(Debug, Clone)]
pub struct ProjectionMap {
    metadata: MapMetadata,
    /// `n_layers + 1`
    layers: Vec<LayerMap>,
    /// `[(n_layers + 1) * K]`: `2 / (hi - lo)`, or 0 for an empty range.
    scale: Vec<f32>,
    /// Per layer, the components regrouped for the projection kernel: `[groups][width][LANES]`,
    /// `groups = ceil(K / LANES)`, zero-padded (see [`project_state`]).
    packed: Vec<Vec<f32>>,
    /// The corpus behind the map, if the fit kept one (maps written before clouds have none).
    cloud: Option<Arc<CorpusCloud>>,
}

/// What is wrong with the parts of a map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidMap(pub String);

impl ProjectionMap {
    /// Put a map together, checking that every part has the shape the metadata says and every
    /// value is usable. `Err` says what is wrong, for [`MapError::Corrupt`].
    pub fn new(
        metadata: MapMetadata,
        layers: Vec<LayerMap>,
    ) -> std::result::Result<Self, InvalidMap> {
        Self::build(metadata, layers).map_err(InvalidMap)
    }

    fn build(metadata: MapMetadata, layers: Vec<LayerMap>) -> std::result::Result<Self, String> {
        let (k, width) = (metadata.components, metadata.width);
        if width == 0 || k == 0 || k > width {
            return Err(format!("{k} components of width {width}"));
        }
        if layers.len() != metadata.n_layers + 1 {
            return Err(format!(
                "{} layer maps for {} layers (expected n_layers + 1)",
                layers.len(),
                metadata.n_layers
            ));
        }
        let mut scale = Vec::with_capacity(layers.len() * k);
        for (i, layer) in layers.iter().enumerate() {
            let shapes = [
                ("mean", layer.mean.len(), width),
                ("components", layer.components.len(), k * width),
                ("explained_variance", layer.explained_variance.len(), k),
                ("lo", layer.lo.len(), k),
                ("hi", layer.hi.len(), k),
            ];
            for (name, got, expected) in shapes {
                if got != expected {
                    return Err(format!(
                        "layer.{i}.{name} has {got} values, expected {expected}"
                    ));
                }
            }
            let all = [
                ("mean", &layer.mean),
                ("components", &layer.components),
                ("explained_variance", &layer.explained_variance),
                ("lo", &layer.lo),
                ("hi", &layer.hi),
            ];
            for (name, values) in all {
                if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                    return Err(format!("layer.{i}.{name} holds a non-finite value ({bad})"));
                }
            }
            if !layer.total_variance.is_finite() || layer.total_variance < 0.0 {
                return Err(format!(
                    "layer.{i}.total_variance is {}, not a finite non-negative number",
                    layer.total_variance
                ));
            }
            if layer.explained_variance.iter().any(|&v| v < 0.0) {
                return Err(format!("layer.{i}.explained_variance is negative"));
            }
            for (c, row) in layer.components.chunks_exact(width).enumerate() {
                let norm = row
                    .iter()
                    .map(|x| f64::from(*x).powi(2))
                    .sum::<f64>()
                    .sqrt();
                if (norm - 1.0).abs() > 1e-3 {
                    return Err(format!(
                        "layer.{i}.components row {c} has norm {norm}, not 1"
                    ));
                }
            }
            for (c, (&lo, &hi)) in layer.lo.iter().zip(&layer.hi).enumerate() {
                if lo > hi {
                    return Err(format!("layer.{i} component {c}: lo {lo} > hi {hi}"));
                }
                // An empty (or numerically empty) range: coordinate 0, never a division by 0.
                let span = hi - lo;
                let usable = span > f32::EPSILON * lo.abs().max(hi.abs()).max(f32::MIN_POSITIVE);
                scale.push(if usable { 2.0 / span } else { 0.0 });
            }
        }
        let packed = layers
            .iter()
            .map(|layer| pack(&layer.components, k, width))
            .collect();
        Ok(Self {
            metadata,
            layers,
            scale,
            packed,
            cloud: None,
        })
    }

    /// This map with `cloud` as its corpus cloud; refused unless it has one list per hidden
    /// state.
    pub fn with_cloud(mut self, cloud: CorpusCloud) -> std::result::Result<Self, InvalidMap> {
        if cloud.n_states() != self.layers.len() {
            return Err(InvalidMap(format!(
                "a corpus cloud of {} states for a map of {}",
                cloud.n_states(),
                self.layers.len()
            )));
        }
        self.cloud = Some(Arc::new(cloud));
        Ok(self)
    }

    /// The corpus cloud of hidden state `layer`: `None` when the map has no cloud (fitted
    /// before clouds were kept) or `layer` is past the last state.
    pub fn cloud(&self, layer: usize) -> Option<&[[f32; 2]]> {
        let cloud = self.cloud.as_deref()?;
        (layer < cloud.n_states()).then(|| cloud.layer(layer))
    }

    /// The whole cloud, shared (what the worker publishes for the editor).
    pub fn corpus_cloud(&self) -> Option<&Arc<CorpusCloud>> {
        self.cloud.as_ref()
    }

    pub fn metadata(&self) -> &MapMetadata {
        &self.metadata
    }

    /// `n_layers + 1` layer maps, the embedding output first.
    pub fn layers(&self) -> &[LayerMap] {
        &self.layers
    }

    /// K
    pub fn components(&self) -> usize {
        self.metadata.components
    }

    /// Hidden states per token, `n_layers + 1`.
    pub fn n_states(&self) -> usize {
        self.layers.len()
    }

    /// Coordinates per token: `(n_layers + 1) * K`.
    pub fn coords_len(&self) -> usize {
        self.layers.len() * self.metadata.components
    }

    /// Refuse the map unless it was fitted for this model: same weights hash, same layer count
    /// and width. `path` is only for the message.
    pub fn check_model(
        &self,
        path: &Path,
        identity: &ModelIdentity,
        info: &ModelInfo,
    ) -> Result<()> {
        let meta = &self.metadata;
        if meta.model_identity != identity.sha256 {
            return Err(MapError::WrongModel {
                path: path.to_path_buf(),
                map_model: meta.model_name.clone(),
                map_identity: meta.model_identity.clone(),
                model: identity.name.clone(),
                model_identity: identity.sha256.clone(),
            });
        }
        if (meta.n_layers, meta.width) != (info.n_layers, info.width) {
            return Err(MapError::WrongShape {
                path: path.to_path_buf(),
                map_layers: meta.n_layers,
                map_width: meta.width,
                model_layers: info.n_layers,
                model_width: info.width,
            });
        }
        Ok(())
    }

    /// Project `n_new` tokens. `hidden` is layer-major `[n_layers + 1][n_new][width]` (a
    /// [`crate::llm::Step`]'s `hidden`; with `n_new = 1` also a `TokenResult`'s). `out` gets
    /// token-major `[n_new][n_layers + 1][K]` normalised coordinates (see the
    /// [module docs](self)). Allocates nothing.
    ///
    /// # Panics
    /// If the slices do not have those lengths.
    pub fn project_into(&self, hidden: &[f32], n_new: usize, out: &mut [f32]) {
        let (k, width, states) = (
            self.metadata.components,
            self.metadata.width,
            self.layers.len(),
        );
        assert_eq!(
            hidden.len(),
            states * n_new * width,
            "hidden states of another shape"
        );
        assert_eq!(out.len(), n_new * states * k, "output of another shape");
        for (l, layer) in self.layers.iter().enumerate() {
            let scale = &self.scale[l * k..(l + 1) * k];
            for pos in 0..n_new {
                let start = (l * n_new + pos) * width;
                let h = &hidden[start..start + width];
                let o = &mut out[(pos * states + l) * k..(pos * states + l + 1) * k];
                project_state(&layer.mean, &self.packed[l], h, o);
                normalise(o, scale, &layer.lo);
            }
        }
    }

    /// Normalise raw coordinates of hidden state `layer` in place (`[K]`), exactly as
    /// [`ProjectionMap::project_into`] does: into [-1, 1], 0 for an empty range or a
    /// non-finite value.
    pub fn normalise_into(&self, layer: usize, raw: &mut [f32]) {
        let k = self.metadata.components;
        normalise(
            raw,
            &self.scale[layer * k..(layer + 1) * k],
            &self.layers[layer].lo,
        );
    }

    /// [`ProjectionMap::project_into`] into a new vector.
    pub fn project(&self, hidden: &[f32], n_new: usize) -> Vec<f32> {
        let mut out = vec![0.0; n_new * self.coords_len()];
        self.project_into(hidden, n_new, &mut out);
        out
    }

    /// Raw PCA coordinates `(h - mean) · component_k` of one hidden state of layer `layer`.
    pub fn raw_coordinates_into(&self, layer: usize, h: &[f32], out: &mut [f32]) {
        project_state(&self.layers[layer].mean, &self.packed[layer], h, out);
    }
}

/// `c → 2 (c - lo) / (hi - lo) - 1` clamped to [-1, 1], with `scale = 2 / (hi - lo)`; 0 where
/// the range is empty or the value is not finite.
fn normalise(coords: &mut [f32], scale: &[f32], lo: &[f32]) {
    for ((c, &s), &lo) in coords.iter_mut().zip(scale).zip(lo) {
        let normalised = ((*c - lo) * s - 1.0).clamp(-1.0, 1.0);
        *c = if s == 0.0 || !normalised.is_finite() {
            0.0
        } else {
            normalised
        };
    }
}

/// Components handled together by the projection kernel: sixteen running sums fill four SSE
/// (two AVX) registers, and each hidden-state entry is loaded once per group.
const LANES: usize = 16;

/// `components` (`[K][width]`) regrouped as `[ceil(K / LANES)][width][LANES]`, zero-padded.
fn pack(components: &[f32], k: usize, width: usize) -> Vec<f32> {
    let groups = k.div_ceil(LANES);
    let mut packed = vec![0.0; groups * width * LANES];
    for (c, row) in components.chunks_exact(width).enumerate() {
        let (group, lane) = (c / LANES, c % LANES);
        for (i, &x) in row.iter().enumerate() {
            packed[(group * width + i) * LANES + lane] = x;
        }
    }
    packed
}

/// `out[k] = (h - mean) · component_k`, with the components [`pack`]ed. Each entry of
/// `h - mean` is formed exactly (no cancellation between two large dot products) and
/// multiplied into sixteen fixed-size sums at once, a shape the compiler vectorises (about
/// 20 µs for the default model's 31 × 576 × 16 in a release build).
fn project_state(mean: &[f32], packed: &[f32], h: &[f32], out: &mut [f32]) {
    let width = mean.len();
    for (group, o) in packed
        .chunks_exact(width * LANES)
        .zip(out.chunks_mut(LANES))
    {
        let mut sums = [0.0f32; LANES];
        for ((x, m), column) in h.iter().zip(mean).zip(group.as_chunks::<LANES>().0) {
            let centered = x - m;
            for (s, w) in sums.iter_mut().zip(column) {
                *s += centered * w;
            }
        }
        o.copy_from_slice(&sums[..o.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(sha: &str) -> ModelIdentity {
        ModelIdentity {
            sha256: sha.to_owned(),
            name: "tiny".to_owned(),
        }
    }

    fn info(n_layers: usize, width: usize) -> ModelInfo {
        ModelInfo {
            architecture: "test".to_owned(),
            n_layers,
            width,
            vocab_size: 10,
            context_length: 16,
            dtype: "f32".to_owned(),
        }
    }

    /// One layer, width 3, K = 2: components along x and y, mean (1, 2, 3), ranges [-2, 2]
    /// and [0, 0] (empty).
    fn small() -> ProjectionMap {
        let metadata = MapMetadata {
            model_identity: "abc".to_owned(),
            model_name: "tiny".to_owned(),
            n_layers: 0,
            width: 3,
            components: 2,
            corpus_source: "test".to_owned(),
            corpus_sha256: "0".repeat(64),
            corpus_lines: 1,
            tokens: 2,
            skip_first: true,
            tool_version: "0".to_owned(),
        };
        let layer = LayerMap {
            mean: vec![1.0, 2.0, 3.0],
            components: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            explained_variance: vec![2.0, 0.0],
            total_variance: 2.0,
            lo: vec![-2.0, 0.0],
            hi: vec![2.0, 0.0],
        };
        ProjectionMap::new(metadata, vec![layer]).expect("valid")
    }

    #[test]
    fn projection_centres_normalises_and_clamps() {
        let map = small();
        // Three tokens: x - 1 = 0, 1, 10 (clamped); y anything (empty range → 0).
        let hidden = [1.0, 5.0, 0.0, 2.0, 2.0, 0.0, 11.0, -7.0, 0.0];
        let coords = map.project(&hidden, 3);
        assert_eq!(coords, [0.0, 0.0, 0.5, 0.0, 1.0, 0.0]);
        let mut out = [0.0; 2];
        map.project_into(&[f32::NAN, 0.0, 0.0], 1, &mut out);
        assert_eq!(out, [0.0, 0.0], "non-finite hidden states give 0");
        map.raw_coordinates_into(0, &[3.0, 0.0, 0.0], &mut out);
        assert_eq!(out, [2.0, -2.0]);
    }

    #[test]
    fn projection_matches_a_plain_dot_product_at_any_width() {
        for (width, k) in [(1, 1), (63, 3), (64, 16), (65, 17), (130, 33), (576, 16)] {
            let components: Vec<f32> = (0..k * width)
                .map(|i| if i % width == i / width { 1.0 } else { 0.0 })
                .collect();
            let metadata = MapMetadata {
                width,
                components: k,
                ..small().metadata().clone()
            };
            let layer = LayerMap {
                mean: (0..width).map(|i| i as f32 * 0.5).collect(),
                components,
                explained_variance: vec![1.0; k],
                total_variance: k as f32,
                lo: vec![-1000.0; k],
                hi: vec![1000.0; k],
            };
            let map = ProjectionMap::new(metadata, vec![layer.clone()]).expect("valid");
            let h: Vec<f32> = (0..width).map(|i| (i * i % 17) as f32).collect();
            let mut raw = vec![0.0; k];
            map.raw_coordinates_into(0, &h, &mut raw);
            for (c, got) in raw.iter().enumerate() {
                let want: f32 = (0..width)
                    .map(|i| layer.components[c * width + i] * (h[i] - layer.mean[i]))
                    .sum();
                assert!(
                    (got - want).abs() < 1e-4,
                    "width {width} component {c}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn maps_of_another_model_or_shape_are_refused() {
        let map = small();
        let path = Path::new("map.safetensors");
        assert!(map.check_model(path, &identity("abc"), &info(0, 3)).is_ok());
        let wrong = map
            .check_model(path, &identity("def"), &info(0, 3))
            .unwrap_err();
        assert!(matches!(wrong, MapError::WrongModel { .. }));
        assert!(wrong.to_string().contains("another model"), "{wrong}");
        assert!(matches!(
            map.check_model(path, &identity("abc"), &info(2, 3)),
            Err(MapError::WrongShape { .. })
        ));
    }

    #[test]
    fn inconsistent_parts_are_refused() {
        let good = small();
        let with = |change: &dyn Fn(&mut LayerMap)| {
            let mut layer = good.layers()[0].clone();
            change(&mut layer);
            ProjectionMap::new(good.metadata().clone(), vec![layer]).map_err(|e| e.0)
        };
        assert!(with(&|_| {}).is_ok());
        assert!(with(&|l| l.mean.push(0.0)).unwrap_err().contains("mean"));
        assert!(
            with(&|l| l.lo[0] = f32::NAN)
                .unwrap_err()
                .contains("non-finite")
        );
        assert!(with(&|l| l.lo[0] = 3.0).unwrap_err().contains("lo"));
        assert!(
            with(&|l| l.components[0] = 2.0)
                .unwrap_err()
                .contains("norm")
        );
        assert!(
            with(&|l| l.explained_variance[1] = -1.0)
                .unwrap_err()
                .contains("negative")
        );
        let mut metadata = good.metadata().clone();
        metadata.n_layers = 1;
        assert!(ProjectionMap::new(metadata, good.layers().to_vec()).is_err());
    }
}
