//! SoundFont voices: any `.sf2` played by `rustysynth`, one GM program per voice.
//!
//! Loading ([`SoundFontPlayer::load`]) reads, checks and parses the file and allocates
//! everything; do it off the audio thread, then move the player to the audio thread (it is
//! `Send`, and one pointer wide). Playing ([`VoiceEngine`]) does not allocate: rustysynth's
//! `note_on`, `note_off` and `render` only index preallocated voices and buffers (read in
//! rustysynth 1.3.8's `synthesizer.rs`, `voice_collection.rs`, `voice.rs`, `oscillator.rs`; the
//! crate's own `tests/synth_no_alloc.rs` checks it with a counting allocator).
//!
//! Each voice has its own `Synthesizer` (sharing one parsed font), so each voice comes out as its
//! own stereo stem and the [`Choir`](super::Choir) applies the same level, pan and reverb as for
//! the built-in synth. rustysynth's own reverb and chorus are off. rustysynth renders in blocks of
//! [`SF_BLOCK`] samples: a note starts at the next block boundary, up to 16 samples (0.33 ms at
//! 48 kHz) late, the same in every run and however the host splits its buffers.
//!
//! Robustness: a malformed file is refused with a typed error, never a panic (see
//! `sf2_check.rs`). A well-formed font can still ask rustysynth to play a looped sample faster
//! than its loop is long, which makes rustysynth read past its sample data and panic (on the
//! audio thread); the player precomputes which keys of which programs are safe and ignores the
//! others (counted in [`SoundFontPlayer::refused_notes`]).

use std::io::ErrorKind;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustysynth::{LoopMode, Preset, SoundFont, Synthesizer, SynthesizerSettings};

use super::VoiceId;
use super::sf2_check::{self, CheckError};
use super::voice_engine::VoiceEngine;

/// rustysynth's internal block length: the timing granularity of SoundFont notes.
pub const SF_BLOCK: usize = 16;
/// Notes per voice rustysynth can sound at once (a stereo preset uses two per note).
const SF_POLYPHONY: usize = 32;
/// rustysynth mixes at half scale by default. At full scale, with channel volume at 127, the
/// default GM programs of TimGM6mb come out within a few dB of the built-in timbres.
const SF_MASTER_VOLUME: f32 = 1.0;
/// An SF2's RIFF size field is 32 bits: nothing bigger can be one.
const MAX_FILE_BYTES: u64 = u32::MAX as u64 + 8;

/// Why a SoundFont could not be loaded. The built-in synth keeps playing either way.
#[derive(Debug, thiserror::Error)]
pub enum SoundFontError {
    #[error("SoundFont file not found: {}", path.display())]
    NotFound { path: PathBuf },
    #[error("cannot read SoundFont {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a SoundFont (SF2) file: {0}")]
    NotASoundFont(String),
    #[error("the SoundFont is truncated: {0}")]
    Truncated(String),
    #[error("the SoundFont is corrupt: {0}")]
    Corrupt(String),
    #[error("compressed SoundFont 3 (.sf3) files are not supported; use an .sf2 file")]
    Sf3Unsupported,
    #[error("the SoundFont player supports sample rates of 16 to 192 kHz, not {0} Hz")]
    UnsupportedSampleRate(f32),
}

impl From<CheckError> for SoundFontError {
    fn from(e: CheckError) -> Self {
        match e {
            CheckError::NotSoundFont(m) => SoundFontError::NotASoundFont(m),
            CheckError::Truncated(m) => SoundFontError::Truncated(m),
            CheckError::Corrupt(m) => SoundFontError::Corrupt(m),
        }
    }
}

impl From<rustysynth::SoundFontError> for SoundFontError {
    fn from(e: rustysynth::SoundFontError) -> Self {
        use rustysynth::SoundFontError as E;
        match e {
            E::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => {
                SoundFontError::Truncated("the data ends in the middle of a chunk".into())
            }
            E::RiffChunkNotFound | E::InvalidRiffChunkType { .. } => {
                SoundFontError::NotASoundFont(e.to_string())
            }
            E::UnsupportedSampleFormat => SoundFontError::Sf3Unsupported,
            other => SoundFontError::Corrupt(other.to_string()),
        }
    }
}

