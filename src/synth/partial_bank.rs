//! A bank of sinusoidal partials for spectral sonification: each partial's frequency, amplitude
//! and pan are set a few times a second (once per token) and the bank glides to them.
//!
//! Every partial is a complex phasor turned by a fixed rotation each sample (two multiplies and
//! an add per component, no `sin`). The state is stored eight partials to a block ([`Lanes`],
//! structure of arrays), so every loop runs one operation on eight independent partials and
//! vectorises; each output channel's eight lanes are summed once per sample. On x86-64 CPUs
//! with AVX the render loop is compiled a second time for AVX, where a block's whole state fits
//! in registers: the same operations in the same order, so the output is bit for bit the same,
//! about a third faster.
//!
//! Time runs in segments of [`PartialBank::SEGMENT`] samples on a grid counted from
//! construction, so how the host splits blocks never changes the output. At each segment start
//! every amplitude takes one step of a one-pole glide toward its target and ramps linearly to
//! it over the segment (no per-sample `exp`, no clicks); a changed frequency turns the phasor at
//! the new rate from where it is (phase-continuous); and the phasors are renormalised (one
//! Newton step toward unit length) so rounding never grows or shrinks them. A setter takes
//! effect at the next segment start, at most one segment later.
//!
//! A partial at or above 0.45 × the sample rate is muted: it fades out at its old frequency, so
//! it never aliases. An amplitude within -120 dB of its target snaps to it, so a release ends in
//! exact zeros and nothing crawls through subnormal numbers.

use std::f64::consts::TAU;

/// Partials per block: one AVX register or two SSE registers of `f32`.
const LANES: usize = 8;
/// Samples per control segment (1.3 ms at 48 kHz).
const SEGMENT: usize = 64;
/// Highest sounding frequency as a share of the sample rate; the rest is muted.
const MAX_FREQ_RATIO: f64 = 0.45;
/// Amplitudes this close to their targets snap to them (-120 dB on a unit amplitude).
const SNAP: f32 = 1e-6;
/// Longest glide time accepted by the setters, in seconds.
const MAX_SECONDS: f32 = 60.0;
/// Default amplitude glide: long enough that a token change never clicks, short enough to
/// follow a token.
const DEFAULT_SMOOTHING_SECONDS: f32 = 0.05;

/// Eight partials' per-sample state, one lane each: all the render loop reads and writes.
#[derive(Debug, Clone, Copy)]
struct Lanes {
    /// The phasor: `im` is the partial's waveform, `sin(phase)`.
    re: [f32; LANES],
    im: [f32; LANES],
    /// One sample's rotation, `(cos w, sin w)`.
    rot_re: [f32; LANES],
    rot_im: [f32; LANES],
    /// Amplitude on each channel now, and its change per sample within the segment.
    left: [f32; LANES],
    right: [f32; LANES],
    step_left: [f32; LANES],
    step_right: [f32; LANES],
}

impl Default for Lanes {
    /// Phase 0 (a sine rising from zero), not turning, silent.
    fn default() -> Self {
        Self {
            re: [1.0; LANES],
            im: [0.0; LANES],
            rot_re: [1.0; LANES],
            rot_im: [0.0; LANES],
            left: [0.0; LANES],
            right: [0.0; LANES],
            step_left: [0.0; LANES],
            step_right: [0.0; LANES],
        }
    }
}

impl Lanes {
    fn is_silent(&self) -> bool {
        all_zero(&[self.left, self.right, self.step_left, self.step_right])
    }
}

/// Whether every value is ±0; on the bits, so it vectorises (a float compare chain does not).
#[inline]
fn all_zero(rows: &[[f32; LANES]]) -> bool {
    rows.iter()
        .flatten()
        .fold(0u32, |acc, x| acc | (x.to_bits() << 1))
        == 0
}

/// The sum of eight lanes as a tree (pairs four apart, then two, then one), in one fixed order.
#[inline(always)]
fn lane_sum(x: &[f32; LANES]) -> f32 {
    let a: [f32; 4] = std::array::from_fn(|k| x[k] + x[k + 4]);
    (a[0] + a[2]) + (a[1] + a[3])
}

