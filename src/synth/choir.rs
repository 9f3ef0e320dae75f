//! The whole instrument: five voices, each played by the built-in synth or the SoundFont player,
//! each with its level and equal-power pan, into a shared reverb and a master gain.
//!
//! [`Choir::new`] allocates everything (call it from the plugin's `initialize`). Every other
//! method is real-time safe: no allocation, lock, I/O or logging, and every gain is smoothed per
//! sample, so the output does not depend on how a block is split into `render` calls. The caller
//! splits blocks at event offsets for sample-accurate events.

use std::f32::consts::FRAC_PI_4;

use super::mixer::clean_sample;
use super::partial_bank::PartialBank;
use super::polysynth::PolySynth;
use super::reverb::Reverb;
use super::smoother::{SMOOTHING_SECONDS, Smoother};
use super::soundfont::{DEFAULT_PROGRAMS, SoundFontPlayer};
use super::voice_engine::VoiceEngine;
use super::{AcidWave, Adsr, Timbre, VoiceId};

/// What plays a voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// The built-in synth (and the fallback whenever no SoundFont is loaded).
    #[default]
    BuiltIn,
    /// The loaded SoundFont, on the voice's GM program.
    SoundFont,
    /// The voice's [`PartialBank`]: each note sounds the partials last given by
    /// [`Choir::set_spectrum`].
    Spectral,
}

/// Partials a voice's bank holds.
pub const SPECTRAL_BANK: usize = 64;
/// How long a Spectral voice's partials glide to a new token's amplitudes (and fade at a
/// release): long enough to smooth across tokens, short enough to keep the rhythm.
const SPECTRAL_SMOOTHING_SECONDS: f32 = 0.06;
/// The glide of a sound-off: silent (−120 dB) after about 14 time constants.
const SOUND_OFF_SECONDS: f32 = 0.001;
/// A bank's level against the built-in synth's: the partials' amplitudes sum to at most one,
/// and spread over many partials that is quieter than one oscillator at the same peak.
const SPECTRAL_GAIN: f32 = 2.0;
/// The stereo spread of a bank's partials around the voice's pan: alternately left and right,
/// widening with the partial's index.
const SPECTRAL_SPREAD: f32 = 0.3;

/// A Spectral voice: its bank, the partials its next note sounds and the notes it holds.
struct SpectralVoice {
    bank: PartialBank,
    /// `(frequency, amplitude, phase)` for the next note-on; unused entries have amplitude 0.
    pending: [(f32, f32, f32); SPECTRAL_BANK],
    /// Held notes, one bit per MIDI note: the bank releases when the last one ends.
    held: u128,
}

impl SpectralVoice {
    fn new(sample_rate: f32) -> Self {
        let mut bank = PartialBank::new(SPECTRAL_BANK, sample_rate);
        bank.set_smoothing(SPECTRAL_SMOOTHING_SECONDS);
        Self {
            bank,
            pending: [(0.0, 0.0, 0.0); SPECTRAL_BANK],
            held: 0,
        }
    }

    fn note_on(&mut self, note: u8, velocity: u8) {
        if velocity == 0 {
            self.note_off(note);
            return;
        }
        self.bank.set_smoothing(SPECTRAL_SMOOTHING_SECONDS);
        let v = f32::from(velocity.min(127)) / 127.0;
        let gain = SPECTRAL_GAIN * v * v;
        for (i, &(frequency, amplitude, phase)) in self.pending.iter().enumerate() {
            let side = if i % 2 == 0 { -1.0 } else { 1.0 };
            let pan = side * SPECTRAL_SPREAD * (i as f32 / SPECTRAL_BANK as f32).sqrt();
            // A partial starting from silence takes its phase; a sounding one glides on.
            self.bank.set_phase(i, phase);
            self.bank.set_partial(i, frequency, amplitude * gain, pan);
        }
        self.held |= 1u128 << (note & 127);
    }

    fn note_off(&mut self, note: u8) {
        let bit = 1u128 << (note & 127);
        if self.held & bit != 0 {
            self.held &= !bit;
            if self.held == 0 {
                self.bank.release_all();
            }
        }
    }

    fn release(&mut self) {
        self.held = 0;
        self.bank.release_all();
    }

    /// Releases at once (a sound-off): the fade takes about 15 ms, not the glide's second.
    fn silence(&mut self) {
        self.bank.set_smoothing(SOUND_OFF_SECONDS);
        self.release();
    }
}

