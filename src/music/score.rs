//! A written score: tracks of notes on a beat timeline with a tempo map and section markers.
//!
//! The weight pieces (`weights::style`) compose one from a model's frozen weights; `io::midi_file`
//! writes it as a multi-track General MIDI file; the offline renderer and the plugin's Model
//! Weights source play it. Positions are in beats (quarter notes) from the start; every note
//! names the tensor it came from by its track, so the piece stays traceable.

/// The built-in sound a track asks for when no SoundFont renders it. Named for the sound, not the
/// synth's implementation, so the music layer stays free of `synth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltInSound {
    Strings,
    Flute,
    Clarinet,
    Organ,
    /// Horns and other held brass (the drone's darker saw).
    Brass,
    /// Plucked string (harp, guitar): Karplus–Strong.
    Pluck,
    /// TB-303-style bass: overlapping notes slide, high velocities accent.
    AcidBass,
    /// Two-operator FM bass.
    FmBass,
    /// The drum kit, by General MIDI drum key (36 kick, 38 snare, 39 clap, 42/46 hats).
    Drums,
}

/// General MIDI drum keys the pieces use (channel 10).
pub mod drum {
    pub const KICK: u8 = 36;
    pub const CLAP: u8 = 39;
    pub const SNARE: u8 = 38;
    pub const CLOSED_HAT: u8 = 42;
    pub const OPEN_HAT: u8 = 46;
}

/// The MIDI channel (0-based) General MIDI reserves for drums: channel 10 to a musician.
pub const DRUM_CHANNEL: u8 = 9;

/// One note. A note that lasts past the start of the next note on its track is legato: the
/// acid bass slides into the next pitch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreNote {
    /// Beats from the start of the piece.
    pub start: f64,
    /// Length in beats (> 0).
    pub length: f64,
    pub key: u8,
    /// 1…127.
    pub velocity: u8,
}

/// A controller change on a track (e.g. 74 cutoff, 71 resonance for the acid bass; 7 volume).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreControl {
    pub beat: f64,
    pub controller: u8,
    pub value: u8,
}

/// One instrument's part.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Shown as the MIDI track name ("Violins").
    pub name: String,
    /// What the notes were computed from ("model.layers.*.self_attn.q_proj.weight: top singular
    /// values"), kept in the stats sidecar so every note is traceable.
    pub source: String,
    /// General MIDI program (0-based).
    pub program: u8,
    /// MIDI channel, 0-based; [`DRUM_CHANNEL`] for drums.
    pub channel: u8,
    pub sound: BuiltInSound,
    /// Sorted by start.
    pub notes: Vec<ScoreNote>,
    /// Sorted by beat.
    pub controls: Vec<ScoreControl>,
}

/// A tempo from `beat` on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TempoChange {
    pub beat: f64,
    pub bpm: f64,
}

/// A named section ("Act I: Overture", "Drop").
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub beat: f64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub title: String,
    /// Beats per bar (4 for every piece so far).
    pub beats_per_bar: u32,
    /// At least one change, the first at beat 0.
    pub tempo: Vec<TempoChange>,
    pub markers: Vec<Marker>,
    pub tracks: Vec<Track>,
    /// Where the piece ends (after the last release), in beats.
    pub length: f64,
}

impl Score {
    /// Seconds from the start to `beat`, through the tempo map.
    pub fn seconds_at(&self, beat: f64) -> f64 {
        let mut seconds = 0.0;
        let mut from = 0.0;
        let mut bpm = self.tempo.first().map_or(120.0, |t| t.bpm);
        for change in self.tempo.iter().skip(1) {
            if change.beat >= beat {
                break;
            }
            seconds += (change.beat - from) * 60.0 / bpm;
            from = change.beat;
            bpm = change.bpm;
        }
        seconds + (beat - from) * 60.0 / bpm
    }

    /// Every note of every track.
    pub fn note_count(&self) -> usize {
        self.tracks.iter().map(|t| t.notes.len()).sum()
    }

    /// Sorts each track's notes and controls by time (then key), so writers and players can
    /// walk them in order; composition may push in any order.
    pub fn normalize(&mut self) {
        for track in &mut self.tracks {
            track
                .notes
                .sort_by(|a, b| a.start.total_cmp(&b.start).then(a.key.cmp(&b.key)));
            track.controls.sort_by(|a, b| a.beat.total_cmp(&b.beat));
        }
        self.markers.sort_by(|a, b| a.beat.total_cmp(&b.beat));
        self.tempo.sort_by(|a, b| a.beat.total_cmp(&b.beat));
        let end = self
            .tracks
            .iter()
            .flat_map(|t| t.notes.iter().map(|n| n.start + n.length))
            .fold(0.0f64, f64::max);
        self.length = self.length.max(end);
    }
}

/// What one of the plugin's note slots plays of a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSound {
    pub sound: BuiltInSound,
    /// General MIDI program of the slot's first track.
    pub program: u8,
}

