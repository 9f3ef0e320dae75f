//! The piece a run takes from the server's alternatives: sampled here, at the temperature the
//! track's loudness chose, from the run's seed. Given the same numbers from the server, the
//! same piece is chosen; the server's own sampling never decides.

use crate::rng::SplitMix64;

/// Below this the most likely piece is taken (as the local sampler does at temperature 0).
const GREEDY_BELOW: f32 = 1e-3;

/// The seed of piece `index` of a run: a retried piece draws the same number.
pub fn piece_seed(run_seed: u64, index: usize) -> u64 {
    run_seed ^ (index as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03)
}

/// Index into `top` (log-probabilities at temperature 1, most likely first) of the piece
/// chosen at `temperature`; `None` when there is nothing to choose from.
pub fn choose(top: &[(String, f32)], temperature: f32, seed: u64) -> Option<usize> {
    let best = top.first()?.1;
    if temperature.is_nan() || temperature < GREEDY_BELOW || top.len() == 1 {
        return Some(0);
    }
    // p_i ∝ exp(lp_i / T), renormalised over the alternatives the server listed.
    let weights = top
        .iter()
        .map(|(_, lp)| f64::from((lp - best) / temperature).exp());
    let total: f64 = weights.clone().sum();
    let mut target = SplitMix64(seed).next_f64() * total;
    for (index, weight) in weights.enumerate() {
        if target < weight {
            return Some(index);
        }
        target -= weight;
    }
    Some(top.len() - 1)
}

/// Whether an alternative is the model ending its answer rather than text: servers list the
/// end token as empty text or as its special-token spelling.
pub fn is_end(piece: &str) -> bool {
    piece.is_empty()
        || (piece.starts_with("<|")
            && piece.ends_with("|>")
            && !piece.contains(char::is_whitespace))
        || matches!(piece, "</s>" | "<eos>" | "<end_of_turn>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top() -> Vec<(String, f32)> {
        [(" la", -0.2f32), (" da", -2.0), (" ba", -3.0)]
            .iter()
            .map(|&(t, lp)| (t.to_owned(), lp))
            .collect()
    }

    #[test]
    fn the_same_seed_chooses_the_same_piece() {
        for seed in 0..50 {
            assert_eq!(choose(&top(), 1.3, seed), choose(&top(), 1.3, seed));
        }
        assert_eq!(choose(&[], 1.0, 1), None);
    }

    #[test]
    fn cold_takes_the_most_likely_and_hot_spreads_out() {
        for seed in 0..50 {
            assert_eq!(choose(&top(), 0.0, seed), Some(0));
        }
        let count = |temperature: f32| {
            let mut counts = [0usize; 3];
            for seed in 0..4000 {
                counts[choose(&top(), temperature, piece_seed(seed, 3)).unwrap()] += 1;
            }
            counts
        };
        // At T = 1 the shares follow the log-probabilities: e^-0.2 : e^-2 : e^-3.
        let warm = count(1.0);
        let share = warm[0] as f64 / 4000.0;
        let expected = 0.8187 / (0.8187 + 0.1353 + 0.0498);
        assert!((share - expected).abs() < 0.03, "{warm:?}");
        let hot = count(5.0);
        assert!(hot[2] > warm[2] * 3, "{hot:?} vs {warm:?}");
    }

    #[test]
    fn end_pieces_are_recognised() {
        for end in ["", "<|im_end|>", "<|eot_id|>", "</s>", "<end_of_turn>"] {
            assert!(is_end(end), "{end:?}");
        }
        for text in [" la", "<", "<b>", "<| not special |>", "|>"] {
            assert!(!is_end(text), "{text:?}");
        }
    }
}
