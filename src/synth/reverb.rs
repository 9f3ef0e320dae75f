//! A Freeverb-style stereo reverb (Jezar's public-domain design: eight damped comb filters into
//! four all-passes per side, the right side's delays a little longer for width). Delay lengths
//! are scaled from the 44.1 kHz originals and allocated in [`Reverb::new`].
//!
//! Tails end: every stored value is flushed below -300 dB, and once input and output have stayed
//! below -140 dB for longer than the longest path through the network, the buffers are cleared
//! and the reverb goes idle, costing nothing until input arrives again.

use super::filter::flush;
use super::prefetch::prefetch_ring;

const COMB_TUNING: [usize; 8] = [1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617];
const ALLPASS_TUNING: [usize; 4] = [556, 441, 341, 225];
const STEREO_SPREAD: usize = 23;
const TUNING_RATE: f32 = 44_100.0;
const INPUT_GAIN: f32 = 0.015;
/// Brings the wet output to roughly the loudness of the dry input.
const WET_SCALE: f32 = 3.0;
const ALLPASS_FEEDBACK: f32 = 0.5;
const QUIET_INPUT: f32 = 1e-9;
const QUIET_OUTPUT: f32 = 1e-7;
/// Samples [`Reverb::process_block`] runs through the network at a time (a stack buffer).
const STRETCH: usize = 128;

#[derive(Debug)]
struct Comb {
    buf: Box<[f32]>,
    idx: usize,
    store: f32,
}

impl Comb {
    fn new(len: usize) -> Self {
        Self {
            buf: vec![0.0; len.max(1)].into_boxed_slice(),
            idx: 0,
            store: 0.0,
        }
    }

    #[inline]
    fn process(&mut self, x: f32, feedback: f32, damp1: f32, damp2: f32) -> f32 {
        let slot = &mut self.buf[self.idx];
        let out = *slot;
        // Every value that circulates passes through `store`: flushing it keeps the whole comb
        // free of subnormals.
        self.store = flush(out * damp2 + self.store * damp1);
        *slot = x + self.store * feedback;
        self.idx += 1;
        if self.idx == self.buf.len() {
            self.idx = 0;
        }
        out
    }

    fn clear(&mut self) {
        self.buf.fill(0.0);
        self.idx = 0;
        self.store = 0.0;
    }
}

/// [`Comb::process`] of a side's eight combs for every sample of `x`, their outputs added to
/// `acc` in comb order, bit for bit the same as one sample at a time. The eight damping
/// recursions run side by side in one vector (each alone is a chain of dependent operations),
/// over stretches where no delay line wraps.
fn combs_block(
    combs: &mut [Comb; 8],
    x: &[f32],
    acc: &mut [f32],
    feedback: f32,
    damp1: f32,
    damp2: f32,
) {
    let mut done = 0;
    while done < x.len() {
        let n = combs
            .iter()
            .fold(x.len() - done, |n, c| n.min(c.buf.len() - c.idx));
        let mut s = combs.each_ref().map(|c| c.store);
        let mut lines = combs.each_mut().map(|c| &mut c.buf[c.idx..c.idx + n]);
        let (x, acc) = (&x[done..done + n], &mut acc[done..done + n]);
        for i in 0..n {
            let out: [f32; 8] = std::array::from_fn(|k| lines[k][i]);
            for k in 0..8 {
                s[k] = flush(out[k] * damp2 + s[k] * damp1);
            }
            for (line, s) in lines.iter_mut().zip(s) {
                line[i] = x[i] + s * feedback;
            }
            acc[i] = out.iter().fold(acc[i], |a, &o| a + o);
        }
        for (c, s) in combs.iter_mut().zip(s) {
            c.store = s;
            c.idx += n;
            if c.idx == c.buf.len() {
                c.idx = 0;
            }
        }
        done += n;
    }
}

#[derive(Debug)]
struct Allpass {
    buf: Box<[f32]>,
    idx: usize,
}

