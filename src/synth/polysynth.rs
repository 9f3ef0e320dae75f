//! The built-in synth: a fixed pool of notes per voice, each voice with its own timbre,
//! envelope and controllers. Everything is allocated in [`PolySynth::new`]; playing only moves
//! data inside the pools.
//!
//! Two timbres change what a note-on means. In an acid bass pool, a note-on while a note is
//! held slides that note to the new pitch (the 303's overlapping-notes slide) instead of
//! starting another. In a drum pool, the key picks the drum: keys without one are ignored, and
//! a hit chokes the hits it silences on a drum machine (see [`drums::chokes`]).

use super::VoiceId;
use super::controls::{AcidWave, Controls};
use super::drums;
use super::envelope::{Adsr, AdsrCoeffs};
use super::note::Note;
use super::pluck;
use super::timbre::{Tables, Timbre};
use super::voice_engine::VoiceEngine;

/// Notes each voice can sound at once (held and releasing). A melodic voice needs its main note,
/// an ornament overlapping it and the release tails of the notes before.
pub const POLYPHONY: usize = 8;
/// Stolen notes fade out here while the slot they left starts the new note at once.
const FADE_SLOTS: usize = 4;
/// Stereo rendering through the trait goes through a mono buffer of this size on the stack.
const CHUNK: usize = 64;

#[derive(Debug)]
pub(super) struct Pool {
    pub(super) notes: [Note; POLYPHONY],
    fading: [Note; FADE_SLOTS],
    next_fade: usize,
    timbre: Timbre,
    adsr: Adsr,
    coeffs: AdsrCoeffs,
    controls: Controls,
    /// One pluck delay line per note slot, `notes` then `fading`, each `line_len` long.
    pub(super) lines: Box<[f32]>,
    pub(super) line_len: usize,
}

impl Pool {
    fn new(timbre: Timbre, sample_rate: f32) -> Self {
        let adsr = timbre.default_envelope();
        let line_len = pluck::line_len(sample_rate).max(1);
        Self {
            notes: [Note::default(); POLYPHONY],
            fading: [Note::default(); FADE_SLOTS],
            next_fade: 0,
            timbre,
            adsr,
            coeffs: AdsrCoeffs::new(&adsr, sample_rate),
            controls: Controls::default(),
            lines: vec![0.0; (POLYPHONY + FADE_SLOTS) * line_len].into_boxed_slice(),
            line_len,
        }
    }

    /// Moves note `i` to a fade slot (its delay line too, if it has one) to fade out there;
    /// slot `i` is then free for a new note.
    fn retire(&mut self, i: usize, sample_rate: f32) {
        let f = self.next_fade;
        self.fading[f] = self.notes[i];
        self.fading[f].fade_out(sample_rate);
        self.next_fade = (f + 1) % FADE_SLOTS;
        if self.notes[i].timbre() == Timbre::Pluck {
            let len = self.line_len;
            self.lines
                .copy_within(i * len..(i + 1) * len, (POLYPHONY + f) * len);
        }
        self.notes[i] = Note::default();
    }

    fn sounding(&self) -> usize {
        self.notes.iter().filter(|n| n.is_active()).count()
            + self.fading.iter().filter(|n| n.is_active()).count()
    }

    /// The slot for a new note: a free one, else the oldest releasing note, else the oldest.
    /// Deterministic: ties cannot happen, serials are unique.
    fn slot_for_new_note(&self) -> (usize, bool) {
        if let Some(i) = self.notes.iter().position(|n| !n.is_active()) {
            return (i, false);
        }
        let oldest = |held: bool| {
            self.notes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.is_held() == held)
                .min_by_key(|(_, n)| n.serial())
                .map(|(i, _)| i)
        };
        let i = oldest(false).or_else(|| oldest(true)).unwrap_or(0);
        (i, true)
    }
}

/// The built-in polyphonic synth. See [`VoiceEngine`] for the playing interface.
#[derive(Debug)]
pub struct PolySynth {
    sample_rate: f32,
    tables: Box<Tables>,
    pub(super) pools: Box<[Pool; VoiceId::COUNT]>,
    /// Counts note starts: orders notes for stealing and seeds their noise.
    serial: u64,
}

