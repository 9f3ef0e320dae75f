//! Picks the next token. The temperature may change at every token (the track's loudness sets
//! it); everything else is fixed per run. A seeded generator makes the same seed and the same
//! temperature sequence give the same tokens on every machine.

use crate::rng::SplitMix64;

/// Sampling settings that stay fixed during a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerConfig {
    /// Keep only the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p`; 1.0 keeps all.
    pub top_p: f32,
    /// Divides positive (multiplies negative) logits of recently seen tokens; 1.0 is off.
    pub repetition_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    pub repetition_window: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            top_k: 40,
            top_p: 0.95,
            repetition_penalty: 1.1,
            repetition_window: 64,
        }
    }
}

/// Temperatures at or below this are treated as greedy decoding.
pub const GREEDY_BELOW: f32 = 1e-4;

pub struct Sampler {
    config: SamplerConfig,
    rng: SplitMix64,
    /// Reused between calls so sampling does not allocate per token.
    candidates: Vec<(f32, u32)>,
}

impl Sampler {
    pub fn new(config: SamplerConfig, seed: u64) -> Self {
        Self {
            config,
            rng: SplitMix64(seed),
            candidates: Vec::new(),
        }
    }

    pub fn config(&self) -> SamplerConfig {
        self.config
    }

    pub fn reseed(&mut self, seed: u64) {
        self.rng = SplitMix64(seed);
    }

    /// The next token given the newest position's `logits`, the `temperature` for this token
    /// and the tokens so far (for the repetition penalty).
    pub fn sample(&mut self, logits: &[f32], temperature: f32, history: &[u32]) -> u32 {
        let penalty = self.config.repetition_penalty;
        let recent = &history[history.len().saturating_sub(self.config.repetition_window)..];
        self.candidates.clear();
        self.candidates
            .extend(logits.iter().enumerate().map(|(id, &logit)| {
                let id = id as u32;
                let logit = if logit.is_nan() {
                    f32::NEG_INFINITY
                } else {
                    logit
                };
                let penalised = if penalty != 1.0 && recent.contains(&id) {
                    if logit > 0.0 {
                        logit / penalty
                    } else {
                        logit * penalty
                    }
                } else {
                    logit
                };
                (penalised, id)
            }));
        // Every draw consumes exactly one number, greedy or not, so switching temperature
        // mid-run never shifts the random sequence of later tokens.
        let draw = self.rng.next_f64();
        if self.candidates.is_empty() {
            return 0;
        }
        if temperature.is_nan() || temperature <= GREEDY_BELOW {
            return argmax(&self.candidates);
        }

        // Most likely first; ties broken by id so the order is total and reproducible. With a
        // top-k, the k best are selected first and only they are sorted (the same k in the
        // same order as sorting all, without sorting a whole vocabulary per token).
        let order = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let top_k = self.config.top_k;
        if top_k > 0 && top_k < self.candidates.len() {
            self.candidates.select_nth_unstable_by(top_k - 1, order);
            self.candidates.truncate(top_k);
        }
        self.candidates.sort_unstable_by(order);
        let max = self.candidates[0].0;
        if max == f32::NEG_INFINITY {
            return self.candidates[0].1;
        }
        let mut total = 0.0_f64;
        for candidate in &mut self.candidates {
            let weight = (f64::from(candidate.0 - max) / f64::from(temperature)).exp();
            candidate.0 = weight as f32;
            total += weight;
        }
        if self.config.top_p < 1.0 {
            let mut cumulative = 0.0;
            let keep = self
                .candidates
                .iter()
                .position(|c| {
                    cumulative += f64::from(c.0) / total;
                    cumulative >= f64::from(self.config.top_p)
                })
                .map_or(self.candidates.len(), |i| i + 1);
            self.candidates.truncate(keep);
            total = self.candidates.iter().map(|c| f64::from(c.0)).sum();
        }
        let mut target = draw * total;
        for &(weight, id) in &self.candidates {
            target -= f64::from(weight);
            if target < 0.0 {
                return id;
            }
        }
        self.candidates[self.candidates.len() - 1].1
    }
}

