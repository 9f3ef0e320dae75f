//! One prompt, its hidden states in layer order as time: the residual stream transforming from
//! the embeddings to the output.
//!
//! The prompt is tokenised as it is (no chat template, no special tokens) and run once. Each
//! token is a partial; slice `l` is hidden state `l` (0 the embeddings, the last one after the
//! final norm). In slice `l` a token's amplitude is the L2 norm of its state and its phase the
//! angle of its raw PC1–PC2 coordinates in layer `l`'s map, `atan2(pc2, pc1)`.
//!
//! Position 0 is left out unless asked for (`keep_first`): the first token is the attention
//! sink, whose norm in the middle layers is tens of times the others' and would leave them
//! inaudible (the same reason map fits leave it out).

use super::{
    Partial, PartialSource, Result, Slice, SliceSource, SpectralError, SpectralScore, log_spaced,
};
use crate::activation::ProjectionMap;
use crate::llm::loader::LoadedModel;
use crate::music::scale::{Root, Scale};

/// How a layers (or opera) score is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayersOptions {
    /// Seconds each hidden state sounds.
    pub slice_seconds: f32,
    /// Keep the prompt's first token (the attention sink).
    pub keep_first: bool,
}

impl Default for LayersOptions {
    fn default() -> Self {
        Self {
            slice_seconds: 0.6,
            keep_first: false,
        }
    }
}

/// The opera's lowest and highest fundamental (MIDI C3 … G5): a choir's compass.
const OPERA_LOW: f32 = 48.0;
const OPERA_HIGH: f32 = 79.0;

/// The layers score of `prompt` (see the [module docs](self)). `map` must belong to the model.
pub fn layers_score(
    loaded: &mut LoadedModel,
    map: &ProjectionMap,
    prompt: &str,
    options: LayersOptions,
) -> Result<SpectralScore> {
    if !(options.slice_seconds.is_finite() && options.slice_seconds >= 0.05) {
        return Err(SpectralError::Option(format!(
            "a slice of {} s is too short: at least 0.05 s",
            options.slice_seconds
        )));
    }
    if prompt.trim().is_empty() {
        return Err(SpectralError::EmptyPrompt("the prompt".into()));
    }
    let info = loaded.model.info().clone();
    let (states, width) = (info.n_layers + 1, info.width);
    if map.n_states() != states || map.metadata().width != width {
        return Err(SpectralError::Numbers(format!(
            "the map has {} states of width {}, the model {states} of width {width}",
            map.n_states(),
            map.metadata().width
        )));
    }
    let mut ids = loaded.tokenizer.encode(prompt, false)?;
    ids.truncate(info.context_length);
    let first = usize::from(!options.keep_first && ids.len() >= 2);
    if ids.len() <= first {
        return Err(SpectralError::TooFewTokens {
            what: "the prompt".into(),
            tokens: ids.len(),
            needed: 1,
        });
    }
    loaded.model.reset();
    let step = loaded.model.forward(&ids);
    loaded.model.reset();
    let step = step?;
    if step.hidden.len() != states * ids.len() * width {
        return Err(SpectralError::Numbers(format!(
            "the model returned {} hidden values for {} tokens, expected {}",
            step.hidden.len(),
            ids.len(),
            states * ids.len() * width
        )));
    }
    let positions: Vec<usize> = (first..ids.len()).collect();
    let frequencies = log_spaced(positions.len());
    let mut partials = Vec::with_capacity(positions.len());
    for (k, &position) in positions.iter().enumerate() {
        partials.push(Partial {
            frequency: frequencies[k],
            pan: 0.0,
            source: PartialSource::Token {
                position,
                id: ids[position],
                text: loaded.tokenizer.token_text(ids[position])?,
            },
        });
    }
    let mut raw = vec![0.0f32; map.components()];
    let mut slices = Vec::with_capacity(states);
    for layer in 0..states {
        let mut amplitudes = Vec::with_capacity(positions.len());
        let mut phases = Vec::with_capacity(positions.len());
        for &position in &positions {
            let h = step.hidden_state(layer, position, width);
            let norm = h
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt();
            map.raw_coordinates_into(layer, h, &mut raw);
            let phase = match raw.as_slice() {
                [pc1, pc2, ..] => pc2.atan2(*pc1),
                _ => 0.0,
            };
            if !norm.is_finite() || !phase.is_finite() {
                return Err(SpectralError::Numbers(format!(
                    "hidden state {layer} of token {position} is not finite"
                )));
            }
            amplitudes.push(norm as f32);
            phases.push(phase);
        }
        slices.push(Slice {
            source: SliceSource::Layer(layer),
            amplitudes,
            phases,
        });
    }
    Ok(SpectralScore {
        mode: "layers",
        partials,
        slices,
        slice_seconds: options.slice_seconds,
    })
}

/// The layers score made operatic: each token's place in the prompt becomes a fundamental
/// between C3 and G5 (evenly in pitch), quantised to `scale` on `root`, and a stereo place
/// from left to right in prompt order.
pub fn opera_score(mut score: SpectralScore, scale: Scale, root: Root) -> SpectralScore {
    let n = score.partials.len();
    for (k, partial) in score.partials.iter_mut().enumerate() {
        let t = if n > 1 {
            k as f32 / (n - 1) as f32
        } else {
            0.5
        };
        let pitch = OPERA_LOW + t * (OPERA_HIGH - OPERA_LOW);
        let note = scale.nearest_in_range(pitch, root, OPERA_LOW as u8, OPERA_HIGH as u8);
        partial.frequency = 440.0 * 2f32.powf((f32::from(note) - 69.0) / 12.0);
        partial.pan = if n > 1 { -0.8 + 1.6 * t } else { 0.0 };
    }
    score.mode = "opera";
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opera_fundamentals_are_in_the_key_and_spread_across_the_stereo_field() {
        let partials = (0..9)
            .map(|position| Partial {
                frequency: 0.0,
                pan: 0.0,
                source: PartialSource::Token {
                    position,
                    id: 0,
                    text: String::new(),
                },
            })
            .collect();
        let score = SpectralScore {
            mode: "layers",
            partials,
            slices: Vec::new(),
            slice_seconds: 0.5,
        };
        let opera = opera_score(score, Scale::Dorian, Root::D);
        assert_eq!(opera.mode, "opera");
        let mut last = 0.0;
        for p in &opera.partials {
            let pitch = 69.0 + 12.0 * (p.frequency / 440.0).log2();
            let note = pitch.round();
            assert!((pitch - note).abs() < 1e-3);
            assert!(Scale::Dorian.contains(note as u8, Root::D));
            assert!((OPERA_LOW..=OPERA_HIGH).contains(&note));
            assert!(p.frequency >= last);
            last = p.frequency;
        }
        assert_eq!(opera.partials[0].pan, -0.8);
        assert!((opera.partials[8].pan - 0.8).abs() < 1e-6);
    }
}
