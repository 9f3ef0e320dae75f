//! The parts of one plugin instance that `lib.rs` wires together: its state as the host sees
//! it, its helper threads, where its frames come from, the Generate switch, the clock it
//! follows and the MIDI it sends.

pub mod audio;
pub mod clock;
pub mod generate;
pub mod listener;
pub mod midi_out;
pub mod params;
pub mod source;
pub mod threads;

pub use params::PluginParams;
