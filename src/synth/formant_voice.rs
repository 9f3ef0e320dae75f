//! An additive singing voice for the operatic render: a fundamental and six overtones whose
//! levels follow a vowel's formants, under an ADSR envelope, with a singer's delayed vibrato.
//!
//! **Formant weights** ([`formant_weights`]). A vowel is three resonances (centre, bandwidth,
//! level; soprano values after the usual formant tables, bandwidths widened a little because
//! seven harmonics sample the envelope sparsely). Harmonic `k` at `k·f0` gets the spectral
//! envelope there: the sum over the formants of `level / √(1 + (2·(k·f0 − centre)/bandwidth)²)`
//! (a resonance's magnitude near its peak) plus a small floor, so no harmonic vanishes, times a
//! gentle source tilt of `1/√k` (-3 dB per octave). The seven weights are scaled to unit energy,
//! so every vowel and pitch sounds equally loud: the voice's RMS is its gain over √2. As in a
//! real voice the formants stay put while vibrato moves the harmonics through them.
//!
//! **Oscillators.** One phasor turns at the fundamental; harmonic `k` is its `k`-th power,
//! built by complex multiplication each sample, so the harmonics stay phase-locked through
//! vibrato and glides and no `sin` runs per sample. Pitch, weights and pan are control values
//! updated every [`CONTROL`] samples and ramped linearly in between; the phasor is renormalised
//! there too.
//!
//! Nothing allocates: the voice is a plain value, so it can move to the audio thread later.

use std::f64::consts::TAU;

use super::envelope::{Adsr, AdsrCoeffs, Envelope};

/// The fundamental and its six overtones.
pub const HARMONICS: usize = 7;
/// Samples between control updates (0.67 ms at 48 kHz).
const CONTROL: usize = 32;
/// Harmonics at or above this share of the sample rate are muted (never aliased).
const MAX_FREQ_RATIO: f32 = 0.45;
/// Envelope floor under the formants, relative to the strongest formant's level.
const FLOOR: f32 = 0.02;
/// Time constant of the weights' and pan's glide: a vowel change morphs instead of clicking.
const MORPH_SECONDS: f32 = 0.04;
/// Vibrato reaches full depth this long after its onset delay.
const VIBRATO_FADE_SECONDS: f32 = 0.3;

/// The vowels the voice sings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vowel {
    #[default]
    A,
    E,
    I,
    O,
    U,
}

impl Vowel {
    pub const ALL: [Vowel; 5] = [Vowel::A, Vowel::E, Vowel::I, Vowel::O, Vowel::U];

    /// `(centre Hz, bandwidth Hz, level dB)` of the first three formants.
    fn formants(self) -> [(f32, f32, f32); 3] {
        match self {
            Vowel::A => [
                (800.0, 100.0, 0.0),
                (1150.0, 110.0, -6.0),
                (2900.0, 140.0, -32.0),
            ],
            Vowel::E => [
                (400.0, 80.0, 0.0),
                (1700.0, 120.0, -14.0),
                (2600.0, 140.0, -18.0),
            ],
            Vowel::I => [
                (270.0, 80.0, 0.0),
                (2140.0, 110.0, -12.0),
                (2950.0, 130.0, -26.0),
            ],
            Vowel::O => [
                (450.0, 90.0, 0.0),
                (800.0, 100.0, -11.0),
                (2830.0, 130.0, -22.0),
            ],
            Vowel::U => [
                (325.0, 70.0, 0.0),
                (700.0, 80.0, -16.0),
                (2700.0, 190.0, -35.0),
            ],
        }
    }
}

/// The weights of harmonics 1..=7 of `f0` for `vowel`, at unit energy (see the module doc).
/// Harmonics at or above 0.45 × `sample_rate` get weight 0; the rest keep their share.
pub fn formant_weights(vowel: Vowel, f0: f32, sample_rate: f32) -> [f32; HARMONICS] {
    let mut w = [0.0f32; HARMONICS];
    if !(f0.is_finite() && f0 > 0.0) {
        return w;
    }
    let formants = vowel.formants();
    for (k, w) in w.iter_mut().enumerate() {
        let n = (k + 1) as f32;
        let f = n * f0;
        if f >= MAX_FREQ_RATIO * sample_rate {
            continue;
        }
        let envelope: f32 = formants
            .iter()
            .map(|&(centre, bandwidth, db)| {
                let x = 2.0 * (f - centre) / bandwidth;
                10f32.powf(db / 20.0) / (1.0 + x * x).sqrt()
            })
            .sum();
        *w = (envelope + FLOOR) / n.sqrt();
    }
    let energy = w.iter().map(|x| x * x).sum::<f32>().sqrt();
    if energy > 0.0 {
        for x in w.iter_mut() {
            *x /= energy;
        }
    }
    w
}