impl Allpass {
    fn new(len: usize) -> Self {
        Self {
            buf: vec![0.0; len.max(1)].into_boxed_slice(),
            idx: 0,
        }
    }

    #[inline]
    fn process(&mut self, x: f32) -> f32 {
        // No flush needed: the input comes from flushed combs, and the idle detector clears the
        // all-pass long before its halving echoes could reach the subnormal range.
        let slot = &mut self.buf[self.idx];
        let b = *slot;
        *slot = x + b * ALLPASS_FEEDBACK;
        self.idx += 1;
        if self.idx == self.buf.len() {
            self.idx = 0;
        }
        b - x
    }

    /// [`Allpass::process`] for every sample of `io`, in place, bit for bit the same.
    fn process_block(&mut self, io: &mut [f32]) {
        let mut done = 0;
        while done < io.len() {
            let n = (io.len() - done).min(self.buf.len() - self.idx);
            let line = &mut self.buf[self.idx..self.idx + n];
            for (slot, x) in line.iter_mut().zip(&mut io[done..done + n]) {
                let b = *slot;
                *slot = *x + b * ALLPASS_FEEDBACK;
                *x = b - *x;
            }
            self.idx += n;
            if self.idx == self.buf.len() {
                self.idx = 0;
            }
            done += n;
        }
    }

    fn clear(&mut self) {
        self.buf.fill(0.0);
        self.idx = 0;
    }
}

#[derive(Debug)]
pub struct Reverb {
    combs: [[Comb; 8]; 2],
    allpasses: [[Allpass; 4]; 2],
    feedback: f32,
    damp1: f32,
    damp2: f32,
    size: f32,
    damping: f32,
    quiet: usize,
    idle_after: usize,
    idle: bool,
}

impl Reverb {
    /// Default room size and damping (0..=1).
    pub const DEFAULT_SIZE: f32 = 0.6;
    pub const DEFAULT_DAMPING: f32 = 0.5;

    /// Allocates the delay lines for `sample_rate`; call off the audio thread.
    pub fn new(sample_rate: f32) -> Self {
        let scale = if sample_rate.is_finite() && sample_rate > 0.0 {
            sample_rate / TUNING_RATE
        } else {
            1.0
        };
        let len = |n: usize| ((n as f32 * scale).round() as usize).max(1);
        let combs = |spread| COMB_TUNING.map(|n| Comb::new(len(n + spread)));
        let allpasses = |spread| ALLPASS_TUNING.map(|n| Allpass::new(len(n + spread)));
        let longest = len(COMB_TUNING[7] + STEREO_SPREAD)
            + ALLPASS_TUNING
                .iter()
                .map(|&n| len(n + STEREO_SPREAD))
                .sum::<usize>();
        let mut reverb = Self {
            combs: [combs(0), combs(STEREO_SPREAD)],
            allpasses: [allpasses(0), allpasses(STEREO_SPREAD)],
            feedback: 0.0,
            damp1: 0.0,
            damp2: 0.0,
            size: Self::DEFAULT_SIZE,
            damping: Self::DEFAULT_DAMPING,
            quiet: 0,
            idle_after: 2 * longest,
            idle: true,
        };
        reverb.update();
        reverb
    }

    /// Room size 0..=1: feedback 0.7..0.98 (decay of roughly 0.5 s to 8 s).
    pub fn set_size(&mut self, size: f32) {
        if size.is_finite() {
            self.size = size.clamp(0.0, 1.0);
            self.update();
        }
    }

    /// High-frequency damping 0..=1 (0 = bright tail).
    pub fn set_damping(&mut self, damping: f32) {
        if damping.is_finite() {
            self.damping = damping.clamp(0.0, 1.0);
            self.update();
        }
    }

    pub fn size(&self) -> f32 {
        self.size
    }

    pub fn damping(&self) -> f32 {
        self.damping
    }

    fn update(&mut self) {
        self.feedback = 0.7 + 0.28 * self.size;
        self.damp1 = 0.4 * self.damping;
        self.damp2 = 1.0 - self.damp1;
    }