impl PolySynth {
    /// Builds the wavetables and note pools for `sample_rate` (any positive rate; notes whose
    /// fundamental is above Nyquist are silent). Allocates: call off the audio thread.
    pub fn new(sample_rate: f32) -> Self {
        let sample_rate = if sample_rate.is_finite() && sample_rate >= 1.0 {
            sample_rate
        } else {
            48_000.0
        };
        Self {
            sample_rate,
            tables: Box::new(Tables::new(sample_rate)),
            pools: Box::new([
                Pool::new(Timbre::for_voice(VoiceId::Voice1), sample_rate),
                Pool::new(Timbre::for_voice(VoiceId::Voice2), sample_rate),
                Pool::new(Timbre::for_voice(VoiceId::Voice3), sample_rate),
                Pool::new(Timbre::for_voice(VoiceId::Drone), sample_rate),
                Pool::new(Timbre::for_voice(VoiceId::Tension), sample_rate),
            ]),
            serial: 0,
        }
    }

    pub fn sample_rate(&self) -> f32 {
        self.sample_rate
    }

    /// The timbre new notes of `voice` get; sounding notes keep theirs. A change of timbre also
    /// resets the voice's envelope to [`Timbre::default_envelope`] (call
    /// [`PolySynth::set_envelope`] after it to override); setting the current timbre again
    /// changes nothing, so a plugin may push both every block.
    pub fn set_timbre(&mut self, voice: VoiceId, timbre: Timbre) {
        let pool = &mut self.pools[voice.index()];
        if pool.timbre != timbre {
            pool.timbre = timbre;
            pool.adsr = timbre.default_envelope();
            pool.coeffs = AdsrCoeffs::new(&pool.adsr, self.sample_rate);
        }
    }

    pub fn timbre(&self, voice: VoiceId) -> Timbre {
        self.pools[voice.index()].timbre
    }

    /// The envelope of `voice`, sanitised (see [`Adsr::sanitized`]); applies to sounding notes
    /// from their next segment on.
    pub fn set_envelope(&mut self, voice: VoiceId, adsr: Adsr) {
        let pool = &mut self.pools[voice.index()];
        pool.adsr = adsr.sanitized(pool.adsr);
        pool.coeffs = AdsrCoeffs::new(&pool.adsr, self.sample_rate);
    }

    pub fn envelope(&self, voice: VoiceId) -> Adsr {
        self.pools[voice.index()].adsr
    }

    /// The oscillator of `voice`'s acid bass notes from the next note on.
    pub fn set_acid_wave(&mut self, voice: VoiceId, wave: AcidWave) {
        self.pools[voice.index()].controls.acid_wave = wave;
    }

    pub fn acid_wave(&self, voice: VoiceId) -> AcidWave {
        self.pools[voice.index()].controls.acid_wave
    }

    /// The last value of `controller` on `voice` that the synth keeps (74 cutoff/brightness,
    /// 71 resonance), or `None` for controllers it ignores.
    pub fn controller(&self, voice: VoiceId, controller: u8) -> Option<u8> {
        let c = &self.pools[voice.index()].controls;
        match controller {
            super::controls::CC_CUTOFF => Some(c.cutoff),
            super::controls::CC_RESONANCE => Some(c.resonance),
            _ => None,
        }
    }

    /// Notes of `voice` still making sound (held, releasing or fading).
    pub fn sounding_notes(&self, voice: VoiceId) -> usize {
        self.pools[voice.index()].sounding()
    }

    /// Fade every note of every voice out within 5 ms (reset, stop, panic).
    pub fn all_sound_off(&mut self) {
        let sample_rate = self.sample_rate;
        for pool in self.pools.iter_mut() {
            for note in pool.notes.iter_mut().chain(pool.fading.iter_mut()) {
                if note.is_active() {
                    note.fade_out(sample_rate);
                }
            }
        }
    }

