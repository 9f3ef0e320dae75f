//! Convolution reverb: each channel convolved with its own impulse response by uniformly
//! partitioned overlap-save FFT convolution, and a deterministic synthetic room to convolve with.
//!
//! The impulse response is cut into partitions of one block (`B` samples), each transformed
//! once (FFT size `2B`). Every `B` input samples, the last `2B` are transformed into a
//! frequency-domain delay line of the last `P` spectra; the output block is the inverse FFT of
//! `Σₚ Hₚ · X₍ₙ₋ₚ₎`, of which the second half is the linear convolution (overlap-save). Cost per
//! block: two FFTs and `P` complex multiply-adds per bin, whatever the IR's length. Spectra are
//! stored as separate real and imaginary rows so the multiply-add loop vectorises.
//!
//! The wet signal comes out one block late (the block fills before it is transformed): a
//! pre-delay of `B` samples ([`ConvolutionReverb::latency`]); the dry signal is not delayed.
//! Once `P + 1` blocks of silence have entered, the delay line holds only zeros and blocks cost
//! nothing until sound arrives again.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use super::filter::flush;
use super::noise::Noise;
use super::smoother::{SMOOTHING_SECONDS, Smoother};

/// Block sizes accepted (rounded up to a power of two within these).
const MIN_BLOCK: usize = 16;
const MAX_BLOCK: usize = 16_384;
/// Longest impulse response kept, in samples (43 s at 48 kHz); the rest is dropped.
pub const MAX_IR_SAMPLES: usize = 1 << 21;

/// One channel's impulse response spectra, delay line and buffers.
struct Channel {
    /// `P` rows of `B + 1` bins: the partitions' spectra and the input's last `P` spectra
    /// (row `head` newest).
    ir_re: Box<[f32]>,
    ir_im: Box<[f32]>,
    line_re: Box<[f32]>,
    line_im: Box<[f32]>,
    sum_re: Box<[f32]>,
    sum_im: Box<[f32]>,
    /// The previous block and the block being filled.
    input: Box<[f32]>,
    /// The wet block being played out.
    output: Box<[f32]>,
}

/// Stereo convolution (left input with the left IR, right with the right), wet/dry mix;
/// allocation-free after [`ConvolutionReverb::new`].
pub struct ConvolutionReverb {
    block: usize,
    partitions: usize,
    bins: usize,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    channels: [Channel; 2],
    time: Box<[f32]>,
    spectrum: Box<[Complex<f32>]>,
    scratch: Box<[Complex<f32>]>,
    /// Row of the delay line the next block's spectrum goes to.
    head: usize,
    /// Fill position within the current block.
    position: usize,
    /// Consecutive blocks whose input was all zeros.
    quiet_blocks: usize,
    dry: Smoother,
    wet: Smoother,
}

