//! The parts of one plugin instance that `lib.rs` wires together: where its frames come from,
//! how the audio thread asks for the model, the clock it follows and the MIDI it sends.

pub mod model_start;
pub mod source;
