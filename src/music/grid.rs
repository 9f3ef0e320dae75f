//! The token clock: at which samples of a block the next tokens are due.
//!
//! While the host transport plays, token steps sit on the host's beat grid: step `k` is at beat
//! `k / R` for `R` tokens per beat. Every block re-anchors on the host's beat position, so nothing
//! drifts however long the session runs, tempo changes take effect at the block they arrive in,
//! and a loop jump or relocation is noticed and reported. When the transport is stopped (and in
//! the standalone app and CLI) the clock free-runs at a rate in tokens per second.
//!
//! Rounding: a step fires on the first sample whose position is at or after the step's ideal
//! position, i.e. at `ceil(x)` where `x` is the step's ideal offset in (fractional) samples from
//! the block's first sample.
//!
//! Hosts round the positions they report: Ardour to its 1/1920-beat tick, others to whole
//! samples, and some jitter by a few samples from block to block. A block that starts within
//! [`relocation_threshold`] of where the previous one predicted is the transport playing on: the
//! clock continues from its own exact prediction (so rounding never moves a step), and only
//! re-syncs to the host's figure when the two drift apart by more than half that allowance
//! (tempo ramps inside a block). Anything further is a relocation (seek, loop jump). An `x` that is within floating-point noise above an integer (at most
//! a thousandth of a sample, usually far less) counts as that integer, so a step that falls exactly
//! on a sample fires on it rather than one sample late because the host's beat position was a
//! few ulps off. A step between the previous sample and the block start (`-1 < x < 0`) fires on
//! the block's first sample; that also holds right after a jump, so a loop landing a hair after a
//! grid line still plays that step.
//!
//! Everything here is plain arithmetic on the caller's stack: no allocation, no locks.

/// Tokens per beat are limited to this range (the parameter's range; also keeps a block's step
/// count small).
pub const TOKENS_PER_BEAT_RANGE: (f64, f64) = (0.25, 4.0);
/// Free-running rates are limited to this range, in tokens per second.
pub const TOKENS_PER_SECOND_RANGE: (f64, f64) = (0.01, 100.0);

/// Largest correction for floating-point noise, in samples (see the module docs).
const MAX_TOLERANCE: f64 = 1e-3;

/// What the host says about one block while its transport plays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HostBlock {
    /// Beat (quarter-note) position of the block's first sample; may jump anywhere.
    pub beat: f64,
    /// Tempo in BPM for this block.
    pub tempo: f64,
    pub sample_rate: f64,
    /// Samples in the block.
    pub len: u32,
    /// Tokens per beat (R); clamped to [`TOKENS_PER_BEAT_RANGE`].
    pub tokens_per_beat: f64,
}

/// One block of free-running time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FreeBlock {
    pub sample_rate: f64,
    /// Samples in the block.
    pub len: u32,
    /// Rate in tokens per second; clamped to [`TOKENS_PER_SECOND_RANGE`]. Zero, negative or NaN
    /// pauses the clock (no steps, no progress).
    pub tokens_per_second: f64,
}

/// A grid step that falls inside the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridStep {
    /// Sample offset within the block, `0..len`.
    pub offset: u32,
    /// Step index: `round(beat * R)` on the transport grid (negative in a pre-roll), the count
    /// since the clock started when free-running.
    pub step: i64,
}

/// Finest beat position hosts send, with a factor of two to spare (CLAP's `clap_beattime` counts
/// 2^31 per beat).
const HOST_BEAT_RESOLUTION: f64 = 1.0 / (1u64 << 30) as f64;

/// Where step `k` lies, in fractional samples from the block's first sample.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Placement {
    /// `x = (k / per_beat - beat) * samples_per_beat`.
    Beats {
        beat: f64,
        per_beat: f64,
        samples_per_beat: f64,
    },
    /// `x = (k - phase) * samples_per_step - shift`: phase is the step phase at the anchor,
    /// shift the samples from the anchor to the block start (kept apart so a constant rate is
    /// exact).
    Free {
        phase: f64,
        samples_per_step: f64,
        shift: f64,
    },
}

