//! The acid bass ([`Timbre::AcidBass`](super::Timbre::AcidBass)): a TB-303-style line.
//!
//! A band-limited saw (or a square made of two saws half a cycle apart, so it is band-limited
//! too) through the resonant [`Ladder`], whose cutoff falls from `base × 2^env_mod` to the
//! base with an exponential filter envelope. The base cutoff and the resonance follow the
//! voice's controllers ([`Controls`]), gliding so a controller move never clicks.
//!
//! Accent (velocity ≥ [`ACCENT_VELOCITY`]) is louder, opens the filter further and closes it
//! faster, as on the 303. Slide (a note-on while a note is held, see `polysynth.rs`) glides the
//! sounding note's pitch exponentially to the new note without touching either envelope.

use super::controls::{AcidWave, Controls};
use super::ladder::{Ladder, SELF_OSCILLATION, stage_gain};
use super::oscillator::TableOsc;
use super::timbre::{TONE_CHUNK, Tables};

/// Velocities from here up are accented.
pub(crate) const ACCENT_VELOCITY: u8 = 100;
/// Slide time constant: the glide covers 95 % of the interval in 60 ms (three of these).
const SLIDE_SECONDS: f32 = 0.02;
/// Within this many octaves (0.1 cent) the slide has arrived.
const SLIDE_SNAP: f32 = 1e-4;
/// Controller smoothing time constant.
const CONTROL_SECONDS: f32 = 0.01;
/// Filter envelope: decay time constant and depth (octaves above the base cutoff at its peak).
const DECAY_SECONDS: f32 = 0.3;
const ENV_MOD_OCTAVES: f32 = 3.0;
const ACCENT_DECAY_SECONDS: f32 = 0.1;
const ACCENT_ENV_MOD_OCTAVES: f32 = 4.5;
/// Below this the filter envelope has closed (its last step is under 0.002 octave) and stops.
const ENV_END: f32 = 3e-4;
/// Accent's extra level.
const ACCENT_GAIN: f32 = 1.5;
/// Feedback at resonance 1: just short of self-oscillation.
const MAX_FEEDBACK: f32 = 0.985 * SELF_OSCILLATION;
/// Half-octave key tracking around this note (C2), so high notes are not choked by the filter.
const KEY_TRACK_REFERENCE_HZ: f32 = 65.41;
const KEY_TRACK: f32 = 0.5;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AcidTone {
    osc: [TableOsc; 2],
    square: bool,
    sample_rate: f32,
    /// The frequency the oscillators are tuned to; slides run as a ratio on top of it.
    freq: f32,
    /// Current and target pitch offset from `freq`, in octaves.
    pitch: f32,
    target: f32,
    slide_coeff: f32,
    /// Filter envelope, 1 at the note's start, decaying to 0.
    env: f32,
    env_decay: f32,
    env_mod: f32,
    /// Base cutoff (log2 Hz) and feedback, smoothed toward the controls.
    log_cutoff: f32,
    /// Key tracking of the pitch `freq`, in octaves.
    key_track: f32,
    feedback: f32,
    control_coeff: f32,
    ladder: Ladder,
    /// The last cutoff (log2 Hz) and its stage gain: a settled note skips `exp2` and `tan`.
    last_cutoff: f32,
    last_g: f32,
    gain: f32,
}

impl AcidTone {
    pub(crate) fn new(
        tables: &Tables,
        controls: &Controls,
        freq: f32,
        velocity: u8,
        sample_rate: f32,
        gain: f32,
    ) -> Self {
        let accent = velocity >= ACCENT_VELOCITY;
        let (decay, env_mod, gain) = if accent {
            (
                ACCENT_DECAY_SECONDS,
                ACCENT_ENV_MOD_OCTAVES,
                gain * ACCENT_GAIN,
            )
        } else {
            (DECAY_SECONDS, ENV_MOD_OCTAVES, gain)
        };
        let key_track = KEY_TRACK * (freq.max(1.0) / KEY_TRACK_REFERENCE_HZ).log2();
        Self {
            osc: [
                TableOsc::new(&tables.saw, freq, sample_rate, 0.0),
                TableOsc::new(&tables.saw, freq, sample_rate, 0.5),
            ],
            square: controls.acid_wave == AcidWave::Square,
            sample_rate,
            freq,
            pitch: 0.0,
            target: 0.0,
            slide_coeff: coeff(SLIDE_SECONDS, sample_rate),
            env: 1.0,
            env_decay: (-1.0 / (decay * sample_rate).max(1.0)).exp(),
            env_mod,
            log_cutoff: controls.cutoff_hz().log2(),
            key_track,
            feedback: controls.resonance() * MAX_FEEDBACK,
            control_coeff: coeff(CONTROL_SECONDS, sample_rate),
            ladder: Ladder::default(),
            last_cutoff: f32::NAN,
            last_g: 0.0,
            gain,
        }
    }