/// Eight partials' targets and glides, read once per segment.
#[derive(Debug, Clone, Copy, Default)]
struct Control {
    /// Amplitude targets per channel (0 for a muted partial).
    target_left: [f32; LANES],
    target_right: [f32; LANES],
    /// Each channel's amplitude at the end of the current segment.
    end_left: [f32; LANES],
    end_right: [f32; LANES],
    /// Target frequency (Hz; 0 until set in range), the frequency the phasor turns at, and
    /// the one its rotation was computed for.
    freq_target: [f32; LANES],
    freq: [f32; LANES],
    applied_freq: [f32; LANES],
    /// A frequency changed or is gliding: the block's rotations need a look.
    retune: bool,
}

/// An additive oscillator bank of up to `max_partials` sinusoids, stereo, allocation-free after
/// [`PartialBank::new`].
#[derive(Debug, Clone)]
pub struct PartialBank {
    lanes: Box<[Lanes]>,
    control: Box<[Control]>,
    len: usize,
    sample_rate: f32,
    max_freq: f32,
    /// One-pole factor per segment of the amplitude glide (0: reach the target in one segment).
    amp_decay: f32,
    /// The same for the frequency glide, in the log-frequency domain (0: jump).
    freq_decay: f32,
    /// Position within the current segment (0: a segment starts with the next sample).
    position: usize,
    /// Every lane and every target is zero: rendering adds nothing.
    silent: bool,
    /// The CPU runs AVX (x86-64): render through [`run_avx`].
    avx: bool,
}

/// Per-segment factor of a one-pole glide with time constant `seconds`.
fn segment_decay(seconds: f32, sample_rate: f32) -> f32 {
    if !seconds.is_finite() || seconds <= 0.0 {
        return 0.0;
    }
    let samples = seconds.min(MAX_SECONDS) * sample_rate;
    (-(SEGMENT as f32) / samples).exp()
}

