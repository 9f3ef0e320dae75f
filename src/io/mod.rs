//! Files in and out: audio to analyse, and (with the render issue) WAV, MIDI and run files.

pub mod audio_file;
