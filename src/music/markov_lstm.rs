//! Markov–LSTM phrases: a per-layer melody generator in which every number comes from the
//! model's hidden states. A Markov chain over scale degrees gives the melody its habits, a tiny
//! LSTM whose weights are the window's singular vectors leans it up or down and shapes velocity
//! and duration, and tension flattens the chain toward surprise.
//!
//! Per token and layer, [`MarkovLstm::step`] does:
//! 1. **Block norms.** The hidden vector is split into [`DEGREES`] contiguous blocks (sizes
//!    differ by at most one); their L2 norms, normalised to sum 1 (all zero → uniform), form `b`.
//!    The last [`WINDOW`] of them are kept.
//! 2. **Transition matrix.** `T = Σ b_{t-1} ⊗ b_t` over consecutive pairs in the window, plus a
//!    floor of `1e-6`, each row normalised to sum 1 (see [`MarkovLstm::transition`] for why pairs).
//!    With fewer than two tokens, `b ⊗ b`.
//! 3. **LSTM weights from an SVD.** The last [`WINDOW`] hidden vectors form `X` (k × width,
//!    uncentred, so that the first singular vector is the window's common direction and a single
//!    token still has one). Their right singular vectors come from the k × k Gram matrix `X Xᵀ`
//!    (Jacobi eigen solver): `Vt_i = Xᵀ u_i / σ_i`. Rows ordered by σ descending feed the gates
//!    input, forget, cell, output (one row per gate per hidden unit; missing rows are zero). Each
//!    row is shrunk to `INPUTS + LSTM_HIDDEN` values by averaging contiguous blocks and scaling by
//!    `sqrt(width)`, which keeps them O(1) (at most `sqrt(6)` for a unit row). The sign of each
//!    singular pair is fixed so the current token projects non-negatively onto it.
//! 4. **LSTM input** `x = [tension, previous degree in [-1, 1], σ1 / Σσ, change of the block-norm
//!    entropy]` (entropy divided by `ln DEGREES`, so the change lies in [-1, 1]), a standard LSTM
//!    step without biases; `c` is clamped to ±8 and `h`, `c` carry across tokens until
//!    [`MarkovLstm::reset`]. Non-finite hidden values count as 0 and the rest are clamped to ±1e6,
//!    so every output stays finite.
//! 5. **Output.** The previous degree's row is tilted, `p_j ∝ T[prev][j] · exp(3 · h0 · (j − prev)
//!    / DEGREES)`, flattened by tension, `p ← (1 − t/2) p + t / (2 · DEGREES)`, and sampled with a
//!    uniform hashed from (seed, index). Velocity is `0.5 + 0.35 · h1 + 0.25 · (t − 0.5)` in
//!    [0.05, 1]; duration is `0.25 + 0.75 · sigmoid(2 · c0)` quantised to quarters. The first
//!    token after a reset takes `argmax b` as its previous degree.
//!
//! Everything lives in fixed arrays plus one window buffer allocated in [`MarkovLstm::new`], so
//! `step` never allocates; the Gram matrix is updated one row per token, so a step costs a few
//! passes over the hidden vector.

/// Scale degrees the chain moves over.
pub const DEGREES: usize = 7;
/// Recent tokens the matrices are built from.
pub const WINDOW: usize = 8;
/// LSTM hidden size (the gates need `4 * LSTM_HIDDEN` singular vectors, at most `WINDOW`).
pub const LSTM_HIDDEN: usize = 2;

/// LSTM inputs: tension, previous degree, top singular share, entropy change.
const INPUTS: usize = 4;
/// Weight row length: inputs plus the recurrent hidden state.
const WEIGHT_COLS: usize = INPUTS + LSTM_HIDDEN;
/// One weight row per gate (input, forget, cell, output) per hidden unit.
const GATE_ROWS: usize = 4 * LSTM_HIDDEN;
/// Floor added to the transition counts so no step is ever impossible.
const TRANSITION_FLOOR: f32 = 1e-6;
/// How strongly `h0` tilts the chain up or down.
const TILT: f32 = 3.0;
/// Cell-state bound: beyond this `tanh` is flat anyway, and it keeps the state recoverable.
const CELL_LIMIT: f32 = 8.0;
/// Hidden values are clamped to this so squares and Gram sums stay far from overflow.
const VALUE_LIMIT: f32 = 1e6;
/// Bound for the shrunk weights (exact rows stay within `sqrt(WEIGHT_COLS)`; this only catches
/// round-off on small singular values).
const WEIGHT_LIMIT: f32 = 4.0;

