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
}
