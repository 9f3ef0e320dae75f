//! Frames → notes: the pure, real-time-safe music logic.
//!
//! The worker sends one [`TokenFrame`] per generated token. On the audio thread, the
//! [`TokenClock`] says at which samples token steps fall (on the host's beat grid while the
//! transport plays, free-running otherwise); at each step the next frame is taken and
//! [`map_frame`] turns it, with the current parameter values, into a [`StepPlan`]: one note per
//! melodic voice and what the drone does. Each voice follows one hidden state:
//!
//! * PC1 of that state → pitch, monotonically, then quantised to the [`Scale`] and [`Root`] inside
//!   the voice's range, so the melody traces the model's trajectory;
//! * hidden-state norm relative to the layer's running statistics → velocity;
//! * attention entropy → note length (focused attention legato, diffuse staccato);
//! * MLP sparsity × ornament amount → chance of a neighbour-note ornament, decided by a hash of
//!   the token index so the same frames always give the same notes.
//!
//! Nothing here allocates, locks or reads a clock; all state is in plain values the caller owns.

pub mod drone;
pub mod dynamics;
pub mod feel;
pub mod frame;
pub mod grid;
pub mod harmony;
pub mod markov_lstm;
pub mod message;
pub mod ornament;
pub mod phrasing;
pub mod scale;
pub mod score;
pub mod spectral;
pub mod tension;
pub mod voices;

#[cfg(all(test, not(feature = "assert_process_allocs")))]
mod no_alloc_tests;

pub use drone::DroneAction;
pub use frame::{FRAME_COMPONENTS, MAX_HIDDEN_STATES, TEXT_BYTES, TokenFrame};
pub use grid::{FreeBlock, GridStep, GridSteps, HostBlock, TokenClock};
pub use message::{ControlMessage, DRONE_SLOT, NO_TOKEN, NoteMessage, SLOTS, TENSION_SLOT};
pub use scale::{Root, Scale};
pub use voices::{
    BassMode, MappingParams, MappingState, StepPlan, VOICES, VoiceMapping, VoiceNote,
    default_layers, map_frame,
};
