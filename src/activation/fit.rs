//! Fitting a map: run the model over the corpus and fit one PCA per hidden state.
//!
//! Every corpus line is its own sequence (the model is reset before each), tokenised as it is
//! — no chat template, no added special tokens, not even BOS — so the same corpus gives
//! comparable maps in any tool (`tools/reference/pca_reference.py` does the same in Python).
//! A line longer than the model's context is cut to the context. All `n_layers + 1` hidden
//! states are used: the embedding output, every block, the final norm.
//!
//! # Which lines
//!
//! A corpus holding more than [`FitOptions::token_budget`] tokens is fitted on every k-th line
//! ([`choose_lines`]). The covariance of a few-hundred-wide state is pinned down long before
//! the embedded corpus's 20,000 tokens, and running them all made the first map of the default
//! model take two minutes; `fit-pca --all-lines` runs every line.
//!
//! # Which positions
//!
//! The whole line always runs through the model, but by default ([`FitOptions::skip_first`])
//! **position 0 of each line is left out** of the covariance, the mean and the percentile
//! sample; a line of a single token then contributes nothing. The first token of a sequence
//! is an *attention sink*: the model parks attention on it, and its hidden states in the
//! middle layers are enormous (SmolLM2-135M, block 12: norm ~22,700 against ~150 for the other
//! tokens). First tokens are only 5 % of the embedded corpus, yet kept, PC1 of most layers
//! just says "is this the first token" (SmolLM2-135M: 99.4–100 % of the variance in blocks
//! 12–28, 74–92 % in blocks 3–9), and its 2nd–98th percentile range spans the gap between the
//! two groups — so every generated token (never at position 0: a prompt precedes it) sits
//! pinned at one end of PC1, a constant note.
//!
//! Measured on SmolLM2-135M with the embedded corpus (K = 16): left out, PC1 of blocks 12–29
//! explains 64 % falling to 7 %, and of 64 generated tokens 6 % have |PC1| > 0.9 there (kept:
//! all of them, at -1). Blocks 3–9 are only partly helped: a few later tokens (often " the")
//! grow outsized there too (norm ~750 against a median of ~90 at block 5; gone by block 12),
//! so PC1 of those blocks (52–79 % of the variance) still mostly tells them from the rest.
//!
//! `latent-choir fit-pca --keep-first` (`skip_first: false`) keeps every position: the
//! literal procedure, for comparison with other tools. The choice is recorded in the map
//! ([`MapMetadata::skip_first`]) and the cache refits a map fitted the other way.
//!
//! Each line's kept positions go into the layer's [`Covariance`] as one batch and are offered
//! to the [`Reservoir`]; after the last line the components are fitted, and the sample is
//! projected through them for the percentile ranges. Up to [`CLOUD_POINTS`] of the sample,
//! spread evenly over it, are then projected through the finished map and kept as its
//! [`CorpusCloud`] (normalised PC1/PC2 per state), the corpus a picture draws behind new tokens.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::DEFAULT_COMPONENTS;
use super::corpus::Corpus;
use super::covariance::Covariance;
use super::error::{MapError, Result};
use super::identity::ModelIdentity;
use super::map::{CLOUD_POINTS, CorpusCloud, InvalidMap, LayerMap, MapMetadata, ProjectionMap};
use super::pca::Pca;
use super::ranges::{PERCENTILES, percentile};
use super::reservoir::Reservoir;
use crate::llm::loader::LoadedModel;

/// How far a fit has got, reported after every corpus line (and once before the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitProgress {
    /// Corpus lines run so far.
    pub done: usize,
    /// Lines in the corpus.
    pub total: usize,
}

impl FitProgress {
    /// `done / total`, 1 for an empty corpus.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.done as f64 / self.total as f64
        }
    }
}

/// How to fit: K, which positions of each line count, and how many tokens are enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitOptions {
    /// Principal components per hidden state (K).
    pub components: usize,
    /// Leave position 0 of every line (the attention sink; see the [module docs](self)) out of
    /// the fit. `true` by default; `false` is `fit-pca --keep-first`.
    pub skip_first: bool,
    /// Fit on evenly spaced lines holding about this many tokens instead of every line
    /// ([`choose_lines`]); `None` runs the whole corpus (`fit-pca --all-lines`).
    pub token_budget: Option<usize>,
}

