//! Per-component ranges that turn PCA coordinates into notes: the 2nd and 98th percentile of
//! the coordinates the fit's sampled tokens take, so a typical token lands inside [-1, 1] and
//! the rare outlier is clamped rather than squashing everything else into a corner.

/// Lower and upper percentile of each component's coordinates.
pub const PERCENTILES: (f64, f64) = (2.0, 98.0);

/// The `p`th percentile (0..=100) of `values`, interpolating linearly between the two nearest
/// ranks (numpy's default). Sorts `values` in place; NaN sorts last. 0 for an empty slice.
pub fn percentile(values: &mut [f32], p: f64) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let position = p.clamp(0.0, 100.0) / 100.0 * (values.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(values.len() - 1);
    let fraction = position - below as f64;
    let (a, b) = (f64::from(values[below]), f64::from(values[above]));
    (a + (b - a) * fraction) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_linear_interpolation() {
        // np.percentile([3, 1, 4, 1, 5, 9, 2, 6], [0, 2, 50, 98, 100]) = 1, 1, 3.5, 8.58, 9
        let data = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        for (p, expected) in [
            (0.0, 1.0),
            (2.0, 1.0),
            (50.0, 3.5),
            (98.0, 8.58),
            (100.0, 9.0),
        ] {
            let got = percentile(&mut data.clone(), p);
            assert!((got - expected).abs() < 1e-5, "p{p}: {got} vs {expected}");
        }
        assert_eq!(percentile(&mut [], 50.0), 0.0);
        assert_eq!(percentile(&mut [7.0], 2.0), 7.0);
    }
}
