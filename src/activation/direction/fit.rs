//! Fitting a direction from two prompt sets.
//!
//! 1. Every prompt is its own sequence (the model reset before each), tokenised as it is: no
//!    chat template, no special tokens, cut to the model's context. For each hidden state the
//!    mean over its positions, **position 0 left out** (the attention sink, as in map fits;
//!    see [`crate::activation::fit`]), so a prompt needs two tokens at least.
//! 2. Rows from the final half of the hidden states (of the `L + 1`, indices ⌊(L+1)/2⌋ … L):
//!    paired sets give one row per pair and state, positive − negative; sets of different
//!    sizes give, per state, each positive prompt minus the negatives' mean and the positives'
//!    mean minus each negative prompt.
//! 3. r̂ is the rows' first principal component (rows centred, as scikit-learn's PCA), unit
//!    length, turned so the positive prompts project higher on average over those states.
//! 4. At every state, the mean and spread of both sets' projections: the poles that turn a
//!    projection into tension.
//!
//! `tools/reference/direction_reference.py` does the same with `transformers` and
//! scikit-learn; `tests/direction_reference.rs` compares.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::error::{DirectionError, Result};
use super::prompts::{PromptPair, PromptSet};
use super::{ConceptDirection, DirectionMetadata, Pairing, PoleStats, final_half};
use crate::activation::FitProgress;
use crate::activation::covariance::Covariance;
use crate::activation::identity::ModelIdentity;
use crate::activation::pca::Pca;
use crate::activation::pooling::mean_after_first;
use crate::llm::loader::LoadedModel;

/// What the fit saw, for summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionFitStats {
    pub prompts: usize,
    /// Positions averaged (first positions not among them).
    pub tokens: u64,
    /// Prompts cut to the model's context.
    pub truncated: usize,
    pub elapsed: Duration,
    /// Of `elapsed`: running the model.
    pub model_time: Duration,
}

/// Fit `pair` on `loaded` (see the [module docs](self)). `progress` is called before the first
/// prompt and after each; `Break` cancels. The model is reset before each prompt and after.
pub fn fit(
    loaded: &mut LoadedModel,
    identity: &ModelIdentity,
    pair: &PromptPair,
    progress: &mut dyn FnMut(FitProgress) -> ControlFlow<()>,
) -> Result<(ConceptDirection, DirectionFitStats)> {
    let start = Instant::now();
    let info = loaded.model.info().clone();
    let (n_states, width) = (info.n_layers + 1, info.width);
    let total = pair.positive.len() + pair.negative.len();
    if progress(FitProgress { done: 0, total }).is_break() {
        return Err(DirectionError::Cancelled);
    }
    let mut model_time = Duration::ZERO;
    let mut tokens = 0u64;
    let mut truncated = 0;
    let mut done = 0;
    let mut pooled = |set: &PromptSet, name: &'static str| -> Result<Vec<Vec<f64>>> {
        let mut means = Vec::with_capacity(set.len());
        for (line, prompt) in set.prompts().iter().enumerate() {
            let model_start = Instant::now();
            let mut ids = loaded.tokenizer.encode(prompt, false)?;
            if ids.len() > info.context_length {
                ids.truncate(info.context_length);
                truncated += 1;
            }
            if ids.len() < 2 {
                return Err(DirectionError::PromptTooShort {
                    set: name,
                    line: line + 1,
                    prompt: prompt.clone(),
                    tokens: ids.len(),
                });
            }
            loaded.model.reset();
            let step = loaded.model.forward(&ids)?;
            model_time += model_start.elapsed();
            let n = step.n_new;
            let mean = mean_after_first(&step, n_states, width).ok_or_else(|| {
                DirectionError::Fit(format!(
                    "the model returned {} hidden values for {n} tokens, expected {}",
                    step.hidden.len(),
                    n_states * n * width
                ))
            })?;
            if mean.iter().any(|v| !v.is_finite()) {
                return Err(DirectionError::Fit(format!(
                    "{name} prompt {} gave non-finite hidden states",
                    line + 1
                )));
            }
            tokens += (n - 1) as u64;
            means.push(mean);
            done += 1;
            if progress(FitProgress { done, total }).is_break() {
                loaded.model.reset();
                return Err(DirectionError::Cancelled);
            }
        }
        Ok(means)
    };
    let positive = pooled(&pair.positive, "positive")?;
    let negative = pooled(&pair.negative, "negative")?;
    loaded.model.reset();

    let layers: Vec<usize> = final_half(n_states).collect();
    let pairing = if pair.is_paired() {
        Pairing::Paired
    } else {
        Pairing::Groups
    };
    let rows = difference_rows(&positive, &negative, &layers, width, pairing);
    let mut covariance = Covariance::new(width);
    covariance.add_batch(&rows);
    let pca = Pca::fit(&covariance, 1)?;
    let mut vector = pca.components[0].clone();
    let ratio = pca.explained_variance_ratio()[0] as f32;

    let project = |mean: &[f64], state: usize, r: &[f64]| -> f64 {
        mean[state * width..(state + 1) * width]
            .iter()
            .zip(r)
            .map(|(a, b)| a * b)
            .sum()
    };
    let side = |means: &[Vec<f64>], r: &[f64]| -> f64 {
        let sum: f64 = means
            .iter()
            .flat_map(|m| layers.iter().map(move |&l| project(m, l, r)))
            .sum();
        sum / (means.len() * layers.len()) as f64
    };
    if side(&positive, &vector) <= side(&negative, &vector) {
        vector.iter_mut().for_each(|v| *v = -*v);
    }
    let poles = (0..n_states)
        .map(|state| {
            let (pm, ps) = mean_std(positive.iter().map(|m| project(m, state, &vector)));
            let (nm, ns) = mean_std(negative.iter().map(|m| project(m, state, &vector)));
            PoleStats {
                positive_mean: pm as f32,
                positive_std: ps as f32,
                negative_mean: nm as f32,
                negative_std: ns as f32,
            }
        })
        .collect();
    let metadata = DirectionMetadata {
        name: pair.name.clone(),
        model_identity: identity.sha256.clone(),
        model_name: identity.name.clone(),
        n_layers: info.n_layers,
        width,
        positive_sha256: pair.positive.sha256().to_owned(),
        negative_sha256: pair.negative.sha256().to_owned(),
        positive_count: pair.positive.len(),
        negative_count: pair.negative.len(),
        pairing,
        layers,
        explained_variance_ratio: ratio,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let vector = vector.iter().map(|&v| v as f32).collect();
    let direction = ConceptDirection::new(metadata, vector, poles).map_err(DirectionError::Fit)?;
    let stats = DirectionFitStats {
        prompts: total,
        tokens,
        truncated,
        elapsed: start.elapsed(),
        model_time,
    };
    Ok((direction, stats))
}