impl std::fmt::Debug for ConvolutionReverb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvolutionReverb")
            .field("block", &self.block)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl ConvolutionReverb {
    /// Prepares convolution with `ir_left` and `ir_right` (the shorter padded with zeros,
    /// non-finite samples taken as zero, at most [`MAX_IR_SAMPLES`] kept) in blocks of
    /// `block_size` samples (rounded up to a power of two in 16..=16384). The mix starts fully
    /// wet. Allocates; call off the audio thread.
    pub fn new(ir_left: &[f32], ir_right: &[f32], block_size: usize) -> Self {
        let block = block_size.clamp(MIN_BLOCK, MAX_BLOCK).next_power_of_two();
        let len = ir_left.len().max(ir_right.len()).min(MAX_IR_SAMPLES);
        let partitions = len.div_ceil(block).max(1);
        let bins = block + 1;
        let mut planner = RealFftPlanner::<f32>::new();
        let forward = planner.plan_fft_forward(2 * block);
        let inverse = planner.plan_fft_inverse(2 * block);
        let scratch_len = forward.get_scratch_len().max(inverse.get_scratch_len());
        let mut reverb = Self {
            block,
            partitions,
            bins,
            forward,
            inverse,
            channels: [ir_left, ir_right].map(|_| Channel {
                ir_re: vec![0.0; partitions * bins].into_boxed_slice(),
                ir_im: vec![0.0; partitions * bins].into_boxed_slice(),
                line_re: vec![0.0; partitions * bins].into_boxed_slice(),
                line_im: vec![0.0; partitions * bins].into_boxed_slice(),
                sum_re: vec![0.0; bins].into_boxed_slice(),
                sum_im: vec![0.0; bins].into_boxed_slice(),
                input: vec![0.0; 2 * block].into_boxed_slice(),
                output: vec![0.0; block].into_boxed_slice(),
            }),
            time: vec![0.0; 2 * block].into_boxed_slice(),
            spectrum: vec![Complex::default(); bins].into_boxed_slice(),
            scratch: vec![Complex::default(); scratch_len].into_boxed_slice(),
            head: 0,
            position: 0,
            quiet_blocks: usize::MAX,
            dry: Smoother::new(48_000.0, SMOOTHING_SECONDS, 0.0),
            wet: Smoother::new(48_000.0, SMOOTHING_SECONDS, 1.0),
        };
        for (side, ir) in [ir_left, ir_right].into_iter().enumerate() {
            let ir = &ir[..ir.len().min(len)];
            for (p, part) in ir.chunks(block).enumerate() {
                reverb.time.fill(0.0);
                for (t, &x) in reverb.time.iter_mut().zip(part) {
                    *t = if x.is_finite() { x } else { 0.0 };
                }
                // The lengths are the plan's own, so this cannot fail; a failure leaves the
                // partition silent rather than panicking.
                if reverb
                    .forward
                    .process_with_scratch(
                        &mut reverb.time,
                        &mut reverb.spectrum,
                        &mut reverb.scratch,
                    )
                    .is_err()
                {
                    continue;
                }
                let row = p * bins..(p + 1) * bins;
                let channel = &mut reverb.channels[side];
                for ((re, im), c) in channel.ir_re[row.clone()]
                    .iter_mut()
                    .zip(&mut channel.ir_im[row])
                    .zip(reverb.spectrum.iter())
                {
                    *re = c.re;
                    *im = c.im;
                }
            }
        }
        reverb
    }

    /// The block size in use (a power of two).
    pub fn block_size(&self) -> usize {
        self.block
    }

    /// How late the wet signal comes, in samples (one block).
    pub fn latency(&self) -> usize {
        self.block
    }

    /// The balance of wet and dry, 0 (dry only) ..= 1 (wet only), linear; glides over 10 ms
    /// at 48 kHz so a change never clicks.
    pub fn set_mix(&mut self, mix: f32) {
        if mix.is_finite() {
            let mix = mix.clamp(0.0, 1.0);
            self.dry.set_target(1.0 - mix);
            self.wet.set_target(mix);
        }
    }

    /// Forgets the input heard so far (the tail stops at once).
    pub fn reset(&mut self) {
        for c in self.channels.iter_mut() {
            c.line_re.fill(0.0);
            c.line_im.fill(0.0);
            c.input.fill(0.0);
            c.output.fill(0.0);
        }
        self.position = 0;
        self.quiet_blocks = usize::MAX;
    }

    /// Replaces `left` and `right` (the first `min` of their lengths) by the mix of themselves
    /// and their convolution.
    pub fn process(&mut self, left: &mut [f32], right: &mut [f32]) {
        let n = left.len().min(right.len());
        let mut done = 0;
        while done < n {
            let m = (n - done).min(self.block - self.position);
            let at = self.position;
            for (i, (l, r)) in left[done..done + m]
                .iter_mut()
                .zip(&mut right[done..done + m])
                .enumerate()
            {
                let (dry, wet) = (self.dry.next(), self.wet.next());
                let [cl, cr] = &mut self.channels;
                cl.input[self.block + at + i] = *l;
                cr.input[self.block + at + i] = *r;
                *l = dry * *l + wet * cl.output[at + i];
                *r = dry * *r + wet * cr.output[at + i];
            }
            self.position += m;
            done += m;
            if self.position == self.block {
                self.position = 0;
                self.run_block();
            }
        }
    }

    /// Transforms the block just filled and computes the next wet block.
    fn run_block(&mut self) {
        let (block, bins) = (self.block, self.bins);
        let silent = self
            .channels
            .iter()
            .all(|c| c.input[block..].iter().all(|&x| x == 0.0));
        self.quiet_blocks = if silent {
            self.quiet_blocks.saturating_add(1)
        } else {
            0
        };
        // After P + 1 silent blocks every spectrum in the line is zero, and so is the result.
        if self.quiet_blocks > self.partitions {
            for c in self.channels.iter_mut() {
                if self.quiet_blocks == self.partitions + 1 {
                    // The line still holds the spectrum of the last frame that had sound.
                    c.line_re.fill(0.0);
                    c.line_im.fill(0.0);
                }
                c.output.fill(0.0);
                c.input.copy_within(block.., 0);
            }
            return;
        }
        let head = self.head;
        for c in self.channels.iter_mut() {
            self.time.copy_from_slice(&c.input);
            let row = head * bins..(head + 1) * bins;
            if self
                .forward
                .process_with_scratch(&mut self.time, &mut self.spectrum, &mut self.scratch)
                .is_ok()
            {
                for ((re, im), x) in c.line_re[row.clone()]
                    .iter_mut()
                    .zip(&mut c.line_im[row])
                    .zip(self.spectrum.iter())
                {
                    *re = x.re;
                    *im = x.im;
                }
            }
            c.sum_re.fill(0.0);
            c.sum_im.fill(0.0);
            for p in 0..self.partitions {
                let slot = (head + self.partitions - p) % self.partitions;
                let h = p * bins..(p + 1) * bins;
                let x = slot * bins..(slot + 1) * bins;
                multiply_add(
                    (&mut c.sum_re, &mut c.sum_im),
                    (&c.ir_re[h.clone()], &c.ir_im[h]),
                    (&c.line_re[x.clone()], &c.line_im[x]),
                );
            }
            for ((s, &re), &im) in self.spectrum.iter_mut().zip(&*c.sum_re).zip(&*c.sum_im) {
                *s = Complex::new(re, im);
            }
            // Real signals' spectra have real DC and Nyquist bins; rounding must not say else.
            self.spectrum[0].im = 0.0;
            self.spectrum[bins - 1].im = 0.0;
            let scale = 1.0 / (2 * block) as f32;
            if self
                .inverse
                .process_with_scratch(&mut self.spectrum, &mut self.time, &mut self.scratch)
                .is_ok()
            {
                for (o, &t) in c.output.iter_mut().zip(&self.time[block..]) {
                    *o = flush(t * scale);
                }
            } else {
                c.output.fill(0.0);
            }
            c.input.copy_within(block.., 0);
        }
        self.head = (head + 1) % self.partitions;
    }
}

