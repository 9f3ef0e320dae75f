//! The bass drone: the key's root, held. It is re-articulated only when the root or octave
//! changes (or it starts), so it stays a floor under the voices rather than a fourth melody.

use super::scale::Root;

/// What the drone should do at this step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DroneAction {
    /// Nothing: the sounding drone (if any) continues.
    Keep,
    /// Start sounding `note`.
    Start { note: u8, velocity: u8 },
    /// Release `from` and start `to` (root or octave changed).
    Change { from: u8, to: u8, velocity: u8 },
    /// Release `note` (drone turned off).
    Stop { note: u8 },
}

/// The drone's sounding note, if any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DroneState {
    note: Option<u8>,
}

impl DroneState {
    pub const fn new() -> Self {
        Self { note: None }
    }

    /// The note the drone is sounding.
    pub fn note(&self) -> Option<u8> {
        self.note
    }

    /// The caller released the drone (stop, jump, reset): it starts again at the next update.
    pub fn released(&mut self) {
        self.note = None;
    }

    /// Bring the drone in line with the parameters. `octave` uses C4 = 60 (so octave 2 is MIDI
    /// 36 + root); an octave that puts the root outside MIDI is brought back inside it.
    pub fn update(&mut self, enabled: bool, root: Root, octave: i32, velocity: u8) -> DroneAction {
        let wanted = if enabled {
            root.note_in_octave(octave.clamp(-1, 9))
                .or_else(|| root.note_in_octave(8))
        } else {
            None
        };
        let velocity = velocity.clamp(1, 127);
        let action = match (self.note, wanted) {
            (Some(from), Some(to)) if from != to => DroneAction::Change { from, to, velocity },
            (None, Some(note)) => DroneAction::Start { note, velocity },
            (Some(note), None) => DroneAction::Stop { note },
            _ => DroneAction::Keep,
        };
        self.note = wanted;
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drone_articulates_only_on_change() {
        let mut drone = DroneState::new();
        assert_eq!(
            drone.update(true, Root::D, 2, 70),
            DroneAction::Start {
                note: 38,
                velocity: 70
            }
        );
        assert_eq!(drone.update(true, Root::D, 2, 90), DroneAction::Keep);
        assert_eq!(
            drone.update(true, Root::E, 2, 70),
            DroneAction::Change {
                from: 38,
                to: 40,
                velocity: 70
            }
        );
        assert_eq!(
            drone.update(true, Root::E, 1, 70),
            DroneAction::Change {
                from: 40,
                to: 28,
                velocity: 70
            }
        );
        assert_eq!(
            drone.update(false, Root::E, 1, 70),
            DroneAction::Stop { note: 28 }
        );
        assert_eq!(drone.update(false, Root::E, 1, 70), DroneAction::Keep);
        assert_eq!(
            drone.update(true, Root::B, 20, 0),
            DroneAction::Start {
                note: 119,
                velocity: 1
            }
        );
        drone.released();
        assert_eq!(drone.note(), None);
        assert!(matches!(
            drone.update(true, Root::B, 2, 64),
            DroneAction::Start { note: 47, .. }
        ));
    }
}
