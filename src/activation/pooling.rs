//! One sequence's hidden states pooled into one vector per state: the mean over its positions
//! with **position 0 left out** (the attention sink, as in map fits; see [`super::fit`]). Concept
//! directions and the spectral dataset sonification pool prompts this way.

use crate::llm::model::Step;

/// `[n_states * width]`, state-major, in f64; `None` when `step` has fewer than two positions
/// or a shape other than `n_states × n_new × width`.
pub fn mean_after_first(step: &Step, n_states: usize, width: usize) -> Option<Vec<f64>> {
    let n = step.n_new;
    if n < 2 || step.hidden.len() != n_states * n * width {
        return None;
    }
    let mut mean = vec![0.0f64; n_states * width];
    for state in 0..n_states {
        let out = &mut mean[state * width..(state + 1) * width];
        for pos in 1..n {
            for (o, &h) in out.iter_mut().zip(step.hidden_state(state, pos, width)) {
                *o += f64::from(h);
            }
        }
        out.iter_mut().for_each(|o| *o /= (n - 1) as f64);
    }
    Some(mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_position_is_left_out_of_the_mean() {
        // Two states of width 2, three positions: state-major, then position, then width.
        let step = Step {
            hidden: vec![
                100.0, 100.0, 1.0, 2.0, 3.0, 4.0, // state 0
                -100.0, 0.0, 5.0, 6.0, 7.0, 10.0, // state 1
            ],
            n_new: 3,
            ..Step::default()
        };
        let mean = mean_after_first(&step, 2, 2).expect("three positions");
        assert_eq!(mean, vec![2.0, 3.0, 6.0, 8.0]);
        let one = Step {
            hidden: vec![1.0, 2.0],
            n_new: 1,
            ..Step::default()
        };
        assert_eq!(mean_after_first(&one, 1, 2), None);
        assert_eq!(mean_after_first(&step, 3, 2), None, "shape mismatch");
    }
}
