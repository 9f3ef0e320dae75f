//! The drum kit ([`Timbre::Drums`](super::Timbre::Drums)): the key picks the instrument, as in
//! the General MIDI drum map, and every hit is a one-shot that plays to its own decay.
//!
//! * kick (35, 36): a sine swept down from about 150 Hz to its body pitch, plus a short click;
//! * snare (38, 40): two short sines (the shell) and band-passed noise (the wires);
//! * clap (39): three quick bursts of band-passed noise, then a tail;
//! * hi-hats (42 closed, 44 pedal, 46 open) and crash (49, 57): six detuned square waves
//!   (a metallic cluster) with noise, band-passed high and high-passed; a closed or pedal hat
//!   chokes a sounding open hat (see `polysynth.rs`).
//!
//! Other keys are not drums and play nothing.

use std::f32::consts::TAU;

use super::filter::{Svf, SvfCoeffs, flush};
use super::noise::Noise;
use super::timbre::Tables;
use super::wavetable::read;

/// Below this (-80 dB) every part of a hit has died away and the note ends.
const SILENCE: f32 = 1e-4;
/// The 808's hi-hat square-wave frequencies, the root of the metallic cluster.
const METAL_HZ: [f32; 6] = [205.3, 304.4, 369.6, 522.7, 540.0, 800.0];
/// Clap: bursts, their spacing and decay, then the tail.
const CLAP_BURSTS: u32 = 3;
const CLAP_SPACING_SECONDS: f32 = 0.011;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Drum {
    #[default]
    Kick,
    Snare,
    Clap,
    Hat,
    Crash,
}

/// The instrument on `key`, if any, with its variant's settings.
#[derive(Debug, Clone, Copy)]
struct Voice {
    drum: Drum,
    /// Body pitch (kick, snare) or centre of the noise band.
    pitch: f32,
    /// Decay time constants of the tone and noise parts.
    tone_seconds: f32,
    noise_seconds: f32,
}

fn voice_for(key: u8) -> Option<Voice> {
    let v = |drum, pitch, tone_seconds, noise_seconds| Voice {
        drum,
        pitch,
        tone_seconds,
        noise_seconds,
    };
    Some(match key {
        35 => v(Drum::Kick, 43.0, 0.42, 0.0),
        36 => v(Drum::Kick, 50.0, 0.32, 0.0),
        38 => v(Drum::Snare, 185.0, 0.05, 0.09),
        40 => v(Drum::Snare, 200.0, 0.04, 0.07),
        39 => v(Drum::Clap, 1_200.0, 0.0, 0.12),
        42 => v(Drum::Hat, 9_000.0, 0.0, 0.03),
        44 => v(Drum::Hat, 9_000.0, 0.0, 0.018),
        46 => v(Drum::Hat, 9_000.0, 0.0, 0.28),
        49 => v(Drum::Crash, 6_500.0, 0.0, 0.9),
        57 => v(Drum::Crash, 7_000.0, 0.0, 0.8),
        _ => return None,
    })
}

/// Whether `key` plays a drum at all.
pub(crate) fn is_drum(key: u8) -> bool {
    voice_for(key).is_some()
}

