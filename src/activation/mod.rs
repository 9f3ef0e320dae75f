//! Activation space: a reference corpus, one PCA map per hidden state fitted on it, and the
//! projection of every new token through the maps into coordinates in [-1, 1] — what the music
//! side turns into pitch.
//!
//! ```text
//!  corpus ──lines──▶ model (reset per line) ──hidden states──▶ Covariance (f64, per layer)
//!                                                          └─▶ Reservoir (sample, f16)
//!                    (both without each line's position 0 unless --keep-first)
//!  Covariance ──eigen──▶ Pca ──+ percentile ranges of the sample──▶ ProjectionMap ──▶ file
//!  new token's hidden states ──ProjectionMap::project_into──▶ [n_layers + 1][K] coordinates
//! ```
//!
//! * [`corpus`]: the embedded reference corpus and how lines become sequences.
//! * [`covariance`], [`pca`], [`reservoir`], [`ranges`]: the fit's pieces; [`fit`] drives them.
//!   By default the fit leaves position 0 of every corpus line out: the first token is an
//!   attention sink whose huge hidden states would otherwise make PC1 of most layers a
//!   first-token detector (see [`fit`]'s docs for the numbers); `fit-pca --keep-first` keeps it.
//! * [`map`]: the map and the projection; [`file`](mod@file): the map on disk (safetensors).
//! * [`identity`]: which model a map belongs to (weights hash).
//! * [`cache`]: the per-user map cache and [`ensure_map`], reuse-or-fit.
//! * [`partials`]: each state's highest-variance dimensions under the map, the partials the
//!   Spectral instruments play.
//! * [`embedding`]: t-SNE and UMAP pictures of a state's tokens (`map-plot`), seeded.
//! * [`tokens`]: text run through the model, its tokens at their PCA coordinates (`map-plot`).

pub mod cache;
pub mod compare;
pub mod corpus;
pub mod covariance;
pub mod direction;
pub mod embedding;
pub mod error;
pub mod file;
pub mod fit;
pub mod identity;
pub mod map;
pub mod partials;
pub mod pca;
pub mod pooling;
pub mod ranges;
pub mod reservoir;
pub mod tokens;

pub use cache::{EnsuredMap, MapCache, MapOrigin, ensure_map};
pub use corpus::Corpus;
pub use error::MapError;
pub use fit::{FitOptions, FitProgress, FitStats};
pub use identity::{ModelIdentity, identify};
pub use map::{CLOUD_POINTS, CorpusCloud, LayerMap, MapMetadata, ProjectionMap};

/// Principal components per hidden state unless told otherwise (as the original
/// sonification work).
pub const DEFAULT_COMPONENTS: usize = 16;
