//! Feel: swing and a human hand. Every second step comes late (swing), and each note a little
//! late and a little louder or softer than written (humanise). The amounts come from a hash of
//! the token and the voice, never from a clock or a random source, so the same tokens are
//! played with the same feel in every bounce.

use super::ornament;
use super::voices::VOICES;

/// The latest a humanised note comes, as a fraction of a grid step.
const MAX_HUMAN_DELAY: f32 = 0.08;
/// The most a humanised velocity moves, up or down.
const MAX_HUMAN_VELOCITY: f32 = 10.0;
/// Salts that keep the hashes apart from the ornaments' ones.
const DELAY_SALT: u32 = 0xfee1_0001;
const VELOCITY_SALT: u32 = 0xfee1_0002;

/// How one step's notes are displaced.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Feel {
    /// Each voice's delay, as a fraction of a grid step.
    pub delay: [f32; VOICES],
    /// Each voice's velocity change.
    pub velocity: [i8; VOICES],
}

/// The feel of the step at grid `position` playing token `index`; `swing` and `humanise` are
/// 0…1 (both 0: nothing moves).
pub fn feel(position: i64, index: u32, swing: f32, humanise: f32) -> Feel {
    let swing = if swing.is_finite() {
        swing.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let humanise = if humanise.is_finite() {
        humanise.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // At full swing the off-step moves from half way to two thirds of the pair: a third of a step.
    let swung = if position.rem_euclid(2) == 1 {
        swing / 3.0
    } else {
        0.0
    };
    let mut feel = Feel::default();
    for voice in 0..VOICES {
        let late = humanise * MAX_HUMAN_DELAY * ornament::unit(index, voice, DELAY_SALT);
        feel.delay[voice] = swung + late;
        let signed = ornament::unit(index, voice, VELOCITY_SALT) * 2.0 - 1.0;
        feel.velocity[voice] = (signed * humanise * MAX_HUMAN_VELOCITY).round() as i8;
    }
    feel
}

impl Feel {
    /// `velocity` moved by voice `voice`'s change, kept in 1..=127.
    pub fn velocity(&self, voice: usize, velocity: u8) -> u8 {
        let change = self.velocity.get(voice).copied().unwrap_or(0);
        velocity.saturating_add_signed(change).clamp(1, 127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_moves_without_swing_or_humanise() {
        for position in -3..10 {
            assert_eq!(feel(position, position as u32, 0.0, 0.0), Feel::default());
        }
        assert_eq!(feel(1, 1, f32::NAN, f32::INFINITY), Feel::default());
    }

    #[test]
    fn swing_delays_every_second_step_by_up_to_a_third() {
        assert_eq!(feel(0, 0, 1.0, 0.0).delay, [0.0; VOICES]);
        assert_eq!(feel(1, 1, 1.0, 0.0).delay, [1.0 / 3.0; VOICES]);
        assert_eq!(feel(3, 7, 0.5, 0.0).delay, [1.0 / 6.0; VOICES]);
        assert_eq!(feel(-1, 7, 0.5, 0.0).delay, [1.0 / 6.0; VOICES]);
    }

    #[test]
    fn humanise_is_bounded_varied_and_repeatable() {
        let feels: Vec<Feel> = (0..64).map(|i| feel(0, i, 0.0, 1.0)).collect();
        assert_eq!(
            feels,
            (0..64).map(|i| feel(0, i, 0.0, 1.0)).collect::<Vec<_>>()
        );
        let delays: Vec<f32> = feels.iter().flat_map(|f| f.delay).collect();
        assert!(delays.iter().all(|d| (0.0..=MAX_HUMAN_DELAY).contains(d)));
        assert!(delays.iter().any(|&d| d > MAX_HUMAN_DELAY * 0.5));
        let velocities: Vec<i8> = feels.iter().flat_map(|f| f.velocity).collect();
        assert!(velocities.iter().all(|v| v.abs() <= 10));
        assert!(velocities.iter().any(|&v| v > 3) && velocities.iter().any(|&v| v < -3));
        assert_eq!(feels[0].velocity(0, 127).max(1), feels[0].velocity(0, 127));
        let f = Feel {
            delay: [0.0; VOICES],
            velocity: [-10, 10, 0],
        };
        assert_eq!((f.velocity(0, 5), f.velocity(1, 125)), (1, 127));
    }
}
