//! The engines: a fixed number of model instances, each with its own KV cache, lent out one
//! request at a time. An engine keeps what its cache holds, so a request whose prompt
//! continues the previous one (the remote backend asking for one token at a time) runs only
//! the new tokens. A panic inside an engine is caught; the engine is loaded afresh.

use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use latent_choir::activation::ProjectionMap;
use latent_choir::llm::loader::{self, LoadedModel};
use latent_choir::llm::sampler::{Sampler, SamplerConfig};

/// Prompt positions run per step, aligned to the sequence's start (see `Engine::prepare`).
const PREFILL_CHUNK: usize = 16;

/// One generation's settings, with the prompt already in token ids.
#[derive(Debug, Clone)]
pub struct Job {
    pub ids: Vec<u32>,
    /// Tokens to generate at most (already cut to the context).
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: usize,
    pub seed: u64,
    /// Alternatives per token to report; `None`: no logprobs.
    pub logprobs: Option<usize>,
    pub states: bool,
    /// End-of-sequence tokens are never sampled.
    pub ignore_eos: bool,
}

/// One state's numbers for the `latent_choir` extension.
#[derive(Debug, Clone)]
pub struct StateNumbers {
    /// The state's map coordinates in [-1, 1]; empty without a map.
    pub coords: Vec<f32>,
    pub norm: f32,
    /// Mean attention entropy (nats) of the block that wrote the state; `None` for the
    /// embeddings.
    pub attention_entropy: Option<f32>,
    pub mlp_sparsity: Option<f32>,
}

/// One generated token as the engine reports it.
#[derive(Debug, Clone)]
pub struct Generated {
    pub id: u32,
    /// Natural-log probability of the token under the model (temperature 1, no cut).
    pub logprob: f32,
    /// The most likely tokens and their log-probabilities, most likely first.
    pub top: Vec<(u32, f32)>,
    /// Per hidden state, when asked for.
    pub states: Option<Vec<StateNumbers>>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-sequence token, or the caller stopped it (a stop string).
    Stop,
    /// `max_tokens` or the context.
    Length,
    /// The caller went away.
    Cancelled,
}

#[derive(Debug)]
pub enum EngineError {
    /// The model failed (an error value); the engine's cache was dropped.
    Model(String),
    /// The engine panicked; it was loaded afresh.
    Panicked(String),
}

pub struct Engine {
    loaded: LoadedModel,
    /// Tokens in the KV cache.
    cached: Vec<u32>,
    /// Logits after the last cached token (empty when nothing is cached).
    logits: Vec<f32>,
    /// The logits at the end of the last prompt run, and that prompt's length: the same prompt
    /// again starts from exactly these numbers.
    prompt_end: Option<(usize, Vec<f32>)>,
    /// Run prompts the same way whatever the cache holds (see `prepare`).
    exact: bool,
    /// Cached positions run that way (whole prompt chunks).
    canonical: usize,
    /// Prompt tokens run by the last job (how much the cache saved shows in the usage).
    pub last_prefill: usize,
}

impl Engine {
    pub fn new(loaded: LoadedModel, exact: bool) -> Self {
        Self {
            loaded,
            exact,
            cached: Vec::new(),
            logits: Vec::new(),
            prompt_end: None,
            canonical: 0,
            last_prefill: 0,
        }
    }

    /// Tokens the cache shares with `ids`.
    pub fn shared_prefix(&self, ids: &[u32]) -> usize {
        common_prefix(&self.cached, ids)
    }

    fn forget(&mut self) {
        self.loaded.model.reset();
        self.cached.clear();
        self.logits.clear();
        self.prompt_end = None;
        self.canonical = 0;
    }

