//! What a project keeps: the run the plugin played, collected off the audio thread, saved in the
//! plugin state and exported as files.

pub mod collector;
pub mod export;
pub mod saved_run;
