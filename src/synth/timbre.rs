//! The nine built-in timbres: what a note sounds like, sample by sample.
//!
//! The first five (the choir's) use band-limited wavetables (additive spectra, see
//! `wavetable.rs`) feeding short subtractive chains. Additive gives exact control over the
//! harmonic recipe and is alias-free by construction at any pitch; the filters and modulation
//! around it make it breathe:
//!
//! * flute: sine-ish table (a little 2nd/3rd), band-passed breath noise that is strongest at the
//!   onset ("chiff") and stays as a soft hiss, vibrato that fades in after the note has settled;
//! * clarinet: odd-harmonic table through a gentle low-pass that opens with velocity;
//! * strings: three saws detuned by ±7 cents (phases spread) through a low-pass, slow attack,
//!   delayed vibrato;
//! * drone: a sine on the fundamental under a darkly filtered saw whose level breathes with a slow
//!   LFO, on a very slow swell;
//! * organ: a pipe organ's principal stops (an additive drawbar table) with a slow, shallow
//!   tremulant, for the Tension voice: steady, no attack transient, so dissonance is heard
//!   as beating rather than as a new note.
//!
//! The other four, for the pieces written from a model's weights, each have their own file and
//! generator: acid bass (`acid.rs`, `ladder.rs`), pluck (`pluck.rs`), FM bass (`fm.rs`) and a
//! drum kit (`drums.rs`). They listen to the voice's controllers (`controls.rs`); the pluck's
//! delay line lives beside the note (see `polysynth.rs`), and pluck and drum notes end by
//! themselves once they have died away.

use super::acid::AcidTone;
use super::controls::Controls;
use super::drums::DrumTone;
use super::envelope::Adsr;
use super::filter::{Svf, SvfCoeffs};
use super::fm::FmTone;
use super::noise::Noise;
use super::oscillator::{Lfo, MAX_FILL, TableOsc};
use super::pluck::PluckTone;
use super::wavetable::{Spectrum, Wavetable};

/// Samples [`Tone::fill`] writes at a time (its stack buffers): what an oscillator fills at once.
pub(crate) const TONE_CHUNK: usize = MAX_FILL;

/// A built-in sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Timbre {
    #[default]
    Flute,
    Clarinet,
    Strings,
    Drone,
    Organ,
    /// TB-303-style bass: saw or square ([`AcidWave`](super::AcidWave)) through a resonant
    /// ladder filter with envelope, accent (velocity ≥ 100) and slide (overlapping notes).
    AcidBass,
    /// Karplus–Strong plucked string; rings until note-off damps it.
    Pluck,
    /// Two-operator FM bass with a decaying modulation index.
    FmBass,
    /// A drum kit on the General MIDI drum keys; hits are one-shots, other keys are silent.
    Drums,
}

impl Timbre {
    /// The timbre each voice starts with.
    pub const fn for_voice(voice: super::VoiceId) -> Timbre {
        match voice {
            super::VoiceId::Voice1 => Timbre::Flute,
            super::VoiceId::Voice2 => Timbre::Clarinet,
            super::VoiceId::Voice3 => Timbre::Strings,
            super::VoiceId::Drone => Timbre::Drone,
            super::VoiceId::Tension => Timbre::Organ,
        }
    }

    pub const ALL: [Timbre; 9] = [
        Timbre::Flute,
        Timbre::Clarinet,
        Timbre::Strings,
        Timbre::Drone,
        Timbre::Organ,
        Timbre::AcidBass,
        Timbre::Pluck,
        Timbre::FmBass,
        Timbre::Drums,
    ];

    /// Hits that play to their own end: note-off does not release them.
    pub const fn is_one_shot(self) -> bool {
        matches!(self, Timbre::Drums)
    }