impl Placement {
    fn position(&self, k: i64) -> f64 {
        match *self {
            Placement::Beats {
                beat,
                per_beat,
                samples_per_beat,
            } => (k as f64 / per_beat - beat) * samples_per_beat,
            Placement::Free {
                phase,
                samples_per_step,
                shift,
            } => (k as f64 - phase) * samples_per_step - shift,
        }
    }

    /// Noise allowance for positions near step `k`, in samples: a few ulps of the largest
    /// quantity that went into the position, and for host positions the resolution of CLAP's
    /// fixed-point beat time (2^-31 beat, ~1e-5 samples at 120 BPM), which truncates a block
    /// start that should sit exactly on a step to just before it.
    fn tolerance(&self, k: i64) -> f64 {
        let (noise, resolution) = match *self {
            Placement::Beats {
                beat,
                per_beat,
                samples_per_beat,
            } => (
                (beat.abs() + (k as f64 / per_beat).abs() + 1.0) * samples_per_beat,
                samples_per_beat * HOST_BEAT_RESOLUTION,
            ),
            Placement::Free {
                phase,
                samples_per_step,
                shift,
            } => (
                (phase.abs() + (k as f64).abs() + 1.0) * samples_per_step + shift.abs(),
                0.0,
            ),
        };
        (1e-6 + 64.0 * f64::EPSILON * noise + resolution).min(MAX_TOLERANCE)
    }

    /// The sample step `k` fires on, relative to the block start (may be negative or past the
    /// block). Monotone in `k`.
    fn offset(&self, k: i64) -> i64 {
        // `as` saturates, so absurd positions cannot wrap.
        (self.position(k) - self.tolerance(k)).ceil() as i64
    }

    /// The first step that fires at or after sample `target`, searching from `estimate`.
    fn first_at_or_after(&self, target: i64, estimate: i64) -> i64 {
        let mut k = estimate;
        // The estimate is within a step or two; the bound only guards against pathological input.
        for _ in 0..64 {
            if self.offset(k) < target {
                k += 1;
            } else if self.offset(k - 1) >= target {
                k -= 1;
            } else {
                break;
            }
        }
        k
    }
}

/// The steps that fall inside one block, in order. A plain `Copy` iterator: the clock has already
/// moved on, so dropping it early loses nothing but the steps themselves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridSteps {
    /// The grid re-anchored at this block: the first block after a reset or a change between
    /// transport and free-running, or the host's position moved discontinuously (loop jump,
    /// relocation, going backwards). Sounding notes belong to the old position: release them.
    pub jumped: bool,
    placement: Placement,
    next: i64,
    end: i64,
}

impl GridSteps {
    fn empty(jumped: bool) -> Self {
        Self {
            jumped,
            placement: Placement::Free {
                phase: 0.0,
                samples_per_step: 1.0,
                shift: 0.0,
            },
            next: 0,
            end: 0,
        }
    }
}

impl Iterator for GridSteps {
    type Item = GridStep;

    fn next(&mut self) -> Option<GridStep> {
        if self.next >= self.end {
            return None;
        }
        let k = self.next;
        self.next += 1;
        // Only a step carried over from the previous block by noise can sit before sample 0.
        let offset = self.placement.offset(k).max(0);
        Some(GridStep {
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
            step: k,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.end.saturating_sub(self.next)).unwrap_or(0);
        (n, Some(n))
    }
}

impl ExactSizeIterator for GridSteps {}

/// Host rounding allowance in beats: four of Ardour's 1/1920-beat ticks.
const ROUNDING_BEATS: f64 = 4.0 / 1920.0;
/// Host rounding allowance in samples (hosts that round to samples, or jitter).
const ROUNDING_SAMPLES: f64 = 8.0;

/// The largest difference between a block's reported position and the previous block's
/// prediction that still counts as the transport playing on, in beats: whichever of
/// [`ROUNDING_BEATS`] and [`ROUNDING_SAMPLES`] is longer (about a millisecond at 120 BPM). A real
/// seek or loop is longer than that; one shorter would not be heard as one.
pub fn relocation_threshold(samples_per_beat: f64) -> f64 {
    ROUNDING_BEATS.max(ROUNDING_SAMPLES / samples_per_beat)
}

/// What the clock remembers between blocks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Nothing to continue from.
    Unanchored,
    Transport {
        /// Beat position the next block should start at if the host plays on.
        expected_beat: f64,
        /// The largest deviation from `expected_beat` that is still rounding, in beats at the
        /// last block's tempo.
        threshold: f64,
        per_beat: f64,
        /// First step not yet fired.
        next: i64,
    },
    Free {
        /// Step phase at the anchor sample.
        phase: f64,
        /// Samples from the anchor to the start of the next block.
        since_anchor: u64,
        sample_rate: f64,
        rate: f64,
        /// First step not yet fired.
        next: i64,
    },
}