    /// Brings the cache to `ids` and leaves the logits after its last token in `self.logits`,
    /// running only what the cache does not already hold.
    fn prepare(&mut self, ids: &[u32]) -> Result<(), String> {
        let common = common_prefix(&self.cached, ids);
        if common == ids.len()
            && let Some((len, logits)) = &self.prompt_end
            && *len == ids.len()
            && self.loaded.model.truncate(ids.len())
        {
            self.logits = logits.clone();
            self.cached.truncate(ids.len());
            self.canonical = self.canonical.min(ids.len());
            self.last_prefill = 0;
            return Ok(());
        }
        // A product over n rows sums in another order than over m rows, so a position's keys
        // and values depend (in the last bits) on the batch it ran in: reusing part of a prompt
        // can move the logits by ~1e-6, which changes a sampled token only at a near tie. The
        // last prompt token always runs alone, so a prompt repeated or run cold gives the same
        // bits. With `exact`, every prompt also runs the same way whatever the cache held — in
        // chunks of PREFILL_CHUNK positions aligned to the start — and only whole chunks are
        // reused, so a prompt growing by a token reruns the partial chunk at its end.
        let last = ids.len() - 1;
        let mut keep = common.min(last);
        if self.exact {
            keep = keep.min(self.canonical);
            keep -= keep % PREFILL_CHUNK;
        }
        if keep < self.cached.len() {
            if keep == 0 || !self.loaded.model.truncate(keep) {
                self.forget();
                keep = 0;
            } else {
                self.cached.truncate(keep);
                self.canonical = self.canonical.min(keep);
            }
        }
        self.prompt_end = None;
        // The prompt's own states are not reported: skip capturing them.
        self.loaded.model.set_capture(false);
        let mut result = Ok(());
        let mut position = keep;
        while position < ids.len() && result.is_ok() {
            let end = if position == last {
                ids.len()
            } else if self.exact {
                ((position / PREFILL_CHUNK + 1) * PREFILL_CHUNK).min(last)
            } else {
                last
            };
            result = self.loaded.model.forward(&ids[position..end]).map(|step| {
                self.logits = step.logits;
            });
            if self.exact && end % PREFILL_CHUNK == 0 && end <= last {
                self.canonical = end;
            }
            position = end;
        }
        self.loaded.model.set_capture(true);
        if let Err(e) = result {
            self.forget();
            return Err(e.to_string());
        }
        self.cached.extend_from_slice(&ids[keep..]);
        self.prompt_end = Some((ids.len(), self.logits.clone()));
        self.last_prefill = ids.len() - keep;
        Ok(())
    }

    /// Runs `job`, handing each token to `sink` (which may stop it). Returns how it ended and
    /// how many tokens were generated.
    pub fn generate(
        &mut self,
        job: &Job,
        map: Option<&ProjectionMap>,
        sink: &mut dyn FnMut(Generated) -> ControlFlow<Finish>,
    ) -> Result<(Finish, usize), String> {
        self.prepare(&job.ids)?;
        let config = SamplerConfig {
            top_k: job.top_k,
            top_p: job.top_p,
            repetition_penalty: 1.0,
            repetition_window: 0,
        };
        let mut sampler = Sampler::new(config, job.seed);
        let info = self.loaded.model.info().clone();
        let vocab = self.loaded.tokenizer.vocab_size().min(self.logits.len());
        let mut generated = 0;
        let mut log_probs = Vec::new();
        while generated < job.max_tokens {
            if job.ignore_eos {
                for &eos in self.loaded.tokenizer.eos_ids() {
                    if let Some(l) = self.logits.get_mut(eos as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            let logits = &self.logits[..vocab];
            let id = sampler.sample(logits, job.temperature, &[]);
            if self.loaded.tokenizer.is_eos(id) {
                return Ok((Finish::Stop, generated));
            }
            log_softmax(logits, &mut log_probs);
            let logprob = log_probs
                .get(id as usize)
                .copied()
                .unwrap_or(f32::NEG_INFINITY);
            let top = match job.logprobs {
                Some(n) if n > 0 => top_n(&log_probs, n),
                _ => Vec::new(),
            };
            generated += 1;
            let last = generated == job.max_tokens;
            let room = self.loaded.model.position() < info.context_length;
            // The token itself is run when its states are wanted or another token follows.
            let mut states = None;
            if room && (job.states || !last) {
                self.loaded.model.set_capture(job.states);
                let step = self.loaded.model.forward(&[id]);
                self.loaded.model.set_capture(true);
                let step = step.map_err(|e| {
                    self.forget();
                    e.to_string()
                })?;
                self.cached.push(id);
                if job.states {
                    states = Some(state_numbers(&step, &info, map));
                }
                self.logits = step.logits;
            }
            let flow = sink(Generated {
                id,
                logprob,
                top,
                states,
            });
            if let ControlFlow::Break(finish) = flow {
                return Ok((finish, generated));
            }
            if !room || self.loaded.model.position() >= info.context_length {
                return Ok((Finish::Length, generated));
            }
        }
        Ok((Finish::Length, generated))
    }
}

fn state_numbers(
    step: &latent_choir::llm::Step,
    info: &latent_choir::llm::ModelInfo,
    map: Option<&ProjectionMap>,
) -> Vec<StateNumbers> {
    let (layers, width) = (info.n_layers, info.width);
    let coords = map.map(|m| (m.components(), m.project(&step.hidden, 1)));
    (0..=layers)
        .map(|state| {
            let h = step.hidden_state(state, 0, width);
            let block = state.checked_sub(1);
            StateNumbers {
                coords: coords
                    .as_ref()
                    .and_then(|(k, all)| all.get(state * k..(state + 1) * k))
                    .map(<[f32]>::to_vec)
                    .unwrap_or_default(),
                norm: h.iter().map(|v| v * v).sum::<f32>().sqrt(),
                attention_entropy: block.and_then(|b| step.attention_entropy.get(b).copied()),
                mlp_sparsity: block.and_then(|b| step.mlp_sparsity.get(b).copied()),
            }
        })
        .collect()
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Natural-log softmax of `logits` into `out` (NaN reads as impossible).
fn log_softmax(logits: &[f32], out: &mut Vec<f32>) {
    let max = logits
        .iter()
        .filter(|l| !l.is_nan())
        .fold(f32::NEG_INFINITY, |m, &l| m.max(l));
    let sum: f64 = logits
        .iter()
        .filter(|l| !l.is_nan())
        .map(|&l| f64::from(l - max).exp())
        .sum();
    let log_sum = sum.ln() as f32;
    out.clear();
    out.extend(logits.iter().map(|&l| {
        if l.is_nan() {
            f32::NEG_INFINITY
        } else {
            l - max - log_sum
        }
    }));
}

/// The `n` largest entries, largest first (ties by id).
fn top_n(log_probs: &[f32], n: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    for (id, &lp) in log_probs.iter().enumerate() {
        if best.len() == n && best.last().is_some_and(|&(_, worst)| lp <= worst) {
            continue;
        }
        let at = best.partition_point(|&(_, p)| p >= lp);
        best.insert(at, (id as u32, lp));
        best.truncate(n);
    }
    best
}

/// The engines and the queue in front of them.
pub struct Pool {
    state: Mutex<PoolState>,
    freed: Condvar,
    /// Requests that may wait for an engine besides those being served.
    queue: usize,
    queue_timeout: Duration,
    model_path: PathBuf,
    exact: bool,
}

struct PoolState {
    free: Vec<Engine>,
    waiting: usize,
}

/// Why no engine was lent.
#[derive(Debug, Clone, Copy)]
pub enum Busy {
    /// Every engine works and the queue is full.
    QueueFull,
    /// Waited in the queue for `queue_timeout` in vain.
    TimedOut,
}

impl Pool {
    pub fn new(
        engines: Vec<Engine>,
        queue: usize,
        queue_timeout: Duration,
        model_path: PathBuf,
        exact: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(PoolState {
                free: engines,
                waiting: 0,
            }),
            freed: Condvar::new(),
            queue,
            queue_timeout,
            model_path,
            exact,
        })
    }

    /// An engine for `ids`: a free one whose cache shares the most with them, else one that
    /// comes free while waiting in the queue.
    pub fn acquire(self: &Arc<Self>, ids: &[u32]) -> Result<Lent, Busy> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.free.is_empty() {
            if state.waiting >= self.queue {
                return Err(Busy::QueueFull);
            }
            state.waiting += 1;
            let (next, timeout) = self
                .freed
                .wait_timeout_while(state, self.queue_timeout, |s| s.free.is_empty())
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            state.waiting -= 1;
            if timeout.timed_out() && state.free.is_empty() {
                return Err(Busy::TimedOut);
            }
        }
        let best = (0..state.free.len())
            .max_by_key(|&i| state.free[i].shared_prefix(ids))
            .unwrap_or(0);
        let engine = state.free.swap_remove(best);
        Ok(Lent {
            engine: Some(engine),
            pool: Arc::clone(self),
        })
    }

    fn give_back(&self, engine: Engine) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.free.push(engine);
        drop(state);
        self.freed.notify_one();
    }
}