/// Equal-power `(left, right)` gains of `pan` in -1..=1.
fn pan_gains(pan: f32) -> (f32, f32) {
    let angle = (pan.clamp(-1.0, 1.0) + 1.0) * std::f32::consts::FRAC_PI_4;
    (angle.cos().max(0.0), angle.sin().max(0.0))
}

/// One singing voice; see the module doc.
#[derive(Debug, Clone)]
pub struct FormantVoice {
    sample_rate: f32,
    adsr: Adsr,
    env_coeffs: AdsrCoeffs,
    envelope: Envelope,
    /// Whether the envelope is running (false once it has released to silence).
    sounding: bool,
    vowel: Vowel,
    /// Sung pitch now and where a legato glide is heading (Hz).
    freq: f32,
    freq_target: f32,
    portamento_decay: f32,
    gain: f32,
    pan: f32,
    vibrato_rate: f32,
    vibrato_cents: f32,
    vibrato_delay: f32,
    vibrato_phase: f64,
    /// Seconds since the last note-on from silence (drives the vibrato's delayed onset).
    age: f32,
    /// Control one-pole factor per update of the weights and pan glide.
    morph: f32,
    /// The fundamental's phasor and its rotation per sample.
    phasor: (f32, f32),
    rotation: (f32, f32),
    /// Harmonic amplitudes now and their change per sample in this control period.
    weights: [f32; HARMONICS],
    weight_steps: [f32; HARMONICS],
    /// The weights where the glide stands (the end of this period's ramp).
    weight_ends: [f32; HARMONICS],
    gains: (f32, f32),
    gain_steps: (f32, f32),
    gain_ends: (f32, f32),
    /// Position in the control period (0: an update comes before the next sample).
    position: usize,
    /// The period's envelope levels.
    levels: [f32; CONTROL],
    /// How many of `levels` sound (the rest come after the envelope ended).
    levels_len: usize,
    /// A note-on came after this period's levels were taken: the voice goes on past it.
    retriggered: bool,
}

impl FormantVoice {
    /// Default envelope: a sung onset and a short breath of a release.
    pub const DEFAULT_ADSR: Adsr = Adsr {
        attack: 0.08,
        decay: 0.25,
        sustain: 0.8,
        release: 0.35,
    };

    /// A silent voice at `sample_rate` (non-finite or non-positive counts as 48 kHz).
    pub fn new(sample_rate: f32) -> Self {
        let sample_rate = if sample_rate.is_finite() && sample_rate > 0.0 {
            sample_rate
        } else {
            48_000.0
        };
        let morph = (-(CONTROL as f32) / (MORPH_SECONDS * sample_rate)).exp();
        Self {
            sample_rate,
            adsr: Self::DEFAULT_ADSR,
            env_coeffs: AdsrCoeffs::new(&Self::DEFAULT_ADSR, sample_rate),
            envelope: Envelope::default(),
            sounding: false,
            vowel: Vowel::A,
            freq: 0.0,
            freq_target: 0.0,
            portamento_decay: 0.0,
            gain: 0.0,
            pan: 0.0,
            vibrato_rate: 5.5,
            vibrato_cents: 35.0,
            vibrato_delay: 0.35,
            vibrato_phase: 0.0,
            age: 0.0,
            morph,
            phasor: (1.0, 0.0),
            rotation: (1.0, 0.0),
            weights: [0.0; HARMONICS],
            weight_steps: [0.0; HARMONICS],
            weight_ends: [0.0; HARMONICS],
            gains: pan_gains(0.0),
            gain_steps: (0.0, 0.0),
            gain_ends: pan_gains(0.0),
            position: 0,
            levels: [0.0; CONTROL],
            levels_len: 0,
            retriggered: false,
        }
    }

