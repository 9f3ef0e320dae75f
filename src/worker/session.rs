//! A generation session: the prompt, the tokens so far and the sampler, stepping one token at
//! a time with whatever temperature the caller passes. The worker and the CLI both drive this.

use std::sync::Arc;

use crate::activation::direction::ConceptDirection;
use crate::activation::partials::PartialDims;
use crate::activation::{MapError, ProjectionMap};
use crate::llm::error::{LlmError, Result};
use crate::llm::loader::LoadedModel;
use crate::llm::model::Step;
use crate::llm::sampler::{Sampler, SamplerConfig};
use crate::llm::tokenizer::{PromptMode, TokenStream};
use crate::music::frame::SPECTRAL_PARTIALS;
use crate::music::markov_lstm::{MarkovLstm, PhraseStep};

/// What happens when the model ends its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AtEnd {
    /// Stop generating.
    #[default]
    Stop,
    /// Open a fresh turn: the model keeps talking (chat models) or keeps continuing (raw).
    /// The end token reads as a line break, and a chat model's next turn opens behind the
    /// scenes, so no markup such as `<|im_start|>assistant` shows in the text.
    Continue,
}

/// One generated (or prompt) token with everything captured for it.
#[derive(Debug, Clone)]
pub struct TokenResult {
    pub id: u32,
    /// Text this token completes (may be empty while a multi-byte character is split).
    pub text: String,
    /// The temperature it was sampled at; `None` for prompt tokens.
    pub temperature: Option<f32>,
    /// `[(n_layers + 1) * width]`, layer-major.
    pub hidden: Vec<f32>,
    /// `[n_layers]`
    pub attention_entropy: Vec<f32>,
    /// `[n_layers]`
    pub mlp_sparsity: Vec<f32>,
    /// `[(n_layers + 1) * K]`, layer-major: the hidden states projected through the session's
    /// PCA map, each in [-1, 1] (see [`crate::activation::map`]). Empty without a map.
    pub coords: Vec<f32>,
    /// `[n_layers + 1]`: each state's partials for the Spectral instruments
    /// ([`crate::activation::partials`]). Empty without a map.
    pub partials: Vec<[i8; SPECTRAL_PARTIALS]>,
    /// `[n_layers + 1]`: dot(h, r̂) with the session's concept direction. Empty without one.
    pub projection: Vec<f32>,
    /// `[n_layers + 1]`: each projection as tension, 0…1. Empty without a direction.
    pub layer_tension: Vec<f32>,
    /// The token's tension ([`ConceptDirection::tension`]); `None` without a direction.
    pub tension: Option<f32>,
    /// `[n_layers + 1]`: what each state's Markov–LSTM chose.
    pub phrase: Vec<PhraseStep>,
}

pub struct Session {
    loaded: LoadedModel,
    sampler: Sampler,
    stream: TokenStream,
    tokens: Vec<u32>,
    /// Logits for the next token, from the last forward step.
    next_logits: Vec<f32>,
    at_end: AtEnd,
    /// How the current prompt was given: a chat run opens a new assistant turn at its end.
    mode: PromptMode,
    finished: bool,
    projection: Option<Arc<ProjectionMap>>,
    /// The map's partial dimensions, derived once when the map is set.
    partials: Option<PartialDims>,
    direction: Option<Arc<ConceptDirection>>,
    /// One phrase generator per hidden state, stepped on every token the model reads.
    phrases: Vec<MarkovLstm>,
    seed: u64,
}

impl Session {
    pub fn new(loaded: LoadedModel, sampler: SamplerConfig, seed: u64, at_end: AtEnd) -> Self {
        let stream = loaded.tokenizer.stream();
        let info = loaded.model.info();
        let phrases = (0..=info.n_layers)
            .map(|_| MarkovLstm::new(info.width))
            .collect();
        Self {
            loaded,
            sampler: Sampler::new(sampler, seed),
            stream,
            tokens: Vec::new(),
            next_logits: Vec::new(),
            at_end,
            mode: PromptMode::Chat,
            finished: false,
            projection: None,
            partials: None,
            direction: None,
            phrases,
            seed,
        }
    }

    /// Project every token's hidden states through `map` from now on (`None`: no `coords`).
    /// Whether the map belongs to this model is the caller's to check
    /// ([`ProjectionMap::check_model`]); a map of another shape is refused here.
    pub fn set_projection(
        &mut self,
        map: Option<Arc<ProjectionMap>>,
    ) -> std::result::Result<(), MapError> {
        if let Some(map) = &map {
            let info = self.loaded.model.info();
            let meta = map.metadata();
            if (meta.n_layers, meta.width) != (info.n_layers, info.width) {
                return Err(MapError::WrongShape {
                    path: self.loaded.path.clone(),
                    map_layers: meta.n_layers,
                    map_width: meta.width,
                    model_layers: info.n_layers,
                    model_width: info.width,
                });
            }
        }
        self.partials = map.as_deref().map(PartialDims::from_map);
        self.projection = map;
        Ok(())
    }

