//! The plugin's MIDI out: the notes it plays, merged in time order with the incoming MIDI it
//! passes through (hosts require output events sorted by time).

use nice_plug::midi::{Channel, Key, NoteEvent, VoiceID};

use crate::music::NoteMessage;
use crate::playback::sonifier::MidiMessage;

/// MIDI events one block passes through; more are dropped (and counted).
const THRU_CAPACITY: usize = 1024;

/// Incoming MIDI held for one block, to go out merged with the generated notes.
pub struct MidiOut {
    thru: Vec<NoteEvent<()>>,
    /// How many of `thru` have been sent this block.
    sent: usize,
}

impl Default for MidiOut {
    fn default() -> Self {
        Self {
            thru: Vec::with_capacity(THRU_CAPACITY),
            sent: 0,
        }
    }
}

/// What came in this block.
pub struct MidiIn {
    pub events: u64,
    pub dropped: u64,
}

impl MidiOut {
    /// Takes the block's incoming events, keeping them to pass through if `pass_thru`.
    pub fn take_input(
        &mut self,
        mut next: impl FnMut() -> Option<NoteEvent<()>>,
        pass_thru: bool,
    ) -> MidiIn {
        let mut input = MidiIn {
            events: 0,
            dropped: 0,
        };
        self.thru.clear();
        self.sent = 0;
        while let Some(event) = next() {
            input.events += 1;
            if !pass_thru {
                continue;
            }
            if self.thru.len() < self.thru.capacity() {
                self.thru.push(event);
            } else {
                input.dropped += 1;
            }
        }
        sort_events(&mut self.thru);
        input
    }

    /// Sends `message` (clamped into a block of `frames`), after the incoming events due before
    /// it; `send` returns whether the host took the event.
    pub fn send(
        &mut self,
        message: MidiMessage,
        frames: usize,
        send: &mut impl FnMut(NoteEvent<()>) -> bool,
    ) -> u32 {
        let last = frames.saturating_sub(1) as u32;
        let event = match message {
            MidiMessage::Note(note) => note_event(note, last),
            MidiMessage::Control(control) => NoteEvent::MidiCC {
                timing: control.offset.min(last),
                channel: control.channel & 0x0f,
                cc: control.controller.min(127),
                value: f32::from(control.value.min(127)) / 127.0,
            },
        };
        let mut dropped = 0;
        while let Some(earlier) = self
            .thru
            .get(self.sent)
            .filter(|e| event_order(e) < event_order(&event))
        {
            dropped += u32::from(!send(*earlier));
            self.sent += 1;
        }
        dropped + u32::from(!send(event))
    }

    /// Sends the incoming events not yet sent; returns how many the host had no room for.
    pub fn flush(&mut self, send: &mut impl FnMut(NoteEvent<()>) -> bool) -> u32 {
        let dropped = self.thru[self.sent..].iter().filter(|e| !send(**e)).count();
        self.sent = self.thru.len();
        dropped as u32
    }
}

/// A generated note as a MIDI 1.0 note event at most at sample `last`.
fn note_event(message: &NoteMessage, last: u32) -> NoteEvent<()> {
    let (timing, channel, key) = (
        message.offset.min(last),
        Channel::Number(message.channel),
        Key::Number(message.note),
    );
    let voice_id = VoiceID::Wildcard;
    if message.is_on() {
        NoteEvent::NoteOn {
            timing,
            voice_id,
            channel,
            key,
            velocity: f32::from(message.velocity) / 127.0,
        }
    } else {
        NoteEvent::NoteOff {
            timing,
            voice_id,
            channel,
            key,
            velocity: 0.0,
        }
    }
}

/// Where an output event goes in a block: by time, note-offs (and everything else) before
/// note-ons at the same sample.
fn event_order<S>(event: &NoteEvent<S>) -> (u32, bool) {
    (event.timing(), matches!(event, NoteEvent::NoteOn { .. }))
}

/// Stable insertion sort by time, note-offs before note-ons at the same sample (the host's
/// events are almost always in order already). No allocation.
fn sort_events<S>(events: &mut [NoteEvent<S>]) {
    for i in 1..events.len() {
        let mut j = i;
        while j > 0 && event_order(&events[j - 1]) > event_order(&events[j]) {
            events.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// A MIDI 1.0 note-on (`channel` 0–15, `key` 0–127) with `velocity` 0–1 as 1–127: a note-on
/// of velocity 0 would be a note-off.
pub fn note_on_bytes(channel: u8, key: u8, velocity: f32) -> [u8; 3] {
    let velocity = (velocity * 127.0).round().clamp(1.0, 127.0) as u8;
    [0x90 | (channel & 0x0f), key & 0x7f, velocity]
}

/// A MIDI 1.0 note-off with release `velocity` 0–1 as 0–127.
pub fn note_off_bytes(channel: u8, key: u8, velocity: f32) -> [u8; 3] {
    let velocity = (velocity * 127.0).round().clamp(0.0, 127.0) as u8;
    [0x80 | (channel & 0x0f), key & 0x7f, velocity]
}

/// All Notes Off (controller 123) on `channel`.
pub fn all_notes_off_bytes(channel: u8) -> [u8; 3] {
    [0xb0 | (channel & 0x0f), 123, 0]
}
