//! How much two maps of the same model agree: whether a fit on fewer lines, another corpus or
//! another version found the same directions. Per hidden state, the cosines of the principal
//! angles between the two maps' leading `k`-dimensional subspaces (the singular values of
//! `A·Bᵀ` for unit-row component matrices `A`, `B`), summarised as their mean square: 1 for the
//! same subspace, `k / width` expected of random ones. Signs and the order within the
//! subspace do not count, as they do not for the music's shape.

use nalgebra::DMatrix;

use super::map::LayerMap;

/// Two maps' agreement on one hidden state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// `|cos|` of the angle between the two first components.
    pub pc1: f64,
    /// Mean `cos²` of the principal angles between the leading `k`-dimensional subspaces.
    pub subspace: f64,
}

/// The agreement of `a` and `b` over their first `k` components; `None` when the widths
/// differ or either map has fewer than `k` (or no) components.
pub fn agreement(a: &LayerMap, b: &LayerMap, k: usize) -> Option<Agreement> {
    let width = a.mean.len();
    if k == 0 || width == 0 || b.mean.len() != width {
        return None;
    }
    if a.components.len() < k * width || b.components.len() < k * width {
        return None;
    }
    let rows = |m: &LayerMap| {
        DMatrix::from_row_slice(
            k,
            width,
            &m.components[..k * width]
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>(),
        )
    };
    let (ma, mb) = (rows(a), rows(b));
    let cross = &ma * mb.transpose();
    let cosines = cross.clone().singular_values();
    let subspace = cosines.iter().map(|c| c.min(1.0).powi(2)).sum::<f64>() / k as f64;
    Some(Agreement {
        pc1: cross[(0, 0)].abs().min(1.0),
        subspace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(components: Vec<f32>, width: usize) -> LayerMap {
        let k = components.len() / width;
        LayerMap {
            mean: vec![0.0; width],
            components,
            explained_variance: vec![1.0; k],
            total_variance: k as f32,
            lo: vec![-1.0; k],
            hi: vec![1.0; k],
        }
    }

    #[test]
    fn a_rotated_and_flipped_basis_of_the_same_subspace_agrees_fully() {
        let s = std::f32::consts::FRAC_1_SQRT_2;
        // e0, e1 against (e0 + e1)/√2, -(e0 - e1)/√2: the same plane.
        let a = layer(vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 3);
        let b = layer(vec![s, s, 0.0, -s, s, 0.0], 3);
        let got = agreement(&a, &b, 2).expect("same shape");
        assert!((got.subspace - 1.0).abs() < 1e-6, "{got:?}");
        assert!((got.pc1 - f64::from(s)).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn orthogonal_subspaces_do_not_agree_and_partial_overlap_is_measured() {
        let a = layer(vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0], 4);
        let b = layer(vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0], 4);
        assert_eq!(agreement(&a, &b, 2).map(|g| g.subspace), Some(0.0));
        // One shared axis of two.
        let c = layer(vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0], 4);
        let got = agreement(&a, &c, 2).expect("same shape");
        assert!((got.subspace - 0.5).abs() < 1e-9, "{got:?}");
        assert_eq!(got.pc1, 0.0);
        assert!(agreement(&a, &layer(vec![1.0, 0.0, 0.0], 3), 1).is_none());
        assert!(agreement(&a, &b, 3).is_none());
    }
}
