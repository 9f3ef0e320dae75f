//! Many prompts at once: each prompt one slice of time, the dimensions that vary most across the
//! set the partials.
//!
//! Every prompt is its own sequence (the model reset before each), tokenised as it is, and
//! mean-pooled at the chosen hidden state over its positions with position 0 left out
//! ([`crate::activation::pooling`], as maps and directions pool). The `dims` dimensions with the
//! highest variance across the pooled prompts (population variance; ties to the lower index)
//! become fixed sinusoids, highest variance lowest, log-spaced. In a prompt's slice a dimension's
//! amplitude is |activation| (the pooled value itself, not centred: the residual stream's own
//! magnitude) and its phase its sign: 0 for positive, π for negative.

use std::ops::ControlFlow;

use super::{
    Partial, PartialSource, Result, Slice, SliceSource, SpectralError, SpectralScore, log_spaced,
};
use crate::activation::pooling::mean_after_first;
use crate::llm::loader::LoadedModel;

/// How a dataset score is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatasetOptions {
    /// The hidden state pooled (0 the embeddings).
    pub layer: usize,
    /// Partials: the dimensions of highest variance.
    pub dims: usize,
    /// Seconds each prompt sounds.
    pub slice_seconds: f32,
}

/// Each prompt's pooled state at `layer`, `[prompt][width]`. `progress(done, total)` after each
/// prompt; `Break` stops with an error. The model is reset before each prompt and after.
pub fn pooled_prompts(
    loaded: &mut LoadedModel,
    prompts: &[String],
    layer: usize,
    progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<Vec<Vec<f64>>> {
    let info = loaded.model.info().clone();
    let (states, width) = (info.n_layers + 1, info.width);
    if layer >= states {
        return Err(SpectralError::LayerOutOfRange { layer, states });
    }
    let mut pooled = Vec::with_capacity(prompts.len());
    for (line, prompt) in prompts.iter().enumerate() {
        let mut ids = loaded.tokenizer.encode(prompt, false)?;
        ids.truncate(info.context_length);
        if ids.len() < 2 {
            return Err(SpectralError::TooFewTokens {
                what: format!("prompt {} ({prompt:?})", line + 1),
                tokens: ids.len(),
                needed: 2,
            });
        }
        loaded.model.reset();
        let step = loaded.model.forward(&ids);
        loaded.model.reset();
        let step = step?;
        let mean = mean_after_first(&step, states, width).ok_or_else(|| {
            SpectralError::Numbers(format!(
                "the model returned {} hidden values for {} tokens",
                step.hidden.len(),
                ids.len()
            ))
        })?;
        let at_layer = mean[layer * width..(layer + 1) * width].to_vec();
        if at_layer.iter().any(|v| !v.is_finite()) {
            return Err(SpectralError::Numbers(format!(
                "prompt {} gave non-finite hidden states",
                line + 1
            )));
        }
        pooled.push(at_layer);
        if progress(line + 1, prompts.len()).is_break() {
            return Err(SpectralError::Option("cancelled".into()));
        }
    }
    Ok(pooled)
}

/// The `dims` dimensions of highest population variance across `pooled` (rows of equal
/// width), highest first, with their variances. Ties go to the lower index.
pub fn highest_variance(pooled: &[Vec<f64>], dims: usize) -> Vec<(usize, f64)> {
    let width = pooled.first().map_or(0, Vec::len);
    let n = pooled.len().max(1) as f64;
    let mut variance: Vec<(usize, f64)> = (0..width)
        .map(|d| {
            let mean = pooled.iter().map(|row| row[d]).sum::<f64>() / n;
            let var = pooled
                .iter()
                .map(|row| (row[d] - mean).powi(2))
                .sum::<f64>()
                / n;
            (d, var)
        })
        .collect();
    variance.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    variance.truncate(dims);
    variance
}

/// The dataset score of `prompts` (see the [module docs](self)).
pub fn dataset_score(
    loaded: &mut LoadedModel,
    prompts: &[String],
    options: DatasetOptions,
    progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<SpectralScore> {
    let width = loaded.model.info().width;
    if prompts.len() < 2 {
        return Err(SpectralError::Option(format!(
            "{} prompt(s): the variance across a set needs two at least",
            prompts.len()
        )));
    }
    if options.dims == 0 || options.dims > width {
        return Err(SpectralError::Option(format!(
            "--dims {}: choose 1 to {width} (the model's width)",
            options.dims
        )));
    }
    if !(options.slice_seconds.is_finite() && options.slice_seconds >= 0.01) {
        return Err(SpectralError::Option(format!(
            "a slice of {} s is too short: at least 0.01 s",
            options.slice_seconds
        )));
    }
    let pooled = pooled_prompts(loaded, prompts, options.layer, progress)?;
    let chosen = highest_variance(&pooled, options.dims);
    let frequencies = log_spaced(chosen.len());
    let partials = chosen
        .iter()
        .enumerate()
        .map(|(rank, &(index, variance))| Partial {
            frequency: frequencies[rank],
            pan: 0.0,
            source: PartialSource::Dimension {
                layer: options.layer,
                index,
                rank,
                variance,
            },
        })
        .collect();
    let slices = pooled
        .iter()
        .zip(prompts)
        .enumerate()
        .map(|(line, (row, text))| Slice {
            source: SliceSource::Prompt {
                line,
                text: text.clone(),
            },
            amplitudes: chosen.iter().map(|&(d, _)| row[d].abs() as f32).collect(),
            phases: chosen
                .iter()
                .map(|&(d, _)| {
                    if row[d] < 0.0 {
                        std::f32::consts::PI
                    } else {
                        0.0
                    }
                })
                .collect(),
        })
        .collect();
    Ok(SpectralScore {
        mode: "dataset",
        partials,
        slices,
        slice_seconds: options.slice_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dimensions_that_vary_most_come_first_and_ties_go_to_the_lower_index() {
        let pooled = vec![
            vec![0.0, 5.0, 1.0, 1.0],
            vec![0.0, -5.0, -1.0, 3.0],
            vec![0.0, 0.0, 0.0, 2.0],
        ];
        let chosen = highest_variance(&pooled, 3);
        assert_eq!(
            chosen.iter().map(|c| c.0).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!((chosen[0].1 - 50.0 / 3.0).abs() < 1e-12);
        // Dims 2 and 3 have variance 2/3 each: the lower index first.
        assert!((chosen[1].1 - chosen[2].1).abs() < 1e-12);
    }
}