    /// Silence the tail at once.
    pub fn clear(&mut self) {
        for c in self.combs.iter_mut().flatten() {
            c.clear();
        }
        for a in self.allpasses.iter_mut().flatten() {
            a.clear();
        }
        self.quiet = 0;
        self.idle = true;
    }

    /// Whether the tail has ended (the reverb holds only zeros and skips work).
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// Starts loading the stretch of every delay line the next `frames` samples go through.
    pub fn prefetch(&self, frames: usize) {
        if self.idle {
            return;
        }
        for c in self.combs.iter().flatten() {
            prefetch_ring(&c.buf, c.idx, frames);
        }
        for a in self.allpasses.iter().flatten() {
            prefetch_ring(&a.buf, a.idx, frames);
        }
    }

    /// One sample: mono in, wet stereo out.
    #[inline]
    pub fn process(&mut self, input: f32) -> (f32, f32) {
        if self.idle {
            if input == 0.0 {
                return (0.0, 0.0);
            }
            self.idle = false;
        }
        let x = input * INPUT_GAIN;
        let mut out = [0.0f32; 2];
        for (side, o) in out.iter_mut().enumerate() {
            let mut acc = 0.0;
            for c in self.combs[side].iter_mut() {
                acc += c.process(x, self.feedback, self.damp1, self.damp2);
            }
            for a in self.allpasses[side].iter_mut() {
                acc = a.process(acc);
            }
            *o = acc * WET_SCALE;
        }
        let [l, r] = out;
        if input.abs() < QUIET_INPUT && l.abs() < QUIET_OUTPUT && r.abs() < QUIET_OUTPUT {
            self.quiet += 1;
            if self.quiet >= self.idle_after {
                self.clear();
            }
        } else {
            self.quiet = 0;
        }
        (l, r)
    }

    /// [`Reverb::process`] for every sample of `input`, the wet output written to `left` and
    /// `right` (equally long as `input`), bit for bit the same. Each delay line runs over the
    /// whole stretch at once, which is what makes it cheaper.
    pub fn process_block(&mut self, input: &[f32], left: &mut [f32], right: &mut [f32]) {
        let n = input.len().min(left.len()).min(right.len());
        let mut done = 0;
        while done < n {
            if self.idle {
                let zeros = input[done..n].iter().take_while(|&&x| x == 0.0).count();
                left[done..done + zeros].fill(0.0);
                right[done..done + zeros].fill(0.0);
                done += zeros;
                if done == n {
                    return;
                }
                self.idle = false;
            }
            // The tail can end (and the state be cleared) at the earliest on the last sample
            // of this stretch, so the stretch needs no per-sample idle test.
            let m = (n - done).min(STRETCH).min(self.idle_after - self.quiet);
            self.run_stretch(
                &input[done..done + m],
                &mut left[done..done + m],
                &mut right[done..done + m],
            );
            done += m;
        }
    }

    fn run_stretch(&mut self, input: &[f32], left: &mut [f32], right: &mut [f32]) {
        let m = input.len();
        let mut x = [0.0f32; STRETCH];
        let x = &mut x[..m];
        for (x, &i) in x.iter_mut().zip(input) {
            *x = i * INPUT_GAIN;
        }
        for (side, out) in [&mut *left, &mut *right].into_iter().enumerate() {
            out.fill(0.0);
            combs_block(
                &mut self.combs[side],
                x,
                out,
                self.feedback,
                self.damp1,
                self.damp2,
            );
            for a in self.allpasses[side].iter_mut() {
                a.process_block(out);
            }
            for o in out.iter_mut() {
                *o *= WET_SCALE;
            }
        }
        for ((&i, &l), &r) in input.iter().zip(&*left).zip(&*right) {
            if i.abs() < QUIET_INPUT && l.abs() < QUIET_OUTPUT && r.abs() < QUIET_OUTPUT {
                self.quiet += 1;
            } else {
                self.quiet = 0;
            }
        }
        if self.quiet >= self.idle_after {
            self.clear();
        }
    }

