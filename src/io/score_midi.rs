//! A [`Score`] as a Standard MIDI File: format 1, a conductor track (title, tempo map, 4/4,
//! section markers) and one named track per instrument with its program change, controllers
//! and notes on its channel (drums on channel 10).

use super::midi_file::{PPQ, Track};
use crate::music::score::Score;

/// The whole file. Deterministic: the same score gives the same bytes.
pub fn score_to_midi(score: &Score) -> Vec<u8> {
    let tick = |beat: f64| (beat.max(0.0) * f64::from(PPQ)).round() as u64;
    let end = tick(score.length);
    let mut file = Vec::new();
    file.extend_from_slice(b"MThd");
    file.extend_from_slice(&6u32.to_be_bytes());
    file.extend_from_slice(&1u16.to_be_bytes());
    let tracks = (score.tracks.len() + 1).min(usize::from(u16::MAX)) as u16;
    file.extend_from_slice(&tracks.to_be_bytes());
    file.extend_from_slice(&PPQ.to_be_bytes());

    // Conductor: tempo changes and markers merged in time order (tempo first at a tie).
    let mut conductor = Track::default();
    conductor.meta(0, 0x03, score.title.as_bytes());
    let numerator = score.beats_per_bar.clamp(1, 255) as u8;
    conductor.meta(0, 0x58, &[numerator, 2, 24, 8]);
    let mut meta: Vec<(u64, u8, Vec<u8>)> = Vec::new();
    for change in &score.tempo {
        let micros = (60_000_000.0 / change.bpm).round().clamp(1.0, 16_777_215.0) as u32;
        meta.push((tick(change.beat), 0x51, micros.to_be_bytes()[1..].to_vec()));
    }
    for marker in &score.markers {
        meta.push((tick(marker.beat), 0x06, marker.name.as_bytes().to_vec()));
    }
    meta.sort_by_key(|(t, kind, _)| (*t, if *kind == 0x51 { 0 } else { 1 }));
    for (t, kind, payload) in &meta {
        conductor.meta(*t, *kind, payload);
    }
    conductor.meta(end, 0x2f, &[]);
    conductor.write_chunk(&mut file);

    for part in score.tracks.iter().take(usize::from(u16::MAX) - 1) {
        let channel = part.channel & 0x0f;
        let mut track = Track::default();
        track.meta(0, 0x03, part.name.as_bytes());
        track.meta(0, 0x04, part.name.as_bytes());
        track.event(0, &[0xc0 | channel, part.program & 0x7f]);
        // (tick, order, bytes): at one tick, controllers, then note-offs, then note-ons, so a
        // repeated key is released before it sounds again.
        let mut events: Vec<(u64, u8, [u8; 3])> = Vec::new();
        for c in &part.controls {
            let bytes = [0xb0 | channel, c.controller & 0x7f, c.value & 0x7f];
            events.push((tick(c.beat), 0, bytes));
        }
        for n in &part.notes {
            let (on, off) = (
                tick(n.start),
                tick(n.start + n.length).max(tick(n.start) + 1),
            );
            events.push((
                on,
                2,
                [0x90 | channel, n.key & 0x7f, n.velocity.clamp(1, 127)],
            ));
            events.push((off, 1, [0x80 | channel, n.key & 0x7f, 64]));
        }
        events.sort_by_key(|&(t, order, bytes)| (t, order, bytes[1]));
        for (t, _, bytes) in &events {
            track.event(*t, bytes);
        }
        let last = events.last().map_or(0, |e| e.0);
        track.meta(end.max(last), 0x2f, &[]);
        track.write_chunk(&mut file);
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::score::{BuiltInSound, Marker, ScoreNote, TempoChange, Track as Part};

    #[test]
    fn header_counts_the_conductor_and_every_track() {
        let score = Score {
            title: "t".into(),
            beats_per_bar: 4,
            tempo: vec![TempoChange {
                beat: 0.0,
                bpm: 128.0,
            }],
            markers: vec![Marker {
                beat: 4.0,
                name: "Drop".into(),
            }],
            tracks: vec![Part {
                name: "Bass".into(),
                source: String::new(),
                program: 38,
                channel: 1,
                sound: BuiltInSound::FmBass,
                notes: vec![ScoreNote {
                    start: 0.0,
                    length: 1.0,
                    key: 36,
                    velocity: 100,
                }],
                controls: vec![],
            }],
            length: 8.0,
        };
        let bytes = score_to_midi(&score);
        assert_eq!(&bytes[..4], b"MThd");
        assert_eq!(u16::from_be_bytes([bytes[10], bytes[11]]), 2);
        assert_eq!(score_to_midi(&score), bytes);
        // Program change then note-on on channel 2 appear in the instrument's track.
        let track = &bytes[bytes.windows(4).rposition(|w| w == b"MTrk").unwrap()..];
        assert!(track.windows(2).any(|w| w == [0xc1, 38]));
        assert!(track.windows(3).any(|w| w == [0x91, 36, 100]));
    }
}
