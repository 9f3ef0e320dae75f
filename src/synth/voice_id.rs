//! The five parts of the choir. Everything per-voice (timbre, level, pan, GM program, note pool)
//! is indexed by a `VoiceId` so the music mapping, the synth and MIDI out agree on who is who.

/// One of the three melodic voices, the bass drone or the Tension voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VoiceId {
    /// First melodic voice (default: flute-like, follows the first layer).
    Voice1,
    /// Second melodic voice (default: clarinet-like, follows the middle layer).
    Voice2,
    /// Third melodic voice (default: string-like, follows the last layer).
    Voice3,
    /// The bass drone on the key's root.
    Drone,
    /// The Tension voice: an organ that follows the concept direction's tension.
    Tension,
}

impl VoiceId {
    /// Number of voices.
    pub const COUNT: usize = 5;
    /// Every voice, in index order.
    pub const ALL: [VoiceId; VoiceId::COUNT] = [
        VoiceId::Voice1,
        VoiceId::Voice2,
        VoiceId::Voice3,
        VoiceId::Drone,
        VoiceId::Tension,
    ];

    /// Position in per-voice arrays (0..5).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The voice at `index`, if there is one.
    pub const fn from_index(index: usize) -> Option<VoiceId> {
        match index {
            0 => Some(VoiceId::Voice1),
            1 => Some(VoiceId::Voice2),
            2 => Some(VoiceId::Voice3),
            3 => Some(VoiceId::Drone),
            4 => Some(VoiceId::Tension),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_round_trip() {
        for (i, voice) in VoiceId::ALL.into_iter().enumerate() {
            assert_eq!(voice.index(), i);
            assert_eq!(VoiceId::from_index(i), Some(voice));
        }
        assert_eq!(VoiceId::from_index(VoiceId::COUNT), None);
    }
}