/// Equal-power gains of `pan` (-1 left .. 1 right); a gain that should be zero is exactly zero.
fn pan_gains(pan: f32) -> (f32, f32) {
    let pan = if pan.is_finite() {
        pan.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let angle = (f64::from(pan) + 1.0) * std::f64::consts::FRAC_PI_4;
    let gain = |g: f64| if g < 1e-7 { 0.0 } else { g as f32 };
    (gain(angle.cos()), gain(angle.sin()))
}

impl PartialBank {
    /// Samples per control segment: setters take effect at the next segment start.
    pub const SEGMENT: usize = SEGMENT;
    /// The amplitude glide's time constant until [`PartialBank::set_smoothing`] is called.
    pub const DEFAULT_SMOOTHING_SECONDS: f32 = DEFAULT_SMOOTHING_SECONDS;

    /// Room for `max_partials` (at least one, at most 4096) at `sample_rate` (a non-finite or
    /// non-positive rate counts as 48 kHz). Allocates; call off the audio thread.
    pub fn new(max_partials: usize, sample_rate: f32) -> Self {
        let sample_rate = if sample_rate.is_finite() && sample_rate > 0.0 {
            sample_rate
        } else {
            48_000.0
        };
        let len = max_partials.clamp(1, 4096);
        let blocks = len.div_ceil(LANES);
        #[cfg(target_arch = "x86_64")]
        let avx = std::arch::is_x86_feature_detected!("avx");
        #[cfg(not(target_arch = "x86_64"))]
        let avx = false;
        Self {
            lanes: vec![Lanes::default(); blocks].into_boxed_slice(),
            control: vec![Control::default(); blocks].into_boxed_slice(),
            len,
            sample_rate,
            max_freq: (f64::from(sample_rate) * MAX_FREQ_RATIO) as f32,
            amp_decay: segment_decay(DEFAULT_SMOOTHING_SECONDS, sample_rate),
            freq_decay: 0.0,
            position: 0,
            silent: true,
            avx,
        }
    }

    /// How many partials the bank holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a bank holds at least one partial.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn sample_rate(&self) -> f32 {
        self.sample_rate
    }

    /// Time constant of the amplitude glide, in seconds (0 ramps to a new target within one
    /// segment); non-finite values count as 0.
    pub fn set_smoothing(&mut self, seconds: f32) {
        self.amp_decay = segment_decay(seconds, self.sample_rate);
    }

    /// Time constant of the frequency glide, in seconds, on a log-frequency scale (0, the
    /// default, jumps: still phase-continuous, so it does not click).
    pub fn set_glide(&mut self, seconds: f32) {
        self.freq_decay = segment_decay(seconds, self.sample_rate);
    }

    /// Partial `index`'s target frequency (Hz), amplitude (linear, negative counts as 0) and
    /// pan (-1 left .. 1 right). A frequency that is not finite, not positive, or at or above
    /// 0.45 × the sample rate mutes the partial, and so does an amplitude below -120 dB: it
    /// fades out at the frequency it has. Out-of-range indices are ignored.
    pub fn set_partial(&mut self, index: usize, freq: f32, amp: f32, pan: f32) {
        if index >= self.len {
            return;
        }
        let c = &mut self.control[index / LANES];
        let k = index % LANES;
        let amp = if amp.is_finite() && amp >= SNAP {
            amp
        } else {
            0.0
        };
        let audible = freq.is_finite() && freq > 0.0 && freq < self.max_freq && amp > 0.0;
        let (gain_left, gain_right) = pan_gains(pan);
        let (left, right) = if audible {
            (amp * gain_left, amp * gain_right)
        } else {
            (0.0, 0.0)
        };
        c.target_left[k] = if left < SNAP { 0.0 } else { left };
        c.target_right[k] = if right < SNAP { 0.0 } else { right };
        if audible {
            c.freq_target[k] = freq;
            c.retune = true;
            self.silent = false;
        }
    }

    /// Starts partial `index` at phase `radians` (0: a sine rising from zero; π: the same with
    /// its sign flipped). Only a partial that is silent now takes it: moving a sounding
    /// phasor would click. Returns whether it was taken.
    pub fn set_phase(&mut self, index: usize, radians: f32) -> bool {
        if index >= self.len || !radians.is_finite() {
            return false;
        }
        let l = &mut self.lanes[index / LANES];
        let k = index % LANES;
        let sounding = [l.left, l.right, l.step_left, l.step_right]
            .iter()
            .any(|x| x[k] != 0.0);
        if sounding {
            return false;
        }
        let (s, c) = f64::from(radians).rem_euclid(TAU).sin_cos();
        l.re[k] = c as f32;
        l.im[k] = s as f32;
        true
    }

    /// Fades every partial to silence (over the amplitude glide); the frequencies stay.
    pub fn release_all(&mut self) {
        for c in self.control.iter_mut() {
            c.target_left = [0.0; LANES];
            c.target_right = [0.0; LANES];
        }
    }

    /// Whether the bank is silent and will stay so until a partial is set again.
    pub fn is_silent(&self) -> bool {
        self.silent
    }

    /// Adds the next `min(left.len(), right.len())` samples to `left` and `right`.
    pub fn render_add(&mut self, left: &mut [f32], right: &mut [f32]) {
        let n = left.len().min(right.len());
        let mut done = 0;
        while done < n {
            let m = (n - done).min(SEGMENT - self.position);
            if !self.silent {
                if self.position == 0 {
                    self.begin_segment();
                }
                self.run(&mut left[done..done + m], &mut right[done..done + m]);
            }
            self.position += m;
            done += m;
            if self.position == SEGMENT {
                self.position = 0;
                if !self.silent {
                    self.end_segment();
                }
            }
        }
    }

    /// New rotations and glide steps for the segment that starts now.
    fn begin_segment(&mut self) {
        let mut silent = true;
        let step = 1.0 / SEGMENT as f32;
        for (l, c) in self.lanes.iter_mut().zip(self.control.iter_mut()) {
            if c.retune {
                c.retune = false;
                for k in 0..LANES {
                    let target = c.freq_target[k];
                    if target <= 0.0 || c.freq[k] == target {
                        continue;
                    }
                    let from_silence = l.left[k] == 0.0 && l.right[k] == 0.0;
                    c.freq[k] = if from_silence || self.freq_decay == 0.0 || c.freq[k] <= 0.0 {
                        target
                    } else {
                        // One step of a one-pole glide of log-frequency.
                        let next = c.freq[k] * (target / c.freq[k]).powf(1.0 - self.freq_decay);
                        if (next / target - 1.0).abs() < 1e-6 {
                            target
                        } else {
                            c.retune = true;
                            next
                        }
                    };
                }
                for k in 0..LANES {
                    if c.freq[k] != c.applied_freq[k] {
                        let w = TAU * f64::from(c.freq[k]) / f64::from(self.sample_rate);
                        let (s, cos) = w.sin_cos();
                        l.rot_re[k] = cos as f32;
                        l.rot_im[k] = s as f32;
                        c.applied_freq[k] = c.freq[k];
                    }
                }
            }
            let decay = self.amp_decay;
            for (now, target, end, step_now) in [
                (&l.left, &c.target_left, &mut c.end_left, &mut l.step_left),
                (
                    &l.right,
                    &c.target_right,
                    &mut c.end_right,
                    &mut l.step_right,
                ),
            ] {
                for k in 0..LANES {
                    let d = (now[k] - target[k]) * decay;
                    end[k] = if d.abs() < SNAP {
                        target[k]
                    } else {
                        target[k] + d
                    };
                    step_now[k] = (end[k] - now[k]) * step;
                }
            }
            let block_silent = all_zero(&[l.left, l.right, c.target_left, c.target_right]);
            silent &= block_silent;
            if !block_silent {
                for k in 0..LANES {
                    let g = 1.5 - 0.5 * (l.re[k] * l.re[k] + l.im[k] * l.im[k]);
                    l.re[k] *= g;
                    l.im[k] *= g;
                }
            }
        }
        self.silent = silent;
    }

    /// Lands every amplitude exactly on its segment end (the ramp's sum drifts by rounding).
    fn end_segment(&mut self) {
        for (l, c) in self.lanes.iter_mut().zip(self.control.iter()) {
            l.left = c.end_left;
            l.right = c.end_right;
            l.step_left = [0.0; LANES];
            l.step_right = [0.0; LANES];
        }
    }

    /// Adds `left.len()` (≤ what is left of the segment) samples.
    fn run(&mut self, left: &mut [f32], right: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx {
            // SAFETY: `avx` is true only if the CPU was found to support AVX.
            unsafe { run_avx(&mut self.lanes, left, right) };
            return;
        }
        run_lanes(&mut self.lanes, left, right);
    }
}