/// Decibels to linear gain (-inf dB → 0).
pub fn db_to_gain(db: f32) -> f32 {
    if db == f32::NEG_INFINITY {
        0.0
    } else {
        10f32.powf(db / 20.0)
    }
}

/// Equal-power pan gains for `pan` in [-1, 1] (-3 dB each at centre).
fn pan_gains(pan: f32) -> (f32, f32) {
    // Exact at the ends: cos(π/2) is not 0 in f32.
    if pan <= -1.0 {
        return (1.0, 0.0);
    }
    if pan >= 1.0 {
        return (0.0, 1.0);
    }
    let angle = (pan.clamp(-1.0, 1.0) + 1.0) * FRAC_PI_4;
    (angle.cos(), angle.sin())
}

#[derive(Debug)]
struct Strip {
    source: Source,
    level: Smoother,
    left: Smoother,
    right: Smoother,
    pan: f32,
    program: u8,
}

/// Default per-voice settings: melodic voices spread across the stereo field, the drone centred
/// and a little lower.
const DEFAULT_PANS: [f32; VoiceId::COUNT] = [-0.35, 0.0, 0.35, 0.0, 0.0];
const DEFAULT_LEVELS: [f32; VoiceId::COUNT] = [1.0, 1.0, 1.0, 0.8, 0.7];
/// Gain of every parameter is limited to +12 dB.
const MAX_GAIN: f32 = 4.0;

pub struct Choir {
    sample_rate: f32,
    pub(super) builtin: PolySynth,
    spectral: Box<[SpectralVoice]>,
    soundfont: Option<SoundFontPlayer>,
    strips: [Strip; VoiceId::COUNT],
    master: Smoother,
    pub(super) reverb: Reverb,
    reverb_mix: f32,
    dry: Smoother,
    wet: Smoother,
    mono: Box<[f32]>,
    stem_l: Box<[f32]>,
    stem_r: Box<[f32]>,
    bus_l: Box<[f32]>,
    bus_r: Box<[f32]>,
}

impl std::fmt::Debug for Choir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Choir")
            .field("sample_rate", &self.sample_rate)
            .field("soundfont", &self.soundfont)
            .field("strips", &self.strips)
            .field("reverb_mix", &self.reverb_mix)
            .finish_non_exhaustive()
    }
}

impl Choir {
    /// Default reverb mix (0 = dry, bypassed; 1 = wet only).
    pub const DEFAULT_REVERB_MIX: f32 = 0.2;
    /// Default master gain (-3 dB): all seven notes of a full choir at full velocity, with
    /// reverb, stay below full scale.
    pub const DEFAULT_MASTER_GAIN: f32 = 0.7;

    /// Everything for `sample_rate` and render calls of up to `max_block` frames (longer calls
    /// work too, in pieces). Allocates: call off the audio thread.
    pub fn new(sample_rate: f32, max_block: usize) -> Self {
        let builtin = PolySynth::new(sample_rate);
        let sample_rate = builtin.sample_rate();
        let smoother = |v| Smoother::new(sample_rate, SMOOTHING_SECONDS, v);
        let strips = VoiceId::ALL.map(|voice| {
            let i = voice.index();
            let (l, r) = pan_gains(DEFAULT_PANS[i]);
            Strip {
                source: Source::BuiltIn,
                level: smoother(DEFAULT_LEVELS[i]),
                left: smoother(l),
                right: smoother(r),
                pan: DEFAULT_PANS[i],
                program: DEFAULT_PROGRAMS[i],
            }
        });
        let buffer = || vec![0.0f32; max_block.max(1)].into_boxed_slice();
        let mix = Self::DEFAULT_REVERB_MIX;
        let (dry, wet) = mix_gains(mix);
        Self {
            sample_rate,
            builtin,
            spectral: VoiceId::ALL
                .iter()
                .map(|_| SpectralVoice::new(sample_rate))
                .collect(),
            soundfont: None,
            strips,
            master: smoother(Self::DEFAULT_MASTER_GAIN),
            reverb: Reverb::new(sample_rate),
            reverb_mix: mix,
            dry: smoother(dry),
            wet: smoother(wet),
            mono: buffer(),
            stem_l: buffer(),
            stem_r: buffer(),
            bus_l: buffer(),
            bus_r: buffer(),
        }
    }

    pub fn sample_rate(&self) -> f32 {
        self.sample_rate
    }

    /// Start `note` on `voice` with its current source. Velocity 0 is a note-off.
    pub fn note_on(&mut self, voice: VoiceId, note: u8, velocity: u8) {
        match (self.strips[voice.index()].source, self.soundfont.as_mut()) {
            (Source::SoundFont, Some(sf)) => sf.note_on(voice, note, velocity),
            (Source::Spectral, _) => self.spectral[voice.index()].note_on(note, velocity),
            _ => self.builtin.note_on(voice, note, velocity),
        }
    }