    /// The envelope that suits the timbre; each voice starts with its timbre's.
    pub const fn default_envelope(self) -> Adsr {
        match self {
            Timbre::Flute => Adsr {
                attack: 0.06,
                decay: 0.25,
                sustain: 0.8,
                release: 0.18,
            },
            Timbre::Clarinet => Adsr {
                attack: 0.04,
                decay: 0.2,
                sustain: 0.85,
                release: 0.12,
            },
            Timbre::Strings => Adsr {
                attack: 0.28,
                decay: 0.4,
                sustain: 0.85,
                release: 0.45,
            },
            Timbre::Drone => Adsr {
                attack: 2.0,
                decay: 1.0,
                sustain: 1.0,
                release: 2.0,
            },
            Timbre::Organ => Adsr {
                attack: 0.08,
                decay: 0.3,
                sustain: 0.95,
                release: 0.35,
            },
            // The 303's gate: instant, a slow sag while held, a quick release.
            Timbre::AcidBass => Adsr {
                attack: 0.002,
                decay: 1.5,
                sustain: 0.5,
                release: 0.03,
            },
            // The string's own decay is the envelope; note-off damps it like a hand.
            Timbre::Pluck => Adsr {
                attack: 0.001,
                decay: 0.1,
                sustain: 1.0,
                release: 0.25,
            },
            Timbre::FmBass => Adsr {
                attack: 0.002,
                decay: 0.8,
                sustain: 0.6,
                release: 0.1,
            },
            // Only the attack matters (it keeps the start click-free); hits shape themselves.
            Timbre::Drums => Adsr {
                attack: 0.001,
                decay: 0.1,
                sustain: 1.0,
                release: 0.1,
            },
        }
    }

    /// Loudness balance between timbres: a full-velocity note at the centre has an RMS level of
    /// about -18 dBFS (peaks near -10 dBFS), whatever the timbre, so the whole choir at full
    /// velocity stays below full scale.
    const fn gain(self) -> f32 {
        match self {
            Timbre::Flute => 0.32,
            Timbre::Clarinet => 0.27,
            Timbre::Strings => 0.74,
            Timbre::Drone => 0.26,
            Timbre::Organ => 0.22,
            Timbre::AcidBass => 0.33,
            Timbre::Pluck => 0.32,
            Timbre::FmBass => 0.28,
            // Hits peak near -6 dBFS (kick, snare) and lower (hats).
            Timbre::Drums => 0.42,
        }
    }
}

/// The wavetables every note reads, built once per sample rate.
#[derive(Debug)]
pub(crate) struct Tables {
    pub(crate) sine: Wavetable,
    flute: Wavetable,
    clarinet: Wavetable,
    pub(crate) saw: Wavetable,
    organ: Wavetable,
}

impl Tables {
    pub(crate) fn new(sample_rate: f32) -> Self {
        Self {
            sine: Wavetable::new(Spectrum::Sine, sample_rate),
            flute: Wavetable::new(Spectrum::Flute, sample_rate),
            clarinet: Wavetable::new(Spectrum::Clarinet, sample_rate),
            saw: Wavetable::new(Spectrum::Saw, sample_rate),
            organ: Wavetable::new(Spectrum::Organ, sample_rate),
        }
    }
}

/// Frequency of a MIDI note in equal temperament, A4 = 440 Hz.
pub(crate) fn note_frequency(note: u8) -> f32 {
    440.0 * 2f32.powf((f32::from(note) - 69.0) / 12.0)
}

/// Velocity to amplitude: about 20 dB of range, so soft notes stay audible.
pub(crate) fn velocity_gain(velocity: u8) -> f32 {
    let v = f32::from(velocity.min(127)) / 127.0;
    0.1 + 0.9 * v * v
}

fn cents(c: f32) -> f32 {
    2f32.powf(c / 1200.0)
}

/// Delayed vibrato: nothing for `delay` samples, then the depth fades in.
#[derive(Debug, Clone, Copy, Default)]
struct Vibrato {
    lfo: Lfo,
    /// Peak frequency deviation as a ratio (e.g. 0.006 ≈ 10 cents).
    depth: f32,
    delay: u32,
    fade_in: f32,
    age: u32,
}