/// Turns host time (or free-running time) into token steps, block by block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenClock {
    mode: Mode,
}

impl Default for TokenClock {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenClock {
    pub const fn new() -> Self {
        Self {
            mode: Mode::Unanchored,
        }
    }

    /// Forget everything: the next block re-anchors (and reports `jumped`); free-running starts
    /// again at step 0 on its first sample.
    pub fn reset(&mut self) {
        self.mode = Mode::Unanchored;
    }

    /// The steps in a block while the transport plays. Invalid host data (NaN or non-positive
    /// tempo or sample rate, non-finite position) gives no steps and makes the next valid block
    /// re-anchor.
    pub fn host_block(&mut self, block: &HostBlock) -> GridSteps {
        let valid = block.beat.is_finite()
            && block.tempo.is_finite()
            && block.tempo > 0.0
            && block.sample_rate.is_finite()
            && block.sample_rate > 0.0
            && !block.tokens_per_beat.is_nan();
        if !valid {
            let was_anchored = self.mode != Mode::Unanchored;
            self.mode = Mode::Unanchored;
            return GridSteps::empty(was_anchored);
        }
        let (min_r, max_r) = TOKENS_PER_BEAT_RANGE;
        let per_beat = block.tokens_per_beat.clamp(min_r, max_r);
        let samples_per_beat = block.sample_rate * 60.0 / block.tempo;
        // Where this block starts: the host's figure, or the clock's own prediction when the
        // difference is only the host's rounding.
        let (beat, continuing) = match self.mode {
            Mode::Transport {
                expected_beat,
                threshold,
                ..
            } => {
                let deviation = (block.beat - expected_beat).abs();
                if deviation <= threshold * 0.5 {
                    (expected_beat, true)
                } else {
                    (block.beat, deviation <= threshold)
                }
            }
            _ => (block.beat, false),
        };
        let placement = Placement::Beats {
            beat,
            per_beat,
            samples_per_beat,
        };
        // Where the grid would be if nothing had changed: a step at or after the block start.
        let from_position = || placement.first_at_or_after(0, (beat * per_beat).ceil() as i64);

        let (jumped, next) = match self.mode {
            Mode::Transport {
                per_beat: previous_per_beat,
                next,
                ..
            } if continuing => {
                if previous_per_beat != per_beat {
                    (false, from_position())
                } else {
                    // Continuing: carry the step count so noise can neither skip nor repeat one.
                    (false, next)
                }
            }
            _ => (true, from_position()),
        };

        let len = i64::from(block.len);
        let end_estimate = ((beat + len as f64 / samples_per_beat) * per_beat).ceil() as i64;
        let end = placement.first_at_or_after(len, end_estimate).max(next);
        self.mode = Mode::Transport {
            expected_beat: beat + len as f64 / samples_per_beat,
            threshold: relocation_threshold(samples_per_beat),
            per_beat,
            next: end,
        };
        GridSteps {
            jumped,
            placement,
            next,
            end,
        }
    }