/// One note of a [`SlotScore`]: beats from the start of the piece, the slot that plays it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotNote {
    pub start: f64,
    pub length: f64,
    pub key: u8,
    pub velocity: u8,
    pub slot: u8,
}

/// A score folded onto the plugin's [`SLOTS`](super::SLOTS) note slots, ready for the audio
/// thread: the tracks grouped by sound (each sound one slot, in order of first appearance; more
/// sounds than slots share the last), the notes in one list sorted by start, the loop length
/// rounded up to whole bars.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotScore {
    pub title: String,
    /// Which piece this is, in the composer's own numbering (the plugin: the Weight Style),
    /// so the player can tell whether it holds the one asked for.
    pub tag: u32,
    /// The piece's opening tempo, for playing it without a host transport.
    pub bpm: f64,
    /// Whole bars, in beats; at least one bar.
    pub length: f64,
    pub notes: Vec<SlotNote>,
    pub slots: [Option<SlotSound>; super::SLOTS],
}

impl SlotScore {
    pub fn from_score(score: &Score) -> Self {
        let mut slots: [Option<SlotSound>; super::SLOTS] = [None; super::SLOTS];
        let mut notes = Vec::with_capacity(score.note_count());
        for track in &score.tracks {
            let found = slots
                .iter()
                .position(|s| s.is_some_and(|s| s.sound == track.sound));
            let slot = match found {
                Some(i) => i,
                None => match slots.iter().position(Option::is_none) {
                    Some(free) => {
                        slots[free] = Some(SlotSound {
                            sound: track.sound,
                            program: track.program,
                        });
                        free
                    }
                    None => super::SLOTS - 1,
                },
            };
            notes.extend(track.notes.iter().map(|n| SlotNote {
                start: n.start,
                length: n.length.max(1e-6),
                key: n.key.min(127),
                velocity: n.velocity.clamp(1, 127),
                slot: slot as u8,
            }));
        }
        notes.sort_by(|a, b| {
            a.start
                .total_cmp(&b.start)
                .then(a.slot.cmp(&b.slot))
                .then(a.key.cmp(&b.key))
        });
        let bar = f64::from(score.beats_per_bar.max(1));
        let last_start = notes.last().map_or(0.0, |n| n.start);
        let length = ((last_start + 1e-9) / bar).floor() * bar + bar;
        Self {
            title: score.title.clone(),
            tag: 0,
            bpm: score.tempo.first().map_or(120.0, |t| t.bpm),
            length: length.max(bar),
            notes,
            slots,
        }
    }

    /// Index of the first note starting at or after `beat`.
    pub fn first_from(&self, beat: f64) -> usize {
        self.notes.partition_point(|n| n.start < beat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_follow_the_tempo_map() {
        let score = Score {
            title: String::new(),
            beats_per_bar: 4,
            tempo: vec![
                TempoChange {
                    beat: 0.0,
                    bpm: 120.0,
                },
                TempoChange {
                    beat: 8.0,
                    bpm: 60.0,
                },
            ],
            markers: vec![],
            tracks: vec![],
            length: 16.0,
        };
        assert_eq!(score.seconds_at(4.0), 2.0);
        assert_eq!(score.seconds_at(8.0), 4.0);
        assert_eq!(score.seconds_at(10.0), 6.0);
    }

    #[test]
    fn tracks_fold_onto_slots_by_sound() {
        let track = |name: &str, sound, program, start: f64| Track {
            name: name.into(),
            source: String::new(),
            program,
            channel: 0,
            sound,
            notes: vec![ScoreNote {
                start,
                length: 1.0,
                key: 60,
                velocity: 90,
            }],
            controls: vec![],
        };
        let score = Score {
            title: "t".into(),
            beats_per_bar: 4,
            tempo: vec![TempoChange {
                beat: 0.0,
                bpm: 120.0,
            }],
            markers: vec![],
            tracks: vec![
                track("Violins", BuiltInSound::Strings, 40, 4.0),
                track("Violas", BuiltInSound::Strings, 41, 0.0),
                track("Horns", BuiltInSound::Brass, 60, 2.0),
                track("Drums", BuiltInSound::Drums, 0, 9.0),
            ],
            length: 10.0,
        };
        let slots = SlotScore::from_score(&score);
        assert_eq!(slots.slots[0].map(|s| s.program), Some(40));
        assert_eq!(slots.slots[1].map(|s| s.sound), Some(BuiltInSound::Brass));
        assert_eq!(slots.slots[2].map(|s| s.sound), Some(BuiltInSound::Drums));
        assert_eq!(slots.slots[3], None);
        let order: Vec<(f64, u8)> = slots.notes.iter().map(|n| (n.start, n.slot)).collect();
        assert_eq!(order, vec![(0.0, 0), (2.0, 1), (4.0, 0), (9.0, 2)]);
        assert_eq!(slots.length, 12.0, "the last note's bar ends the loop");
        assert_eq!(slots.first_from(3.0), 2);
    }
}
