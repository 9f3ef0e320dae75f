//! A bounded, uniform, reproducible sample of the token positions a fit uses (position 0 of
//! each line is not offered unless the fit keeps it; see [`super::fit`]), with every
//! layer's hidden state of each: after the components are fitted, the sample is projected to
//! find each component's percentile range. Reservoir sampling (Vitter's algorithm R) keeps
//! memory fixed whatever the corpus size; a fixed seed makes the same corpus give the same
//! sample, so refitting gives the same map. States are stored as f16: the ranges only need a
//! few digits, and it halves the memory.

use half::f16;

use crate::rng::SplitMix64;

/// Sample size cap, in tokens.
pub const MAX_TOKENS: usize = 2048;
/// Fewer tokens than this make percentile estimates too coarse; the budget never goes below.
pub const MIN_TOKENS: usize = 256;
/// Memory the sample may take, in bytes (about 1,900 tokens of the default model's 31 × 576
/// states).
pub const BUDGET_BYTES: usize = 64 << 20;
/// The seed every fit uses.
pub const SEED: u64 = 0x6c61_7465_6e74_2d63;

pub struct Reservoir {
    capacity: usize,
    n_states: usize,
    width: usize,
    /// `[len][n_states][width]`, `len ≤ capacity`.
    rows: Vec<f16>,
    /// Positions offered so far.
    seen: u64,
    rng: SplitMix64,
}

impl Reservoir {
    /// Room for as many tokens of `n_states × width` as [`BUDGET_BYTES`] allows, within
    /// [`MIN_TOKENS`]..=[`MAX_TOKENS`].
    pub fn for_model(n_states: usize, width: usize) -> Self {
        let per_token = (n_states * width * std::mem::size_of::<f16>()).max(1);
        let capacity = (BUDGET_BYTES / per_token).clamp(MIN_TOKENS, MAX_TOKENS);
        Self::with_capacity(capacity, n_states, width, SEED)
    }

    pub fn with_capacity(capacity: usize, n_states: usize, width: usize, seed: u64) -> Self {
        Self {
            capacity,
            n_states,
            width,
            rows: Vec::new(),
            seen: 0,
            rng: SplitMix64(seed),
        }
    }

    /// Offer the positions `first..n_new` of a forward step (`first = 1` leaves the line's
    /// first token out): `hidden` is layer-major `[n_states][n_new][width]`, as
    /// [`crate::llm::Step::hidden`].
    pub fn offer_step(&mut self, hidden: &[f32], n_new: usize, first: usize) {
        let (states, width) = (self.n_states, self.width);
        debug_assert_eq!(hidden.len(), states * n_new * width);
        let row_len = states * width;
        for pos in first..n_new {
            let slot = if self.seen < self.capacity as u64 {
                self.rows.resize(self.rows.len() + row_len, f16::ZERO);
                Some(self.seen as usize)
            } else {
                // Uniform in 0..=seen (Lemire's multiply-shift; bias < 2^-40 here).
                let j =
                    ((u128::from(self.rng.next_u64()) * u128::from(self.seen + 1)) >> 64) as usize;
                (j < self.capacity).then_some(j)
            };
            self.seen += 1;
            let Some(slot) = slot else { continue };
            let row = &mut self.rows[slot * row_len..(slot + 1) * row_len];
            for (state, out) in row.chunks_exact_mut(width).enumerate() {
                let start = (state * n_new + pos) * width;
                for (o, &x) in out.iter_mut().zip(&hidden[start..start + width]) {
                    *o = f16::from_f32(x);
                }
            }
        }
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.rows.len() / (self.n_states * self.width).max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The `state`'s hidden state of sampled token `token`, widened into `out` (`[width]`).
    pub fn state_into(&self, token: usize, state: usize, out: &mut [f32]) {
        let start = (token * self.n_states + state) * self.width;
        for (o, x) in out.iter_mut().zip(&self.rows[start..start + self.width]) {
            *o = x.to_f32();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One state of width 1 whose value is the position's index.
    fn offer(reservoir: &mut Reservoir, from: usize, n: usize) {
        let hidden: Vec<f32> = (from..from + n).map(|i| i as f32).collect();
        reservoir.offer_step(&hidden, n, 0);
    }

    fn held(reservoir: &Reservoir) -> Vec<f32> {
        let mut out = [0.0];
        (0..reservoir.len())
            .map(|t| {
                reservoir.state_into(t, 0, &mut out);
                out[0]
            })
            .collect()
    }

    #[test]
    fn keeps_everything_until_full_then_a_uniform_reproducible_sample() {
        let mut reservoir = Reservoir::with_capacity(100, 1, 1, 1);
        offer(&mut reservoir, 0, 60);
        assert_eq!(
            held(&reservoir),
            (0..60).map(|i| i as f32).collect::<Vec<_>>()
        );
        let mut total = 60;
        while total < 2000 {
            offer(&mut reservoir, total, 37);
            total += 37;
        }
        assert_eq!(reservoir.len(), 100);
        let sample = held(&reservoir);
        // Uniform over 0..2035: the mean is near 1017 (standard error ≈ 59).
        let mean = sample.iter().sum::<f32>() / 100.0;
        assert!((mean - 1017.0).abs() < 250.0, "mean {mean}");
        assert!(sample.iter().any(|&x| x < 500.0) && sample.iter().any(|&x| x > 1500.0));

        let mut again = Reservoir::with_capacity(100, 1, 1, 1);
        let mut total = 0;
        while total < 2000 {
            let n = if total == 0 { 60 } else { 37 };
            offer(&mut again, total, n);
            total += n;
        }
        assert_eq!(held(&again), sample);
    }

    #[test]
    fn stores_every_state_of_a_position() {
        // Two states, width 2, three positions: value = 100·state + 10·pos + dim.
        let hidden: Vec<f32> = (0..2)
            .flat_map(|s| {
                (0..3).flat_map(move |p| (0..2).map(move |d| (100 * s + 10 * p + d) as f32))
            })
            .collect();
        let mut reservoir = Reservoir::with_capacity(8, 2, 2, 0);
        reservoir.offer_step(&hidden, 3, 0);
        let mut out = [0.0; 2];
        reservoir.state_into(2, 1, &mut out);
        assert_eq!(out, [120.0, 121.0]);
        // From position 1 on: positions 1 and 2 only.
        let mut skipping = Reservoir::with_capacity(8, 2, 2, 0);
        skipping.offer_step(&hidden, 3, 1);
        assert_eq!(skipping.len(), 2);
        skipping.state_into(0, 0, &mut out);
        assert_eq!(out, [10.0, 11.0]);
        skipping.state_into(1, 1, &mut out);
        assert_eq!(out, [120.0, 121.0]);
        skipping.offer_step(&hidden[..4], 1, 1);
        assert_eq!(
            skipping.len(),
            2,
            "a one-token step with its first skipped adds nothing"
        );
        assert_eq!(Reservoir::for_model(31, 576).capacity(), 1879);
        assert_eq!(Reservoir::for_model(3, 64).capacity(), MAX_TOKENS);
    }
}
