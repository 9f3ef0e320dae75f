//! Text placed in a map: a line run through the model on its own (reset first, no template,
//! no special tokens — as the fit runs its corpus lines, see [`super::fit`]) and each of its
//! tokens at its raw PCA coordinates `(h - mean) · component` in chosen hidden states. What
//! `map-plot` draws: the corpus as a cloud and a prompt as a path through it.

use super::error::{MapError, Result};
use super::map::ProjectionMap;
use crate::llm::LlmError;
use crate::llm::loader::LoadedModel;

/// Tokens of text with their coordinates in some hidden states of a map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlacedTokens {
    /// Each token's text as the tokenizer decodes it alone.
    pub texts: Vec<String>,
    /// Per asked state, `[tokens][K]` raw coordinates, row-major.
    pub raw: Vec<Vec<f32>>,
}

impl PlacedTokens {
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

/// Run each of `lines` through `loaded` and place its tokens from position `first` on
/// (`first = 1` leaves out each line's attention sink, as a map fitted with `skip_first`
/// did) in `map`'s hidden states `states`. A line longer than the context is cut to it.
/// The model is reset before each line and after the last.
pub fn place_lines<'a>(
    loaded: &mut LoadedModel,
    map: &ProjectionMap,
    lines: impl IntoIterator<Item = &'a str>,
    states: &[usize],
    first: usize,
) -> Result<PlacedTokens> {
    let info = loaded.model.info().clone();
    let (n_states, width, k) = (info.n_layers + 1, info.width, map.components());
    if (map.n_states(), map.metadata().width) != (n_states, width) {
        return Err(MapError::Model(LlmError::Compute(format!(
            "the map has {} states of width {}, the model {n_states} of width {width}",
            map.n_states(),
            map.metadata().width
        ))));
    }
    if let Some(&bad) = states.iter().find(|&&s| s >= n_states) {
        return Err(MapError::Model(LlmError::Compute(format!(
            "hidden state {bad} of a model with states 0..={}",
            n_states - 1
        ))));
    }
    let mut placed = PlacedTokens {
        texts: Vec::new(),
        raw: vec![Vec::new(); states.len()],
    };
    let mut coords = vec![0.0f32; k];
    for line in lines {
        let mut ids = loaded.tokenizer.encode(line, false)?;
        ids.truncate(info.context_length);
        if ids.len() <= first {
            continue;
        }
        loaded.model.reset();
        let step = loaded.model.forward(&ids)?;
        let n = step.n_new;
        if n != ids.len() || step.hidden.len() != n_states * n * width {
            loaded.model.reset();
            return Err(MapError::Model(LlmError::Compute(format!(
                "the model returned {} hidden values for {} tokens",
                step.hidden.len(),
                ids.len()
            ))));
        }
        for &id in &ids[first..] {
            placed.texts.push(loaded.tokenizer.decode(&[id])?);
        }
        for (out, &state) in placed.raw.iter_mut().zip(states) {
            for pos in first..n {
                let start = (state * n + pos) * width;
                map.raw_coordinates_into(state, &step.hidden[start..start + width], &mut coords);
                out.extend_from_slice(&coords);
            }
        }
    }
    loaded.model.reset();
    Ok(placed)
}

/// `count` of `lines`, evenly spread over them (all of them if there are fewer), so a
/// sample still covers the whole corpus.
pub fn spread<'a>(lines: &[&'a str], count: usize) -> Vec<&'a str> {
    if count >= lines.len() {
        return lines.to_vec();
    }
    (0..count).map(|i| lines[i * lines.len() / count]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_covers_the_whole_list() {
        let lines: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(spread(&lines, 3), ["0", "3", "6"]);
        assert_eq!(spread(&lines, 20).len(), 10);
        assert!(spread(&lines, 0).is_empty());
    }
}