impl Vibrato {
    fn new(rate: f32, depth_cents: f32, delay_s: f32, fade_s: f32, sample_rate: f32) -> Self {
        Self {
            lfo: Lfo::new(rate, sample_rate, 0.0),
            depth: cents(depth_cents) - 1.0,
            delay: (delay_s * sample_rate) as u32,
            fade_in: 1.0 / (fade_s * sample_rate).max(1.0),
            age: 0,
        }
    }

    /// Frequency ratios for the next `ratio.len()` samples; `false` when every one is 1 (the
    /// vibrato has not begun), and `ratio` is left as it was.
    fn fill(&mut self, ratio: &mut [f32]) -> bool {
        let n = ratio.len() as u32;
        if self.depth == 0.0 || self.age.saturating_add(n) <= self.delay {
            self.age = self.age.saturating_add(n);
            return false;
        }
        for r in ratio.iter_mut() {
            *r = self.next();
        }
        true
    }

    /// Frequency ratio for this sample.
    #[inline]
    fn next(&mut self) -> f32 {
        self.age = self.age.saturating_add(1);
        if self.age <= self.delay || self.depth == 0.0 {
            return 1.0;
        }
        let amount = ((self.age - self.delay) as f32 * self.fade_in).min(1.0);
        1.0 + self.depth * amount * self.lfo.next()
    }
}

/// The generator of the timbres that have their own file.
#[derive(Debug, Clone, Copy, Default)]
enum Generator {
    #[default]
    None,
    Acid(AcidTone),
    Pluck(PluckTone),
    Fm(FmTone),
    Drum(DrumTone),
}

/// The generator state of one note, for whichever timbre it plays.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tone {
    osc: [TableOsc; 3],
    vibrato: Vibrato,
    filter: Svf,
    filter_c: SvfCoeffs,
    noise: Noise,
    breath: Svf,
    breath_c: SvfCoeffs,
    /// Steady breath level and the decaying onset burst on top of it.
    hiss: f32,
    chiff: f32,
    chiff_decay: f32,
    chiff_start: f32,
    sub: TableOsc,
    swell: Lfo,
    gain: f32,
    generator: Generator,
}

