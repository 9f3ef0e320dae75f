//! The interface both sound sources share: the built-in [`PolySynth`](super::PolySynth) and the
//! [`SoundFontPlayer`](super::SoundFontPlayer). [`Choir`](super::Choir) routes each voice to one
//! of them (switchable per voice) and mixes their per-voice output with one set of level, pan,
//! reverb and master controls, so switching a voice's source changes only its sound.
//!
//! Every method runs on the audio thread: no allocation, locking, I/O or logging.

use super::VoiceId;

pub trait VoiceEngine: Send {
    /// Start `note` on `voice`. Velocity 0 is a note-off (MIDI convention). A note-on for a pitch
    /// the voice is already sounding re-articulates it rather than doubling it.
    fn note_on(&mut self, voice: VoiceId, note: u8, velocity: u8);

    /// Release `note` on `voice` (every sounding instance of that pitch). Unknown notes are
    /// ignored.
    fn note_off(&mut self, voice: VoiceId, note: u8);

    /// A MIDI control change on `voice` (controller and value 0..=127). Each engine documents
    /// the controllers it follows; by default none.
    fn control_change(&mut self, voice: VoiceId, controller: u8, value: u8) {
        let _ = (voice, controller, value);
    }

    /// Release every note of every voice (their release tails still play).
    fn all_notes_off(&mut self);

    /// **Adds** one voice's dry signal (before level, pan, reverb and master) to `left` and
    /// `right`. Works for any length; the slices must have equal length (extra samples of the
    /// longer one are left alone). Events between calls take effect at the call boundary.
    fn render_voice(&mut self, voice: VoiceId, left: &mut [f32], right: &mut [f32]);

    /// **Adds** every voice, dry and centred, to `left` and `right`.
    fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        for voice in VoiceId::ALL {
            self.render_voice(voice, left, right);
        }
    }
}