    /// Starts a note at `freq` Hz. From silence the voice starts at phase zero, weights in
    /// place and vibrato delayed anew; while it still sounds the envelope re-attacks from its
    /// level and the pitch glides (portamento) from where it is. Velocity 0 (or a frequency
    /// that is not finite and positive) is a note-off.
    pub fn note_on(&mut self, freq: f32, velocity: u8) {
        if velocity == 0 || !(freq.is_finite() && freq > 0.0) {
            self.note_off();
            return;
        }
        let v = f32::from(velocity.min(127)) / 127.0;
        self.gain = v * v;
        self.freq_target = freq;
        if !self.sounding {
            self.freq = freq;
            self.age = 0.0;
            self.vibrato_phase = 0.0;
            self.phasor = (1.0, 0.0);
            let w = formant_weights(self.vowel, freq, self.sample_rate);
            self.weights = w;
            self.weight_ends = w;
            self.weight_steps = [0.0; HARMONICS];
            self.gains = pan_gains(self.pan);
            self.gain_ends = self.gains;
            self.gain_steps = (0.0, 0.0);
        } else if self.portamento_decay == 0.0 {
            self.freq = freq;
        }
        self.envelope.trigger();
        self.sounding = true;
        self.retriggered = true;
    }

    /// Releases the note over the envelope's release time.
    pub fn note_off(&mut self) {
        self.envelope.release();
    }

    /// The vowel the next control updates morph toward (over about 40 ms).
    pub fn set_vowel(&mut self, vowel: Vowel) {
        self.vowel = vowel;
    }

    /// Envelope times and sustain, clamped (non-finite values keep the default's).
    pub fn set_envelope(&mut self, adsr: Adsr) {
        self.adsr = adsr.sanitized(Self::DEFAULT_ADSR);
        self.env_coeffs = AdsrCoeffs::new(&self.adsr, self.sample_rate);
    }

    /// Vibrato rate (0.1..=12 Hz), depth (0..=200 cents, the peak deviation) and the delay
    /// after a note's onset before it fades in (0..=10 s, then over 0.3 s). Non-finite
    /// values leave that setting as it was.
    pub fn set_vibrato(&mut self, rate_hz: f32, depth_cents: f32, delay_seconds: f32) {
        if rate_hz.is_finite() {
            self.vibrato_rate = rate_hz.clamp(0.1, 12.0);
        }
        if depth_cents.is_finite() {
            self.vibrato_cents = depth_cents.clamp(0.0, 200.0);
        }
        if delay_seconds.is_finite() {
            self.vibrato_delay = delay_seconds.clamp(0.0, 10.0);
        }
    }

    /// Time constant (0..=2 s) of the glide between legato notes; 0 jumps.
    pub fn set_portamento(&mut self, seconds: f32) {
        self.portamento_decay = if seconds.is_finite() && seconds > 0.0 {
            (-(CONTROL as f32) / (seconds.min(2.0) * self.sample_rate)).exp()
        } else {
            0.0
        };
    }

    /// Stereo position, -1 left .. 1 right (equal power; glides like the weights).
    pub fn set_pan(&mut self, pan: f32) {
        if pan.is_finite() {
            self.pan = pan.clamp(-1.0, 1.0);
        }
    }

    /// Whether the voice has released to silence (or never sounded).
    pub fn is_silent(&self) -> bool {
        !self.sounding
    }

    /// Adds the next `min(left.len(), right.len())` samples to `left` and `right`.
    pub fn render_add(&mut self, left: &mut [f32], right: &mut [f32]) {
        let n = left.len().min(right.len());
        let mut done = 0;
        while done < n && self.sounding {
            if self.position == 0 {
                self.update();
            }
            let m = (n - done).min(CONTROL - self.position);
            self.run(&mut left[done..done + m], &mut right[done..done + m]);
            self.position += m;
            done += m;
            if self.position == CONTROL {
                self.position = 0;
                self.weights = self.weight_ends;
                self.gains = self.gain_ends;
                if self.levels_len < CONTROL && !self.retriggered {
                    self.sounding = false;
                }
            }
        }
    }

