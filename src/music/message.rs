//! What the player sends out: notes at sample offsets, for the synth, MIDI out and MIDI files.

use super::voices::VOICES;

/// Three melodic voices and the drone.
pub const SLOTS: usize = VOICES + 1;
/// The drone's slot index.
pub const DRONE_SLOT: u8 = VOICES as u8;

/// A note-on (velocity > 0) or note-off (velocity 0) at a sample offset in the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoteMessage {
    pub offset: u32,
    /// 0..=2 the melodic voices, [`DRONE_SLOT`] the drone.
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
