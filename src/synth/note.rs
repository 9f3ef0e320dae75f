//! One sounding note of the built-in synth: a tone generator, its envelope, its gain and the
//! short fade used when the note is stolen or silenced.

use super::controls::Controls;
use super::envelope::{AdsrCoeffs, Envelope};
use super::timbre::{TONE_CHUNK, Tables, Timbre, Tone, velocity_gain};

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
        controls: &Controls,
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
            tone: Tone::new(timbre, tables, controls, key, velocity, sample_rate, serial),
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

    /// Glide to `key` (an acid slide): the note now belongs to `key`, its envelopes carry on.
    pub(crate) fn slide(&mut self, tables: &Tables, key: u8, serial: u64) {
        self.key = key;
        self.serial = serial;
        self.tone.slide_to(tables, key);
    }

    /// Note-off. A one-shot (a drum hit) only stops being held and plays on to its end.
    pub(crate) fn release(&mut self) {
        self.held = false;
        if !self.timbre.is_one_shot() {
            self.env.release();
        }
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

    pub(crate) fn timbre(&self) -> Timbre {
        self.timbre
    }

    pub(crate) fn key(&self) -> u8 {
        self.key
    }

    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    /// Starts loading what the note reads when it renders.
    pub(crate) fn prefetch(&self, tables: &Tables) {
        if self.active {
            self.tone.prefetch(self.timbre, tables);
        }
    }

    /// Adds the note to `out`; becomes inactive when its envelope or fade ends, or its tone
    /// dies away. Works in chunks: the envelope, velocity glide and fade of a chunk first, then
    /// its tone, then one multiply-add loop, each sample computed exactly as one sample at a
    /// time would be. `line` is the note slot's delay line (see `Tone::fill`).
    pub(crate) fn render(
        &mut self,
        tables: &Tables,
        coeffs: &AdsrCoeffs,
        controls: &Controls,
        line: &mut [f32],
        out: &mut [f32],
    ) {
        if !self.active {
            return;
        }
        for chunk in out.chunks_mut(TONE_CHUNK) {
            let len = chunk.len();
            let mut env = [0.0f32; TONE_CHUNK];
            let mut gain = [0.0f32; TONE_CHUNK];
            let mut fade = [0.0f32; TONE_CHUNK];
            let mut n = self.env.fill(coeffs, &mut env[..len]);
            self.glide(&mut gain[..n]);
            let fading = self.fade_step > 0.0;
            if fading {
                n = self.fade(&mut fade[..n]);
            }
            let mut tone = [0.0f32; TONE_CHUNK];
            let tone = &mut tone[..n];
            let n = self.tone.fill(self.timbre, tables, controls, line, tone);
            let tone = &tone[..n];
            let (out, env, gain) = (&mut chunk[..n], &env[..n], &gain[..n]);
            if fading {
                for ((((o, &t), &e), &g), &f) in
                    out.iter_mut().zip(tone).zip(env).zip(gain).zip(&fade[..n])
                {
                    *o += t * e * g * f;
                }
            } else {
                for (((o, &t), &e), &g) in out.iter_mut().zip(tone).zip(env).zip(gain) {
                    *o += t * e * g;
                }
            }
            if n < len {
                self.active = false;
                return;
            }
        }
    }

    /// The velocity gain of each sample, gliding toward its target (a constant once there).
    fn glide(&mut self, out: &mut [f32]) {
        if self.gain == self.gain_target {
            out.fill(self.gain);
            return;
        }
        for g in out.iter_mut() {
            self.gain += (self.gain_target - self.gain) * self.gain_coeff;
            *g = self.gain;
        }
    }

    /// The fade of each sample; returns how many samples come before it reaches silence.
    fn fade(&mut self, out: &mut [f32]) -> usize {
        for (i, f) in out.iter_mut().enumerate() {
            self.fade -= self.fade_step;
            if self.fade <= 0.0 {
                return i;
            }
            *f = self.fade;
        }
        out.len()
    }
}
