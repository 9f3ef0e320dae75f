//! The weights as a score: a model's frozen weights analysed (SVD spectra, distributions, norms)
//! and composed into pieces, with no randomness of their own: every note comes from a tensor.
//!
//! * `stats`: what the analysis finds, and the `weights --stats` JSON;
//! * `style/`: the pieces (opera, house, acid, DNA) composed from the stats as a
//!   [`music::score::Score`](crate::music::score::Score).

pub mod stats;
pub mod style;

pub use stats::{
    Histogram, KeyStats, LayerStats, MatrixStats, ModelInfo, Moments, NormRole, NormStats, Role,
    SvdMethod, WeightStats,
};