    #[cfg(test)]
    fn holds_only_zeros(&self) -> bool {
        self.combs
            .iter()
            .flatten()
            .all(|c| c.store == 0.0 && c.buf.iter().all(|&x| x == 0.0))
            && self
                .allpasses
                .iter()
                .flatten()
                .all(|a| a.buf.iter().all(|&x| x == 0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_decays_ends_and_stays_finite() {
        let sr = 48_000.0;
        let mut r = Reverb::new(sr);
        r.set_size(1.0);
        r.set_damping(0.2);
        assert!(r.is_idle());
        // A 50 ms burst.
        let mut energy_first = 0.0;
        let mut energy_later = 0.0;
        let mut n = 0usize;
        while !r.is_idle() || n == 0 {
            let x = if n < 2_400 {
                if n.is_multiple_of(2) { 0.5 } else { -0.5 }
            } else {
                0.0
            };
            let (a, b) = r.process(x);
            assert!(a.is_finite() && b.is_finite());
            assert!(a.abs() < 4.0 && b.abs() < 4.0);
            assert!(a == 0.0 || a.is_normal());
            let e = a * a + b * b;
            if (4_800..24_000).contains(&n) {
                energy_first += e;
            }
            if (96_000..115_200).contains(&n) {
                energy_later += e;
            }
            n += 1;
            assert!(n < 60 * 48_000, "tail never ended");
        }
        assert!(energy_first > 0.0);
        assert!(
            energy_later < energy_first * 0.1,
            "{energy_later} vs {energy_first}"
        );
        assert!(r.holds_only_zeros());
        assert_eq!(r.process(0.0), (0.0, 0.0));
        // A bigger room rings longer than a small one.
        let ring = |size: f32| {
            let mut r = Reverb::new(sr);
            r.set_size(size);
            r.process(1.0);
            let mut n = 0;
            while !r.is_idle() {
                r.process(0.0);
                n += 1;
            }
            n
        };
        assert!(ring(0.9) > 2 * ring(0.1));
    }

    #[test]
    fn block_processing_is_sample_processing_bit_for_bit() {
        // Bursts with silences long enough for the tail to end and the reverb to go idle, and
        // blocks of every size, so stretches cross idle transitions and delay wraps.
        let sr = 22_050.0;
        let mut one = Reverb::new(sr);
        let mut block = Reverb::new(sr);
        one.set_size(0.1);
        block.set_size(0.1);
        let mut noise = super::super::noise::Noise::new(3);
        let len = 400_000;
        let input: Vec<f32> = (0..len)
            .map(|n| {
                if n % 150_000 < 3_000 {
                    noise.next()
                } else {
                    0.0
                }
            })
            .collect();
        let (mut went_idle, mut at, mut size) = (0, 0, 1);
        let (mut l, mut r) = (vec![0.0; 700], vec![0.0; 700]);
        while at < len {
            let n = size.min(len - at);
            let was_idle = block.is_idle();
            block.process_block(&input[at..at + n], &mut l[..n], &mut r[..n]);
            for i in 0..n {
                let (a, b) = one.process(input[at + i]);
                assert_eq!((a.to_bits(), b.to_bits()), (l[i].to_bits(), r[i].to_bits()));
            }
            went_idle += usize::from(!was_idle && block.is_idle());
            assert_eq!(one.is_idle(), block.is_idle());
            at += n;
            size = (size + 37) % 700 + 1;
        }
        assert!(went_idle >= 2, "{went_idle}");
    }

    #[test]
    fn any_sample_rate_builds_delays() {
        for sr in [1_000.0, 22_050.0, 192_000.0, f32::NAN] {
            let mut r = Reverb::new(sr);
            for n in 0..10_000 {
                let (a, b) = r.process(if n == 0 { 1.0 } else { 0.0 });
                assert!(a.is_finite() && b.is_finite());
            }
        }
    }
}