/// GM programs (0-based) the voices start with: Flute, Clarinet, String Ensemble 1, Cello.
/// The drone is a cello because it sustains (a bowed, looped sample); Acoustic Bass (32) is
/// plucked and would die away under a held drone.
pub const DEFAULT_PROGRAMS: [u8; VoiceId::COUNT] = [73, 71, 48, 42, 19];

struct Inner {
    synths: [Synthesizer; VoiceId::COUNT],
    font: Arc<SoundFont>,
    programs: [u8; VoiceId::COUNT],
    /// Held pitches per voice, to re-articulate instead of doubling.
    held: [u128; VoiceId::COUNT],
    /// Per GM program (bank 0), the keys rustysynth can play without reading out of bounds.
    safe_keys: [u128; 128],
    /// The same for the drum kit.
    drum_keys: u128,
    /// Voices playing the drum kit on General MIDI's percussion channel (10).
    percussion: [bool; VoiceId::COUNT],
    refused: u64,
    scratch_l: Box<[f32]>,
    scratch_r: Box<[f32]>,
    sample_rate: f32,
}

/// A loaded SoundFont, ready to play on the audio thread.
pub struct SoundFontPlayer {
    inner: Box<Inner>,
}

impl std::fmt::Debug for SoundFontPlayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoundFontPlayer")
            .field("name", &self.name())
            .field("programs", &self.inner.programs)
            .field("sample_rate", &self.inner.sample_rate)
            .finish_non_exhaustive()
    }
}