/// `sum += h · x` bin by bin, complex, on split real and imaginary rows.
#[inline]
fn multiply_add(sum: (&mut [f32], &mut [f32]), h: (&[f32], &[f32]), x: (&[f32], &[f32])) {
    let n = sum.0.len();
    let (sr, si) = (&mut sum.0[..n], &mut sum.1[..n]);
    let (hr, hi, xr, xi) = (&h.0[..n], &h.1[..n], &x.0[..n], &x.1[..n]);
    for i in 0..n {
        sr[i] += hr[i] * xr[i] - hi[i] * xi[i];
        si[i] += hr[i] * xi[i] + hi[i] * xr[i];
    }
}

/// A stereo room, deterministic for a `seed`: `seconds` long (0.05..=20, the time to fall by
/// 60 dB; non-finite counts as 2), at `sample_rate` (non-finite or non-positive counts as
/// 48 kHz).
///
/// Each side is its own noise (the sides are decorrelated, which is what makes the tail wide)
/// under an exponential decay, through a one-pole low-pass whose cutoff falls from 14 kHz to
/// 1.4 kHz over the response, so the highs die first as in a real room (air and walls absorb
/// them). The low-pass's loss is made up, so the decay is the broadband level. The tail builds
/// up over its first 20 ms, after eight early reflections per side between 4 and 70 ms, and
/// fades to exact zero over its last 5 %. Both sides are scaled together to unit mean energy,
/// so white noise keeps its loudness through it.
pub fn synthetic_impulse_response(
    sample_rate: f32,
    seconds: f32,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let sr = if sample_rate.is_finite() && sample_rate > 0.0 {
        sample_rate
    } else {
        48_000.0
    };
    let seconds = if seconds.is_finite() { seconds } else { 2.0 }.clamp(0.05, 20.0);
    let len = ((seconds * sr).round() as usize).clamp(1, MAX_IR_SAMPLES);
    let fade_from = len - len / 20;
    let decay_per_sample = (-3.0 * std::f32::consts::LN_10 / (seconds * sr)).exp();
    let onset = (0.004 * sr) as usize;
    let build_up = 0.02 * sr;
    let side = |channel: u64| {
        // Four streams per seed (noise and reflections per side); `Noise` hashes its seed.
        let stream = |k: u64| Noise::new(seed ^ k.wrapping_mul(0xA076_1D64_78BD_642F));
        let (mut noise, mut placement) = (stream(channel + 1), stream(channel + 3));
        let mut ir = vec![0.0f32; len];
        let mut level = 1.0f32;
        let mut low = 0.0f32;
        for (i, x) in ir.iter_mut().enumerate() {
            let t = i as f32 / len as f32;
            let cutoff = 14_000.0 * 0.1f32.powf(t);
            let c = 1.0 - (-std::f32::consts::TAU * cutoff.min(0.45 * sr) / sr).exp();
            low += (noise.next() - low) * c;
            // A one-pole low-pass keeps c / (2 − c) of white noise's power.
            let makeup = ((2.0 - c) / c).sqrt();
            let ramp = if i < onset {
                0.0
            } else {
                1.0 - (-((i - onset) as f32) / build_up).exp()
            };
            // Raised cosine from 1 at `fade_from` to exactly 0 on the last sample.
            let fade = if i + 1 == len {
                0.0
            } else if i >= fade_from {
                let x = (i - fade_from) as f32 / (len - 1 - fade_from) as f32;
                0.5 + 0.5 * (std::f32::consts::PI * x).cos()
            } else {
                1.0
            };
            *x = flush(low * makeup * level * ramp * fade * 0.3);
            level *= decay_per_sample;
        }
        for _ in 0..8 {
            let u = 0.5 * (placement.next() + 1.0);
            let at = ((0.004 + 0.066 * u) * sr) as usize;
            let sign = if placement.next() < 0.0 { -1.0 } else { 1.0 };
            if let Some(x) = ir.get_mut(at.min(fade_from.saturating_sub(1))) {
                *x += sign * (0.6 - 5.0 * u * 0.066);
            }
        }
        ir
    };
    let (mut left, mut right) = (side(0), side(1));
    let energy = left.iter().chain(&right).map(|x| x * x).sum::<f32>() / 2.0;
    if energy > 0.0 {
        let scale = 1.0 / energy.sqrt();
        for x in left.iter_mut().chain(right.iter_mut()) {
            *x *= scale;
        }
    }
    (left, right)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `left`/`right` through in calls of irregular sizes.
    fn process_in_pieces(reverb: &mut ConvolutionReverb, left: &mut [f32], right: &mut [f32]) {
        let sizes = [1usize, 17, 333, 64, 500, 2, 1_024, 129];
        let mut at = 0;
        for s in sizes.iter().cycle() {
            if at == left.len() {
                break;
            }
            let end = (at + s).min(left.len());
            reverb.process(&mut left[at..end], &mut right[at..end]);
            at = end;
        }
    }

    /// A small deterministic signal in -1..1.
    fn signal(len: usize, seed: u64) -> Vec<f32> {
        let mut noise = Noise::new(seed);
        (0..len).map(|_| noise.next()).collect()
    }

    fn direct(x: &[f32], h: &[f32], len: usize) -> Vec<f64> {
        (0..len)
            .map(|n| {
                (0..h.len().min(n + 1))
                    .map(|k| f64::from(h[k]) * f64::from(x[n - k]))
                    .sum()
            })
            .collect()
    }

    #[test]
    fn an_impulse_returns_the_response() {
        for (ir_len, block) in [(100usize, 256usize), (3_001, 256), (4_096, 64), (700, 16)] {
            let ir_l = signal(ir_len, 1);
            let ir_r: Vec<f32> = signal(ir_len / 2, 2);
            let mut reverb = ConvolutionReverb::new(&ir_l, &ir_r, block);
            assert_eq!(reverb.block_size(), block);
            let len = 3 * block + ir_len + 2_000;
            for at in [0usize, 1, block - 1, block + 5] {
                reverb.reset();
                let (mut l, mut r) = (vec![0.0f32; len], vec![0.0f32; len]);
                l[at] = 1.0;
                r[at] = -0.5;
                process_in_pieces(&mut reverb, &mut l, &mut r);
                let lat = reverb.latency();
                for n in 0..len {
                    let k = n as isize - (at + lat) as isize;
                    let get = |ir: &[f32]| usize::try_from(k).ok().and_then(|k| ir.get(k)).copied();
                    let want_l = get(&ir_l).unwrap_or(0.0);
                    let want_r = -0.5 * get(&ir_r).unwrap_or(0.0);
                    assert!(
                        (l[n] - want_l).abs() < 1e-5,
                        "ir {ir_len} block {block} at {at}: L[{n}]"
                    );
                    assert!((r[n] - want_r).abs() < 1e-5, "R[{n}]");
                }
            }
        }
    }

    #[test]
    fn equals_direct_convolution() {
        let (ir_l, ir_r) = (signal(2_500, 3), signal(1_900, 4));
        let x_l = signal(12_000, 5);
        let x_r = signal(12_000, 6);
        let mut reverb = ConvolutionReverb::new(&ir_l, &ir_r, 128);
        let (mut l, mut r) = (x_l.clone(), x_r.clone());
        process_in_pieces(&mut reverb, &mut l, &mut r);
        let lat = reverb.latency();
        for (out, x, ir) in [(&l, &x_l, &ir_l), (&r, &x_r, &ir_r)] {
            let want = direct(x, ir, out.len() - lat);
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = out[lat..]
                .iter()
                .zip(&want)
                .fold(0.0f64, |m, (&y, &w)| m.max((f64::from(y) - w).abs()));
            assert!(err < 1e-5 * scale, "error {err} of {scale}");
            assert!(out[..lat].iter().all(|&y| y == 0.0));
        }
        // Dry only: the dry signal comes through undelayed (once the mix has glided there from
        // fully wet, within 6 000 samples).
        let mut reverb = ConvolutionReverb::new(&ir_l, &ir_r, 128);
        reverb.set_mix(0.0);
        let (mut l, mut r) = (x_l.clone(), x_r.clone());
        process_in_pieces(&mut reverb, &mut l, &mut r);
        let dry = l[6_000..].iter().zip(&x_l[6_000..]);
        assert!(dry.fold(0.0f32, |m, (a, b)| m.max((a - b).abs())) < 1e-6);
    }

    #[test]
    fn falls_idle_on_silence_and_wakes_cleanly() {
        let ir = signal(1_000, 7);
        let mut reverb = ConvolutionReverb::new(&ir, &ir, 64);
        let x = signal(3_000, 8);
        let run = |reverb: &mut ConvolutionReverb, gap: usize| {
            let mut l = x.clone();
            l.extend(std::iter::repeat_n(0.0, gap));
            l.extend(&x);
            l.extend(std::iter::repeat_n(0.0, 2_000));
            let mut r = l.clone();
            let input = l.clone();
            process_in_pieces(reverb, &mut l, &mut r);
            (input, l)
        };
        // A gap long enough to go idle, the second burst must be convolved as if fresh.
        let (input, out) = run(&mut reverb, 5_000);
        let lat = reverb.latency();
        let want = direct(&input, &ir, out.len() - lat);
        let err = out[lat..]
            .iter()
            .zip(&want)
            .fold(0.0f64, |m, (&y, &w)| m.max((f64::from(y) - w).abs()));
        assert!(err < 1e-4, "{err}");
    }

    #[test]
    fn bad_arguments_are_clamped() {
        let mut reverb = ConvolutionReverb::new(&[], &[f32::NAN, 1.0], 0);
        assert_eq!(reverb.block_size(), MIN_BLOCK);
        let (mut l, mut r) = (vec![1.0f32; 100], vec![1.0f32; 100]);
        reverb.set_mix(f32::NAN);
        reverb.process(&mut l, &mut r);
        assert!(l.iter().chain(&r).all(|x| x.is_finite()));
        assert_eq!(
            ConvolutionReverb::new(&[1.0], &[1.0], 1_000).block_size(),
            1_024
        );
        assert_eq!(
            ConvolutionReverb::new(&[1.0], &[1.0], 1 << 20).block_size(),
            MAX_BLOCK
        );
    }

    #[test]
    fn synthetic_room_is_deterministic_decaying_wide_and_darkening() {
        let sr = 48_000.0;
        let (l, r) = synthetic_impulse_response(sr, 1.5, 42);
        assert_eq!(l.len(), 72_000);
        assert_eq!(r.len(), 72_000);
        assert_eq!(
            (l.clone(), r.clone()),
            synthetic_impulse_response(sr, 1.5, 42)
        );
        assert_ne!(l, synthetic_impulse_response(sr, 1.5, 43).0);
        assert!(
            l.iter()
                .chain(&r)
                .all(|x| x.is_finite() && (*x == 0.0 || x.is_normal()))
        );
        assert_eq!(*l.last().unwrap(), 0.0);
        let energy = |x: &[f32]| x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>();
        assert!(((energy(&l) + energy(&r)) / 2.0 - 1.0).abs() < 1e-3);
        // Nothing before the first reflection (4 ms).
        assert!(l[..190].iter().chain(&r[..190]).all(|&x| x == 0.0));
        // -60 dB over its length: the first tenth holds far more than a tenth near the end.
        let tenth = l.len() / 10;
        let first = energy(&l[..tenth]);
        let late = energy(&l[7 * tenth..8 * tenth]);
        assert!(late < 1e-3 * first, "{late} vs {first}");
        // Decorrelated sides (past the reflections).
        let tail = 4_800..30_000;
        let dot: f64 = l[tail.clone()]
            .iter()
            .zip(&r[tail.clone()])
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let corr = dot / (energy(&l[tail.clone()]) * energy(&r[tail])).sqrt();
        assert!(corr.abs() < 0.1, "correlation {corr}");
        // Darkening: the share of high frequencies (first differences) falls with time.
        let brightness = |x: &[f32]| {
            let d: f64 = x.windows(2).map(|w| f64::from(w[1] - w[0]).powi(2)).sum();
            d / energy(x)
        };
        let early = brightness(&l[4_800..14_400]);
        let later = brightness(&l[40_000..50_000]);
        assert!(later < 0.6 * early, "brightness {early} then {later}");
        // Odd arguments still give a sane room.
        let (a, b) = synthetic_impulse_response(f32::NAN, f32::INFINITY, 0);
        assert_eq!(a.len(), 96_000);
        assert!(a.iter().chain(&b).all(|x| x.is_finite()));
    }

    #[test]
    fn convolving_the_synthetic_room_stays_finite() {
        let (l_ir, r_ir) = synthetic_impulse_response(48_000.0, 0.8, 9);
        let mut reverb = ConvolutionReverb::new(&l_ir, &r_ir, 512);
        reverb.set_mix(0.3);
        let mut l = signal(48_000, 10);
        let mut r = signal(48_000, 11);
        l.extend(std::iter::repeat_n(0.0, 96_000));
        r.extend(std::iter::repeat_n(0.0, 96_000));
        process_in_pieces(&mut reverb, &mut l, &mut r);
        assert!(
            l.iter()
                .chain(&r)
                .all(|x| x.is_finite() && (*x == 0.0 || x.is_normal()))
        );
        assert!(l[48_000..49_000].iter().any(|&x| x != 0.0));
        assert!(l[140_000..].iter().chain(&r[140_000..]).all(|&x| x == 0.0));
    }

    /// With `assert_process_allocs`, nice-plug's allocator aborts on any allocation inside
    /// `assert_no_alloc` (without it, `tests/synth_no_alloc.rs` counts them instead).
    #[cfg(feature = "assert_process_allocs")]
    #[test]
    fn processing_does_not_allocate() {
        let (l_ir, r_ir) = synthetic_impulse_response(48_000.0, 0.3, 1);
        let mut reverb = ConvolutionReverb::new(&l_ir, &r_ir, 256);
        let mut l = signal(4_096, 2);
        let mut r = signal(4_096, 3);
        nice_assert_no_alloc::assert_no_alloc(|| {
            reverb.set_mix(0.5);
            process_in_pieces(&mut reverb, &mut l, &mut r);
            reverb.reset();
            reverb.process(&mut l, &mut r);
        });
    }
}
