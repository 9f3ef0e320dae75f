//! Files in and out: audio to analyse, the render's WAV, MIDI and run files, Latent Choir's own
//! `.lcpreset` preset files and VST3 preset files, PNG pictures (heat maps).

pub mod audio_file;
pub mod figure;
pub mod map_plot;
pub mod midi_file;
pub mod output_file;
pub mod png_image;
pub mod preset_file;
pub mod run_file;
pub mod score_midi;
pub mod vst3_preset;
pub mod wav_file;
pub mod write_error;

pub use write_error::WriteError;
