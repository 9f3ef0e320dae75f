//! Real-time sound: everything here runs on the audio thread and never allocates, except the
//! constructors (`Choir::new`, `PolySynth::new`, `Reverb::new`, `SoundFontPlayer::load`,
//! `PartialBank::new`, `ConvolutionReverb::new`), which belong in the plugin's `initialize` or on
//! a worker.
//!
//! * [`Choir`] is the instrument the plugin drives: note events per [`VoiceId`], per-voice
//!   level/pan/source, reverb, master. It routes each voice to one of two [`VoiceEngine`]s:
//! * [`PolySynth`], the built-in synth: nine [`Timbre`]s, an [`Adsr`] and MIDI controllers per
//!   voice, [`POLYPHONY`] notes per voice with oldest-first stealing. Five are band-limited
//!   wavetables with short subtractive chains (the choir); four are for the weight pieces: an
//!   acid bass with slide and accent, a plucked string, an FM bass and a drum kit;
//! * [`SoundFontPlayer`], General MIDI SoundFonts through `rustysynth`.
//! * [`mixer`] is the plugin's output stage (host input plus what the plugin plays).
//! * For spectral sonification (issue 20): [`PartialBank`], up to 64 glided sinusoids per voice
//!   set from a hidden state each token; [`FormantVoice`], an additive singing voice with vowel
//!   formants and vibrato; [`ConvolutionReverb`], partitioned FFT convolution with an impulse
//!   response such as [`synthetic_impulse_response`]'s.
//!
//! Files: `voice_id` (who is who), `voice_engine` (the shared trait), `choir` (routing and mixing),
//! `polysynth` (note pools), `note` (one sounding note), `timbre` (the nine sounds), `acid` and
//! `ladder` (the acid bass and its filter), `pluck` (Karplus–Strong), `fm` (FM bass), `drums`,
//! `controls` (per-voice MIDI controllers), `envelope`, `wavetable` (band-limited tables),
//! `oscillator`, `filter`, `noise`, `smoother`, `reverb`, `prefetch` (warming the caches a
//! block will read), `soundfont` (player), `sf2_check` (checks SF2 bytes before parsing),
//! `partial_bank` (additive bank of phasor partials), `formant_voice` (the sung vowel voice),
//! `convolution` (partitioned convolution reverb and the synthetic room) and
//! `tests` (behaviour of the whole: pitch, spectrum, lifetimes, determinism, block splits,
//! slides, accents, controllers, drum kit; the benchmark).

mod acid;
mod choir;
mod controls;
mod convolution;
mod drums;
mod envelope;
mod filter;
mod fm;
mod formant_voice;
mod ladder;
pub mod mixer;
mod noise;
mod note;
mod oscillator;
mod partial_bank;
mod pluck;
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

pub use choir::{Choir, SPECTRAL_BANK, Source, db_to_gain};
pub use controls::{AcidWave, CC_CUTOFF, CC_RESONANCE};
pub use convolution::{ConvolutionReverb, MAX_IR_SAMPLES, synthetic_impulse_response};
pub use envelope::Adsr;
pub use formant_voice::{FormantVoice, HARMONICS, Vowel, formant_weights};
pub use partial_bank::PartialBank;
pub use polysynth::{POLYPHONY, PolySynth};
pub use reverb::Reverb;
pub use soundfont::{DEFAULT_PROGRAMS, SF_BLOCK, SoundFontError, SoundFontPlayer};
pub use timbre::Timbre;
pub use voice_engine::VoiceEngine;
pub use voice_id::VoiceId;

#[cfg(test)]
mod tests;