const _: () = assert!(GATE_ROWS <= WINDOW && LSTM_HIDDEN >= 2 && DEGREES >= 2);

/// One note of the phrase.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct PhraseStep {
    /// Scale degree, `0..DEGREES`.
    pub degree: u8,
    /// Loudness, `0..=1`.
    pub velocity: f32,
    /// Fraction of the grid step the note sounds: 0.25, 0.5, 0.75 or 1.
    pub duration: f32,
}

impl PhraseStep {
    /// No phrase computed (the frame's default): degree 0, silent, shortest.
    pub const REST: PhraseStep = PhraseStep {
        degree: 0,
        velocity: 0.0,
        duration: 0.25,
    };
}

/// Melody generator for one hidden-state layer; all storage is allocated in [`MarkovLstm::new`].
pub struct MarkovLstm {
    width: usize,
    /// Last `WINDOW` sanitised hidden vectors, slot-major (`WINDOW × width`).
    window: Vec<f32>,
    /// Block-norm distribution of each slot.
    norms: [[f32; DEGREES]; WINDOW],
    /// Contiguous-block means of each slot, so shrunk singular vectors need no width-long pass.
    means: [[f64; WEIGHT_COLS]; WINDOW],
    /// Uncentred Gram matrix of the slots, updated one row and column per token.
    gram: [[f64; WINDOW]; WINDOW],
    /// Slot the next token is written to.
    head: usize,
    /// Filled slots; while below `WINDOW` they are `0..count`.
    count: usize,
    transition: [[f32; DEGREES]; DEGREES],
    weights: [[f32; WEIGHT_COLS]; GATE_ROWS],
    h: [f32; LSTM_HIDDEN],
    c: [f32; LSTM_HIDDEN],
    previous_degree: Option<usize>,
    previous_entropy: Option<f32>,
}

impl MarkovLstm {
    /// A generator for hidden vectors of `width` values.
    pub fn new(width: usize) -> Self {
        Self {
            width,
            window: vec![0.0; WINDOW * width],
            norms: [[0.0; DEGREES]; WINDOW],
            means: [[0.0; WEIGHT_COLS]; WINDOW],
            gram: [[0.0; WINDOW]; WINDOW],
            head: 0,
            count: 0,
            transition: [[1.0 / DEGREES as f32; DEGREES]; DEGREES],
            weights: [[0.0; WEIGHT_COLS]; GATE_ROWS],
            h: [0.0; LSTM_HIDDEN],
            c: [0.0; LSTM_HIDDEN],
            previous_degree: None,
            previous_entropy: None,
        }
    }

    /// Starts a new run: forgets the window, the chain and the LSTM state.
    pub fn reset(&mut self) {
        self.window.fill(0.0);
        self.norms = [[0.0; DEGREES]; WINDOW];
        self.means = [[0.0; WEIGHT_COLS]; WINDOW];
        self.gram = [[0.0; WINDOW]; WINDOW];
        self.head = 0;
        self.count = 0;
        self.transition = [[1.0 / DEGREES as f32; DEGREES]; DEGREES];
        self.weights = [[0.0; WEIGHT_COLS]; GATE_ROWS];
        self.h = [0.0; LSTM_HIDDEN];
        self.c = [0.0; LSTM_HIDDEN];
        self.previous_degree = None;
        self.previous_entropy = None;
    }

    /// The row-stochastic transition matrix of the last step (uniform before the first).
    ///
    /// It sums outer products of *consecutive* block-norm vectors: row `i` is then the average
    /// successor of tokens that had mass in block `i`, so rows differ when the layer's energy
    /// moves. A single `b ⊗ b` would not do: its row `i` is `b_i · b`, which normalises to `b`
    /// in every row, and the chain would forget where it is.
    pub fn transition(&self) -> &[[f32; DEGREES]; DEGREES] {
        &self.transition
    }