    /// The control update at the start of a period: pitch, weights, pan, envelope levels.
    fn update(&mut self) {
        let period = CONTROL as f32 / self.sample_rate;
        if self.freq != self.freq_target {
            let ratio = self.freq_target / self.freq;
            let next = self.freq * ratio.powf(1.0 - self.portamento_decay);
            self.freq = if (next / self.freq_target - 1.0).abs() < 1e-6 {
                self.freq_target
            } else {
                next
            };
        }
        let onset = ((self.age - self.vibrato_delay) / VIBRATO_FADE_SECONDS).clamp(0.0, 1.0);
        let cents = self.vibrato_cents * onset * self.vibrato_phase.sin() as f32;
        let f0 = self.freq * (cents / 1200.0).exp2();
        self.age = (self.age + period).min(1e6);
        if onset > 0.0 {
            self.vibrato_phase =
                (self.vibrato_phase + TAU * f64::from(self.vibrato_rate) * f64::from(period)) % TAU;
        }
        let w = TAU * f64::from(f0) / f64::from(self.sample_rate);
        let (s, c) = w.sin_cos();
        self.rotation = (c as f32, s as f32);
        let (re, im) = self.phasor;
        let g = 1.5 - 0.5 * (re * re + im * im);
        self.phasor = (re * g, im * g);

        let target = formant_weights(self.vowel, f0, self.sample_rate);
        let step = 1.0 / CONTROL as f32;
        for (((&t, &now), end), d) in target
            .iter()
            .zip(&self.weights)
            .zip(&mut self.weight_ends)
            .zip(&mut self.weight_steps)
        {
            *end = t + (now - t) * self.morph;
            *d = (*end - now) * step;
        }
        let (tl, tr) = pan_gains(self.pan);
        let (l, r) = self.gains;
        self.gain_ends = (tl + (l - tl) * self.morph, tr + (r - tr) * self.morph);
        self.gain_steps = ((self.gain_ends.0 - l) * step, (self.gain_ends.1 - r) * step);

        self.retriggered = false;
        self.levels_len = self.envelope.fill(&self.env_coeffs, &mut self.levels);
        self.levels[self.levels_len..].fill(0.0);
    }

