//! The weights as a score: a model's frozen weights analysed (SVD spectra, distributions, norms)
//! and composed into pieces, with no randomness of their own: every note comes from a tensor.
//!
//! * `analysis`: reads every matrix (through `llm::inventory`) and measures it; `svd` its
//!   singular values; `key` the model's own key from its norms;
//! * `stats`: what the analysis finds, and the `weights --stats` JSON;
//! * `style/`: the pieces (opera, house, acid, DNA) composed from the stats as a
//!   [`music::score::Score`](crate::music::score::Score).

pub mod analysis;
pub mod cache;
pub mod key;
pub mod render;
pub mod stats;
pub mod style;
pub mod svd;

pub use stats::{
    Histogram, KeyStats, LayerStats, MatrixStats, ModelInfo, Moments, NormRole, NormStats, Role,
    SvdMethod, WeightStats,
};