impl Tone {
    /// A new note. `seed` makes the noise differ between notes yet repeat between runs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        timbre: Timbre,
        tables: &Tables,
        controls: &Controls,
        note: u8,
        velocity: u8,
        sample_rate: f32,
        seed: u64,
    ) -> Self {
        let f = note_frequency(note);
        let v = f32::from(velocity.min(127)) / 127.0;
        let mut t = Tone {
            gain: timbre.gain(),
            ..Tone::default()
        };
        match timbre {
            Timbre::Flute => {
                t.osc[0] = TableOsc::new(&tables.flute, f, sample_rate, 0.0);
                t.vibrato = Vibrato::new(5.0, 10.0, 0.35, 0.5, sample_rate);
                t.noise = Noise::new(seed);
                t.breath_c = SvfCoeffs::new(sample_rate, (2.0 * f).clamp(1_200.0, 6_000.0), 0.8);
                t.hiss = 0.05 + 0.04 * v;
                t.chiff_start = 0.25 + 0.2 * v;
                t.chiff = t.chiff_start;
                t.chiff_decay = (-1.0 / (0.03 * sample_rate)).exp();
            }
            Timbre::Clarinet => {
                t.osc[0] = TableOsc::new(&tables.clarinet, f, sample_rate, 0.0);
                let cutoff = (4.0 * f).max(1_200.0) * (0.6 + 0.8 * v);
                t.filter_c = SvfCoeffs::new(sample_rate, cutoff, 0.6);
            }
            Timbre::Strings => {
                let detune = [cents(-7.0), 1.0, cents(7.0)];
                for (i, (osc, d)) in t.osc.iter_mut().zip(detune).enumerate() {
                    *osc = TableOsc::new(&tables.saw, f * d, sample_rate, i as f32 / 3.0);
                }
                t.vibrato = Vibrato::new(5.5, 8.0, 0.25, 0.6, sample_rate);
                let cutoff = (3.0 * f + 1_500.0) * (0.7 + 0.6 * v);
                t.filter_c = SvfCoeffs::new(sample_rate, cutoff, 0.7);
            }
            Timbre::Drone => {
                t.sub = TableOsc::new(&tables.sine, f, sample_rate, 0.0);
                t.osc[0] = TableOsc::new(&tables.saw, f, sample_rate, 0.0);
                t.filter_c = SvfCoeffs::new(sample_rate, (4.0 * f).max(150.0), 0.9);
                t.swell = Lfo::new(0.15, sample_rate, 0.0);
            }
            Timbre::Organ => {
                t.osc[0] = TableOsc::new(&tables.organ, f, sample_rate, 0.0);
                t.swell = Lfo::new(5.5, sample_rate, 0.0);
            }
            Timbre::AcidBass => {
                let g = t.gain;
                t.generator =
                    Generator::Acid(AcidTone::new(tables, controls, f, velocity, sample_rate, g));
            }
            Timbre::Pluck => {
                let g = t.gain;
                t.generator =
                    Generator::Pluck(PluckTone::new(controls, f, velocity, sample_rate, seed, g));
            }
            Timbre::FmBass => {
                let g = t.gain;
                t.generator =
                    Generator::Fm(FmTone::new(tables, controls, f, velocity, sample_rate, g));
            }
            Timbre::Drums => {
                let g = t.gain;
                t.generator =
                    Generator::Drum(DrumTone::new(tables, note, velocity, sample_rate, seed, g));
            }
        }
        t
    }

    /// Starts loading the wavetables [`Tone::fill`] reads for `timbre`.
    pub(crate) fn prefetch(&self, timbre: Timbre, t: &Tables) {
        match timbre {
            Timbre::Flute => self.osc[0].prefetch(&t.flute),
            Timbre::Clarinet => self.osc[0].prefetch(&t.clarinet),
            Timbre::Strings => self.osc.iter().for_each(|o| o.prefetch(&t.saw)),
            Timbre::Drone => {
                self.sub.prefetch(&t.sine);
                self.osc[0].prefetch(&t.saw);
            }
            Timbre::Organ => self.osc[0].prefetch(&t.organ),
            Timbre::AcidBass | Timbre::Pluck | Timbre::FmBass | Timbre::Drums => {
                match &self.generator {
                    Generator::Acid(g) => g.prefetch(t),
                    Generator::Fm(g) => g.prefetch(t),
                    Generator::Drum(g) => g.prefetch(t),
                    Generator::Pluck(_) | Generator::None => {}
                }
            }
        }
    }

    /// A re-articulation of the same pitch: the flute gets its onset breath again, the string
    /// is plucked again, the acid and FM envelopes start over.
    pub(crate) fn rearticulate(&mut self) {
        self.chiff = self.chiff.max(self.chiff_start);
        match &mut self.generator {
            Generator::Acid(g) => g.restart(),
            Generator::Pluck(g) => g.repluck(),
            Generator::Fm(g) => g.restart(),
            Generator::Drum(_) | Generator::None => {}
        }
    }

    /// Glides an acid note to `note` (see [`AcidTone::slide_to`]); other timbres ignore it.
    pub(crate) fn slide_to(&mut self, tables: &Tables, note: u8) {
        if let Generator::Acid(g) = &mut self.generator {
            g.slide_to(tables, note_frequency(note));
        }
    }

    /// Writes the note's next `out.len()` samples (at most [`TONE_CHUNK`]) for `timbre`, before
    /// envelope and velocity. Each stage runs over the whole chunk before the next, so every
    /// loop is short and free of per-sample decisions. `line` is the note slot's delay line
    /// (the pluck's). Returns how many samples come before the tone has died away by itself
    /// (pluck, drums; the rest are zeros and the note can end), else `out.len()`.
    pub(crate) fn fill(
        &mut self,
        timbre: Timbre,
        t: &Tables,
        controls: &Controls,
        line: &mut [f32],
        out: &mut [f32],
    ) -> usize {
        let n = out.len().min(TONE_CHUNK);
        let out = &mut out[..n];
        match timbre {
            Timbre::Flute => self.flute(t, out),
            Timbre::Clarinet => self.clarinet(t, out),
            Timbre::Strings => self.strings(t, out),
            Timbre::Drone => self.drone(t, out),
            Timbre::Organ => self.organ(t, out),
            Timbre::AcidBass | Timbre::Pluck | Timbre::FmBass | Timbre::Drums => {
                return self.generate(t, controls, line, out);
            }
        }
        self.filter.end_chunk();
        self.breath.end_chunk();
        n
    }

    fn generate(
        &mut self,
        t: &Tables,
        controls: &Controls,
        line: &mut [f32],
        out: &mut [f32],
    ) -> usize {
        match &mut self.generator {
            Generator::Acid(g) => {
                g.fill(t, controls, out);
                out.len()
            }
            Generator::Pluck(g) => g.fill(controls, line, out),
            Generator::Fm(g) => {
                g.fill(t, controls, out);
                out.len()
            }
            Generator::Drum(g) => g.fill(t, out),
            Generator::None => {
                out.fill(0.0);
                0
            }
        }
    }

    fn flute(&mut self, t: &Tables, out: &mut [f32]) {
        let mut ratio = [0.0f32; TONE_CHUNK];
        let ratio = &mut ratio[..out.len()];
        let ratio = self.vibrato.fill(ratio).then_some(&*ratio);
        self.osc[0].fill(&t.flute, ratio, out);
        for o in out.iter_mut() {
            let breath = self.breath.bandpass(&self.breath_c, self.noise.next());
            self.chiff = super::filter::flush(self.chiff * self.chiff_decay);
            *o = (*o + breath * (self.hiss + self.chiff)) * self.gain;
        }
    }

    fn clarinet(&mut self, t: &Tables, out: &mut [f32]) {
        self.osc[0].fill(&t.clarinet, None, out);
        for o in out.iter_mut() {
            *o = self.filter.lowpass(&self.filter_c, *o) * self.gain;
        }
    }

    fn strings(&mut self, t: &Tables, out: &mut [f32]) {
        let n = out.len();
        let mut ratio = [0.0f32; TONE_CHUNK];
        let ratio = &mut ratio[..n];
        let ratio = self.vibrato.fill(ratio).then_some(&*ratio);
        let mut b = [0.0f32; TONE_CHUNK];
        let mut c = [0.0f32; TONE_CHUNK];
        let (b, c) = (&mut b[..n], &mut c[..n]);
        self.osc[0].fill(&t.saw, ratio, out);
        self.osc[1].fill(&t.saw, ratio, b);
        self.osc[2].fill(&t.saw, ratio, c);
        for ((o, &b), &c) in out.iter_mut().zip(&*b).zip(&*c) {
            let x = *o + b + c;
            *o = self.filter.lowpass(&self.filter_c, x * (1.0 / 3.0)) * self.gain;
        }
    }

    fn organ(&mut self, t: &Tables, out: &mut [f32]) {
        self.osc[0].fill(&t.organ, None, out);
        for o in out.iter_mut() {
            let tremulant = 1.0 + 0.06 * self.swell.next();
            *o *= tremulant * self.gain;
        }
    }

    fn drone(&mut self, t: &Tables, out: &mut [f32]) {
        let mut saw = [0.0f32; TONE_CHUNK];
        let saw = &mut saw[..out.len()];
        self.sub.fill(&t.sine, None, out);
        self.osc[0].fill(&t.saw, None, saw);
        for (o, &s) in out.iter_mut().zip(&*saw) {
            let saw = self.filter.lowpass(&self.filter_c, s);
            let movement = 0.5 + 0.2 * self.swell.next();
            *o = (0.6 * *o + movement * saw) * self.gain;
        }
    }
}