/// An engine on loan; it goes back to the pool when dropped.
pub struct Lent {
    engine: Option<Engine>,
    pool: Arc<Pool>,
}

impl Lent {
    /// Runs `job` on the engine, catching a panic (the engine is then loaded afresh).
    pub fn run(
        &mut self,
        job: &Job,
        map: Option<&ProjectionMap>,
        sink: &mut dyn FnMut(Generated) -> ControlFlow<Finish>,
    ) -> Result<(Finish, usize, usize), EngineError> {
        let Some(engine) = self.engine.as_mut() else {
            return Err(EngineError::Model("no engine".into()));
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            let outcome = engine.generate(job, map, sink);
            outcome.map(|(finish, n)| (finish, n, engine.last_prefill))
        }));
        match result {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(message)) => Err(EngineError::Model(message)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "unknown panic".to_owned());
                eprintln!("an engine panicked ({message}); loading it again");
                match loader::load(&self.pool.model_path) {
                    Ok(loaded) => self.engine = Some(Engine::new(loaded, self.pool.exact)),
                    Err(e) => {
                        // Keep the old one, cache dropped: better than one engine fewer.
                        eprintln!("could not reload the model: {e}");
                        if let Some(engine) = self.engine.as_mut() {
                            engine.forget();
                        }
                    }
                }
                Err(EngineError::Panicked(message))
            }
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            self.pool.give_back(engine);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_and_top() {
        let mut out = Vec::new();
        log_softmax(&[0.0, 1.0, f32::NAN, 2.0], &mut out);
        let total: f32 = out.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert_eq!(out[2], f32::NEG_INFINITY);
        let top = top_n(&out, 2);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![3, 1]);
    }
}