    /// The steps in a block of free-running time. The first block after a reset or after the
    /// transport stops has a step on its first sample.
    pub fn free_block(&mut self, block: &FreeBlock) -> GridSteps {
        let (min_rate, max_rate) = TOKENS_PER_SECOND_RANGE;
        let running = block.sample_rate.is_finite()
            && block.sample_rate > 0.0
            && block.tokens_per_second.is_finite()
            && block.tokens_per_second > 0.0;
        let rate = block.tokens_per_second.clamp(min_rate, max_rate);

        let (jumped, mut phase, mut since_anchor, next) = match self.mode {
            Mode::Free {
                phase,
                since_anchor,
                sample_rate,
                rate: previous_rate,
                next,
            } => {
                if running && (previous_rate != rate || sample_rate != block.sample_rate) {
                    // Re-anchor at this block so the new rate applies from here on.
                    let moved = since_anchor as f64 * previous_rate / sample_rate;
                    (false, phase + moved, 0, next)
                } else {
                    (false, phase, since_anchor, next)
                }
            }
            _ => (true, 0.0, 0, 0),
        };
        if !running {
            // Paused: keep the phase (a fresh start stays fresh) and wait for a valid rate.
            if let Mode::Free { .. } = self.mode {
                return GridSteps::empty(false);
            }
            self.mode = Mode::Unanchored;
            return GridSteps::empty(jumped);
        }

        let samples_per_step = block.sample_rate / rate;
        let placement = Placement::Free {
            phase,
            samples_per_step,
            shift: since_anchor as f64,
        };
        let len = i64::from(block.len);
        let end_estimate =
            (phase + (since_anchor as f64 + len as f64) / samples_per_step).ceil() as i64;
        let end = placement.first_at_or_after(len, end_estimate).max(next);
        since_anchor += u64::from(block.len);
        // Keep the anchor near so the shift stays an exact integer in f64 forever.
        if since_anchor > 1 << 50 {
            phase += since_anchor as f64 / samples_per_step;
            since_anchor = 0;
        }
        self.mode = Mode::Free {
            phase,
            since_anchor,
            sample_rate: block.sample_rate,
            rate,
            next: end,
        };
        GridSteps {
            jumped,
            placement,
            next,
            end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small deterministic generator for block sizes (no dependency, same sequence every run).
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn block_len(&mut self) -> u32 {
            (self.next() % 4096) as u32 + 1
        }
    }

    fn floor_div(a: i128, b: i128) -> i128 {
        a.div_euclid(b)
    }
    fn ceil_div(a: i128, b: i128) -> i128 {
        -((-a).div_euclid(b))
    }

    /// One host block described exactly: integer sample rate and tempo, the start position as a
    /// numerator over `60 * sample_rate` beats.
    #[derive(Clone, Copy)]
    struct ExactBlock {
        beat_num: i128,
        tempo: i128,
        len: i128,
        /// The host relocated here (the clock must say `jumped`).
        jump: bool,
    }

    /// Ideal (absolute sample, step) pairs, computed in exact rational arithmetic from the
    /// definition: a step fires on the first sample whose beat is >= the step's beat; after a
    /// jump, counting starts as if a sample preceded the block at the block's tempo.
    fn ideal_steps(blocks: &[ExactBlock], sr: i128, rn: i128, rd: i128) -> Vec<(i64, i64)> {
        let d = 60 * sr; // beats = num / d; a sample lasts tempo / d beats
        let mut out = Vec::new();
        let mut start = 0i128;
        let mut prev_last: Option<i128> = None;
        for (i, b) in blocks.iter().enumerate() {
            let before = match prev_last {
                Some(p) if !b.jump && i > 0 => p,
                _ => b.beat_num - b.tempo,
            };
            let last = b.beat_num + (b.len - 1) * b.tempo;
            // Step k's beat is k * rd / rn = k * rd * d / (rn * d).
            let k_lo = floor_div(before * rn, rd * d) + 1;
            let k_hi = floor_div(last * rn, rd * d);
            for k in k_lo..=k_hi {
                let offset = ceil_div(k * rd * d - b.beat_num * rn, rn * b.tempo).max(0);
                assert!(offset < b.len);
                out.push(((start + offset) as i64, k as i64));
            }
            prev_last = Some(last);
            start += b.len;
        }
        out
    }

    /// Run the clock over exact blocks, giving it the beat position as a host would: an f64
    /// counter advanced block by block (or set on a jump).
    fn run_clock(blocks: &[ExactBlock], sr: i128, per_beat: f64) -> (Vec<(i64, i64)>, Vec<usize>) {
        run_clock_with(blocks, sr, per_beat, &|beat| beat)
    }

    /// As [`run_clock`], with the block positions passed through `host` (how a host rounds).
    fn run_clock_with(
        blocks: &[ExactBlock],
        sr: i128,
        per_beat: f64,
        host: &impl Fn(f64) -> f64,
    ) -> (Vec<(i64, i64)>, Vec<usize>) {
        let mut clock = TokenClock::new();
        let mut out = Vec::new();
        let mut jumps = Vec::new();
        let mut start = 0i64;
        let mut beat = 0.0f64;
        let d = (60 * sr) as f64;
        for (i, b) in blocks.iter().enumerate() {
            if i == 0 || b.jump {
                beat = b.beat_num as f64 / d;
            }
            let steps = clock.host_block(&HostBlock {
                beat: host(beat),
                tempo: b.tempo as f64,
                sample_rate: sr as f64,
                len: b.len as u32,
                tokens_per_beat: per_beat,
            });
            if steps.jumped {
                jumps.push(i);
            }
            let mut last_offset = None;
            for step in steps {
                assert!(i128::from(step.offset) < b.len);
                assert!(last_offset.is_none_or(|o| o <= step.offset));
                last_offset = Some(step.offset);
                out.push((start + i64::from(step.offset), step.step));
            }
            beat += b.len as f64 * b.tempo as f64 / d;
            start += b.len as i64;
        }
        (out, jumps)
    }

    /// Blocks of random sizes with the tempo changing at some boundaries and the given jumps
    /// (block index → new position in beats as numerator over 60 * sr).
    fn make_blocks(
        rng: &mut XorShift,
        count: usize,
        tempos: &[i128],
        jumps: &[(usize, i128)],
    ) -> Vec<ExactBlock> {
        let mut blocks = Vec::with_capacity(count);
        let mut beat_num = 0i128;
        let mut tempo = tempos[0];
        for i in 0..count {
            let mut jump = false;
            if let Some(&(_, to)) = jumps.iter().find(|(at, _)| *at == i) {
                beat_num = to;
                jump = true;
            }
            if i > 0 && rng.next().is_multiple_of(7) {
                tempo = tempos[(rng.next() % tempos.len() as u64) as usize];
            }
            let len = i128::from(rng.block_len());
            blocks.push(ExactBlock {
                beat_num,
                tempo,
                len,
                jump,
            });
            beat_num += len * tempo;
        }
        blocks
    }

    #[test]
    fn steady_120_bpm_two_per_beat_is_exact() {
        let sr = 48_000;
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let blocks = make_blocks(&mut rng, 3000, &[120], &[]);
        let (got, jumps) = run_clock(&blocks, sr, 2.0);
        assert_eq!(jumps, vec![0]);
        let total: i128 = blocks.iter().map(|b| b.len).sum();
        let ideal: Vec<(i64, i64)> = (0..)
            .map(|k: i64| (k * 12_000, k))
            .take_while(|&(s, _)| i128::from(s) < total)
            .collect();
        assert!(ideal.len() > 400);
        assert_eq!(got, ideal);
        assert_eq!(got, ideal_steps(&blocks, sr, 2, 1));
    }

    #[test]
    fn clap_fixed_point_beat_positions_stay_exact() {
        // CLAP sends positions as integer 2^-31 beats, truncated: a block starting exactly on
        // a step may arrive a hair early and must not push the step a sample late.
        let clap = |beat: f64| (beat * 2_147_483_648.0).floor() / 2_147_483_648.0;
        for (seed, sr) in [(5u64, 48_000i128), (6, 44_100)] {
            let mut rng = XorShift(seed);
            let blocks = make_blocks(&mut rng, 1500, &[120, 90], &[]);
            let (got, _) = run_clock_with(&blocks, sr, 2.0, &clap);
            assert_eq!(got, ideal_steps(&blocks, sr, 2, 1), "sr {sr}");
        }
    }

    #[test]
    fn tempo_changes_and_rates_match_the_exact_grid() {
        let tempos = [120, 90, 140, 133, 60, 200, 97, 171];
        for (seed, sr) in [(1u64, 48_000i128), (2, 44_100), (3, 96_000)] {
            for (rn, rd) in [(2i128, 1i128), (3, 1), (1, 4), (4, 1), (1, 1), (1, 2)] {
                let mut rng = XorShift(0x1234_5678 ^ (seed * 7919 + rn as u64 * 31 + rd as u64));
                let blocks = make_blocks(&mut rng, 1500, &tempos, &[]);
                let (got, jumps) = run_clock(&blocks, sr, rn as f64 / rd as f64);
                let ideal = ideal_steps(&blocks, sr, rn, rd);
                assert!(ideal.len() > 10, "{}", ideal.len());
                assert_eq!(jumps, vec![0], "tempo changes are not jumps");
                assert_eq!(got, ideal, "sr {sr} R {rn}/{rd}");
            }
        }
    }

    #[test]
    fn loop_jumps_and_relocations_are_reported_and_exact() {
        let sr = 48_000i128;
        let d = 60 * sr;
        let tempos = [120, 150, 87];
        let jumps = [
            (200, 8 * d),         // loop back to bar 3, exactly on a step
            (350, 8 * d),         // and again
            (500, 1003 * d / 10), // relocate forward off the grid (beat 100.3)
            (650, 4 * d + 1),     // a hair after a step: that step still fires
            (800, -2 * d),        // pre-roll: negative beats
        ];
        for (rn, rd) in [(2i128, 1i128), (3, 1), (1, 4)] {
            let mut rng = XorShift(0xDEAD_BEEF + rn as u64);
            let blocks = make_blocks(&mut rng, 1000, &tempos, &jumps);
            let (got, reported) = run_clock(&blocks, sr, rn as f64 / rd as f64);
            let mut expected = vec![0];
            expected.extend(jumps.iter().map(|&(at, _)| at));
            assert_eq!(reported, expected);
            assert_eq!(got, ideal_steps(&blocks, sr, rn, rd), "R {rn}/{rd}");
            // The loop start is on the grid: its step fires on the jump block's first sample.
            let start: i128 = blocks[..200].iter().map(|b| b.len).sum();
            let step = 8 * rn / rd;
            assert!(got.contains(&(start as i64, step as i64)));
        }
    }

    #[test]
    fn only_a_move_beyond_host_rounding_is_a_jump() {
        let block = |beat: f64| HostBlock {
            beat,
            tempo: 120.0,
            sample_rate: 48_000.0,
            len: 480,
            tokens_per_beat: 1.0,
        };
        let sample = 1.0 / 24_000.0; // beats per sample at 120 BPM, 48 kHz
        // 4 ticks of 1/1920 beat = 50 samples here, more than the 8-sample allowance.
        assert_eq!(relocation_threshold(24_000.0), 4.0 / 1920.0);
        let mut clock = TokenClock::new();
        assert!(clock.host_block(&block(0.0)).jumped);
        // Positions off the exact timeline by the host's rounding; after a jump the timeline
        // continues from where the host jumped to.
        let mut exact = 0.0;
        for (deviation, jump) in [
            (0.4, false),
            (-12.0, false),
            (30.0, false),
            (49.0, false),
            (-10.0, false),
            (51.0, true),
            (-51.0, true),
            (-2_400.0, true),
        ] {
            exact += 480.0 * sample;
            let beat = exact + deviation * sample;
            assert_eq!(clock.host_block(&block(beat)).jumped, jump, "{deviation}");
            if jump {
                exact = beat;
            }
        }
        // Going backwards a whole block is a jump, and the step at its start fires again.
        let mut clock = TokenClock::new();
        let first: Vec<_> = clock.host_block(&block(1.0)).collect();
        assert_eq!(first, vec![GridStep { offset: 0, step: 1 }]);
        let again = clock.host_block(&block(1.0));
        assert!(again.jumped);
        assert_eq!(again.collect::<Vec<_>>(), first);
    }

    /// How hosts round the positions they report: Ardour to 1/1920 beat, Reaper-like hosts to
    /// whole samples, Bitwig-like hosts with a few samples of jitter.
    fn host_rounding(kind: usize, sr: f64, tempo: f64) -> impl Fn(f64) -> f64 {
        let samples_per_beat = sr * 60.0 / tempo;
        move |beat: f64| match kind {
            0 => (beat * 1920.0).round() / 1920.0,
            1 => (beat * samples_per_beat).round() / samples_per_beat,
            _ => {
                // Deterministic jitter of up to ±3 samples, none on the first block.
                let hash = (beat * 1e6) as u64 % 7;
                beat + (hash as f64 - 3.0) * f64::from(u8::from(beat != 0.0)) / samples_per_beat
            }
        }
    }

    #[test]
    fn rounded_host_positions_play_the_exact_grid_without_jumps() {
        for tempo in [90i128, 120, 128, 150] {
            for (sizes, seed) in [(64i128, 0u64), (256, 0), (1024, 0), (2048, 0), (0, 77)] {
                for kind in 0..3 {
                    let sr = 48_000i128;
                    let mut rng = XorShift(seed.max(1));
                    let mut blocks = make_blocks(&mut rng, 600, &[tempo], &[]);
                    if sizes > 0 {
                        // Fixed sizes: rebuild the positions block by block.
                        let mut at = 0;
                        for b in &mut blocks {
                            b.len = sizes;
                            b.beat_num = at;
                            at += sizes * tempo;
                        }
                    }
                    let host = host_rounding(kind, sr as f64, tempo as f64);
                    for per_beat in [1.0, 2.0, 4.0] {
                        let (got, jumps) = run_clock_with(&blocks, sr, per_beat, &host);
                        assert_eq!(jumps, vec![0], "{tempo} BPM, blocks {sizes}, host {kind}");
                        let ideal = ideal_steps(&blocks, sr, per_beat as i128, 1);
                        assert_eq!(got, ideal, "{tempo} BPM, blocks {sizes}, host {kind}");
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_host_data_gives_no_steps_and_reanchors() {
        let mut clock = TokenClock::new();
        let good = HostBlock {
            beat: 0.0,
            tempo: 120.0,
            sample_rate: 48_000.0,
            len: 512,
            tokens_per_beat: 2.0,
        };
        assert_eq!(clock.host_block(&good).count(), 1);
        for bad in [
            HostBlock { tempo: 0.0, ..good },
            HostBlock {
                tempo: f64::NAN,
                ..good
            },
            HostBlock {
                beat: f64::INFINITY,
                ..good
            },
            HostBlock {
                sample_rate: -1.0,
                ..good
            },
            HostBlock {
                tokens_per_beat: f64::NAN,
                ..good
            },
        ] {
            assert_eq!(clock.host_block(&bad).count(), 0);
            assert!(clock.host_block(&good).jumped);
        }
        // Out-of-range R is clamped: 100 per beat behaves as 4.
        let mut clock = TokenClock::new();
        let steps = clock.host_block(&HostBlock {
            tokens_per_beat: 100.0,
            len: 24_000,
            ..good
        });
        assert_eq!(steps.len(), 4);
    }

    /// Free-running ideal in exact arithmetic: per block (len, rate), integer sample rate.
    fn ideal_free(blocks: &[(i128, i128)], sr: i128) -> Vec<(i64, i64)> {
        // Phase in steps = num / sr; a sample advances it by rate / sr.
        let mut out = Vec::new();
        let mut phase = 0i128;
        let mut start = 0i128;
        let mut before = -blocks[0].1; // virtual sample before the start
        for &(len, rate) in blocks {
            let last = phase + (len - 1) * rate;
            for k in (floor_div(before, sr) + 1)..=floor_div(last, sr) {
                let offset = ceil_div(k * sr - phase, rate).max(0);
                out.push(((start + offset) as i64, k as i64));
            }
            before = last;
            phase += len * rate;
            start += len;
        }
        out
    }

    #[test]
    fn free_running_is_exact_with_rate_changes() {
        for sr in [48_000i128, 44_100] {
            for rates in [&[4i128][..], &[7], &[3, 5, 8, 1, 13]] {
                let mut rng = XorShift(0xC0FF_EE00 + sr as u64 + rates.len() as u64);
                let mut blocks = Vec::new();
                let mut rate = rates[0];
                for i in 0..2000 {
                    if i > 0 && rng.next().is_multiple_of(5) {
                        rate = rates[(rng.next() % rates.len() as u64) as usize];
                    }
                    blocks.push((i128::from(rng.block_len()), rate));
                }
                let mut clock = TokenClock::new();
                let mut got = Vec::new();
                let mut start = 0i64;
                for (i, &(len, rate)) in blocks.iter().enumerate() {
                    let steps = clock.free_block(&FreeBlock {
                        sample_rate: sr as f64,
                        len: len as u32,
                        tokens_per_second: rate as f64,
                    });
                    assert_eq!(steps.jumped, i == 0);
                    got.extend(steps.map(|s| (start + i64::from(s.offset), s.step)));
                    start += len as i64;
                }
                let ideal = ideal_free(&blocks, sr);
                assert_eq!(got[0], (0, 0), "first step on the first sample");
                assert_eq!(got, ideal, "sr {sr} rates {rates:?}");
                if rates == [4] && sr == 48_000 {
                    assert!(got.iter().all(|&(s, k)| s == k * 12_000));
                }
            }
        }
    }

    #[test]
    fn modes_switch_and_reset_restart_cleanly() {
        let mut clock = TokenClock::new();
        let free = FreeBlock {
            sample_rate: 48_000.0,
            len: 1000,
            tokens_per_second: 2.0,
        };
        let first: Vec<_> = clock.free_block(&free).collect();
        assert_eq!(first, vec![GridStep { offset: 0, step: 0 }]);
        assert_eq!(clock.free_block(&free).count(), 0);
        // Transport starts mid-beat: re-anchors on the host's grid.
        let host = HostBlock {
            beat: 10.25,
            tempo: 120.0,
            sample_rate: 48_000.0,
            len: 24_000,
            tokens_per_beat: 1.0,
        };
        let steps = clock.host_block(&host);
        assert!(steps.jumped);
        // Beat 11 is 0.75 beats (18,000 samples) after 10.25.
        assert_eq!(
            steps.collect::<Vec<_>>(),
            vec![GridStep {
                offset: 18_000,
                step: 11
            }]
        );
        // Transport stops: free-running starts over with a step on the first sample.
        let steps = clock.free_block(&free);
        assert!(steps.jumped);
        assert_eq!(steps.collect::<Vec<_>>(), first);
        clock.reset();
        let steps = clock.free_block(&free);
        assert!(steps.jumped);
        assert_eq!(steps.collect::<Vec<_>>(), first);
        // A zero rate pauses without losing the phase.
        clock.reset();
        let _ = clock.free_block(&free); // step 0 at 0; phase now 1000 samples in
        let paused = FreeBlock {
            tokens_per_second: 0.0,
            ..free
        };
        assert_eq!(clock.free_block(&paused).count(), 0);
        let resumed: Vec<_> = clock
            .free_block(&FreeBlock {
                len: 24_000,
                ..free
            })
            .collect();
        assert_eq!(
            resumed,
            vec![GridStep {
                offset: 23_000,
                step: 1
            }]
        );
    }
}
