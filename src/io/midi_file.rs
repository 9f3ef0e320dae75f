//! Standard MIDI Files of a render: format 1, a tempo track (name, tempo, 4/4) and one track
//! per slot (the three voices and the drone), each named, its notes on the channels the
//! voices used. Note times come from sample positions at a constant tempo, in ticks of
//! [`PPQ`] per quarter note.
//!
//! Written by hand (the format is small) so the tests can read it back with an independent
//! parser.

use crate::music::{ControlMessage, NoteMessage, SLOTS, TENSION_SLOT};

/// Ticks per quarter note.
pub const PPQ: u16 = 960;

/// Collects a render's note messages and writes them as a Standard MIDI File.
#[derive(Debug, Clone)]
pub struct MidiRecorder {
    sample_rate: f64,
    bpm: f64,
    /// Per slot: (tick, status byte, key, velocity), in time order.
    tracks: [Vec<(u64, u8, u8, u8)>; SLOTS],
    names: [String; SLOTS],
    end_tick: u64,
    /// Every note-on as it came: (sample, slot, note, velocity, token).
    ons: Vec<(u64, u8, u8, u8, u32)>,
}

impl MidiRecorder {
    /// `names`: the track name of each slot (voices 1–3, then the drone).
    pub fn new(sample_rate: f64, bpm: f64, names: [String; SLOTS]) -> Self {
        Self {
            sample_rate,
            bpm,
            tracks: Default::default(),
            names,
            end_tick: 0,
            ons: Vec::new(),
        }
    }

    /// Renames the slots' tracks (once it is known which layers the voices followed).
    pub fn set_names(&mut self, names: [String; SLOTS]) {
        self.names = names;
    }

    /// The tick of absolute sample position `sample`.
    pub fn tick(&self, sample: u64) -> u64 {
        let beats = sample as f64 / self.sample_rate * self.bpm / 60.0;
        (beats * f64::from(PPQ)).round() as u64
    }

    /// Records `message`, which fell at absolute sample position `sample`.
    pub fn record(&mut self, sample: u64, message: &NoteMessage) {
        let tick = self.tick(sample);
        let Some(track) = self.tracks.get_mut(usize::from(message.slot)) else {
            return;
        };
        let channel = message.channel & 0x0f;
        let (status, velocity) = if message.is_on() {
            self.ons.push((
                sample,
                message.slot,
                message.note,
                message.velocity,
                message.token,
            ));
            (0x90 | channel, message.velocity.min(127))
        } else {
            (0x80 | channel, 0)
        };
        track.push((tick, status, message.note & 0x7f, velocity));
        self.end_tick = self.end_tick.max(tick);
    }

    /// Records the tension controller, on the Tension voice's track.
    pub fn record_control(&mut self, sample: u64, control: &ControlMessage) {
        let tick = self.tick(sample);
        if let Some(track) = self.tracks.get_mut(usize::from(TENSION_SLOT)) {
            track.push((
                tick,
                0xB0 | (control.channel & 0x0f),
                control.controller & 0x7f,
                control.value.min(127),
            ));
            self.end_tick = self.end_tick.max(tick);
        }
    }

    /// Where the tracks end: at least at `sample` (the end of the audio).
    pub fn end_at(&mut self, sample: u64) {
        self.end_tick = self.end_tick.max(self.tick(sample));
    }

    /// Every note-on recorded, in order: (sample, slot, note, velocity, token index), the
    /// token's index as the player had it ([`crate::music::NO_TOKEN`] for none).
    pub fn note_ons_traced(&self) -> &[(u64, u8, u8, u8, u32)] {
        &self.ons
    }

    /// Note-ons recorded so far.
    pub fn note_ons(&self) -> usize {
        self.tracks
            .iter()
            .flatten()
            .filter(|(_, status, _, _)| status & 0xf0 == 0x90)
            .count()
    }