    /// The partials `voice`'s next Spectral note-on sounds, `(frequency Hz, amplitude, phase)`
    /// each (amplitude before the note's velocity; phase in radians, taken by partials that
    /// start from silence). Entries past [`SPECTRAL_BANK`] are ignored, missing ones are silent.
    pub fn set_spectrum(&mut self, voice: VoiceId, partials: &[(f32, f32, f32)]) {
        let pending = &mut self.spectral[voice.index()].pending;
        for (i, slot) in pending.iter_mut().enumerate() {
            *slot = match partials.get(i) {
                Some(&(f, a, p)) if f.is_finite() && a.is_finite() && p.is_finite() => {
                    (f, a.max(0.0), p)
                }
                _ => (0.0, 0.0, 0.0),
            };
        }
    }

    /// Release `note` on `voice`, in whichever engine plays it, so a source switch between
    /// note-on and note-off never leaves a note hanging.
    pub fn note_off(&mut self, voice: VoiceId, note: u8) {
        self.builtin.note_off(voice, note);
        self.spectral[voice.index()].note_off(note);
        if let Some(sf) = self.soundfont.as_mut() {
            sf.note_off(voice, note);
        }
    }

    /// A MIDI control change on `voice`, for the engine that plays its next notes (see
    /// [`VoiceEngine::control_change`] of [`PolySynth`] and [`SoundFontPlayer`]).
    pub fn control_change(&mut self, voice: VoiceId, controller: u8, value: u8) {
        match (self.strips[voice.index()].source, self.soundfont.as_mut()) {
            (Source::SoundFont, Some(sf)) => sf.control_change(voice, controller, value),
            _ => self.builtin.control_change(voice, controller, value),
        }
    }

    /// Release every note (tails and reverb ring out).
    pub fn all_notes_off(&mut self) {
        self.builtin.all_notes_off();
        self.spectral.iter_mut().for_each(SpectralVoice::release);
        if let Some(sf) = self.soundfont.as_mut() {
            sf.all_notes_off();
        }
    }

    /// Silence everything within 5 ms, reverb included (reset, transport jump, panic).
    pub fn all_sound_off(&mut self) {
        self.builtin.all_sound_off();
        self.spectral.iter_mut().for_each(SpectralVoice::silence);
        if let Some(sf) = self.soundfont.as_mut() {
            sf.all_sound_off();
        }
        self.reverb.clear();
    }

    /// Which engine plays `voice`'s next notes; sounding notes finish where they are.
    /// `SoundFont` without a loaded font plays the built-in synth.
    pub fn set_source(&mut self, voice: VoiceId, source: Source) {
        self.strips[voice.index()].source = source;
    }

    pub fn source(&self, voice: VoiceId) -> Source {
        self.strips[voice.index()].source
    }

    /// Install a loaded SoundFont (moved in, no allocation) and return the previous one, which
    /// the caller should drop off the audio thread. Notes sounding on the previous font stop.
    /// The voices' programs (see [`Choir::set_program`]) carry over to the new font.
    /// A player loaded for another sample rate is refused and handed back as `Err`.
    pub fn replace_soundfont(
        &mut self,
        player: Option<SoundFontPlayer>,
    ) -> Result<Option<SoundFontPlayer>, SoundFontPlayer> {
        match player {
            Some(p) if (p.sample_rate() - self.sample_rate).abs() > 0.5 => Err(p),
            mut player => {
                if let Some(p) = player.as_mut() {
                    for voice in VoiceId::ALL {
                        p.set_program(voice, self.strips[voice.index()].program);
                    }
                }
                Ok(std::mem::replace(&mut self.soundfont, player))
            }
        }
    }

    pub fn soundfont(&self) -> Option<&SoundFontPlayer> {
        self.soundfont.as_ref()
    }

    /// GM program (0-based) of `voice` on the SoundFont, kept across font changes.
    pub fn set_program(&mut self, voice: VoiceId, program: u8) {
        let program = program.min(127);
        self.strips[voice.index()].program = program;
        if let Some(sf) = self.soundfont.as_mut() {
            sf.set_program(voice, program);
        }
    }

    pub fn program(&self, voice: VoiceId) -> u8 {
        self.strips[voice.index()].program
    }