/// The rows the component is fitted on (see the [module docs](self)), row-major.
fn difference_rows(
    positive: &[Vec<f64>],
    negative: &[Vec<f64>],
    layers: &[usize],
    width: usize,
    pairing: Pairing,
) -> Vec<f32> {
    let at = |m: &[f64], state: usize| m[state * width..(state + 1) * width].to_vec();
    let mut rows = Vec::new();
    let mut push = |a: &[f64], b: &[f64]| rows.extend(a.iter().zip(b).map(|(x, y)| (x - y) as f32));
    match pairing {
        Pairing::Paired => {
            for (p, n) in positive.iter().zip(negative) {
                for &l in layers {
                    push(&at(p, l), &at(n, l));
                }
            }
        }
        Pairing::Groups => {
            let mean_of = |set: &[Vec<f64>], l: usize| {
                let mut mean = vec![0.0; width];
                for m in set {
                    mean.iter_mut().zip(at(m, l)).for_each(|(a, b)| *a += b);
                }
                mean.iter_mut().for_each(|a| *a /= set.len() as f64);
                mean
            };
            for &l in layers {
                let (pos_mean, neg_mean) = (mean_of(positive, l), mean_of(negative, l));
                for p in positive {
                    push(&at(p, l), &neg_mean);
                }
                for n in negative {
                    push(&pos_mean, &at(n, l));
                }
            }
        }
    }
    rows
}

/// Mean and population standard deviation (ddof 0).
fn mean_std(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count().max(1) as f64;
    let mean = values.clone().sum::<f64>() / n;
    let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_rows_are_differences_of_the_used_states() {
        // Two states of width 2; one pair.
        let p = vec![vec![1.0, 2.0, 10.0, 20.0]];
        let n = vec![vec![0.0, 0.0, 4.0, 5.0]];
        assert_eq!(
            difference_rows(&p, &n, &[1], 2, Pairing::Paired),
            [6.0, 15.0]
        );
        let n2 = vec![vec![0.0, 0.0, 4.0, 5.0], vec![0.0, 0.0, 6.0, 7.0]];
        // Groups: p − mean(n) = (5, 14); mean(p) − each n = (6, 15), (4, 13).
        assert_eq!(
            difference_rows(&p, &n2, &[1], 2, Pairing::Groups),
            [5.0, 14.0, 6.0, 15.0, 4.0, 13.0]
        );
    }

    #[test]
    fn mean_and_std_are_population_statistics() {
        let (m, s) = mean_std([1.0, 3.0].into_iter());
        assert_eq!((m, s), (2.0, 1.0));
    }
}