    /// The whole file.
    pub fn to_bytes(&self, tempo_track_name: &str) -> Vec<u8> {
        let mut file = Vec::new();
        file.extend_from_slice(b"MThd");
        file.extend_from_slice(&6u32.to_be_bytes());
        file.extend_from_slice(&1u16.to_be_bytes());
        file.extend_from_slice(&(SLOTS as u16 + 1).to_be_bytes());
        file.extend_from_slice(&PPQ.to_be_bytes());

        let mut tempo = Track::default();
        tempo.meta(0, 0x03, tempo_track_name.as_bytes());
        let micros = (60_000_000.0 / self.bpm).round().clamp(1.0, 16_777_215.0) as u32;
        tempo.meta(0, 0x51, &micros.to_be_bytes()[1..]);
        // 4/4, 24 MIDI clocks per metronome click, 8 thirty-seconds per quarter.
        tempo.meta(0, 0x58, &[4, 2, 24, 8]);
        tempo.meta(self.end_tick, 0x2f, &[]);
        tempo.write_chunk(&mut file);

        for (events, name) in self.tracks.iter().zip(&self.names) {
            let mut track = Track::default();
            track.meta(0, 0x03, name.as_bytes());
            for &(tick, status, key, velocity) in events {
                track.event(tick, &[status, key, velocity]);
            }
            track.meta(self.end_tick, 0x2f, &[]);
            track.write_chunk(&mut file);
        }
        file
    }
}

/// One track's events, delta-timed as they are added.
#[derive(Default)]
pub(super) struct Track {
    data: Vec<u8>,
    last_tick: u64,
}

impl Track {
    pub(super) fn event(&mut self, tick: u64, bytes: &[u8]) {
        let delta = tick.saturating_sub(self.last_tick);
        self.last_tick = self.last_tick.max(tick);
        write_vlq(&mut self.data, delta.min(0x0fff_ffff) as u32);
        self.data.extend_from_slice(bytes);
    }

    pub(super) fn meta(&mut self, tick: u64, kind: u8, payload: &[u8]) {
        let mut bytes = vec![0xff, kind];
        write_vlq(&mut bytes, payload.len() as u32);
        bytes.extend_from_slice(payload);
        self.event(tick, &bytes);
    }

    pub(super) fn write_chunk(&self, file: &mut Vec<u8>) {
        file.extend_from_slice(b"MTrk");
        file.extend_from_slice(&(self.data.len() as u32).to_be_bytes());
        file.extend_from_slice(&self.data);
    }
}

/// A MIDI variable-length quantity: 7 bits per byte, most significant first.
fn write_vlq(out: &mut Vec<u8>, mut value: u32) {
    let mut bytes = [0u8; 5];
    let mut n = 0;
    loop {
        bytes[n] = (value & 0x7f) as u8;
        n += 1;
        value >>= 7;
        if value == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        out.push(bytes[i] | if i > 0 { 0x80 } else { 0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_length_quantities_match_the_spec_examples() {
        for (value, expected) in [
            (0u32, vec![0x00]),
            (0x40, vec![0x40]),
            (0x7f, vec![0x7f]),
            (0x80, vec![0x81, 0x00]),
            (0x2000, vec![0xc0, 0x00]),
            (0x3fff, vec![0xff, 0x7f]),
            (0x1f_ffff, vec![0xff, 0xff, 0x7f]),
            (0x0fff_ffff, vec![0xff, 0xff, 0xff, 0x7f]),
        ] {
            let mut out = Vec::new();
            write_vlq(&mut out, value);
            assert_eq!(out, expected, "{value:#x}");
        }
    }

    #[test]
    fn ticks_follow_the_tempo() {
        let recorder = MidiRecorder::new(48_000.0, 120.0, Default::default());
        // Half a second at 120 BPM is one quarter note.
        assert_eq!(recorder.tick(24_000), u64::from(PPQ));
        assert_eq!(recorder.tick(0), 0);
    }
}
