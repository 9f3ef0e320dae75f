//! What the player sends out: notes at sample offsets, for the synth, MIDI out and MIDI files.

use super::voices::VOICES;

/// Three melodic voices, the drone and the Tension voice.
pub const SLOTS: usize = VOICES + 2;
/// The drone's slot index.
pub const DRONE_SLOT: u8 = VOICES as u8;
/// The Tension voice's slot index.
pub const TENSION_SLOT: u8 = VOICES as u8 + 1;

/// A note-on (velocity > 0) or note-off (velocity 0) at a sample offset in the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoteMessage {
    pub offset: u32,
    /// 0..=2 the melodic voices, [`DRONE_SLOT`] the drone, [`TENSION_SLOT`] the Tension voice.
    pub slot: u8,
    /// MIDI channel, 0-based.
    pub channel: u8,
    pub note: u8,
    pub velocity: u8,
    /// Index of the token whose step made the note ([`NO_TOKEN`]: a bass change between
    /// tokens), so every note can be traced back to its token.
    pub token: u32,
}

/// [`NoteMessage::token`] of a note no token made.
pub const NO_TOKEN: u32 = u32::MAX;

impl NoteMessage {
    pub fn is_on(&self) -> bool {
        self.velocity > 0
    }
}

/// The tension controller at a sample offset: the step's tension as a MIDI CC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlMessage {
    pub offset: u32,
    /// MIDI channel, 0-based: the Tension voice's.
    pub channel: u8,
    pub controller: u8,
    /// 0…127.
    pub value: u8,
    /// The token whose step sent it.
    pub token: u32,
}