/// The tokens a map is fitted on by default: a quarter of the embedded corpus, which puts the
/// first-ever fit of the default model under half a minute on two cores. Measured on
/// SmolLM2-135M, the subspaces it finds are the whole corpus's: see `fit-pca --compare`.
pub const DEFAULT_TOKEN_BUDGET: usize = 6000;

impl Default for FitOptions {
    /// [`DEFAULT_COMPONENTS`], first positions skipped, [`DEFAULT_TOKEN_BUDGET`].
    fn default() -> Self {
        Self {
            components: DEFAULT_COMPONENTS,
            skip_first: true,
            token_budget: Some(DEFAULT_TOKEN_BUDGET),
        }
    }
}

/// The lines to fit on: all of them when they hold no more than `budget` tokens, else every
/// k-th (k fractional, from the first line on): a systematic sample that spreads over every
/// part of the corpus and weighs each line, so each token, alike. `tokens[i]` is line `i`'s
/// count of fitted positions.
pub fn choose_lines(tokens: &[usize], budget: Option<usize>) -> Vec<usize> {
    let total: usize = tokens.iter().sum();
    let lines = tokens.len();
    let keep = match budget {
        Some(budget) if total > budget => {
            (lines as u128 * budget as u128).div_ceil(total as u128) as usize
        }
        _ => return (0..lines).collect(),
    };
    let keep = keep.clamp(1, lines);
    (0..keep).map(|j| j * lines / keep).collect()
}

/// How a map's positions are named in its metadata and in messages: `skip-first` or `every`.
pub fn positions_name(skip_first: bool) -> &'static str {
    if skip_first { "skip-first" } else { "every" }
}

/// What the fit saw, for summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitStats {
    pub lines: usize,
    /// Positions fitted (the first of each line not among them unless kept).
    pub tokens: u64,
    /// First positions left out ([`FitOptions::skip_first`]): one per non-empty line.
    pub skipped_first: u64,
    /// Lines cut to the model's context.
    pub truncated_lines: usize,
    /// Tokens in the percentile sample.
    pub sampled_tokens: usize,
    pub elapsed: Duration,
    /// Of `elapsed`: running the model (tokenising included).
    pub model_time: Duration,
    /// Of `elapsed`: covariance updates and the sample.
    pub accumulate_time: Duration,
    /// Of `elapsed`: eigendecompositions and percentile ranges.
    pub solve_time: Duration,
}