    /// Built-in timbre of `voice` for its next notes.
    /// Plays `voice` on the SoundFont's drum kit (General MIDI's channel 10) or not; the
    /// built-in synth's drum kit is a timbre instead ([`Timbre::Drums`]).
    pub fn set_percussion(&mut self, voice: VoiceId, on: bool) {
        if let Some(font) = &mut self.soundfont {
            font.set_percussion(voice, on);
        }
    }

    pub fn set_timbre(&mut self, voice: VoiceId, timbre: Timbre) {
        self.builtin.set_timbre(voice, timbre);
    }

    pub fn timbre(&self, voice: VoiceId) -> Timbre {
        self.builtin.timbre(voice)
    }

    /// Oscillator of `voice`'s built-in acid bass, from its next note on.
    pub fn set_acid_wave(&mut self, voice: VoiceId, wave: AcidWave) {
        self.builtin.set_acid_wave(voice, wave);
    }

    pub fn acid_wave(&self, voice: VoiceId) -> AcidWave {
        self.builtin.acid_wave(voice)
    }

    /// Built-in envelope of `voice`.
    pub fn set_envelope(&mut self, voice: VoiceId, adsr: Adsr) {
        self.builtin.set_envelope(voice, adsr);
    }

    pub fn envelope(&self, voice: VoiceId) -> Adsr {
        self.builtin.envelope(voice)
    }

    /// Linear gain of `voice`, 0..=4 (+12 dB); see [`db_to_gain`].
    pub fn set_level(&mut self, voice: VoiceId, gain: f32) {
        if gain.is_finite() {
            self.strips[voice.index()]
                .level
                .set_target(gain.clamp(0.0, MAX_GAIN));
        }
    }

    pub fn level(&self, voice: VoiceId) -> f32 {
        self.strips[voice.index()].level.target()
    }

    /// Pan of `voice`, -1 (left) ..= 1 (right), equal power.
    pub fn set_pan(&mut self, voice: VoiceId, pan: f32) {
        if pan.is_finite() {
            let strip = &mut self.strips[voice.index()];
            strip.pan = pan.clamp(-1.0, 1.0);
            let (l, r) = pan_gains(strip.pan);
            strip.left.set_target(l);
            strip.right.set_target(r);
        }
    }

    pub fn pan(&self, voice: VoiceId) -> f32 {
        self.strips[voice.index()].pan
    }

    /// Linear master gain, 0..=4.
    pub fn set_master_gain(&mut self, gain: f32) {
        if gain.is_finite() {
            self.master.set_target(gain.clamp(0.0, MAX_GAIN));
        }
    }

    pub fn master_gain(&self) -> f32 {
        self.master.target()
    }

    /// Reverb amount, 0..=1, an equal-power dry/wet crossfade. 0 bypasses the reverb (no CPU).
    pub fn set_reverb_mix(&mut self, mix: f32) {
        if mix.is_finite() {
            self.reverb_mix = mix.clamp(0.0, 1.0);
            let (dry, wet) = mix_gains(self.reverb_mix);
            self.dry.set_target(dry);
            self.wet.set_target(wet);
        }
    }

    pub fn reverb_mix(&self) -> f32 {
        self.reverb_mix
    }

    /// Reverb room size, 0..=1.
    pub fn set_reverb_size(&mut self, size: f32) {
        self.reverb.set_size(size);
    }

    /// Reverb high-frequency damping, 0..=1.
    pub fn set_reverb_damping(&mut self, damping: f32) {
        self.reverb.set_damping(damping);
    }

    /// Notes of `voice` still sounding in the built-in synth.
    pub fn builtin_sounding_notes(&self, voice: VoiceId) -> usize {
        self.builtin.sounding_notes(voice)
    }

    /// Starts loading what the next `frames` samples will read: every sounding note's
    /// wavetables and the reverb's delay lines. Call once at the start of a block.
    pub fn prefetch(&self, frames: usize) {
        self.builtin.prefetch();
        if !self.reverb_bypassed() {
            self.reverb.prefetch(frames);
        }
    }

    /// Once the wet gain has settled at 0 the reverb is cleared and skipped.
    fn reverb_bypassed(&self) -> bool {
        self.wet.is_settled() && self.wet.target() == 0.0
    }

