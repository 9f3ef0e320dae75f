//! MLP sparsity → ornaments: a neighbour note late in the step.
//!
//! Whether a voice ornaments a step is drawn from a hash of (token index, voice), never from a
//! global random generator, so the same frames always give the same music (bounces match real
//! time, two runs match each other). The ornament is the scale neighbour of the main note,
//! placed in the second half of the step; the main note ends where it begins.

use super::scale::{Root, Scale};

/// A short extra note inside a grid step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ornament {
    pub note: u8,
    pub velocity: u8,
    /// Start, as a fraction of the grid step after the main note's start.
    pub offset: f32,
    /// Length, as a fraction of the grid step.
    pub length: f32,
}

/// Where in the step an ornament may start (picked by the hash).
const OFFSETS: [f32; 2] = [0.5, 0.75];
/// Share of the rest of the step the ornament sounds for (leaves a breath before the next step).
const LENGTH_SHARE: f32 = 0.8;
/// Ornaments are a little softer than the note they decorate.
const VELOCITY_SHARE: f32 = 0.8;

/// A well-mixed 64-bit hash of (token index, voice, purpose) (splitmix64 finaliser).
pub fn hash(index: u32, voice: usize, salt: u32) -> u64 {
    let mut x =
        u64::from(index) ^ ((voice as u64) << 32) ^ (u64::from(salt) << 48) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A deterministic number in [0, 1) for (token index, voice, purpose).
pub fn unit(index: u32, voice: usize, salt: u32) -> f32 {
    (hash(index, voice, salt) >> 40) as f32 / (1u64 << 24) as f32
}

/// Everything that decides one voice's ornament.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrnamentInput {
    pub index: u32,
    pub voice: usize,
    /// Chance of an ornament, [0, 1] (sparsity × ornament amount).
    pub probability: f32,
    /// Neighbour above (true) or below; flipped if that would leave the range.
    pub upward: bool,
    pub main_note: u8,
    pub main_velocity: u8,
    pub scale: Scale,
    pub root: Root,
    pub low: u8,
    pub high: u8,
}

/// The ornament for this step, if the hash says so and a neighbour exists inside the range.
pub fn plan(input: &OrnamentInput) -> Option<Ornament> {
    let probability = if input.probability.is_nan() {
        0.0
    } else {
        input.probability.clamp(0.0, 1.0)
    };
    if unit(input.index, input.voice, 0) >= probability {
        return None;
    }
    let (low, high) = (input.low.min(input.high), input.low.max(input.high));
    let step = |steps: i32| {
        let note = input.scale.degree_step(input.main_note, input.root, steps);
        (note != input.main_note && (low..=high).contains(&note)).then_some(note)
    };
    let (first, second) = if input.upward { (1, -1) } else { (-1, 1) };
    let note = step(first).or_else(|| step(second))?;
    let offset = OFFSETS[(hash(input.index, input.voice, 1) % OFFSETS.len() as u64) as usize];
    let velocity = ((f32::from(input.main_velocity) * VELOCITY_SHARE).round() as u8).max(1);
    Some(Ornament {
        note,
        velocity,
        offset,
        length: (1.0 - offset) * LENGTH_SHARE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(index: u32, probability: f32) -> OrnamentInput {
        OrnamentInput {
            index,
            voice: 1,
            probability,
            upward: true,
            main_note: 64,
            main_velocity: 100,
            scale: Scale::Major,
            root: Root::C,
            low: 55,
            high: 79,
        }
    }

    #[test]
    fn probability_is_respected_and_deterministic() {
        let count = |p: f32| (0..2000).filter(|&i| plan(&input(i, p)).is_some()).count();
        assert_eq!(count(0.0), 0);
        assert_eq!(count(f32::NAN), 0);
        assert_eq!(count(1.0), 2000);
        let half = count(0.5);
        assert!((850..1150).contains(&half), "{half}");
        let quarter = count(0.25);
        assert!((400..600).contains(&quarter), "{quarter}");
        for i in 0..100 {
            assert_eq!(plan(&input(i, 0.5)), plan(&input(i, 0.5)));
        }
        // Voices draw independently.
        let differ = (0..200).filter(|&i| unit(i, 0, 0) != unit(i, 1, 0)).count();
        assert_eq!(differ, 200);
    }

    #[test]
    fn neighbour_is_in_scale_and_range() {
        let o = plan(&input(0, 1.0)).unwrap();
        assert_eq!(o.note, 65); // E → F in C major
        assert!(o.offset >= 0.5 && o.offset + o.length < 1.0);
        assert_eq!(o.velocity, 80);
        let down = plan(&OrnamentInput {
            upward: false,
            ..input(0, 1.0)
        })
        .unwrap();
        assert_eq!(down.note, 62);
        // At the top of the range the neighbour flips below.
        let top = plan(&OrnamentInput {
            main_note: 79,
            ..input(0, 1.0)
        })
        .unwrap();
        assert_eq!(top.note, 77);
        // A one-note range has no room for a neighbour.
        let none = plan(&OrnamentInput {
            main_note: 60,
            low: 60,
            high: 61,
            ..input(0, 1.0)
        });
        assert_eq!(none, None);
    }
}