/// Fit a map of `options.components` components of `loaded`'s hidden states on `corpus`, on
/// the positions `options.skip_first` says (see the [module docs](self)). `identity` is
/// written into the map's metadata (see [`super::identity::identify`]). `progress` is called
/// before the first line and after each; returning `ControlFlow::Break` cancels the fit
/// ([`MapError::Cancelled`]). The model is reset before each line and after the fit.
pub fn fit(
    loaded: &mut LoadedModel,
    identity: &ModelIdentity,
    corpus: &Corpus,
    options: FitOptions,
    progress: &mut dyn FnMut(FitProgress) -> ControlFlow<()>,
) -> Result<(ProjectionMap, FitStats)> {
    let start = Instant::now();
    let FitOptions {
        components,
        skip_first,
        token_budget,
    } = options;
    let first = usize::from(skip_first);
    let info = loaded.model.info().clone();
    let (n_states, width, context) = (info.n_layers + 1, info.width, info.context_length);
    if components == 0 || components > width {
        return Err(MapError::BadComponentCount { components, width });
    }
    let corpus_lines: Vec<&str> = corpus.lines().collect();
    if corpus_lines.is_empty() {
        return Err(MapError::EmptyCorpus);
    }
    let model_start = Instant::now();
    let mut encoded = Vec::with_capacity(corpus_lines.len());
    for line in &corpus_lines {
        encoded.push(loaded.tokenizer.encode(line, false)?);
    }
    let fitted: Vec<usize> = encoded
        .iter()
        .map(|ids| ids.len().min(context).saturating_sub(first))
        .collect();
    let chosen = choose_lines(&fitted, token_budget);
    let total = chosen.len();
    let mut accumulators: Vec<Covariance> = (0..n_states).map(|_| Covariance::new(width)).collect();
    let mut reservoir = Reservoir::for_model(n_states, width);
    let (mut tokens, mut skipped_first) = (0u64, 0u64);
    let mut truncated_lines = 0;
    let (mut model_time, mut accumulate_time) = (model_start.elapsed(), Duration::ZERO);
    if progress(FitProgress { done: 0, total }).is_break() {
        return Err(MapError::Cancelled);
    }
    for (done, &line) in chosen.iter().enumerate() {
        let model_start = Instant::now();
        let mut ids = std::mem::take(&mut encoded[line]);
        if ids.len() > context {
            ids.truncate(context);
            truncated_lines += 1;
        }
        if !ids.is_empty() {
            loaded.model.reset();
            let step = loaded.model.forward(&ids)?;
            let n = step.n_new;
            if step.hidden.len() != n_states * n * width {
                return Err(MapError::Model(crate::llm::LlmError::Compute(format!(
                    "the model returned {} hidden values for {n} tokens, expected {}",
                    step.hidden.len(),
                    n_states * n * width
                ))));
            }
            let accumulate_start = Instant::now();
            model_time += accumulate_start - model_start;
            add_step(&mut accumulators, &step.hidden, n, width, first);
            reservoir.offer_step(&step.hidden, n, first);
            accumulate_time += accumulate_start.elapsed();
            tokens += n.saturating_sub(first) as u64;
            skipped_first += n.min(first) as u64;
        }
        if progress(FitProgress {
            done: done + 1,
            total,
        })
        .is_break()
        {
            loaded.model.reset();
            return Err(MapError::Cancelled);
        }
    }
    loaded.model.reset();
    if tokens < 2 {
        return Err(MapError::TooFewTokens(tokens));
    }
    let solve_start = Instant::now();
    let pcas = fit_all(&accumulators, components)?;
    drop(accumulators);
    let layers = pcas
        .iter()
        .enumerate()
        .map(|(state, pca)| layer_map(pca, state, &reservoir))
        .collect();
    let metadata = MapMetadata {
        model_identity: identity.sha256.clone(),
        model_name: identity.name.clone(),
        n_layers: info.n_layers,
        width,
        components,
        corpus_source: corpus.source().to_owned(),
        corpus_sha256: corpus.sha256(),
        corpus_lines: total,
        tokens,
        skip_first,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let unusable = |InvalidMap(message)| {
        // Only non-finite hidden states can get here.
        MapError::Model(crate::llm::LlmError::Compute(format!(
            "the fitted map is unusable: {message}"
        )))
    };
    let map = ProjectionMap::new(metadata, layers).map_err(unusable)?;
    let cloud = corpus_cloud(&map, &reservoir, CLOUD_POINTS).map_err(unusable)?;
    let map = map.with_cloud(cloud).map_err(unusable)?;
    let stats = FitStats {
        lines: total,
        tokens,
        skipped_first,
        truncated_lines,
        sampled_tokens: reservoir.len(),
        elapsed: start.elapsed(),
        model_time,
        accumulate_time,
        solve_time: solve_start.elapsed(),
    };
    Ok((map, stats))
}

/// Cores to spread per-layer work over (the covariance updates and eigendecompositions are
/// independent per layer).
fn threads(layers: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(layers)
        .max(1)
}

/// Add one step's positions from `first` on to every layer's accumulator: layer `l`'s rows
/// are the `l`th `n × width` slice of the layer-major hidden states.
fn add_step(accumulators: &mut [Covariance], hidden: &[f32], n: usize, width: usize, first: usize) {
    let stride = n * width;
    let skip = first.min(n) * width;
    let per_thread = accumulators.len().div_ceil(threads(accumulators.len()));
    std::thread::scope(|scope| {
        for (chunk_index, chunk) in accumulators.chunks_mut(per_thread).enumerate() {
            scope.spawn(move || {
                for (i, acc) in chunk.iter_mut().enumerate() {
                    let layer = chunk_index * per_thread + i;
                    acc.add_batch(&hidden[layer * stride + skip..(layer + 1) * stride]);
                }
            });
        }
    });
}

fn fit_all(accumulators: &[Covariance], components: usize) -> Result<Vec<Pca>> {
    let per_thread = accumulators.len().div_ceil(threads(accumulators.len()));
    std::thread::scope(|scope| {
        let handles: Vec<_> = accumulators
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|acc| Pca::fit(acc, components))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut pcas = Vec::with_capacity(accumulators.len());
        for handle in handles {
            match handle.join() {
                Ok(result) => pcas.extend(result?),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
        Ok(pcas)
    })
}

/// Up to `points` of the sample (every `len / points`-th, so the whole corpus is covered: the
/// reservoir fills in corpus order before it starts replacing), each state placed as
/// [`ProjectionMap::project_into`] would place it.
fn corpus_cloud(
    map: &ProjectionMap,
    reservoir: &Reservoir,
    points: usize,
) -> std::result::Result<CorpusCloud, InvalidMap> {
    let (width, k) = (map.metadata().width, map.components());
    let taken: Vec<usize> = if reservoir.len() <= points {
        (0..reservoir.len()).collect()
    } else {
        (0..points).map(|i| i * reservoir.len() / points).collect()
    };
    let mut h = vec![0.0f32; width];
    let mut coords = vec![0.0f32; k];
    let layers = (0..map.n_states())
        .map(|state| {
            taken
                .iter()
                .map(|&token| {
                    reservoir.state_into(token, state, &mut h);
                    map.raw_coordinates_into(state, &h, &mut coords);
                    map.normalise_into(state, &mut coords);
                    [coords[0], coords.get(1).copied().unwrap_or(0.0)]
                })
                .collect()
        })
        .collect();
    CorpusCloud::new(layers)
}

/// Store `pca` as f32 with its percentile ranges from the sample's `state`th hidden states.
fn layer_map(pca: &Pca, state: usize, reservoir: &Reservoir) -> LayerMap {
    let width = pca.mean.len();
    let k = pca.components.len();
    let mean: Vec<f32> = pca.mean.iter().map(|&m| m as f32).collect();
    let components: Vec<f32> = pca.components.iter().flatten().map(|&c| c as f32).collect();
    // coordinates[c][t]: component c of sampled token t, computed in f64 from the f16 sample.
    let mut coordinates = vec![Vec::with_capacity(reservoir.len()); k];
    let mut h = vec![0.0f32; width];
    for token in 0..reservoir.len() {
        reservoir.state_into(token, state, &mut h);
        for (c, component) in pca.components.iter().enumerate() {
            let value: f64 = component
                .iter()
                .zip(&h)
                .zip(&pca.mean)
                .map(|((w, &x), m)| w * (f64::from(x) - m))
                .sum();
            coordinates[c].push(value as f32);
        }
    }
    let (lo, hi) = coordinates
        .iter_mut()
        .map(|values| {
            (
                percentile(values, PERCENTILES.0),
                percentile(values, PERCENTILES.1),
            )
        })
        .unzip();
    LayerMap {
        mean,
        components,
        explained_variance: pca.explained_variance.iter().map(|&v| v as f32).collect(),
        total_variance: pca.total_variance as f32,
        lo,
        hi,
    }
}

#[cfg(test)]
mod tests {
    use super::choose_lines;

    #[test]
    fn a_corpus_within_the_budget_runs_every_line() {
        assert_eq!(choose_lines(&[5, 0, 7], Some(12)), [0, 1, 2]);
        assert_eq!(choose_lines(&[5, 0, 7], None), [0, 1, 2]);
        assert!(choose_lines(&[], Some(10)).is_empty());
    }

    #[test]
    fn a_larger_corpus_runs_evenly_spaced_lines_holding_about_the_budget() {
        // 1000 lines of 20 tokens, a budget of 5000: every 4th line, from the first.
        let tokens = vec![20; 1000];
        let chosen = choose_lines(&tokens, Some(5000));
        assert_eq!(chosen.len(), 250);
        assert!(chosen.iter().enumerate().all(|(j, &line)| line == 4 * j));
        // A fractional stride still spreads from the first line to near the last.
        let chosen = choose_lines(&vec![3; 1115], Some(1000));
        assert_eq!(chosen.len(), 334);
        assert_eq!(chosen[0], 0);
        assert!(*chosen.last().unwrap() >= 1110);
        assert!(
            chosen
                .windows(2)
                .all(|w| w[1] - w[0] >= 3 && w[1] - w[0] <= 4)
        );
        // A budget below one line still fits one.
        assert_eq!(choose_lines(&tokens, Some(1)), [0]);
    }
}
