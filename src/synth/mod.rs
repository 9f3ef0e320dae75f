//! Real-time sound: everything here runs on the audio thread and never allocates.

pub mod mixer;