impl SoundFontPlayer {
    /// Reads and parses `path` for playback at `sample_rate`, rendering at most `max_block`
    /// frames per internal step (any render length works). Blocking file I/O and allocation: call
    /// off the audio thread. Voices start on [`DEFAULT_PROGRAMS`].
    pub fn load(
        path: impl AsRef<Path>,
        sample_rate: f32,
        max_block: usize,
    ) -> Result<Self, SoundFontError> {
        let path = path.as_ref();
        let io = |source: std::io::Error| {
            if source.kind() == ErrorKind::NotFound {
                SoundFontError::NotFound {
                    path: path.to_owned(),
                }
            } else {
                SoundFontError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_FILE_BYTES {
            return Err(SoundFontError::NotASoundFont(format!(
                "{} bytes is larger than any SF2 can be",
                len
            )));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::from_bytes(&bytes, sample_rate, max_block)
    }

    /// As [`SoundFontPlayer::load`], from the file's bytes.
    pub fn from_bytes(
        bytes: &[u8],
        sample_rate: f32,
        max_block: usize,
    ) -> Result<Self, SoundFontError> {
        if !(16_000.0..=192_000.0).contains(&sample_rate) {
            return Err(SoundFontError::UnsupportedSampleRate(sample_rate));
        }
        sf2_check::check(bytes)?;
        // The check above removes every panic we know of in rustysynth's parser; this catches
        // any we do not, so a bad file can never take the host down.
        let parsed = catch_unwind(AssertUnwindSafe(|| SoundFont::new(&mut &bytes[..]))).map_err(
            |_| SoundFontError::Corrupt("its tables are inconsistent (parser panicked)".into()),
        )??;
        let font = Arc::new(parsed);
        let rate = sample_rate.round() as i32;
        let make = || {
            let mut settings = SynthesizerSettings::new(rate);
            settings.block_size = SF_BLOCK;
            settings.maximum_polyphony = SF_POLYPHONY;
            settings.enable_reverb_and_chorus = false;
            Synthesizer::new(&font, &settings)
                .map(|mut s| {
                    s.set_master_volume(SF_MASTER_VOLUME);
                    s
                })
                .map_err(|_| SoundFontError::UnsupportedSampleRate(sample_rate))
        };
        let synths = [make()?, make()?, make()?, make()?, make()?];
        let safe_keys = safe_keys(&font, rate as f64);
        let drum_keys = drum_safe_keys(&font, rate as f64);
        let max_block = max_block.max(1);
        let mut player = SoundFontPlayer {
            inner: Box::new(Inner {
                synths,
                font,
                programs: DEFAULT_PROGRAMS,
                held: [0; VoiceId::COUNT],
                safe_keys,
                drum_keys,
                percussion: [false; VoiceId::COUNT],
                refused: 0,
                scratch_l: vec![0.0; max_block].into_boxed_slice(),
                scratch_r: vec![0.0; max_block].into_boxed_slice(),
                sample_rate: rate as f32,
            }),
        };
        for voice in VoiceId::ALL {
            player.set_program(voice, DEFAULT_PROGRAMS[voice.index()]);
        }
        Ok(player)
    }

    /// The font's bank name (from its INFO chunk; may be empty).
    pub fn name(&self) -> &str {
        self.inner.font.get_info().get_bank_name()
    }

    /// The rate the player was loaded for (rounded to whole hertz).
    pub fn sample_rate(&self) -> f32 {
        self.inner.sample_rate
    }

    /// Select the GM program (0-based, bank 0) of `voice`. Real-time safe. Sounding notes keep
    /// their sound; a program the font lacks plays the font's first preset (rustysynth's rule).
    pub fn set_program(&mut self, voice: VoiceId, program: u8) {
        let program = program.min(127);
        let inner = &mut *self.inner;
        inner.programs[voice.index()] = program;
        let channel = inner.channel(voice.index());
        let synth = &mut inner.synths[voice.index()];
        synth.process_midi_message(channel, 0xB0, 0x00, 0); // bank select 0
        synth.process_midi_message(channel, 0xB0, 0x07, 127); // full channel volume
        synth.process_midi_message(channel, 0xC0, i32::from(program), 0);
    }

    pub fn program(&self, voice: VoiceId) -> u8 {
        self.inner.programs[voice.index()]
    }

    /// Plays `voice` on the percussion channel (the font's drum kit, keys pick the drums) or
    /// back on its own. Real-time safe; switching silences the voice's notes at once.
    pub fn set_percussion(&mut self, voice: VoiceId, on: bool) {
        let v = voice.index();
        if self.inner.percussion[v] == on {
            return;
        }
        let inner = &mut *self.inner;
        inner.synths[v].note_off_all(true);
        inner.held[v] = 0;
        inner.percussion[v] = on;
        let program = inner.programs[v];
        self.set_program(voice, program);
    }

    pub fn percussion(&self, voice: VoiceId) -> bool {
        self.inner.percussion[voice.index()]
    }

    /// Whether the font has GM `program` in bank 0 (rather than falling back).
    pub fn has_program(&self, program: u8) -> bool {
        self.preset_name(program).is_some()
    }

    /// The name of GM `program` (bank 0) in this font.
    pub fn preset_name(&self, program: u8) -> Option<&str> {
        find_preset(self.inner.font.get_presets(), i32::from(program)).map(Preset::get_name)
    }

    /// Notes ignored because the font would play them out of bounds (see the module notes).
    pub fn refused_notes(&self) -> u64 {
        self.inner.refused
    }

    /// Stop every note at once, without release (reset).
    pub fn all_sound_off(&mut self) {
        let inner = &mut *self.inner;
        for synth in inner.synths.iter_mut() {
            synth.note_off_all(true);
        }
        inner.held = [0; VoiceId::COUNT];
    }
}

/// The bank-0 preset for `program`, as rustysynth's lookup finds it (the last one wins).
fn find_preset(presets: &[Preset], program: i32) -> Option<&Preset> {
    presets
        .iter()
        .rev()
        .find(|p| p.get_bank_number() == 0 && p.get_patch_number() == program)
}

/// For every GM program, the keys whose every region keeps rustysynth's sample reads in bounds.
///
/// rustysynth's looping oscillator wraps its position back by one loop length per sample; if
/// the pitch ratio (samples advanced per output sample) exceeds the loop length, the position
/// creeps past the loop and eventually past the sample data. A non-positive sample rate makes
/// the position run backwards. Pitch is bounded here with every pitch modulator at full depth.
fn safe_keys(font: &SoundFont, sample_rate: f64) -> [u128; 128] {
    let presets = font.get_presets();
    let fallback = fallback_preset(presets);
    let mut out = [0u128; 128];
    for (program, mask) in out.iter_mut().enumerate() {
        if let Some(preset) = find_preset(presets, program as i32).or(fallback) {
            *mask = preset_safe_keys(font, preset, sample_rate);
        }
    }
    out
}

/// rustysynth's preset for a program it does not find: the lowest bank and patch.
fn fallback_preset(presets: &[Preset]) -> Option<&Preset> {
    presets
        .iter()
        .enumerate()
        .min_by_key(|(i, p)| ((p.get_bank_number() << 16) | p.get_patch_number(), *i))
        .map(|(_, p)| p)
}

/// The keys of the drum kit the percussion channel plays (bank 128, patch 0, as rustysynth
/// picks it; its default preset if the font has no kit).
fn drum_safe_keys(font: &SoundFont, sample_rate: f64) -> u128 {
    let presets = font.get_presets();
    presets
        .iter()
        .rev()
        .find(|p| p.get_bank_number() == 128 && p.get_patch_number() == 0)
        .or_else(|| fallback_preset(presets))
        .map_or(0, |preset| preset_safe_keys(font, preset, sample_rate))
}

fn preset_safe_keys(font: &SoundFont, preset: &Preset, sample_rate: f64) -> u128 {
    let instruments = font.get_instruments();
    let headers = font.get_sample_headers();
    let mut mask = 0u128;
    {
        for key in 0..128i32 {
            let safe = preset
                .get_regions()
                .iter()
                .filter(|pr| pr.get_key_range_start() <= key && key <= pr.get_key_range_end())
                .all(|pr| {
                    let Some(instrument) = instruments.get(pr.get_instrument_id()) else {
                        return false;
                    };
                    instrument
                        .get_regions()
                        .iter()
                        .filter(|ir| {
                            ir.get_key_range_start() <= key && key <= ir.get_key_range_end()
                        })
                        .all(|ir| {
                            let Some(header) = headers.get(ir.get_sample_id()) else {
                                return false;
                            };
                            let rate = f64::from(header.get_sample_rate());
                            if rate <= 0.0 {
                                return false;
                            }
                            let sum = |p: i32, i: i32| f64::from(p) + f64::from(i);
                            let scale = sum(pr.get_scale_tuning(), ir.get_scale_tuning()) / 100.0;
                            let tune = sum(pr.get_coarse_tune(), ir.get_coarse_tune())
                                + sum(pr.get_fine_tune(), ir.get_fine_tune()) / 100.0;
                            let modulation =
                                (sum(pr.get_vibrato_lfo_to_pitch(), ir.get_vibrato_lfo_to_pitch())
                                    .abs()
                                    + sum(
                                        pr.get_modulation_lfo_to_pitch(),
                                        ir.get_modulation_lfo_to_pitch(),
                                    )
                                    .abs()
                                    + sum(
                                        pr.get_modulation_envelope_to_pitch(),
                                        ir.get_modulation_envelope_to_pitch(),
                                    )
                                    .abs())
                                    / 100.0;
                            let root = f64::from(ir.get_root_key());
                            let k = f64::from(key);
                            let semitones = (scale * (k + modulation - root))
                                .max(scale * (k - modulation - root))
                                + tune;
                            let ratio = rate / sample_rate * (semitones / 12.0).exp2();
                            let start_loop = ir.get_sample_start_loop();
                            let end_loop = ir.get_sample_end_loop();
                            let looping =
                                ir.get_sample_modes() != LoopMode::NoLoop && start_loop < end_loop;
                            ratio.is_finite()
                                && ratio < 1e4
                                && (!looping || ratio <= f64::from(end_loop - start_loop))
                        })
                });
            if safe {
                mask |= 1u128 << key;
            }
        }
    }
    mask
}

impl Inner {
    /// The MIDI channel voice `v` plays on inside its synthesizer.
    fn channel(&self, v: usize) -> i32 {
        if self.percussion[v] { 9 } else { v as i32 }
    }

    fn playable(&self, v: usize, note: u8) -> bool {
        let keys = if self.percussion[v] {
            self.drum_keys
        } else {
            self.safe_keys[usize::from(self.programs[v])]
        };
        keys & (1u128 << note) != 0
    }
}

impl VoiceEngine for SoundFontPlayer {
    fn note_on(&mut self, voice: VoiceId, note: u8, velocity: u8) {
        if velocity == 0 {
            self.note_off(voice, note);
            return;
        }
        let note = note.min(127);
        let inner = &mut *self.inner;
        let v = voice.index();
        if !inner.playable(v, note) {
            inner.refused += 1;
            return;
        }
        let channel = inner.channel(v);
        let bit = 1u128 << note;
        if inner.held[v] & bit != 0 {
            inner.synths[v].note_off(channel, i32::from(note));
        }
        inner.held[v] |= bit;
        inner.synths[v].note_on(channel, i32::from(note), i32::from(velocity.min(127)));
    }

    fn note_off(&mut self, voice: VoiceId, note: u8) {
        let note = note.min(127);
        let inner = &mut *self.inner;
        let v = voice.index();
        inner.held[v] &= !(1u128 << note);
        let channel = inner.channel(v);
        inner.synths[v].note_off(channel, i32::from(note));
    }

    /// Forwarded to the voice's channel as a MIDI control change (rustysynth follows volume,
    /// pan, expression, modulation, sustain and the like). Bank select (0, 32) is refused: it
    /// would reach presets whose keys were never checked (see the module notes); so are the
    /// channel mode messages (120 ..= 127), which would bypass the player's own note tracking.
    fn control_change(&mut self, voice: VoiceId, controller: u8, value: u8) {
        if matches!(controller, 0 | 32) || controller >= 120 {
            return;
        }
        let v = voice.index();
        let channel = self.inner.channel(v);
        self.inner.synths[v].process_midi_message(
            channel,
            0xB0,
            i32::from(controller),
            i32::from(value.min(127)),
        );
    }

    fn all_notes_off(&mut self) {
        let inner = &mut *self.inner;
        for synth in inner.synths.iter_mut() {
            synth.note_off_all(false);
        }
        inner.held = [0; VoiceId::COUNT];
    }

    /// rustysynth must run every sample even when silent: its block grid is then fixed in
    /// absolute time, which keeps note timing independent of how the host splits buffers.
    fn render_voice(&mut self, voice: VoiceId, left: &mut [f32], right: &mut [f32]) {
        let inner = &mut *self.inner;
        let synth = &mut inner.synths[voice.index()];
        let step = inner.scratch_l.len();
        for (l, r) in left.chunks_mut(step).zip(right.chunks_mut(step)) {
            let n = l.len().min(r.len());
            let (sl, sr) = (&mut inner.scratch_l[..n], &mut inner.scratch_r[..n]);
            synth.render(sl, sr);
            for ((l, r), (&a, &b)) in l.iter_mut().zip(r.iter_mut()).zip(sl.iter().zip(sr.iter())) {
                *l += super::mixer::clean_sample(a).0;
                *r += super::mixer::clean_sample(b).0;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Debian's `timgm6mb-soundfont` package; tests that need a real font skip without it.
    pub(crate) const TIMGM6MB: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";

    pub(crate) fn timgm6mb() -> Option<Vec<u8>> {
        match std::fs::read(TIMGM6MB) {
            Ok(b) => Some(b),
            Err(_) => {
                eprintln!(
                    "SKIPPED: {TIMGM6MB} not found (install the Debian package timgm6mb-soundfont)"
                );
                None
            }
        }
    }

    fn assert_send<T: Send>() {}

    #[test]
    fn player_is_send_and_one_pointer_wide() {
        assert_send::<SoundFontPlayer>();
        assert_eq!(
            std::mem::size_of::<SoundFontPlayer>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn missing_file_and_directory_give_clear_errors() {
        let e = SoundFontPlayer::load("/nonexistent/font.sf2", 48_000.0, 512).unwrap_err();
        assert!(matches!(e, SoundFontError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/font.sf2"));
        let e = SoundFontPlayer::load("/tmp", 48_000.0, 512).unwrap_err();
        assert!(matches!(e, SoundFontError::Io { .. }), "{e}");
    }

    #[test]
    fn garbage_bytes_are_errors_not_panics() {
        let mut noise = crate::synth::noise::Noise::new(42);
        assert!(matches!(
            SoundFontPlayer::from_bytes(b"", 48_000.0, 512),
            Err(SoundFontError::NotASoundFont(_))
        ));
        assert!(matches!(
            SoundFontPlayer::from_bytes(b"RIFF\0\0\0\0WAVEdata", 48_000.0, 512),
            Err(SoundFontError::NotASoundFont(_))
        ));
        for len in [1, 7, 12, 100, 4_096, 100_000] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| (noise.next() * 128.0) as i8 as u8)
                .collect();
            assert!(SoundFontPlayer::from_bytes(&bytes, 48_000.0, 512).is_err());
            // Garbage behind a valid header goes further into the parser.
            let mut with_header = b"RIFF\xff\xff\xff\x7fsfbkLIST".to_vec();
            with_header.extend_from_slice(&bytes);
            let e = SoundFontPlayer::from_bytes(&with_header, 48_000.0, 512).unwrap_err();
            assert!(
                matches!(e, SoundFontError::Truncated(_) | SoundFontError::Corrupt(_)),
                "{e}"
            );
        }
    }

    #[test]
    fn unsupported_sample_rate_is_an_error() {
        let e = SoundFontPlayer::from_bytes(b"", 8_000.0, 512).unwrap_err();
        assert!(matches!(e, SoundFontError::UnsupportedSampleRate(_)), "{e}");
    }

    #[test]
    fn truncated_and_mutated_real_font_never_panics() {
        let Some(font) = timgm6mb() else { return };
        for cut in [
            0,
            11,
            12,
            100,
            1_000,
            font.len() / 3,
            font.len() - 1_000,
            font.len() - 1,
        ] {
            let e = SoundFontPlayer::from_bytes(&font[..cut], 48_000.0, 512).unwrap_err();
            assert!(
                matches!(
                    e,
                    SoundFontError::Truncated(_)
                        | SoundFontError::NotASoundFont(_)
                        | SoundFontError::Corrupt(_)
                ),
                "cut at {cut}: {e}"
            );
        }
        // Flip bytes in the preset/instrument tables (at the end of the file) and play whatever
        // still loads across the keyboard.
        let mut noise = crate::synth::noise::Noise::new(7);
        let tables = font.len() - 60_000;
        let mut loaded = 0;
        for _ in 0..40 {
            let mut bytes = font.clone();
            for _ in 0..20 {
                let at = tables + ((noise.next() * 0.5 + 0.5) * 59_999.0) as usize;
                bytes[at] = (noise.next() * 128.0) as i8 as u8;
            }
            let Ok(mut player) = SoundFontPlayer::from_bytes(&bytes, 48_000.0, 256) else {
                continue;
            };
            loaded += 1;
            let mut l = vec![0.0; 256];
            let mut r = vec![0.0; 256];
            for key in (0..128).step_by(9) {
                for voice in VoiceId::ALL {
                    player.note_on(voice, key, 100);
                }
                player.render(&mut l, &mut r);
                assert!(l.iter().chain(&r).all(|x| x.is_finite()));
            }
        }
        eprintln!("{loaded} of 40 mutated fonts loaded and played");
    }

    #[test]
    fn timgm6mb_programs_exist_and_every_key_is_safe() {
        let Some(font) = timgm6mb() else { return };
        let player = SoundFontPlayer::from_bytes(&font, 48_000.0, 512).unwrap();
        for p in DEFAULT_PROGRAMS {
            assert!(player.has_program(p), "program {p} missing");
        }
        eprintln!(
            "TimGM6mb: '{}', programs: {:?}",
            player.name(),
            DEFAULT_PROGRAMS.map(|p| player.preset_name(p).unwrap_or("?").to_owned())
        );
        for p in DEFAULT_PROGRAMS {
            assert_eq!(
                player.inner.safe_keys[usize::from(p)],
                u128::MAX,
                "program {p}"
            );
        }
    }
}
