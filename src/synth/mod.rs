//! Real-time sound: everything here runs on the audio thread and never allocates, except the
//! constructors (`Choir::new`, `PolySynth::new`, `Reverb::new`, `SoundFontPlayer::load`), which
//! belong in the plugin's `initialize` or on a worker.
//!
//! * [`Choir`] is the instrument the plugin drives: note events per [`VoiceId`], per-voice
//!   level/pan/source, reverb, master. It routes each voice to one of two [`VoiceEngine`]s:
//! * [`PolySynth`], the built-in synth: four [`Timbre`]s from band-limited wavetables with short
//!   subtractive chains, an [`Adsr`] per voice, [`POLYPHONY`] notes per voice with oldest-first
//!   stealing;
//! * [`SoundFontPlayer`], General MIDI SoundFonts through `rustysynth`.
//! * [`mixer`] is the plugin's output stage (host input plus what the plugin plays).
//!
//! Files: `voice_id` (who is who), `voice_engine` (the shared trait), `choir` (routing and mixing),
//! `polysynth` (note pools), `note` (one sounding note), `timbre` (the four sounds), `envelope`,
//! `wavetable` (band-limited tables), `oscillator`, `filter`, `noise`, `smoother`, `reverb`,
//! `prefetch` (warming the caches a block will read),
//! `soundfont` (player), `sf2_check` (checks SF2 bytes before parsing) and `tests` (behaviour of
//! the whole: pitch, spectrum, lifetimes, determinism, block splits; the benchmark).

mod choir;
mod envelope;
mod filter;
pub mod mixer;
mod noise;
mod note;
mod oscillator;
mod polysynth;
mod prefetch;
mod reverb;
mod sf2_check;
mod smoother;
mod soundfont;
mod timbre;
mod voice_engine;
mod voice_id;
mod wavetable;

pub use choir::{Choir, Source, db_to_gain};
pub use envelope::Adsr;
pub use polysynth::{POLYPHONY, PolySynth};
pub use reverb::Reverb;
pub use soundfont::{DEFAULT_PROGRAMS, SF_BLOCK, SoundFontError, SoundFontPlayer};
pub use timbre::Timbre;
pub use voice_engine::VoiceEngine;
pub use voice_id::VoiceId;

#[cfg(test)]
mod tests;