    /// Project every token's hidden states on `direction` from now on (`None`: no tension).
    /// One fitted for another shape is refused.
    pub fn set_direction(
        &mut self,
        direction: Option<Arc<ConceptDirection>>,
    ) -> std::result::Result<(), String> {
        if let Some(direction) = &direction {
            let info = self.loaded.model.info();
            let meta = direction.metadata();
            if (meta.n_layers, meta.width) != (info.n_layers, info.width) {
                return Err(format!(
                    "the {} direction was fitted for {} layers of width {}; the model has {} of width {}",
                    meta.name, meta.n_layers, meta.width, info.n_layers, info.width
                ));
            }
        }
        self.direction = direction;
        Ok(())
    }

    pub fn direction(&self) -> Option<&Arc<ConceptDirection>> {
        self.direction.as_ref()
    }

    pub fn projection(&self) -> Option<&Arc<ProjectionMap>> {
        self.projection.as_ref()
    }

    pub fn loaded(&self) -> &LoadedModel {
        &self.loaded
    }

    /// The model itself, e.g. to fit a direction between runs; whatever it did to the model's
    /// cache, the next [`Session::start`] resets it.
    pub fn loaded_mut(&mut self) -> &mut LoadedModel {
        &mut self.loaded
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Start over with `prompt`: clears the cache, reseeds, runs the prompt and returns one
    /// result per prompt token.
    pub fn start(&mut self, prompt: &str, mode: PromptMode, seed: u64) -> Result<Vec<TokenResult>> {
        if prompt.trim().is_empty() {
            return Err(LlmError::EmptyPrompt);
        }
        let ids = self.loaded.tokenizer.prompt_ids(prompt, mode)?;
        let context = self.loaded.model.info().context_length;
        if ids.len() >= context {
            return Err(LlmError::PromptTooLong {
                tokens: ids.len(),
                context,
            });
        }
        self.loaded.model.reset();
        self.next_logits.clear();
        self.sampler.reseed(seed);
        self.seed = seed;
        self.phrases.iter_mut().for_each(MarkovLstm::reset);
        self.stream = self.loaded.tokenizer.stream();
        self.tokens.clear();
        self.mode = mode;
        self.finished = false;
        let step = self.loaded.model.forward(&ids)?;
        let results = self.split_step(&ids, &step, None)?;
        self.tokens.extend_from_slice(&ids);
        self.next_logits = step.logits;
        Ok(results)
    }

    /// Sample the next token at `temperature`, run it through the model and return it.
    /// `Ok(None)` once generation has finished (end of sequence with `AtEnd::Stop`, or a full
    /// context).
    pub fn next(&mut self, temperature: f32) -> Result<Option<TokenResult>> {
        if self.finished || self.next_logits.is_empty() {
            return Ok(None);
        }
        let context = self.loaded.model.info().context_length;
        if self.loaded.model.position() + 1 > context {
            self.finished = true;
            return Ok(None);
        }
        // Models may pad their vocabulary past the tokenizer's (Qwen2: 151936 vs 151665);
        // ids the tokenizer cannot spell are never sampled.
        let vocab = self
            .loaded
            .tokenizer
            .vocab_size()
            .min(self.next_logits.len());
        let id = self
            .sampler
            .sample(&self.next_logits[..vocab], temperature, &self.tokens);
        if self.loaded.tokenizer.is_eos(id) && self.at_end == AtEnd::Stop {
            self.finished = true;
            return Ok(None);
        }
        let ended = self.loaded.tokenizer.is_eos(id);
        let mut ids = vec![id];
        if ended {
            ids.extend(self.fresh_turn()?);
        }
        if self.loaded.model.position() + ids.len() > context {
            self.finished = true;
            return Ok(None);
        }
        let step = self.loaded.model.forward(&ids)?;
        let mut results = self.split_step(&ids, &step, Some(temperature))?;
        self.tokens.extend_from_slice(&ids);
        self.next_logits = step.logits;
        // The sampled token's own result; the turn's opening is context, not played.
        results.truncate(1);
        let mut token = results.pop();
        if let Some(token) = token.as_mut().filter(|_| ended) {
            token.text = "\n".to_owned();
        }
        Ok(token)
    }

    /// Reads `id` as the next token, as if it had been sampled at `temperature`: another model
    /// wrote the text and this one reads it a token at a time, each with all its states.
    /// `Ok(None)` once generation has finished or when the context is full.
    pub fn force(&mut self, id: u32, temperature: f32) -> Result<Option<TokenResult>> {
        if self.finished || self.next_logits.is_empty() {
            return Ok(None);
        }
        if self.loaded.model.position() + 1 > self.loaded.model.info().context_length {
            self.finished = true;
            return Ok(None);
        }
        let step = self.loaded.model.forward(&[id])?;
        let mut results = self.split_step(&[id], &step, Some(temperature))?;
        self.tokens.push(id);
        self.next_logits = step.logits;
        Ok(results.pop())
    }

    /// Reads `text` into the context (as the prompt is read: no token is sampled) so the next
    /// token follows it; returns the positions it took. Nothing is read once generation has
    /// finished, or when it would not leave room for another token.
    pub fn hear(&mut self, text: &str) -> Result<usize> {
        if self.finished || self.next_logits.is_empty() {
            return Ok(0);
        }
        let ids = self.loaded.tokenizer.encode(text, false)?;
        let context = self.loaded.model.info().context_length;
        if ids.is_empty() || self.loaded.model.position() + ids.len() + 1 > context {
            return Ok(0);
        }
        let step = self.loaded.model.forward(&ids)?;
        // The detokenizer follows the context, so the next token's text joins on correctly.
        for &id in &ids {
            self.stream.push(id)?;
        }
        self.tokens.extend_from_slice(&ids);
        self.next_logits = step.logits;
        Ok(ids.len())
    }

    /// The ids that open the model's next turn after it ended one: the assistant's turn again
    /// for a chat run, nothing for raw text (the model goes on after its end token).
    fn fresh_turn(&self) -> Result<Vec<u32>> {
        let tokenizer = &self.loaded.tokenizer;
        match (self.mode, tokenizer.chat_format()) {
            (PromptMode::Chat, Some(format)) => tokenizer.encode(format.next_turn(), false),
            _ => Ok(Vec::new()),
        }
    }

    fn split_step(
        &mut self,
        ids: &[u32],
        step: &Step,
        temperature: Option<f32>,
    ) -> Result<Vec<TokenResult>> {
        let info = self.loaded.model.info();
        let (layers, width) = (info.n_layers, info.width);
        // Token-major [n_new][n_layers + 1][K], one projection pass over the whole step.
        let coords = self
            .projection
            .as_ref()
            .map(|map| (map.coords_len(), map.project(&step.hidden, step.n_new)));
        let first_position = self.tokens.len();
        let mut results = Vec::with_capacity(ids.len());
        for (pos, &id) in ids.iter().enumerate() {
            let hidden: Vec<f32> = (0..=layers)
                .flat_map(|layer| step.hidden_state(layer, pos, width).iter().copied())
                .collect();
            let per_layer = |values: &[f32]| -> Vec<f32> {
                (0..layers).map(|l| values[l * step.n_new + pos]).collect()
            };
            let (projection, layer_tension, tension) = match &self.direction {
                Some(direction) => {
                    let mut projection = vec![0.0; layers + 1];
                    direction.project_states(&hidden, &mut projection);
                    let mut layer_tension = vec![0.0; layers + 1];
                    direction.layer_tension(&projection, &mut layer_tension);
                    let tension = direction.tension(&projection);
                    (projection, layer_tension, Some(tension))
                }
                None => (Vec::new(), Vec::new(), None),
            };
            let partials = match &self.partials {
                Some(dims) => {
                    let mut out = vec![[0i8; SPECTRAL_PARTIALS]; layers + 1];
                    dims.quantize_into(&hidden, &mut out);
                    out
                }
                None => Vec::new(),
            };
            let index = (first_position + pos) as u32;
            let phrase = self
                .phrases
                .iter_mut()
                .enumerate()
                .map(|(state, generator)| {
                    let h = &hidden[state * width..(state + 1) * width];
                    generator.step(
                        h,
                        tension.unwrap_or(0.0),
                        phrase_seed(self.seed, state),
                        index,
                    )
                })
                .collect();
            results.push(TokenResult {
                id,
                text: self.stream.push(id)?,
                temperature,
                attention_entropy: per_layer(&step.attention_entropy),
                mlp_sparsity: per_layer(&step.mlp_sparsity),
                coords: coords
                    .as_ref()
                    .map(|(len, all)| all[pos * len..(pos + 1) * len].to_vec())
                    .unwrap_or_default(),
                hidden,
                partials,
                projection,
                layer_tension,
                tension,
                phrase,
            });
        }
        Ok(results)
    }
}

/// Each state's phrase generator samples from its own stream of the run's seed.
fn phrase_seed(seed: u64, state: usize) -> u64 {
    seed ^ (state as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::loader;

    fn session() -> Session {
        let fixture =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
        let loaded = loader::load(&fixture).expect("the tiny llama loads");
        Session::new(loaded, SamplerConfig::default(), 3, AtEnd::Continue)
    }

    #[test]
    fn a_forced_token_is_read_exactly_as_a_sampled_one() {
        let mut sampled = session();
        sampled
            .start("Once upon a time", PromptMode::Raw, 3)
            .expect("prompt");
        let mut forced = session();
        forced
            .start("Once upon a time", PromptMode::Raw, 3)
            .expect("prompt");
        for _ in 0..12 {
            let own = sampled.next(0.9).expect("step").expect("a token");
            let read = forced.force(own.id, 0.9).expect("step").expect("a token");
            assert_eq!((read.id, &read.text), (own.id, &own.text));
            assert_eq!(read.temperature, Some(0.9));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&read.hidden), bits(&own.hidden));
            assert_eq!(bits(&read.attention_entropy), bits(&own.attention_entropy));
            assert_eq!(read.phrase, own.phrase);
        }
        assert_eq!(forced.tokens(), sampled.tokens());
        // Reading on from there, the forced session samples as the other does.
        assert_eq!(
            forced.next(0.0).expect("step").map(|t| t.id),
            sampled.next(0.0).expect("step").map(|t| t.id)
        );
    }
}
