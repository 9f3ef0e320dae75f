//! Tension: what the concept direction's pull on the hidden state does to the music.
//!
//! * **The Tension voice** (an organ by default) sounds only while the token's tension is over
//!   [`GATE`]. Its level and register rise with the tension; its pitch is a tone of the
//!   current chord, and its second note grows less consonant as tension rises: a fifth, then a
//!   tritone, then a minor second (a cluster that beats). Held notes tie across steps, so a
//!   steady tension is a held chord, not a pulse.
//! * **Dissonance**: each melodic voice's note moves to a chromatic neighbour (a semitone
//!   away, outside the scale) with chance Dissonance × tension, drawn from a hash of the token
//!   and voice, so a bounce is the same every time.
//! * **The controller**: the tension as a MIDI CC value (0…127) at every step, on the Tension
//!   voice's channel, for other instruments to follow.
//!
//! A frame without a direction (`has_direction` false) changes nothing here.

use super::frame::TokenFrame;
use super::harmony::Chord;
use super::ornament;
use super::scale::{Root, Scale};

/// Tension below which the Tension voice rests.
pub const GATE: f32 = 0.15;
/// Tension at which the second note becomes a tritone, and a minor second.
const TRITONE_AT: f32 = 0.4;
const CLUSTER_AT: f32 = 0.7;
/// Salt of the dissonance draw (distinct from the ornament's and the feel's).
const DRIFT_SALT: u32 = 0xD155;

/// The Tension voice's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensionMapping {
    pub enabled: bool,
    /// Register: the voice's note rises from `low` (tension at the gate) to `high` (tension 1).
    pub low: u8,
    pub high: u8,
    /// 0…1: how far tension pulls the melodic voices to chromatic neighbours.
    pub dissonance: f32,
    /// The MIDI controller number the tension goes out on.
    pub controller: u8,
}

impl Default for TensionMapping {
    /// Off, and no dissonance: the music as it was before tension.
    fn default() -> Self {
        Self {
            enabled: false,
            low: 48,
            high: 67,
            dissonance: 0.0,
            controller: 1,
        }
    }
}

/// What the Tension voice does at one step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TensionPlan {
    /// The notes to sound (tied into the same notes still sounding); none: rest.
    pub notes: [Option<u8>; 2],
    pub velocity: u8,
    /// The tension as a controller value; `None` when the voice is off or there is no direction.
    pub cc: Option<u8>,
}

/// The token's tension, made safe: `None` without a direction.
pub fn tension_of(frame: &TokenFrame) -> Option<f32> {
    frame.has_direction.then(|| {
        if frame.tension.is_finite() {
            frame.tension.clamp(0.0, 1.0)
        } else {
            0.0
        }
    })
}

/// The Tension voice at this step: `chord` is the chord sounding now.
pub fn plan(frame: &TokenFrame, mapping: &TensionMapping, chord: &Chord) -> TensionPlan {
    let Some(t) = tension_of(frame).filter(|_| mapping.enabled) else {
        return TensionPlan::default();
    };
    let cc = Some((t * 127.0).round() as u8);
    if t < GATE {
        return TensionPlan {
            cc,
            ..TensionPlan::default()
        };
    }
    let (low, high) = (mapping.low.min(mapping.high), mapping.low.max(mapping.high));
    let rise = (t - GATE) / (1.0 - GATE);
    let pitch = f32::from(low) + rise * f32::from(high - low);
    let note = chord.nearest(pitch.round() as u8, low, high);
    let interval = if t < TRITONE_AT {
        7
    } else if t < CLUSTER_AT {
        6
    } else {
        1
    };
    TensionPlan {
        notes: [Some(note), note.checked_add(interval).filter(|&n| n <= 127)],
        velocity: (30.0 + 90.0 * t).round() as u8,
        cc,
    }
}

