//! The transcription as a Standard MIDI File (format 0, 480 ticks per beat, 120 BPM, Electric
//! Piano 1), as Basic Pitch writes it: velocity from the note's amplitude and, for notes that
//! overlap no other note, its pitch bends spread evenly over the note.

use super::notes::NoteEvent;

const TICKS_PER_BEAT: u16 = 480;
const TICKS_PER_SECOND: f64 = TICKS_PER_BEAT as f64 * 2.0;
const ELECTRIC_PIANO_1: u8 = 4;

pub fn midi_bytes(notes: &[NoteEvent], with_bends: bool) -> Vec<u8> {
    let mut sorted: Vec<&NoteEvent> = notes.iter().collect();
    sorted.sort_by(|a, b| {
        a.start
            .total_cmp(&b.start)
            .then(a.end.total_cmp(&b.end))
            .then(a.pitch.cmp(&b.pitch))
    });
    let overlaps = |i: usize| {
        sorted
            .iter()
            .enumerate()
            .any(|(j, other)| j != i && other.start < sorted[i].end && sorted[i].start < other.end)
    };
    // (tick, order: 0 off, 1 bend, 2 on, bytes)
    let mut events: Vec<(u64, u8, Vec<u8>)> = Vec::new();
    let tick = |seconds: f64| (seconds.max(0.0) * TICKS_PER_SECOND).round() as u64;
    for (i, note) in sorted.iter().enumerate() {
        let velocity = ((127.0 * note.amplitude).round() as i32).clamp(1, 127) as u8;
        let (on, off) = (tick(note.start), tick(note.end).max(tick(note.start) + 1));
        events.push((on, 2, vec![0x90, note.pitch, velocity]));
        events.push((off, 0, vec![0x80, note.pitch, 0]));
        if with_bends && !note.bends.is_empty() && !overlaps(i) {
            let n = note.bends.len();
            for (k, &bend) in note.bends.iter().enumerate() {
                let at = if n == 1 {
                    note.start
                } else {
                    note.start + (note.end - note.start) * k as f64 / (n - 1) as f64
                };
                let value =
                    ((f64::from(bend) * 4096.0 / 3.0).round() as i32).clamp(-8192, 8191) + 8192;
                events.push((
                    tick(at),
                    1,
                    vec![0xE0, (value & 0x7f) as u8, (value >> 7) as u8],
                ));
            }
        }
    }
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));

    let mut track = Vec::new();
    let push_event = |track: &mut Vec<u8>, delta: u64, bytes: &[u8]| {
        write_varlen(track, delta);
        track.extend_from_slice(bytes);
    };
    push_event(&mut track, 0, &[0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20]);
    push_event(&mut track, 0, &[0xC0, ELECTRIC_PIANO_1]);
    let mut now = 0;
    for (at, _, bytes) in &events {
        push_event(&mut track, at - now, bytes);
        now = *at;
    }
    push_event(&mut track, 0, &[0xFF, 0x2F, 0x00]);

    let mut file = Vec::with_capacity(track.len() + 22);
    file.extend(b"MThd");
    file.extend(6u32.to_be_bytes());
    file.extend(0u16.to_be_bytes());
    file.extend(1u16.to_be_bytes());
    file.extend(TICKS_PER_BEAT.to_be_bytes());
    file.extend(b"MTrk");
    file.extend((track.len() as u32).to_be_bytes());
    file.extend(track);
    file
}

fn write_varlen(out: &mut Vec<u8>, value: u64) {
    let mut bytes = vec![(value & 0x7f) as u8];
    let mut rest = value >> 7;
    while rest > 0 {
        bytes.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.extend(bytes.iter().rev());
}