    /// A re-struck note (not a slide): the filter envelope starts over.
    pub(crate) fn restart(&mut self) {
        self.env = 1.0;
    }

    /// Glide to `freq` from wherever the pitch is now; the envelopes carry on. The oscillators
    /// switch to the band of the higher of the two pitches now, at the event, and keep it
    /// until the next slide (so the band never changes at a block-dependent moment).
    pub(crate) fn slide_to(&mut self, tables: &Tables, freq: f32) {
        let target = (freq / self.freq).log2();
        if !target.is_finite() {
            return;
        }
        let highest = self.freq * self.pitch.max(target).exp2();
        self.target = target;
        for osc in self.osc.iter_mut() {
            osc.cover(&tables.saw, highest);
        }
    }

    pub(crate) fn prefetch(&self, tables: &Tables) {
        self.osc[0].prefetch(&tables.saw);
    }

    pub(crate) fn fill(&mut self, tables: &Tables, controls: &Controls, out: &mut [f32]) {
        let n = out.len();
        let mut pitch = [0.0f32; TONE_CHUNK];
        let mut ratio = [0.0f32; TONE_CHUNK];
        let (pitch, ratio) = (&mut pitch[..n], &mut ratio[..n]);
        // Always through the ratio, even at 1: each sample's phase step then depends only on
        // the pitch, not on where a chunk begins, so block splits cannot change the output.
        if self.pitch != self.target {
            for (p, r) in pitch.iter_mut().zip(ratio.iter_mut()) {
                self.pitch += (self.target - self.pitch) * self.slide_coeff;
                if (self.target - self.pitch).abs() < SLIDE_SNAP {
                    self.pitch = self.target;
                }
                *p = self.pitch;
                *r = self.pitch.exp2();
            }
        } else {
            pitch.fill(self.pitch);
            ratio.fill(self.pitch.exp2());
        }
        self.osc[0].fill(&tables.saw, Some(ratio), out);
        if self.square {
            let mut other = [0.0f32; TONE_CHUNK];
            let other = &mut other[..n];
            self.osc[1].fill(&tables.saw, Some(ratio), other);
            for (o, &b) in out.iter_mut().zip(&*other) {
                *o = 0.6 * (*o - b);
            }
        }
        let log_cutoff = controls.cutoff_hz().log2();
        let feedback = controls.resonance() * MAX_FEEDBACK;
        for (o, &p) in out.iter_mut().zip(&*pitch) {
            self.log_cutoff = approach(self.log_cutoff, log_cutoff, self.control_coeff);
            self.feedback = approach(self.feedback, feedback, self.control_coeff);
            self.env *= self.env_decay;
            if self.env < ENV_END {
                self.env = 0.0;
            }
            let octaves = self.key_track + KEY_TRACK * p + self.env_mod * self.env;
            let log_cutoff = self.log_cutoff + octaves;
            if log_cutoff != self.last_cutoff {
                self.last_cutoff = log_cutoff;
                self.last_g = stage_gain(log_cutoff.exp2(), self.sample_rate);
            }
            let g = self.last_g;
            let y = self.ladder.process(*o, g, self.feedback);
            // Part of the passband the feedback takes away comes back, as on the 303.
            *o = y * (1.0 + 0.5 * self.feedback) * self.gain;
        }
        self.ladder.end_chunk();
    }
}

/// One step of a one-pole glide, arriving exactly once within 1e-6 (never creeping through
/// subnormal differences).
#[inline]
fn approach(current: f32, target: f32, coeff: f32) -> f32 {
    let next = current + (target - current) * coeff;
    if (target - next).abs() < 1e-6 {
        target
    } else {
        next
    }
}

/// One-pole coefficient for a time constant.
fn coeff(seconds: f32, sample_rate: f32) -> f32 {
    1.0 - (-1.0 / (seconds * sample_rate).max(1.0)).exp()
}
