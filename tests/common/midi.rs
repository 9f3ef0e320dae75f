//! What a Standard MIDI File says, read with another implementation (`midly`) than ours.

/// The file's note-ons as `(grid step, channel, key)`, sorted, on a grid of `steps_per_beat`;
/// every note-on must fall exactly on the grid.
pub fn note_on_steps(bytes: &[u8], steps_per_beat: u64) -> Vec<(u64, u8, u8)> {
    let smf = midly::Smf::parse(bytes).expect("the MIDI parses");
    let ppq = match smf.header.timing {
        midly::Timing::Metrical(ppq) => u64::from(ppq.as_int()),
        other => panic!("timing {other:?}"),
    };
    let step = ppq / steps_per_beat;
    let mut notes = Vec::new();
    for track in &smf.tracks {
        let mut ticks = 0u64;
        for event in track {
            ticks += u64::from(event.delta.as_int());
            if let midly::TrackEventKind::Midi {
                channel,
                message: midly::MidiMessage::NoteOn { key, vel },
            } = event.kind
                && vel.as_int() > 0
            {
                assert_eq!(ticks % step, 0, "note-on off the grid at tick {ticks}");
                notes.push((ticks / step, channel.as_int(), key.as_int()));
            }
        }
    }
    notes.sort_unstable();
    notes
}
