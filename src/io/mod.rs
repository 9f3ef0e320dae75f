//! Files in and out: audio to analyse, and the render's WAV, MIDI and run files.

pub mod audio_file;
pub mod midi_file;
pub mod output_file;
pub mod run_file;
pub mod wav_file;
pub mod write_error;

pub use write_error::WriteError;