/// [`run_lanes`] compiled for AVX: a block's eight lanes fill one register each, so its whole
/// state stays in registers. No fused multiply-add is enabled, so the arithmetic is the same
/// and so is the output, bit for bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn run_avx(lanes: &mut [Lanes], left: &mut [f32], right: &mut [f32]) {
    run_lanes(lanes, left, right);
}

/// Adds `left.len()` (≤ [`SEGMENT`]) samples of every sounding block of `lanes`.
#[inline(always)]
fn run_lanes(lanes: &mut [Lanes], left: &mut [f32], right: &mut [f32]) {
    let m = left.len().min(right.len()).min(SEGMENT);
    let mut sum_left = [[0.0f32; LANES]; SEGMENT];
    let mut sum_right = [[0.0f32; LANES]; SEGMENT];
    for l in lanes.iter_mut() {
        if l.is_silent() {
            continue;
        }
        let mut v = *l;
        for (sl, sr) in sum_left[..m].iter_mut().zip(&mut sum_right[..m]) {
            for k in 0..LANES {
                sl[k] += v.left[k] * v.im[k];
                sr[k] += v.right[k] * v.im[k];
                let re = v.re[k] * v.rot_re[k] - v.im[k] * v.rot_im[k];
                let im = v.re[k] * v.rot_im[k] + v.im[k] * v.rot_re[k];
                v.re[k] = re;
                v.im[k] = im;
                v.left[k] += v.step_left[k];
                v.right[k] += v.step_right[k];
            }
        }
        *l = v;
    }
    for ((o, s), (r, t)) in left
        .iter_mut()
        .zip(&sum_left)
        .zip(right.iter_mut().zip(&sum_right))
    {
        *o += lane_sum(s);
        *r += lane_sum(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: f32 = 48_000.0;

    fn render(bank: &mut PartialBank, frames: usize) -> (Vec<f32>, Vec<f32>) {
        let mut l = vec![0.0; frames];
        let mut r = vec![0.0; frames];
        for (a, b) in l.chunks_mut(512).zip(r.chunks_mut(512)) {
            bank.render_add(a, b);
        }
        (l, r)
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt() as f32
    }

    fn max_step(x: &[f32]) -> f32 {
        x.windows(2).fold(0.0, |m, w| m.max((w[1] - w[0]).abs()))
    }

    /// The strongest frequency (Hann window, parabola through the log magnitudes).
    fn peak_frequency(x: &[f32], sr: f32) -> f32 {
        let n = x.len();
        let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let mut input: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let w = 0.5 - 0.5 * (TAU * i as f64 / n as f64).cos();
                f64::from(v) * w
            })
            .collect();
        let mut spectrum = fft.make_output_vec();
        fft.process(&mut input, &mut spectrum).unwrap();
        let mags: Vec<f64> = spectrum.iter().map(|c| c.norm().max(1e-30).ln()).collect();
        let k = (1..mags.len() - 1)
            .max_by(|&a, &b| mags[a].total_cmp(&mags[b]))
            .unwrap();
        let (a, b, c) = (mags[k - 1], mags[k], mags[k + 1]);
        let shift = 0.5 * (a - c) / (a - 2.0 * b + c);
        ((k as f64 + shift) * f64::from(sr) / n as f64) as f32
    }

    #[test]
    fn a_partial_has_its_frequency_level_and_pan() {
        let mut bank = PartialBank::new(64, SR);
        bank.set_partial(5, 1000.0, 0.5, -1.0);
        let (l, r) = render(&mut bank, 96_000);
        let tail = &l[48_000..];
        let f = peak_frequency(tail, SR);
        assert!((f - 1000.0).abs() < 0.05, "{f} Hz");
        let level = rms(tail);
        assert!((level - 0.5 / 2f32.sqrt()).abs() < 1e-4, "rms {level}");
        assert!(r.iter().all(|&x| x == 0.0), "hard left leaks right");
        // Centred: equal power, each side 1/√2 of the amplitude.
        let mut bank = PartialBank::new(8, SR);
        bank.set_partial(0, 3_000.0, 1.0, 0.0);
        let (l, r) = render(&mut bank, 48_000);
        for side in [&l[24_000..], &r[24_000..]] {
            assert!((rms(side) - 0.5).abs() < 1e-3, "{}", rms(side));
        }
        assert!((peak_frequency(&r[16_384..], SR) - 3_000.0).abs() < 0.1);
    }

    #[test]
    fn amplitude_changes_glide_without_clicks() {
        let freq = 440.0;
        let mut bank = PartialBank::new(4, SR);
        bank.set_smoothing(0.02);
        let mut out = Vec::new();
        for (i, amp) in [1.0, 0.0, 0.8, 0.1, 1.0, 0.0].into_iter().enumerate() {
            bank.set_partial(0, freq, amp, -1.0);
            let (l, _) = render(&mut bank, 4_800 + 37 * i);
            out.extend(l);
        }
        // A unit sine moves at most w per sample; the glide adds at most 1/64 of a segment's
        // step (6.5 % of the jump over 64 samples at 20 ms).
        let w = std::f32::consts::TAU * freq / SR;
        let step = max_step(&out);
        assert!(step < w + 0.0012, "step {step} vs sine's {w}");
        assert!(
            out.iter()
                .all(|x| x.is_finite() && (*x == 0.0 || x.is_normal()))
        );
    }

    #[test]
    fn frequency_changes_keep_the_phase() {
        // A change made on a segment boundary takes effect there: compare with a sine whose
        // phase runs on through the change.
        let mut bank = PartialBank::new(4, SR);
        bank.set_partial(0, 500.0, 1.0, -1.0);
        let switch = 75 * SEGMENT;
        let (mut l, _) = render(&mut bank, switch);
        bank.set_partial(0, 1_700.0, 1.0, -1.0);
        l.extend(render(&mut bank, 9_600).0);
        let decay = segment_decay(DEFAULT_SMOOTHING_SECONDS, SR) as f64;
        let mut phase = 0.0f64;
        let (mut start, mut end) = (0.0f64, 0.0f64);
        let mut worst = 0.0f64;
        for (n, &y) in l.iter().enumerate() {
            // The amplitude ramps linearly to each segment's step of the one-pole glide.
            if n % SEGMENT == 0 {
                start = end;
                end = 1.0 + (start - 1.0) * decay;
            }
            let amp = start + (end - start) * (n % SEGMENT) as f64 / SEGMENT as f64;
            let freq = if n < switch { 500.0 } else { 1_700.0 };
            if n > 20 * SEGMENT {
                worst = worst.max((f64::from(y) - amp * phase.sin()).abs());
            }
            phase += TAU * freq / f64::from(SR);
        }
        assert!(worst < 2e-3, "off the phase-continuous sine by {worst}");
        // With a glide the frequency moves smoothly and arrives.
        bank.set_glide(0.05);
        bank.set_partial(0, 600.0, 1.0, -1.0);
        let (l, _) = render(&mut bank, 48_000);
        assert!(max_step(&l) < std::f32::consts::TAU * 1_700.0 / SR * 1.01);
        assert!((peak_frequency(&l[24_000..], SR) - 600.0).abs() < 0.1);
    }

    #[test]
    fn partials_near_or_above_nyquist_are_muted() {
        let mut bank = PartialBank::new(8, SR);
        bank.set_partial(0, 0.46 * SR, 1.0, 0.0);
        bank.set_partial(1, 30_000.0, 1.0, 0.0);
        bank.set_partial(2, f32::NAN, 1.0, 0.0);
        bank.set_partial(3, -100.0, 1.0, 0.0);
        let (l, r) = render(&mut bank, 4_800);
        assert!(l.iter().chain(&r).all(|&x| x == 0.0));
        assert!(bank.is_silent());
        // A sounding partial sent above fades out at its old frequency: nothing aliases down.
        bank.set_partial(4, 1_000.0, 1.0, -1.0);
        render(&mut bank, 24_000);
        bank.set_partial(4, 40_000.0, 1.0, -1.0);
        let (l, _) = render(&mut bank, 16_384);
        assert!(rms(&l[..1024]) > 0.3 && rms(&l[15_000..]) < 0.01);
        assert!((peak_frequency(&l, SR) - 1_000.0).abs() < 1.0);
        render(&mut bank, 96_000);
        assert!(bank.is_silent());
    }

    #[test]
    fn release_reaches_exact_silence() {
        let mut bank = PartialBank::new(64, SR);
        for i in 0..64 {
            bank.set_partial(i, 110.0 * (i + 1) as f32, 0.05, (i as f32 / 32.0) - 1.0);
        }
        render(&mut bank, 24_000);
        assert!(!bank.is_silent());
        bank.release_all();
        let mut frames = 0;
        while !bank.is_silent() {
            let (l, r) = render(&mut bank, 512);
            assert!(l.iter().chain(&r).all(|x| *x == 0.0 || x.is_normal()));
            frames += 512;
            assert!(frames < 48_000, "still sounding after 1 s");
        }
        // -120 dB at a 50 ms time constant: about 0.7 s.
        assert!(frames > 24_000, "{frames}");
        let (l, r) = render(&mut bank, 4_096);
        assert!(l.iter().chain(&r).all(|&x| x == 0.0));
    }

    #[test]
    fn phase_and_sign_are_settable_from_silence() {
        let mut a = PartialBank::new(2, SR);
        let mut b = PartialBank::new(2, SR);
        a.set_partial(1, 700.0, 0.7, 0.3);
        b.set_partial(1, 700.0, 0.7, 0.3);
        assert!(b.set_phase(1, std::f32::consts::PI));
        assert!(!b.set_phase(2, 0.0));
        let (la, ra) = render(&mut a, 9_000);
        let (lb, rb) = render(&mut b, 9_000);
        let cancel = la.iter().zip(&lb).chain(ra.iter().zip(&rb));
        assert!(cancel.fold(0.0f32, |m, (x, y)| m.max((x + y).abs())) < 1e-5);
        // A sounding partial keeps its phase.
        assert!(!a.set_phase(1, 1.0));
    }

    #[test]
    fn block_splits_do_not_change_the_output() {
        let setup = || {
            let mut bank = PartialBank::new(40, SR);
            for i in 0..40 {
                bank.set_partial(i, 97.0 * (i + 1) as f32, 0.02, 0.5);
            }
            bank
        };
        let mut whole = setup();
        let (l1, r1) = render(&mut whole, 20_000);
        let mut split = setup();
        let (mut l2, mut r2) = (vec![0.0; 20_000], vec![0.0; 20_000]);
        let sizes = [1usize, 17, 333, 64, 500, 2, 4_000];
        let mut at = 0;
        for s in sizes.iter().cycle() {
            let end = (at + s).min(20_000);
            split.render_add(&mut l2[at..end], &mut r2[at..end]);
            at = end;
            if at == 20_000 {
                break;
            }
        }
        assert_eq!(l1, l2);
        assert_eq!(r1, r2);
    }

    #[test]
    fn the_avx_build_renders_the_same_bits() {
        let setup = |avx: bool| {
            let mut bank = PartialBank::new(64, SR);
            bank.avx = avx;
            for i in 0..61 {
                bank.set_partial(i, 31.0 * (i + 1) as f32, 0.015, (i as f32 / 30.0) - 1.0);
            }
            bank
        };
        let (mut plain, mut fast) = (setup(false), setup(plain_or_avx()));
        let a = render(&mut plain, 10_000);
        let b = render(&mut fast, 10_000);
        assert_eq!(a, b);
    }

    /// Whether this machine takes the AVX path (else the test above compares the plain one
    /// with itself).
    fn plain_or_avx() -> bool {
        PartialBank::new(1, SR).avx
    }

    #[test]
    fn bad_arguments_are_harmless() {
        let mut bank = PartialBank::new(0, f32::NAN);
        assert_eq!(bank.len(), 1);
        assert_eq!(bank.sample_rate(), 48_000.0);
        bank.set_partial(7, 100.0, 1.0, 0.0);
        bank.set_partial(0, 100.0, f32::INFINITY, f32::NAN);
        bank.set_smoothing(f32::NAN);
        bank.set_glide(-1.0);
        assert!(!bank.set_phase(0, f32::NAN));
        let (l, r) = render(&mut bank, 1_000);
        assert!(l.iter().chain(&r).all(|&x| x == 0.0));
    }

    /// With `assert_process_allocs`, nice-plug's allocator aborts on any allocation inside
    /// `assert_no_alloc` (without it, `tests/synth_no_alloc.rs` counts them instead).
    #[cfg(feature = "assert_process_allocs")]
    #[test]
    fn rendering_and_setting_do_not_allocate() {
        let mut bank = PartialBank::new(64, SR);
        let (mut l, mut r) = (vec![0.0f32; 512], vec![0.0f32; 512]);
        nice_assert_no_alloc::assert_no_alloc(|| {
            for t in 0..50 {
                for i in 0..64 {
                    bank.set_partial(i, 50.0 * (i + t + 1) as f32, 0.01, 0.0);
                    bank.set_phase(i, 0.5);
                }
                bank.render_add(&mut l[..1 + t * 9], &mut r[..1 + t * 9]);
            }
            bank.release_all();
            bank.render_add(&mut l, &mut r);
        });
    }

    /// Nanoseconds per 512-frame block of three banks of 32 and 64 sounding partials:
    /// `cargo test --lib synth::partial_bank -- --ignored --nocapture`. The dev profile builds
    /// this crate at opt-level 2 with debug assertions; at opt-level 3 it runs about 40 % faster.
    #[test]
    #[ignore = "timing; run with -- --ignored --nocapture"]
    fn timing() {
        for partials in [32, 64] {
            let mut banks: Vec<PartialBank> = (0..3).map(|_| PartialBank::new(64, SR)).collect();
            for (v, bank) in banks.iter_mut().enumerate() {
                for i in 0..partials {
                    bank.set_partial(
                        i,
                        55.0 * (v + 1) as f32 * (i + 1) as f32 % 20_000.0,
                        0.01,
                        0.0,
                    );
                }
            }
            let (mut l, mut r) = (vec![0.0f32; 512], vec![0.0f32; 512]);
            let blocks = 4_000;
            let start = std::time::Instant::now();
            for t in 0..blocks {
                if t % 20 == 0 {
                    for bank in banks.iter_mut() {
                        for i in 0..partials {
                            bank.set_partial(i, 60.0 * (i + 1 + t % 7) as f32, 0.01, 0.2);
                        }
                    }
                }
                for bank in banks.iter_mut() {
                    bank.render_add(&mut l, &mut r);
                }
                std::hint::black_box((&mut l, &mut r));
            }
            let ns = start.elapsed().as_nanos() as f64 / blocks as f64;
            println!("3 banks × {partials} partials: {ns:.0} ns per 512-frame block");
        }
    }
}