    /// Adds up to the rest of the control period.
    fn run(&mut self, left: &mut [f32], right: &mut [f32]) {
        let (cr, ci) = self.rotation;
        let (mut re, mut im) = self.phasor;
        let mut w = self.weights;
        let (mut gl, mut gr) = self.gains;
        let levels = &self.levels[self.position..];
        for ((l, r), &level) in left.iter_mut().zip(right.iter_mut()).zip(levels) {
            // Harmonic k is the phasor to the k-th power; its imaginary part is sin(kθ).
            let (mut hr, mut hi) = (re, im);
            let mut y = w[0] * hi;
            for wk in &w[1..] {
                (hr, hi) = (hr * re - hi * im, hr * im + hi * re);
                y += wk * hi;
            }
            let y = y * level * self.gain;
            *l += y * gl;
            *r += y * gr;
            (re, im) = (re * cr - im * ci, re * ci + im * cr);
            for (wk, dk) in w.iter_mut().zip(&self.weight_steps) {
                *wk += dk;
            }
            gl += self.gain_steps.0;
            gr += self.gain_steps.1;
        }
        self.phasor = (re, im);
        self.weights = w;
        self.gains = (gl, gr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: f32 = 48_000.0;

    fn render(voice: &mut FormantVoice, frames: usize) -> (Vec<f32>, Vec<f32>) {
        let mut l = vec![0.0; frames];
        let mut r = vec![0.0; frames];
        for (a, b) in l.chunks_mut(300).zip(r.chunks_mut(300)) {
            voice.render_add(a, b);
        }
        (l, r)
    }

    fn steady(vowel: Vowel) -> FormantVoice {
        let mut v = FormantVoice::new(SR);
        v.set_vibrato(5.5, 0.0, 0.0);
        v.set_vowel(vowel);
        v.set_pan(-1.0);
        v
    }

    /// Magnitudes (Hann window, peak within ±3 bins) at `freqs` in `x`.
    fn magnitudes_at(x: &[f32], freqs: &[f32]) -> Vec<f64> {
        let n = x.len();
        let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let mut input: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| f64::from(v) * (0.5 - 0.5 * (TAU * i as f64 / n as f64).cos()))
            .collect();
        let mut spectrum = fft.make_output_vec();
        fft.process(&mut input, &mut spectrum).unwrap();
        freqs
            .iter()
            .map(|&f| {
                let k = (f64::from(f) * n as f64 / f64::from(SR)).round() as usize;
                (k - 3..=k + 3)
                    .map(|j| spectrum[j].norm())
                    .fold(0.0, f64::max)
            })
            .collect()
    }

    /// Fundamental by autocorrelation around `expected` (±1 semitone), refined by a parabola.
    fn pitch(x: &[f32], expected: f32) -> f32 {
        let lag_of = |f: f32| (SR / f) as usize;
        let (lo, hi) = (lag_of(expected * 1.06) - 1, lag_of(expected / 1.06) + 2);
        let w = x.len() - hi - 1;
        let r = |lag: usize| -> f64 {
            let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
            for i in 0..w {
                let (a, b) = (f64::from(x[i]), f64::from(x[i + lag]));
                xy += a * b;
                xx += a * a;
                yy += b * b;
            }
            xy / (xx * yy).sqrt().max(1e-30)
        };
        let lag = (lo..=hi).max_by(|&a, &b| r(a).total_cmp(&r(b))).unwrap();
        let (a, b, c) = (r(lag - 1), r(lag), r(lag + 1));
        let shift = 0.5 * (a - c) / (a - 2.0 * b + c);
        SR / (lag as f64 + shift) as f32
    }

    #[test]
    fn sings_its_pitch() {
        for freq in [130.81f32, 261.63, 440.0, 880.0] {
            let mut v = steady(Vowel::O);
            v.note_on(freq, 100);
            let (l, r) = render(&mut v, 24_000);
            let f = pitch(&l[12_000..], freq);
            assert!((f / freq - 1.0).abs() < 1e-3, "{f} for {freq}");
            assert!(r.iter().all(|&x| x == 0.0), "hard left");
        }
    }

    #[test]
    fn harmonics_follow_the_formants() {
        let f0 = 220.0;
        let freqs: Vec<f32> = (1..=HARMONICS).map(|k| k as f32 * f0).collect();
        let mut spectra = Vec::new();
        for vowel in Vowel::ALL {
            let w = formant_weights(vowel, f0, SR);
            assert!((w.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
            let mut v = steady(vowel);
            v.note_on(f0, 127);
            // One second: 1 Hz bins, every harmonic on a bin (no scalloping).
            let (l, _) = render(&mut v, 96_000);
            let m = magnitudes_at(&l[48_000..], &freqs);
            let top = m.iter().cloned().fold(0.0, f64::max);
            let wtop = w.iter().cloned().fold(0.0, f32::max);
            for k in 0..HARMONICS {
                let (heard, meant) = (m[k] / top, f64::from(w[k] / wtop));
                assert!(
                    (heard - meant).abs() < 0.02,
                    "{vowel:?} harmonic {}: {heard} vs {meant}",
                    k + 1
                );
            }
            spectra.push(w);
        }
        // The strongest harmonic sits nearest the vowel's first formant (or its F1–F2 pair):
        // "a" (F1 800) on the 4th (880 Hz), "i" (F1 270) on the fundamental.
        let strongest = |w: &[f32; HARMONICS]| {
            (0..HARMONICS)
                .max_by(|&a, &b| w[a].total_cmp(&w[b]))
                .unwrap()
                + 1
        };
        assert_eq!(strongest(&spectra[0]), 4);
        assert_eq!(strongest(&spectra[2]), 1);
        assert_eq!(strongest(&spectra[3]), 2);
        // "i" keeps energy near its high F2 (2140 Hz ≈ 10th harmonic is out of reach at 220 Hz,
        // so compare at 330 Hz: harmonics 6–7 at 1980–2310 Hz).
        let i = formant_weights(Vowel::I, 330.0, SR);
        let u = formant_weights(Vowel::U, 330.0, SR);
        assert!(i[6] > 3.0 * u[6], "{i:?} {u:?}");
        // Harmonics at or above 0.45 × the rate are muted.
        let w = formant_weights(Vowel::A, 4_000.0, SR);
        assert!(w[5] == 0.0 && w[6] == 0.0 && w[4] > 0.0);
    }

    #[test]
    fn vibrato_has_its_depth_after_its_delay() {
        let (f0, depth) = (440.0f32, 50.0f32);
        let mut v = steady(Vowel::A);
        v.set_vibrato(5.5, depth, 0.2);
        v.note_on(f0, 100);
        let (l, _) = render(&mut v, 96_000);
        let track: Vec<f32> = (0..180)
            .map(|j| {
                let at = j * 480;
                1200.0 * (pitch(&l[at..at + 1_024], f0) / f0).log2()
            })
            .collect();
        // Before the delay: steady.
        let early = track[..15].iter().fold(0.0f32, |m, c| m.max(c.abs()));
        assert!(early < 1.0, "{early} cents before the vibrato");
        // Full depth after delay + fade (0.5 s): ±50 cents, a little less through the window.
        let late = &track[60..];
        let (lo, hi) = late
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &c| (a.min(c), b.max(c)));
        assert!(hi > 0.9 * depth && hi < 1.05 * depth, "peak {hi}");
        assert!(lo < -0.9 * depth && lo > -1.05 * depth, "trough {lo}");
        // The rate: 5.5 upward zero crossings a second, over 1.2 s.
        let crossings = late
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        assert!((6..=7).contains(&crossings), "{crossings} upward crossings");
    }

    #[test]
    fn envelope_releases_to_silence() {
        let mut v = steady(Vowel::E);
        v.set_envelope(Adsr {
            attack: 0.01,
            decay: 0.1,
            sustain: 0.7,
            release: 0.2,
        });
        assert!(v.is_silent());
        v.note_on(330.0, 90);
        let (l, _) = render(&mut v, 24_000);
        // Unit-energy weights: RMS = gain · sustain / √2.
        let gain = (90.0f32 / 127.0).powi(2);
        let level = (l[12_000..].iter().map(|x| x * x).sum::<f32>() / 12_000.0).sqrt();
        assert!(
            (level / (gain * 0.7 / 2f32.sqrt()) - 1.0).abs() < 0.02,
            "{level}"
        );
        v.note_off();
        let (l, _) = render(&mut v, 12_000);
        assert!(v.is_silent(), "still sounding 0.25 s after a 0.2 s release");
        assert!(l[10_000..].iter().all(|&x| x == 0.0));
        assert!(l.iter().all(|x| *x == 0.0 || x.is_normal()));
        let (l, r) = render(&mut v, 1_000);
        assert!(l.iter().chain(&r).all(|&x| x == 0.0));
        // Re-triggered mid-period, released, and started again from silence.
        v.note_on(330.0, 90);
        render(&mut v, 5);
        v.note_off();
        render(&mut v, 12_000);
        v.note_on(220.0, 90);
        let (l, _) = render(&mut v, 4_800);
        assert!(!v.is_silent() && l[2_400..].iter().any(|&x| x != 0.0));
    }

    #[test]
    fn vowel_and_legato_changes_do_not_click() {
        let mut v = FormantVoice::new(SR);
        v.set_portamento(0.05);
        v.note_on(220.0, 127);
        let (mut l, _) = render(&mut v, 9_600);
        v.set_vowel(Vowel::I);
        v.note_on(330.0, 127);
        v.set_pan(0.8);
        l.extend(render(&mut v, 9_600).0);
        v.set_vowel(Vowel::U);
        l.extend(render(&mut v, 9_600).0);
        // The most these harmonics can move per sample, Σ wₖ·k·ω (a little more for vibrato):
        // a click would jump well past it.
        let mut bound = 0.0f32;
        for vowel in [Vowel::A, Vowel::I, Vowel::U] {
            for f0 in (0..=22).map(|i| 220.0 + 5.0 * i as f32) {
                let w = formant_weights(vowel, f0, SR);
                let slope: f32 = (0..HARMONICS)
                    .map(|k| w[k] * (k + 1) as f32 * TAU as f32 * f0 / SR)
                    .sum();
                bound = bound.max(1.05 * slope);
            }
        }
        let step = l.windows(2).fold(0.0f32, |m, w| m.max((w[1] - w[0]).abs()));
        assert!(step < bound, "{step}");
        assert!(l.iter().all(|x| x.is_finite()));
    }

    /// With `assert_process_allocs`, nice-plug's allocator aborts on any allocation inside
    /// `assert_no_alloc` (without it, `tests/synth_no_alloc.rs` counts them instead).
    #[cfg(feature = "assert_process_allocs")]
    #[test]
    fn singing_does_not_allocate() {
        let mut v = FormantVoice::new(SR);
        let (mut l, mut r) = (vec![0.0f32; 512], vec![0.0f32; 512]);
        nice_assert_no_alloc::assert_no_alloc(|| {
            for t in 0..100 {
                if t % 10 == 0 {
                    v.note_on(200.0 + t as f32, 100);
                    v.set_vowel(Vowel::ALL[t % 5]);
                }
                if t % 10 == 7 {
                    v.note_off();
                }
                v.render_add(&mut l[..1 + t * 5], &mut r[..1 + t * 5]);
            }
        });
    }
}
