//! One sounding note of the built-in synth: a tone generator, its envelope, its gain and the
//! short fade used when the note is stolen or silenced.

use super::envelope::{AdsrCoeffs, Envelope};
use super::timbre::{Tables, Timbre, Tone, velocity_gain};

/// Length of the fade-out of a stolen (or `all_sound_off`) note: short enough to be inaudible as
/// a fade, long enough not to click.
pub(crate) const STEAL_FADE_SECONDS: f32 = 0.005;
/// Velocity changes on a re-articulated note glide over this time instead of stepping.
const GAIN_GLIDE_SECONDS: f32 = 0.005;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Note {
    active: bool,
    /// Between note-on and note-off.
    held: bool,
    key: u8,
    /// Start order, for stealing the oldest.
    serial: u64,
    timbre: Timbre,
    env: Envelope,
    tone: Tone,
    gain: f32,
    gain_target: f32,
    gain_coeff: f32,
    /// 1 unless fading out; `fade_step` > 0 while fading.
    fade: f32,
    fade_step: f32,
}

impl Note {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        &mut self,
        timbre: Timbre,
        tables: &Tables,
        key: u8,
        velocity: u8,
        serial: u64,
        sample_rate: f32,
    ) {
        let gain = velocity_gain(velocity);
        *self = Note {
            active: true,
            held: true,
            key,
            serial,
            timbre,
            env: Envelope::default(),
            tone: Tone::new(timbre, tables, key, velocity, sample_rate, serial),
            gain,
            gain_target: gain,
            gain_coeff: 1.0 - (-1.0 / (GAIN_GLIDE_SECONDS * sample_rate).max(1.0)).exp(),
            fade: 1.0,
            fade_step: 0.0,
        };
        self.env.trigger();
    }

    /// Play the same pitch again on this note: re-attack from the current level, keep phase and
    /// filter state, so a repeated or tied note never clicks.
    pub(crate) fn retrigger(&mut self, velocity: u8, serial: u64) {
        self.held = true;
        self.serial = serial;
        self.gain_target = velocity_gain(velocity);
        self.tone.rearticulate();
        self.env.trigger();
    }

    pub(crate) fn release(&mut self) {
        self.held = false;
        self.env.release();
    }

    /// Fade out over [`STEAL_FADE_SECONDS`], then go quiet.
    pub(crate) fn fade_out(&mut self, sample_rate: f32) {
        self.held = false;
        if self.fade_step == 0.0 {
            self.fade_step = 1.0 / (STEAL_FADE_SECONDS * sample_rate).max(1.0);
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active
    }

    pub(crate) fn is_held(&self) -> bool {
        self.held
    }

    pub(crate) fn is_fading(&self) -> bool {
        self.fade_step > 0.0
    }

    pub(crate) fn key(&self) -> u8 {
        self.key
    }

    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    /// Adds the note to `out`; becomes inactive when its envelope or fade ends.
    pub(crate) fn render(&mut self, tables: &Tables, coeffs: &AdsrCoeffs, out: &mut [f32]) {
        if !self.active {
            return;
        }
        match self.timbre {
            Timbre::Flute => self.run(tables, coeffs, out, Tone::flute),
            Timbre::Clarinet => self.run(tables, coeffs, out, Tone::clarinet),
            Timbre::Strings => self.run(tables, coeffs, out, Tone::strings),
            Timbre::Drone => self.run(tables, coeffs, out, Tone::drone),
        }
    }

    /// The per-sample loop, monomorphised per timbre so the tone function inlines.
    #[inline(always)]
    fn run<F: Fn(&mut Tone, &Tables) -> f32>(
        &mut self,
        tables: &Tables,
        coeffs: &AdsrCoeffs,
        out: &mut [f32],
        tone: F,
    ) {
        for o in out.iter_mut() {
            let env = self.env.next(coeffs);
            if self.env.is_idle() {
                self.active = false;
                return;
            }
            self.gain += (self.gain_target - self.gain) * self.gain_coeff;
            let mut x = tone(&mut self.tone, tables) * env * self.gain;
            if self.fade_step > 0.0 {
                self.fade -= self.fade_step;
                if self.fade <= 0.0 {
                    self.active = false;
                    return;
                }
                x *= self.fade;
            }
            *o += x;
        }
    }
}