    /// Starts loading the wavetables of every sounding note (see `prefetch.rs`).
    pub fn prefetch(&self) {
        for pool in self.pools.iter() {
            for note in pool.notes.iter().chain(pool.fading.iter()) {
                note.prefetch(&self.tables);
            }
        }
    }

    /// **Adds** `voice`'s dry mono signal to `out` (any length).
    pub fn render_voice_mono(&mut self, voice: VoiceId, out: &mut [f32]) {
        let pool = &mut self.pools[voice.index()];
        let tables = &*self.tables;
        let lines = pool.lines.chunks_mut(pool.line_len);
        for (note, line) in pool
            .notes
            .iter_mut()
            .chain(pool.fading.iter_mut())
            .zip(lines)
        {
            note.render(tables, &pool.coeffs, &pool.controls, line, out);
        }
    }
}

impl VoiceEngine for PolySynth {
    fn note_on(&mut self, voice: VoiceId, note: u8, velocity: u8) {
        if velocity == 0 {
            self.note_off(voice, note);
            return;
        }
        let note = note.min(127);
        self.serial += 1;
        let serial = self.serial;
        let sample_rate = self.sample_rate;
        let pool = &mut self.pools[voice.index()];
        let timbre = pool.timbre;
        if timbre == Timbre::Drums {
            if !drums::is_drum(note) {
                return;
            }
            for i in 0..POLYPHONY {
                let n = &pool.notes[i];
                if n.is_active() && n.timbre() == Timbre::Drums && drums::chokes(note, n.key()) {
                    pool.retire(i, sample_rate);
                }
            }
        } else if timbre == Timbre::AcidBass {
            // Overlapping notes slide: the newest held note glides to the new key.
            let held = pool
                .notes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.is_held() && n.timbre() == Timbre::AcidBass)
                .max_by_key(|(_, n)| n.serial())
                .map(|(i, _)| i);
            if let Some(i) = held {
                pool.notes[i].slide(&self.tables, note, serial);
                return;
            }
        }
        // Same pitch already sounding (held, or the newest of its releases): re-articulate it.
        let same = pool
            .notes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_active() && !n.is_fading() && n.key() == note)
            .max_by_key(|(_, n)| (n.is_held(), n.serial()))
            .map(|(i, _)| i);
        if let Some(i) = same {
            pool.notes[i].retrigger(velocity, serial);
            return;
        }
        let (i, steal) = pool.slot_for_new_note();
        if steal {
            pool.retire(i, sample_rate);
        }
        let controls = pool.controls;
        pool.notes[i].start(
            timbre,
            &self.tables,
            &controls,
            note,
            velocity,
            serial,
            sample_rate,
        );
    }

    fn note_off(&mut self, voice: VoiceId, note: u8) {
        for n in self.pools[voice.index()].notes.iter_mut() {
            if n.is_held() && n.key() == note {
                n.release();
            }
        }
    }

    /// Controllers 74 (the acid filter's base cutoff, 60 Hz … 8 kHz exponentially; the FM and
    /// pluck brightness, ¼ … 4 × around the centre) and 71 (the acid filter's resonance, none
    /// … just short of self-oscillation), per voice. They reach sounding and new notes alike,
    /// gliding over about 10 ms. Other controllers are ignored.
    fn control_change(&mut self, voice: VoiceId, controller: u8, value: u8) {
        self.pools[voice.index()].controls.set(controller, value);
    }

    fn all_notes_off(&mut self) {
        for pool in self.pools.iter_mut() {
            for n in pool.notes.iter_mut() {
                if n.is_held() {
                    n.release();
                }
            }
        }
    }

    fn render_voice(&mut self, voice: VoiceId, left: &mut [f32], right: &mut [f32]) {
        let mut mono = [0.0f32; CHUNK];
        for (l, r) in left.chunks_mut(CHUNK).zip(right.chunks_mut(CHUNK)) {
            let n = l.len().min(r.len());
            let mono = &mut mono[..n];
            mono.fill(0.0);
            self.render_voice_mono(voice, mono);
            for ((l, r), m) in l.iter_mut().zip(r.iter_mut()).zip(mono.iter()) {
                *l += *m;
                *r += *m;
            }
        }
    }
}