    /// Takes one token's hidden state at this layer and returns the next note. `tension` is
    /// clamped to [0, 1] (NaN → 0); sampling depends only on `seed`, `index` and the data, so
    /// callers that want layers to differ should mix the layer into `seed`.
    pub fn step(&mut self, hidden: &[f32], tension: f32, seed: u64, index: u32) -> PhraseStep {
        let tension = if tension.is_finite() {
            tension.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let slot = self.head;
        self.ingest(hidden, slot);
        self.head = (slot + 1) % WINDOW;
        self.count = (self.count + 1).min(WINDOW);
        self.update_gram(slot);
        self.update_transition(slot);
        let top_share = self.update_weights(slot);

        let b = self.norms[slot];
        let entropy = normalised_entropy(&b);
        let entropy_change = self.previous_entropy.map_or(0.0, |before| entropy - before);
        self.previous_entropy = Some(entropy);
        let previous = self
            .previous_degree
            .unwrap_or_else(|| argmax(&b))
            .min(DEGREES - 1);

        let x = [
            tension,
            previous as f32 / (DEGREES - 1) as f32 * 2.0 - 1.0,
            top_share,
            entropy_change,
        ];
        self.lstm(&x);

        let degree = self.sample(previous, tension, uniform(seed, index));
        self.previous_degree = Some(degree);
        let velocity = (0.5 + 0.35 * self.h[1] + 0.25 * (tension - 0.5)).clamp(0.05, 1.0);
        let duration = quantise_duration(0.25 + 0.75 * sigmoid(2.0 * self.c[0]));
        PhraseStep {
            degree: degree as u8,
            velocity: finite_or(velocity, 0.5),
            duration,
        }
    }

    /// Copies `hidden` (sanitised, zero-padded or truncated to `width`) into `slot` and records
    /// its block norms and block means.
    fn ingest(&mut self, hidden: &[f32], slot: usize) {
        let width = self.width;
        let row = &mut self.window[slot * width..(slot + 1) * width];
        let n = hidden.len().min(width);
        for (dst, &src) in row.iter_mut().zip(&hidden[..n]) {
            *dst = if src.is_finite() {
                src.clamp(-VALUE_LIMIT, VALUE_LIMIT)
            } else {
                0.0
            };
        }
        row[n..].fill(0.0);

        let mut norms = [0.0f64; DEGREES];
        for (m, norm) in norms.iter_mut().enumerate() {
            let (lo, hi) = block_range(m, DEGREES, width);
            *norm = row[lo..hi]
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt();
        }
        let total: f64 = norms.iter().sum();
        for (dst, norm) in self.norms[slot].iter_mut().zip(norms) {
            *dst = if total > 0.0 && total.is_finite() {
                (norm / total) as f32
            } else {
                1.0 / DEGREES as f32
            };
        }

        for (m, mean) in self.means[slot].iter_mut().enumerate() {
            let (lo, hi) = block_range(m, WEIGHT_COLS, width);
            *mean = if hi > lo {
                row[lo..hi].iter().map(|&v| f64::from(v)).sum::<f64>() / (hi - lo) as f64
            } else {
                0.0
            };
        }
    }

    /// Refreshes the Gram row and column of `slot` against every filled slot.
    fn update_gram(&mut self, slot: usize) {
        let width = self.width;
        let new = &self.window[slot * width..(slot + 1) * width];
        for other in 0..self.count {
            let g = dot(new, &self.window[other * width..(other + 1) * width]);
            self.gram[slot][other] = g;
            self.gram[other][slot] = g;
        }
    }

    /// Rebuilds the transition matrix from the window, oldest pair first.
    fn update_transition(&mut self, slot: usize) {
        let mut counts = [[0.0f32; DEGREES]; DEGREES];
        if self.count < 2 {
            let b = &self.norms[slot];
            add_outer(&mut counts, b, b);
        } else {
            let oldest = (self.head + WINDOW - self.count) % WINDOW;
            for t in 1..self.count {
                let before = &self.norms[(oldest + t - 1) % WINDOW];
                let after = &self.norms[(oldest + t) % WINDOW];
                add_outer(&mut counts, before, after);
            }
        }
        for (row, counted) in self.transition.iter_mut().zip(counts) {
            let total: f32 = counted.iter().map(|v| v + TRANSITION_FLOOR).sum();
            for (dst, v) in row.iter_mut().zip(counted) {
                *dst = (v + TRANSITION_FLOOR) / total;
            }
        }
    }

    /// Sets the gate weights from the window's right singular vectors; returns `σ1 / Σσ`.
    fn update_weights(&mut self, newest: usize) -> f32 {
        let k = self.count;
        let mut a = [[0.0f64; WINDOW]; WINDOW];
        for (dst, src) in a.iter_mut().zip(&self.gram).take(k) {
            dst[..k].copy_from_slice(&src[..k]);
        }
        let mut vectors = [[0.0f64; WINDOW]; WINDOW];
        jacobi_eigen(&mut a, &mut vectors, k);

        let mut order = [0usize; WINDOW];
        for (i, o) in order.iter_mut().enumerate() {
            *o = i;
        }
        let lambda = |i: usize| a[i][i];
        // Insertion sort: stable, so equal eigenvalues keep a reproducible order.
        for i in 1..k {
            let mut j = i;
            while j > 0 && lambda(order[j]) > lambda(order[j - 1]) {
                order.swap(j, j - 1);
                j -= 1;
            }
        }
        let largest = if k > 0 {
            lambda(order[0]).max(0.0)
        } else {
            0.0
        };
        let kept = |l: f64| l > 1e-24 && l > 1e-12 * largest;

        let scale = (self.width as f64).sqrt();
        let mut sigma_sum = 0.0f64;
        let mut sigma_top = 0.0f64;
        for (r, weights) in self.weights.iter_mut().enumerate() {
            *weights = [0.0; WEIGHT_COLS];
            if r >= k || !kept(lambda(order[r])) {
                continue;
            }
            let column = order[r];
            let sigma = lambda(column).sqrt();
            if r == 0 {
                sigma_top = sigma;
            }
            sigma_sum += sigma;
            let mut shrunk = [0.0f64; WEIGHT_COLS];
            for (s, means) in self.means.iter().enumerate().take(k) {
                let u = vectors[s][column];
                for (dst, mean) in shrunk.iter_mut().zip(means) {
                    *dst += u * mean;
                }
            }
            // Singular pairs have no sign; pick the one the current token projects onto
            // positively, or failing that the one whose largest shrunk weight is positive.
            let anchor = vectors[newest][column];
            let flip = if anchor.abs() > 1e-9 {
                anchor < 0.0
            } else {
                shrunk.iter().copied().fold(
                    0.0f64,
                    |best, v| if v.abs() > best.abs() { v } else { best },
                ) < 0.0
            };
            let factor = if flip { -scale } else { scale } / sigma;
            for (dst, v) in weights.iter_mut().zip(shrunk) {
                *dst = finite_or((v * factor) as f32, 0.0).clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT);
            }
        }
        if sigma_sum > 0.0 {
            finite_or((sigma_top / sigma_sum) as f32, 0.0)
        } else {
            0.0
        }
    }

