//! The dimensions a hidden state is heard through as partials (the Spectral instruments).
//!
//! For every hidden state, the [`SPECTRAL_PARTIALS`] dimensions of the residual stream with the
//! most variance **under the map**: the variance each dimension has inside the map's principal
//! subspace, `var_d = Σ_k λ_k c_kd²` over the map's components. That is the corpus variance the
//! map keeps (the part of a dimension's spread the melody also hears), it needs nothing beyond
//! the map file, and a dimension that only wobbles outside the subspace stays quiet.
//!
//! A token's partial `i` at a state is its z-score `(h_d − mean_d) / √var_d` on the state's
//! `i`-th dimension, quantised into the frame ([`quantize_z`]).

use super::map::ProjectionMap;
use crate::music::frame::{SPECTRAL_PARTIALS, quantize_z};

/// One hidden state's partial dimensions, highest variance first.
#[derive(Debug, Clone, PartialEq)]
pub struct StatePartials {
    /// Indices into the residual stream.
    pub dims: Vec<usize>,
    /// The map's mean on each.
    pub mean: Vec<f32>,
    /// `1 / √var_d` (0 where the map saw no variance).
    pub inv_std: Vec<f32>,
}

/// Every hidden state's partial dimensions under one map.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialDims {
    states: Vec<StatePartials>,
    width: usize,
}

impl PartialDims {
    /// The top [`SPECTRAL_PARTIALS`] dimensions of each state of `map` (fewer for a narrower
    /// model). Ties go to the lower index, so the choice is the same on every machine.
    pub fn from_map(map: &ProjectionMap) -> Self {
        let width = map.metadata().width;
        let k = map.components();
        let states = map
            .layers()
            .iter()
            .map(|layer| {
                let mut variance = vec![0.0f64; width];
                for (c, &lambda) in layer.explained_variance.iter().enumerate().take(k) {
                    let row = &layer.components[c * width..(c + 1) * width];
                    for (v, &x) in variance.iter_mut().zip(row) {
                        *v += f64::from(lambda.max(0.0)) * f64::from(x) * f64::from(x);
                    }
                }
                let mut order: Vec<usize> = (0..width).collect();
                order.sort_by(|&a, &b| variance[b].total_cmp(&variance[a]).then(a.cmp(&b)));
                order.truncate(SPECTRAL_PARTIALS.min(width));
                StatePartials {
                    mean: order.iter().map(|&d| layer.mean[d]).collect(),
                    inv_std: order
                        .iter()
                        .map(|&d| match variance[d].sqrt() {
                            s if s > 0.0 && s.is_finite() => (1.0 / s) as f32,
                            _ => 0.0,
                        })
                        .collect(),
                    dims: order,
                }
            })
            .collect();
        Self { states, width }
    }

    /// Hidden states covered (`n_layers + 1`).
    pub fn n_states(&self) -> usize {
        self.states.len()
    }

    pub fn state(&self, state: usize) -> Option<&StatePartials> {
        self.states.get(state)
    }

    /// `hidden`, `[n_states * width]` layer-major (one token), as quantised z-scores:
    /// `out[state][i]`. States beyond the map or a short `hidden` leave zeros.
    pub fn quantize_into(&self, hidden: &[f32], out: &mut [[i8; SPECTRAL_PARTIALS]]) {
        for (state, (partials, row)) in self.states.iter().zip(out.iter_mut()).enumerate() {
            row.fill(0);
            let Some(h) = hidden.get(state * self.width..(state + 1) * self.width) else {
                continue;
            };
            for (i, slot) in row.iter_mut().enumerate().take(partials.dims.len()) {
                let z = (h[partials.dims[i]] - partials.mean[i]) * partials.inv_std[i];
                *slot = if z.is_finite() { quantize_z(z) } else { 0 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::{LayerMap, MapMetadata};
    use crate::music::frame::dequantize_z;

    fn map(width: usize, components: &[(f32, Vec<f32>)]) -> ProjectionMap {
        let k = components.len();
        let layer = LayerMap {
            mean: (0..width).map(|d| d as f32 * 0.1).collect(),
            components: components.iter().flat_map(|(_, c)| c.clone()).collect(),
            explained_variance: components.iter().map(|(v, _)| *v).collect(),
            total_variance: components.iter().map(|(v, _)| *v).sum(),
            lo: vec![-1.0; k],
            hi: vec![1.0; k],
        };
        let metadata = MapMetadata {
            model_identity: "test".into(),
            model_name: "test".into(),
            n_layers: 0,
            width,
            components: k,
            corpus_source: "embedded".into(),
            corpus_sha256: String::new(),
            corpus_lines: 1,
            tokens: 1,
            skip_first: true,
            tool_version: "test".into(),
        };
        ProjectionMap::new(metadata, vec![layer]).expect("a valid map")
    }

    #[test]
    fn dimensions_rank_by_their_variance_inside_the_subspace() {
        // Component 1 (variance 9) lies on dims 3 and 1 equally, component 2 (variance 4) on
        // dim 0: per-dim variances 4.5, 4.5, 0, and dim 0 gets 4 → order 1, 3 (tie: lower
        // index first), 0, then the silent dims by index.
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let map = map(
            40,
            &[
                (
                    9.0,
                    (0..40)
                        .map(|d| if d == 1 || d == 3 { h } else { 0.0 })
                        .collect(),
                ),
                (
                    4.0,
                    (0..40).map(|d| if d == 0 { 1.0 } else { 0.0 }).collect(),
                ),
            ],
        );
        let dims = PartialDims::from_map(&map);
        let state = dims.state(0).expect("one state");
        assert_eq!(&state.dims[..4], &[1, 3, 0, 2]);
        assert_eq!(state.dims.len(), SPECTRAL_PARTIALS);
        assert!((state.inv_std[0] - 1.0 / 4.5f32.sqrt()).abs() < 1e-6);
        assert!((state.inv_std[2] - 0.5).abs() < 1e-6);
        assert_eq!(
            state.inv_std[3], 0.0,
            "a dimension the map never moved on is silent"
        );

        // A token 2σ above the mean on dim 0 and 1σ below on dim 1.
        let mut hidden: Vec<f32> = (0..40).map(|d| d as f32 * 0.1).collect();
        hidden[0] += 2.0 * 2.0;
        hidden[1] -= 4.5f32.sqrt();
        hidden[5] = f32::NAN;
        let mut out = [[0i8; SPECTRAL_PARTIALS]; 1];
        dims.quantize_into(&hidden, &mut out);
        assert!((dequantize_z(out[0][0]) + 1.0).abs() < 0.02);
        assert!(dequantize_z(out[0][1]).abs() < 0.02);
        assert!((dequantize_z(out[0][2]) - 2.0).abs() < 0.02);
        assert!(out[0].iter().all(|&q| q > -128));
    }
}