fn argmax(candidates: &[(f32, u32)]) -> u32 {
    candidates
        .iter()
        .fold(
            candidates[0],
            |best, &c| if c.0 > best.0 { c } else { best },
        )
        .1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> SamplerConfig {
        SamplerConfig {
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            repetition_window: 0,
        }
    }

    #[test]
    fn zero_temperature_is_greedy_with_lowest_id_on_ties() {
        let mut sampler = Sampler::new(plain(), 1);
        assert_eq!(sampler.sample(&[0.1, 3.0, 3.0, -1.0], 0.0, &[]), 1);
        assert_eq!(sampler.sample(&[f32::NAN, 0.5, 0.2], 0.0, &[]), 1);
    }

    #[test]
    fn same_seed_and_temperatures_give_the_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 7919) % 13) as f32 * 0.3).collect();
        let run = |seed| {
            let mut sampler = Sampler::new(SamplerConfig::default(), seed);
            let mut history = Vec::new();
            for step in 0..200 {
                let temperature = 0.2 + (step % 7) as f32 * 0.2;
                let token = sampler.sample(&logits, temperature, &history);
                history.push(token);
            }
            history
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn frequencies_follow_the_softmax_at_temperature_one() {
        let logits = [0.0_f32, 1.0, 2.0];
        let mut sampler = Sampler::new(plain(), 7);
        let mut counts = [0usize; 3];
        let n = 60_000;
        for _ in 0..n {
            counts[sampler.sample(&logits, 1.0, &[]) as usize] += 1;
        }
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        for (i, &count) in counts.iter().enumerate() {
            let expected = logits[i].exp() / z;
            let seen = count as f32 / n as f32;
            assert!(
                (seen - expected).abs() < 0.01,
                "token {i}: {seen} vs {expected}"
            );
        }
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        let logits = [5.0_f32, 4.9, 0.0, -1.0, -2.0];
        let mut top_k = Sampler::new(
            SamplerConfig {
                top_k: 2,
                ..plain()
            },
            3,
        );
        let mut top_p = Sampler::new(
            SamplerConfig {
                top_p: 0.9,
                ..plain()
            },
            3,
        );
        for _ in 0..2000 {
            assert!(top_k.sample(&logits, 5.0, &[]) < 2);
            assert!(top_p.sample(&logits, 1.0, &[]) < 2);
        }
    }

    #[test]
    fn top_k_keeps_the_best_breaking_ties_by_id() {
        // 45 tokens tie at the top (every third id), the rest far below: a top-40 keeps the
        // 40 lowest of the tied ids and samples every one of them.
        let logits: Vec<f32> = (0..600)
            .map(|i| if i % 3 == 0 && i < 135 { 1.0 } else { -20.0 })
            .collect();
        let mut sampler = Sampler::new(
            SamplerConfig {
                top_k: 40,
                ..plain()
            },
            11,
        );
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5000 {
            seen.insert(sampler.sample(&logits, 1.0, &[]));
        }
        let kept: std::collections::BTreeSet<u32> = (0..40).map(|i| 3 * i).collect();
        assert_eq!(seen, kept);
    }

    #[test]
    fn repetition_penalty_steers_away_from_recent_tokens() {
        let logits = [2.0_f32, 1.9];
        let mut sampler = Sampler::new(
            SamplerConfig {
                repetition_penalty: 1.5,
                repetition_window: 4,
                ..plain()
            },
            0,
        );
        assert_eq!(sampler.sample(&logits, 0.0, &[0]), 1);
        assert_eq!(
            sampler.sample(&logits, 0.0, &[0, 1, 1, 1, 1]),
            0,
            "outside the window"
        );
    }
}