    /// One LSTM step on `x` (sanitised); gates are input, forget, cell, output.
    fn lstm(&mut self, x: &[f32; INPUTS]) {
        let mut z = [[0.0f32; 4]; LSTM_HIDDEN];
        for (unit, gates) in z.iter_mut().enumerate() {
            for (gate, value) in gates.iter_mut().enumerate() {
                let w = &self.weights[gate * LSTM_HIDDEN + unit];
                let input: f32 = w[..INPUTS]
                    .iter()
                    .zip(x)
                    .map(|(w, &v)| w * finite_or(v, 0.0))
                    .sum();
                let recurrent: f32 = w[INPUTS..].iter().zip(&self.h).map(|(w, h)| w * h).sum();
                *value = finite_or(input + recurrent, 0.0);
            }
        }
        for ((&[zi, zf, zg, zo], c), h) in z.iter().zip(&mut self.c).zip(&mut self.h) {
            let next = sigmoid(zf) * *c + sigmoid(zi) * zg.tanh();
            *c = finite_or(next, 0.0).clamp(-CELL_LIMIT, CELL_LIMIT);
            *h = finite_or(sigmoid(zo) * c.tanh(), 0.0);
        }
    }

    /// Draws the next degree from `previous`'s row, tilted by `h0` and flattened by tension.
    fn sample(&self, previous: usize, tension: f32, u: f32) -> usize {
        let row = &self.transition[previous];
        let mut p = [0.0f32; DEGREES];
        let mut total = 0.0f32;
        for (j, (dst, &t)) in p.iter_mut().zip(row).enumerate() {
            let lean = TILT * self.h[0] * (j as f32 - previous as f32) / DEGREES as f32;
            *dst = t * lean.exp();
            total += *dst;
        }
        let keep = 1.0 - 0.5 * tension;
        let spread = 0.5 * tension / DEGREES as f32;
        for v in p.iter_mut() {
            let normalised = if total > 0.0 && total.is_finite() {
                *v / total
            } else {
                1.0 / DEGREES as f32
            };
            *v = keep * normalised + spread;
        }
        let target = u * p.iter().sum::<f32>();
        let mut cumulative = 0.0f32;
        for (j, v) in p.iter().enumerate() {
            cumulative += v;
            if target < cumulative {
                return j;
            }
        }
        DEGREES - 1
    }
}