/// `note` moved to a chromatic neighbour (outside the scale, within `low..=high` where it
/// can) when the draw for token `index` and `voice` falls under Dissonance × tension.
pub fn drift(
    note: u8,
    frame: &TokenFrame,
    dissonance: f32,
    scale: Scale,
    root: Root,
    voice: usize,
) -> u8 {
    let Some(t) = tension_of(frame) else {
        return note;
    };
    let amount = if dissonance.is_finite() {
        dissonance.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if ornament::unit(frame.index, voice, DRIFT_SALT) >= amount * t {
        return note;
    }
    let up = note.checked_add(1).filter(|&n| n <= 127);
    let down = note.checked_sub(1);
    let outside = |n: &u8| !scale.contains(*n, root);
    // Lean upward (a leading-tone pull), down where the upper neighbour is in the scale.
    up.filter(outside)
        .or(down.filter(outside))
        .or(up)
        .unwrap_or(note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::harmony::Chord;

    fn frame(tension: Option<f32>, index: u32) -> TokenFrame {
        let mut frame = TokenFrame::new(index, 0, "x", 3, 0.7);
        if let Some(t) = tension {
            frame.has_direction = true;
            frame.tension = t;
        }
        frame
    }

    fn mapping() -> TensionMapping {
        TensionMapping {
            enabled: true,
            ..TensionMapping::default()
        }
    }

    #[test]
    fn the_voice_rests_below_the_gate_and_grows_louder_higher_and_harsher_above_it() {
        let chord = Chord::on_degree(Scale::Major, Root::C, 0);
        assert_eq!(
            plan(&frame(None, 0), &mapping(), &chord),
            TensionPlan::default()
        );
        let off = TensionMapping::default();
        assert_eq!(
            plan(&frame(Some(0.9), 0), &off, &chord),
            TensionPlan::default()
        );
        let calm = plan(&frame(Some(0.1), 0), &mapping(), &chord);
        assert_eq!(calm.notes, [None, None]);
        assert_eq!(calm.cc, Some(13));
        let plans: Vec<TensionPlan> = [0.2, 0.5, 0.95]
            .iter()
            .map(|&t| plan(&frame(Some(t), 0), &mapping(), &chord))
            .collect();
        let intervals: Vec<u8> = plans
            .iter()
            .map(|p| p.notes[1].unwrap() - p.notes[0].unwrap())
            .collect();
        assert_eq!(intervals, [7, 6, 1]);
        assert!(plans.windows(2).all(|w| w[0].velocity < w[1].velocity));
        assert!(plans.windows(2).all(|w| w[0].notes[0] <= w[1].notes[0]));
        assert!(plans.iter().all(|p| chord.contains(p.notes[0].unwrap())));
        assert!(
            plans
                .iter()
                .all(|p| (48..=67).contains(&p.notes[0].unwrap()))
        );
        assert_eq!(plans[2].cc, Some(121));
    }

    #[test]
    fn dissonance_moves_notes_off_the_scale_more_often_as_tension_rises() {
        let moved = |tension: f32, dissonance: f32| {
            (0..400)
                .filter(|&i| {
                    let f = frame(Some(tension), i);
                    let note = drift(64, &f, dissonance, Scale::Major, Root::C, 1);
                    assert!(note == 64 || note == 65 || note == 63);
                    if note != 64 {
                        assert!(!Scale::Major.contains(note, Root::C) || note == 65);
                    }
                    note != 64
                })
                .count()
        };
        assert_eq!(moved(1.0, 0.0), 0);
        assert_eq!(moved(0.0, 1.0), 0);
        let (low, high) = (moved(0.2, 0.8), moved(0.9, 0.8));
        assert!(low < high, "{low} < {high}");
        assert!((250..=330).contains(&high), "{high}");
        // Without a direction nothing moves, and the draw repeats.
        assert_eq!(
            drift(64, &frame(None, 3), 1.0, Scale::Major, Root::C, 0),
            64
        );
        let f = frame(Some(1.0), 7);
        assert_eq!(
            drift(60, &f, 1.0, Scale::Major, Root::C, 2),
            drift(60, &f, 1.0, Scale::Major, Root::C, 2)
        );
    }
}
