//! The per-layer statistics the sonification reads, computed the same way for every
//! architecture.

/// An activation counts as near zero when its magnitude is below this fraction of the layer's
/// largest activation for that token. Relative, so it means the same in models whose activation
/// scales differ by orders of magnitude.
pub const NEAR_ZERO_FRACTION: f32 = 0.01;

/// Shannon entropy in nats of one attention distribution.
pub fn entropy(probabilities: &[f32]) -> f32 {
    probabilities
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| -p * p.ln())
        .sum()
}

/// Mean entropy over heads. `probabilities` is `[heads * keys]`, one row per head.
pub fn mean_head_entropy(probabilities: &[f32], heads: usize) -> f32 {
    let keys = probabilities.len() / heads.max(1);
    if keys == 0 {
        return 0.0;
    }
    probabilities.chunks_exact(keys).map(entropy).sum::<f32>() / heads as f32
}

/// Fraction of `activations` (one token's MLP activations after the nonlinearity) whose
/// magnitude is below `NEAR_ZERO_FRACTION` of the largest.
pub fn mlp_sparsity(activations: &[f32]) -> f32 {
    let peak = activations.iter().fold(0.0_f32, |m, a| m.max(a.abs()));
    if activations.is_empty() || peak == 0.0 {
        return 1.0;
    }
    let threshold = peak * NEAR_ZERO_FRACTION;
    activations.iter().filter(|a| a.abs() < threshold).count() as f32 / activations.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_uniform_and_peaked_distributions() {
        assert!((entropy(&[0.25; 4]) - 4f32.ln()).abs() < 1e-6);
        assert_eq!(entropy(&[1.0, 0.0, 0.0]), 0.0);
        let two_heads = [0.5, 0.5, 1.0, 0.0];
        assert!((mean_head_entropy(&two_heads, 2) - 2f32.ln() / 2.0).abs() < 1e-6);
    }

    #[test]
    fn sparsity_counts_small_activations_relative_to_the_peak() {
        assert_eq!(mlp_sparsity(&[10.0, 0.05, -0.01, 2.0]), 0.5);
        assert_eq!(mlp_sparsity(&[0.0; 3]), 1.0);
        assert_eq!(mlp_sparsity(&[1.0, -1.0]), 0.0);
    }
}