/// Bounds of block `m` of `blocks` contiguous blocks over `len` values (sizes differ by ≤ 1).
fn block_range(m: usize, blocks: usize, len: usize) -> (usize, usize) {
    (m * len / blocks, (m + 1) * len / blocks)
}

/// Dot product in f64 with four accumulators, so the compiler can pipeline it.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks_a = a.chunks_exact(4);
    let chunks_b = b.chunks_exact(4);
    let tail: f64 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for ((acc, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *acc += f64::from(x) * f64::from(y);
        }
    }
    acc.iter().sum::<f64>() + tail
}

fn add_outer(
    counts: &mut [[f32; DEGREES]; DEGREES],
    before: &[f32; DEGREES],
    after: &[f32; DEGREES],
) {
    for (row, &bi) in counts.iter_mut().zip(before) {
        for (dst, &aj) in row.iter_mut().zip(after) {
            *dst += bi * aj;
        }
    }
}

/// Entropy of a distribution divided by `ln(DEGREES)`, so it lies in [0, 1].
fn normalised_entropy(b: &[f32; DEGREES]) -> f32 {
    let h: f32 = b.iter().filter(|&&p| p > 0.0).map(|&p| -p * p.ln()).sum();
    finite_or(h / (DEGREES as f32).ln(), 0.0)
}