/// Whether a hit on `key` silences a sounding hit on `sounding`: the same instrument restarts,
/// and a closed or pedal hat closes the open one.
pub(crate) fn chokes(key: u8, sounding: u8) -> bool {
    key == sounding || (matches!(key, 42 | 44) && sounding == 46)
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DrumTone {
    drum: Drum,
    sample_rate: f32,
    age: u32,
    /// Sine band for the tonal parts; `None` at rates too low for any.
    band: Option<u32>,
    phase: [u32; 2],
    /// Kick and snare pitch: `end + (start − end)·sweep`, the sweep decaying.
    start_hz: f32,
    end_hz: f32,
    sweep: f32,
    sweep_decay: f32,
    tone: f32,
    tone_decay: f32,
    noise: Noise,
    level: f32,
    noise_decay: f32,
    tail_decay: f32,
    click: f32,
    click_decay: f32,
    band_c: SvfCoeffs,
    band_f: Svf,
    /// One-pole high-pass: coefficient and state.
    hp: f32,
    hp_x: f32,
    hp_y: f32,
    metal: [u32; 6],
    metal_inc: [u32; 6],
    spacing: u32,
    gain: f32,
}

fn decay(seconds: f32, sample_rate: f32) -> f32 {
    if seconds <= 0.0 {
        0.0
    } else {
        (-1.0 / (seconds * sample_rate).max(1.0)).exp()
    }
}

fn increment(freq: f32, sample_rate: f32) -> u32 {
    super::oscillator::to_fixed(f64::from(freq / sample_rate))
}

impl DrumTone {
    /// A hit of the drum on `key`; keys that are not drums give a silent, finished tone.
    pub(crate) fn new(
        tables: &Tables,
        key: u8,
        velocity: u8,
        sample_rate: f32,
        seed: u64,
        gain: f32,
    ) -> Self {
        let Some(voice) = voice_for(key) else {
            return Self::default();
        };
        let v = f32::from(velocity.min(127)) / 127.0;
        let mut t = Self {
            drum: voice.drum,
            sample_rate,
            band: tables.sine.band_for(100.0),
            tone: 1.0,
            tone_decay: decay(voice.tone_seconds, sample_rate),
            noise: Noise::new(seed),
            level: 1.0,
            noise_decay: decay(voice.noise_seconds, sample_rate),
            hp: (-TAU * 800.0 / sample_rate).exp(),
            gain,
            ..Self::default()
        };
        match voice.drum {
            Drum::Kick => {
                t.start_hz = voice.pitch * (2.6 + 0.6 * v);
                t.end_hz = voice.pitch;
                t.sweep = 1.0;
                t.sweep_decay = decay(0.035, sample_rate);
                t.click = 0.5 + 0.5 * v;
                t.click_decay = decay(0.0015, sample_rate);
                t.level = 0.0;
                t.band_c = SvfCoeffs::new(sample_rate, 3_000.0, 0.7);
            }
            Drum::Snare => {
                t.start_hz = voice.pitch * 1.25;
                t.end_hz = voice.pitch;
                t.sweep = 1.0;
                t.sweep_decay = decay(0.02, sample_rate);
                t.band_c = SvfCoeffs::new(sample_rate, voice.pitch * 18.0 * (0.8 + 0.4 * v), 0.8);
                t.hp = (-TAU * 1_000.0 / sample_rate).exp();
            }
            Drum::Clap => {
                t.tone = 0.0;
                t.band_c = SvfCoeffs::new(sample_rate, voice.pitch, 1.4);
                t.noise_decay = decay(0.0025, sample_rate);
                t.tail_decay = decay(voice.noise_seconds, sample_rate);
                t.spacing = (CLAP_SPACING_SECONDS * sample_rate).max(1.0) as u32;
            }
            Drum::Hat | Drum::Crash => {
                t.tone = 0.0;
                let q = if voice.drum == Drum::Hat { 1.0 } else { 0.6 };
                t.band_c = SvfCoeffs::new(sample_rate, voice.pitch, q);
                t.hp = (-TAU * 0.6 * voice.pitch / sample_rate).exp();
                // The cluster moves with the band: crashes sit lower than hats.
                let spread = voice.pitch / 9_000.0 * 1.8;
                for (i, f) in METAL_HZ.iter().enumerate() {
                    t.metal[i] = (i as u32).wrapping_mul(0x9E37_79B9);
                    t.metal_inc[i] = increment(f * spread, sample_rate);
                }
            }
        }
        t
    }

    pub(crate) fn prefetch(&self, tables: &Tables) {
        if let (Some(b), Drum::Kick | Drum::Snare) = (self.band, self.drum) {
            super::prefetch::prefetch(tables.sine.band(b));
        }
    }

    /// Writes the hit's next samples and returns how many come before it has died away
    /// (`out.len()` while it sounds; the rest are zeros). The end is found sample by sample,
    /// so it does not depend on how the block was split.
    pub(crate) fn fill(&mut self, tables: &Tables, out: &mut [f32]) -> usize {
        let n = match self.drum {
            Drum::Kick => self.kick(tables, out),
            Drum::Snare => self.snare(tables, out),
            Drum::Clap => self.clap(out),
            Drum::Hat | Drum::Crash => self.metal(out),
        };
        out[n..].fill(0.0);
        self.band_f.end_chunk();
        self.hp_x = flush(self.hp_x);
        self.hp_y = flush(self.hp_y);
        n
    }

    #[inline]
    fn ended(&self) -> bool {
        self.tone.max(self.level).max(self.click) < SILENCE
    }

    /// The swept pitch's next phase increment.
    #[inline]
    fn sweep_step(&mut self) -> u32 {
        self.sweep = flush(self.sweep * self.sweep_decay);
        let f = self.end_hz + (self.start_hz - self.end_hz) * self.sweep;
        increment(f, self.sample_rate)
    }

    /// One-pole high-pass.
    #[inline]
    fn highpass(&mut self, x: f32) -> f32 {
        self.hp_y = self.hp * (self.hp_y + x - self.hp_x);
        self.hp_x = x;
        self.hp_y
    }

    fn kick(&mut self, tables: &Tables, out: &mut [f32]) -> usize {
        let Some(b) = self.band else {
            return 0;
        };
        let sine = tables.sine.band(b);
        for (i, o) in out.iter_mut().enumerate() {
            if self.ended() {
                return i;
            }
            let inc = self.sweep_step();
            let body = read(sine, self.phase[0]) * self.tone;
            self.phase[0] = self.phase[0].wrapping_add(inc);
            self.tone = flush(self.tone * self.tone_decay);
            let click = self.band_f.lowpass(&self.band_c, self.noise.next()) * self.click;
            self.click = flush(self.click * self.click_decay);
            *o = (body + click) * self.gain;
        }
        out.len()
    }

    fn snare(&mut self, tables: &Tables, out: &mut [f32]) -> usize {
        let sine = self.band.map(|b| tables.sine.band(b));
        for (i, o) in out.iter_mut().enumerate() {
            if self.ended() {
                return i;
            }
            let inc = self.sweep_step();
            let shell = match sine {
                Some(s) => 0.6 * read(s, self.phase[0]) + 0.4 * read(s, self.phase[1]),
                None => 0.0,
            };
            self.phase[0] = self.phase[0].wrapping_add(inc);
            // The second shell mode, a little above the ratio of a membrane's (1.59).
            self.phase[1] = self.phase[1].wrapping_add((inc as f32 * 1.78) as u32);
            let wires = self.band_f.bandpass(&self.band_c, self.noise.next());
            let wires = self.highpass(wires);
            *o = (0.5 * shell * self.tone + 1.6 * wires * self.level) * self.gain;
            self.tone = flush(self.tone * self.tone_decay);
            self.level = flush(self.level * self.noise_decay);
        }
        out.len()
    }

    fn clap(&mut self, out: &mut [f32]) -> usize {
        let tail_start = CLAP_BURSTS * self.spacing;
        for (i, o) in out.iter_mut().enumerate() {
            if self.age > tail_start && self.ended() {
                return i;
            }
            if self.age < tail_start && self.age.is_multiple_of(self.spacing) {
                self.level = 1.0;
            } else if self.age == tail_start {
                self.level = 0.8;
                self.noise_decay = self.tail_decay;
            }
            self.age = self.age.saturating_add(1);
            let x = self.band_f.bandpass(&self.band_c, self.noise.next());
            *o = 2.0 * x * self.level * self.gain;
            self.level = flush(self.level * self.noise_decay);
        }
        out.len()
    }

    fn metal(&mut self, out: &mut [f32]) -> usize {
        for (i, o) in out.iter_mut().enumerate() {
            if self.ended() {
                return i;
            }
            let mut squares = 0.0;
            for (p, &inc) in self.metal.iter_mut().zip(&self.metal_inc) {
                squares += if *p < 0x8000_0000 { 1.0 } else { -1.0 };
                *p = p.wrapping_add(inc);
            }
            let x = squares * (1.0 / 6.0) + 0.8 * self.noise.next();
            let y = self.band_f.bandpass(&self.band_c, x);
            let y = self.highpass(y);
            *o = 2.0 * y * self.level * self.gain;
            self.level = flush(self.level * self.noise_decay);
        }
        out.len()
    }
}