    /// **Adds** the choir's output to `left` and `right` (zero them first for the choir alone).
    /// Any length works; the slices should be equally long (the longer one's extra samples are
    /// left alone). The output is finite and free of subnormals.
    pub fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        let step = self.mono.len();
        for (l, r) in left.chunks_mut(step).zip(right.chunks_mut(step)) {
            let n = l.len().min(r.len());
            self.render_chunk(&mut l[..n], &mut r[..n]);
        }
    }

    fn render_chunk(&mut self, left: &mut [f32], right: &mut [f32]) {
        let n = left.len();
        let bypass = self.reverb_bypassed();
        let bus_l = &mut self.bus_l[..n];
        let bus_r = &mut self.bus_r[..n];
        bus_l.fill(0.0);
        bus_r.fill(0.0);
        for voice in VoiceId::ALL {
            let strip = &mut self.strips[voice.index()];
            let mono = &mut self.mono[..n];
            mono.fill(0.0);
            self.builtin.render_voice_mono(voice, mono);
            let spectral = &mut self.spectral[voice.index()];
            if self.soundfont.is_some() || !spectral.bank.is_silent() {
                let (sl, sr) = (&mut self.stem_l[..n], &mut self.stem_r[..n]);
                sl.fill(0.0);
                sr.fill(0.0);
                if let Some(sf) = self.soundfont.as_mut() {
                    sf.render_voice(voice, sl, sr);
                }
                if !spectral.bank.is_silent() {
                    spectral.bank.render_add(sl, sr);
                }
                for i in 0..n {
                    let level = strip.level.next();
                    let (gl, gr) = (strip.left.next() * level, strip.right.next() * level);
                    bus_l[i] += (mono[i] + sl[i]) * gl;
                    bus_r[i] += (mono[i] + sr[i]) * gr;
                }
            } else if strip.level.is_settled()
                && strip.left.is_settled()
                && strip.right.is_settled()
            {
                // Settled gains stay put: the same products every sample, as a plain loop.
                let level = strip.level.next();
                let (gl, gr) = (strip.left.next() * level, strip.right.next() * level);
                for ((l, r), &m) in bus_l.iter_mut().zip(bus_r.iter_mut()).zip(mono.iter()) {
                    *l += m * gl;
                    *r += m * gr;
                }
            } else {
                for i in 0..n {
                    let level = strip.level.next();
                    let (gl, gr) = (strip.left.next() * level, strip.right.next() * level);
                    bus_l[i] += mono[i] * gl;
                    bus_r[i] += mono[i] * gr;
                }
            }
        }
        // Reverb bypass follows the same per-sample rule whether decided for the whole chunk
        // or sample by sample: once the wet gain has settled at 0, the reverb is cleared and
        // skipped.
        if bypass {
            if !self.reverb.is_idle() {
                self.reverb.clear();
            }
            for i in 0..n {
                let g = self.dry.next() * self.master.next();
                left[i] += clean_sample(bus_l[i] * g).0;
                right[i] += clean_sample(bus_r[i] * g).0;
            }
        } else if self.wet.target() != 0.0 {
            // The wet gain never reaches 0 in this chunk, so the reverb hears every sample and
            // can run over the chunk at once.
            let input = &mut self.mono[..n];
            for ((x, &l), &r) in input.iter_mut().zip(bus_l.iter()).zip(bus_r.iter()) {
                *x = 0.5 * (l + r);
            }
            let (rev_l, rev_r) = (&mut self.stem_l[..n], &mut self.stem_r[..n]);
            self.reverb.process_block(input, rev_l, rev_r);
            for i in 0..n {
                let dry = self.dry.next();
                let wet = self.wet.next();
                let master = self.master.next();
                left[i] += clean_sample((bus_l[i] * dry + rev_l[i] * wet) * master).0;
                right[i] += clean_sample((bus_r[i] * dry + rev_r[i] * wet) * master).0;
            }
        } else {
            for i in 0..n {
                let dry = self.dry.next();
                let wet = self.wet.next();
                let master = self.master.next();
                let (rl, rr) = if wet == 0.0 && self.wet.target() == 0.0 {
                    if !self.reverb.is_idle() {
                        self.reverb.clear();
                    }
                    (0.0, 0.0)
                } else {
                    self.reverb.process(0.5 * (bus_l[i] + bus_r[i]))
                };
                left[i] += clean_sample((bus_l[i] * dry + rl * wet) * master).0;
                right[i] += clean_sample((bus_r[i] * dry + rr * wet) * master).0;
            }
        }
    }
}

/// Equal-power dry/wet gains for a mix of 0..=1; exactly (1, 0) at 0.
fn mix_gains(mix: f32) -> (f32, f32) {
    if mix <= 0.0 {
        return (1.0, 0.0);
    }
    let angle = mix.min(1.0) * 2.0 * FRAC_PI_4;
    (angle.cos(), angle.sin())
}