/// Index of the first largest value.
fn argmax(b: &[f32; DEGREES]) -> usize {
    let mut best = 0;
    for (i, &v) in b.iter().enumerate() {
        if v > b[best] {
            best = i;
        }
    }
    best
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn finite_or(v: f32, fallback: f32) -> f32 {
    if v.is_finite() { v } else { fallback }
}

/// Rounds to the nearest of 0.25, 0.5, 0.75 and 1.
fn quantise_duration(d: f32) -> f32 {
    ((finite_or(d, 1.0) * 4.0).round() / 4.0).clamp(0.25, 1.0)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_4768_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [0, 1) that depends only on the run's seed and the token index.
fn uniform(seed: u64, index: u32) -> f32 {
    let bits = splitmix64(seed ^ u64::from(index).wrapping_mul(0xD1B5_4A32_D192_ED03)) >> 40;
    bits as f32 / (1u64 << 24) as f32
}

/// Cyclic Jacobi eigen solver for the leading `n × n` block of the symmetric `a`. Leaves the
/// eigenvalues on `a`'s diagonal and the eigenvectors in the columns of `v`. Small and exact
/// enough for the ≤ 8 × 8 Gram matrices here, and deterministic.
fn jacobi_eigen(a: &mut [[f64; WINDOW]; WINDOW], v: &mut [[f64; WINDOW]; WINDOW], n: usize) {
    let n = n.min(WINDOW);
    *v = [[0.0; WINDOW]; WINDOW];
    for (i, row) in v.iter_mut().enumerate().take(n) {
        row[i] = 1.0;
    }
    let total: f64 = a.iter().take(n).flat_map(|r| &r[..n]).map(|x| x * x).sum();
    for _sweep in 0..50 {
        let off: f64 = a
            .iter()
            .enumerate()
            .take(n)
            .flat_map(|(p, row)| &row[p + 1..n])
            .map(|x| x * x)
            .sum();
        if off <= 1e-30 * total || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p][q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                if !t.is_finite() {
                    continue;
                }
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut().take(n) {
                    let (x, y) = (row[p], row[q]);
                    row[p] = c * x - s * y;
                    row[q] = s * x + c * y;
                }
                let (upper, lower) = a.split_at_mut(q);
                for (x, y) in upper[p].iter_mut().zip(lower[0].iter_mut()).take(n) {
                    (*x, *y) = (c * *x - s * *y, s * *x + c * *y);
                }
                a[p][q] = 0.0;
                a[q][p] = 0.0;
                for row in v.iter_mut().take(n) {
                    let (x, y) = (row[p], row[q]);
                    row[p] = c * x - s * y;
                    row[q] = s * x + c * y;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic test data: xorshift64* mapped to [-1, 1).
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            bits as f32 / (1u64 << 23) as f32 - 1.0
        }

        fn vector(&mut self, width: usize) -> Vec<f32> {
            (0..width).map(|_| self.next()).collect()
        }
    }

    fn run(
        melody: &mut MarkovLstm,
        width: usize,
        seed: u64,
        steps: u32,
        tension: f32,
    ) -> Vec<PhraseStep> {
        let mut noise = Noise(0x1234_5678_9ABC_DEF1);
        (0..steps)
            .map(|i| melody.step(&noise.vector(width), tension, seed, i))
            .collect()
    }

    fn check(step: PhraseStep) {
        assert!((step.degree as usize) < DEGREES, "{step:?}");
        assert!(
            step.velocity.is_finite() && (0.0..=1.0).contains(&step.velocity),
            "{step:?}"
        );
        assert!([0.25, 0.5, 0.75, 1.0].contains(&step.duration), "{step:?}");
    }

    fn check_transition(melody: &MarkovLstm) {
        for row in melody.transition() {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
            assert!(row.iter().all(|v| v.is_finite() && *v > 0.0));
        }
    }

    #[test]
    fn same_inputs_give_same_outputs() {
        let a = run(&mut MarkovLstm::new(64), 64, 7, 64, 0.3);
        let b = run(&mut MarkovLstm::new(64), 64, 7, 64, 0.3);
        assert_eq!(a, b);
    }

    #[test]
    fn different_seeds_give_different_melodies() {
        let degrees = |seed| -> Vec<u8> {
            run(&mut MarkovLstm::new(64), 64, seed, 64, 0.5)
                .iter()
                .map(|s| s.degree)
                .collect()
        };
        assert_ne!(degrees(1), degrees(2));
        assert_ne!(degrees(1), degrees(0xDEAD_BEEF));
    }

    #[test]
    fn transition_rows_are_stochastic() {
        let mut melody = MarkovLstm::new(96);
        check_transition(&melody);
        let mut noise = Noise(99);
        for i in 0..40 {
            melody.step(&noise.vector(96), 0.2, 3, i);
            check_transition(&melody);
        }
    }

    #[test]
    fn outputs_stay_in_range_for_hostile_inputs() {
        for width in [1, 3, 576] {
            let mut melody = MarkovLstm::new(width);
            let mut noise = Noise(5 + width as u64);
            let inputs: Vec<Vec<f32>> = vec![
                vec![f32::NAN; width],
                vec![f32::INFINITY; width],
                vec![f32::NEG_INFINITY; width],
                vec![f32::MAX; width],
                vec![-1e30; width],
                vec![0.0; width],
                vec![1e-40; width],
                noise.vector(width),
                noise.vector(width + 5),
                noise.vector(width / 2),
                Vec::new(),
            ];
            for (i, hidden) in inputs.iter().cycle().take(3 * inputs.len()).enumerate() {
                for tension in [0.0, 0.5, 1.0, -3.0, 7.0, f32::NAN, f32::INFINITY] {
                    let step = melody.step(hidden, tension, i as u64, i as u32);
                    check(step);
                    check_transition(&melody);
                    assert!(melody.h.iter().chain(&melody.c).all(|v| v.is_finite()));
                    assert!(melody.weights.iter().flatten().all(|v| v.is_finite()));
                }
            }
        }
    }

    #[test]
    fn reset_replays_identically() {
        let mut melody = MarkovLstm::new(576);
        let first = run(&mut melody, 576, 11, 32, 0.4);
        melody.reset();
        let second = run(&mut melody, 576, 11, 32, 0.4);
        assert_eq!(first, second);
    }

    #[test]
    fn energy_in_one_block_pulls_degrees_there() {
        let width = 70;
        for target in [1usize, 5] {
            let mut melody = MarkovLstm::new(width);
            let mut noise = Noise(42 + target as u64);
            let (lo, hi) = block_range(target, DEGREES, width);
            let mut hits = 0;
            for i in 0..64 {
                let mut hidden: Vec<f32> = noise.vector(width).iter().map(|v| 0.05 * v).collect();
                for v in &mut hidden[lo..hi] {
                    *v *= 100.0;
                }
                if melody.step(&hidden, 0.0, 9, i).degree as usize == target {
                    hits += 1;
                }
            }
            assert!(hits > 40, "degree {target} hit {hits} of 64 times");
        }
    }

    #[test]
    fn uniform_energy_spreads_degrees() {
        let degrees: Vec<u8> = run(&mut MarkovLstm::new(128), 128, 4, 64, 0.5)
            .iter()
            .map(|s| s.degree)
            .collect();
        let distinct = (0..DEGREES as u8).filter(|d| degrees.contains(d)).count();
        assert!(distinct >= 4, "{degrees:?}");
    }

    #[test]
    fn jacobi_reconstructs_symmetric_matrix() {
        let entry = |i: usize, j: usize| {
            let key = (i.min(j) * WINDOW + i.max(j)) as u32;
            f64::from(uniform(2024, key)) * 2.0 - 1.0
        };
        let m: [[f64; WINDOW]; WINDOW] =
            std::array::from_fn(|i| std::array::from_fn(|j| entry(i, j)));
        let mut a = m;
        let mut v = [[0.0; WINDOW]; WINDOW];
        jacobi_eigen(&mut a, &mut v, WINDOW);
        for i in 0..WINDOW {
            for j in 0..WINDOW {
                let rebuilt: f64 = (0..WINDOW).map(|k| v[i][k] * a[k][k] * v[j][k]).sum();
                assert!(
                    (rebuilt - m[i][j]).abs() < 1e-5,
                    "({i},{j}): {rebuilt} vs {}",
                    m[i][j]
                );
                let gram: f64 = (0..WINDOW).map(|k| v[k][i] * v[k][j]).sum();
                let identity = if i == j { 1.0 } else { 0.0 };
                assert!((gram - identity).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn singular_vectors_are_unit_and_share_is_one_for_rank_one() {
        let width = 60;
        let mut melody = MarkovLstm::new(width);
        let base = Noise(8).vector(width);
        let mut share = 0.0;
        for i in 0..5 {
            let scaled: Vec<f32> = base.iter().map(|v| v * (1.0 + i as f32)).collect();
            melody.step(&scaled, 0.0, 1, i);
            share = melody.update_weights((melody.head + WINDOW - 1) % WINDOW);
        }
        assert!((share - 1.0).abs() < 1e-6, "share {share}");
        assert!(melody.weights[1..].iter().flatten().all(|&w| w == 0.0));
        // Every token is a positive multiple of `base`, so the signed first row is `base / |base|`.
        let norm = base.iter().map(|v| v * v).sum::<f32>().sqrt();
        for (m, &w) in melody.weights[0].iter().enumerate() {
            let (lo, hi) = block_range(m, WEIGHT_COLS, width);
            let mean = base[lo..hi].iter().sum::<f32>() / (hi - lo) as f32;
            let expected = mean / norm * (width as f32).sqrt();
            assert!((w - expected).abs() < 1e-4, "col {m}: {w} vs {expected}");
        }
    }

    #[test]
    #[ignore = "timing; run with --release -- --ignored --nocapture"]
    fn time_per_step() {
        for width in [576, 4096] {
            let mut melody = MarkovLstm::new(width);
            let mut noise = Noise(77);
            let inputs: Vec<Vec<f32>> = (0..64).map(|_| noise.vector(width)).collect();
            for (i, hidden) in inputs.iter().enumerate() {
                melody.step(hidden, 0.5, 1, i as u32);
            }
            let steps = 100_000u32;
            let start = std::time::Instant::now();
            let mut sink = 0u32;
            for i in 0..steps {
                let hidden = &inputs[i as usize % inputs.len()];
                let step = melody.step(std::hint::black_box(hidden), 0.5, 1, i);
                sink = sink.wrapping_add(u32::from(step.degree));
            }
            let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(steps);
            println!("width {width}: {micros:.2} µs per step (sink {sink})");
        }
    }
}
