//! Note output in the dialect the host takes.
//!
//! CLAP has two ways to send a note: its own note events (`CLAP_EVENT_NOTE_ON/OFF`, the CLAP
//! dialect) and MIDI 1.0 bytes (`CLAP_EVENT_MIDI`, the MIDI dialect). nice-plug 0.4.2 always
//! sends the first, and a host that reads only MIDI from a plugin's note output (Carla 2.6 drops
//! every CLAP note event) heard nothing. A plugin cannot ask a host what its *output* ports may
//! carry; what a host can say is which dialects it supports at all, through its own
//! `clap.note-ports` extension (`supported_dialects`). So:
//!
//! * a host that declares the CLAP dialect gets CLAP note events (the dialect nice-plug and
//!   CLAP itself prefer);
//! * a host that declares dialects without CLAP, or has no `clap.note-ports` of its own (Carla
//!   has none), gets MIDI: MIDI 1.0 is what every host that takes notes from a plugin reads.
//!   Nothing is lost: the notes carry no note ids (`VoiceID::Wildcard`), no expressions, and
//!   velocities that started as 7-bit MIDI.
//!
//! The choice is made on the main thread whenever the host asks for the note ports or activates
//! the plugin, and the output port declares both dialects with the chosen one as preferred.
//! The translation sits between nice-plug and the host: `process` hands nice-plug a
//! `clap_output_events` of ours that turns each note on/off into the same note as MIDI bytes
//! (same sample, same channel, same key, velocity 1–127 for a note-on) and passes every other
//! event (parameter changes, MIDI controllers) on unchanged. Order, timing and the pairing of
//! ons and offs are nice-plug's and the sonifier's, so they hold in both dialects.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering};

use clap_sys::events::{
    CLAP_CORE_EVENT_SPACE_ID, CLAP_EVENT_MIDI, CLAP_EVENT_NOTE_OFF, CLAP_EVENT_NOTE_ON,
    clap_event_header, clap_event_midi, clap_event_note, clap_output_events,
};
use clap_sys::ext::note_ports::{
    CLAP_EXT_NOTE_PORTS, CLAP_NOTE_DIALECT_CLAP, CLAP_NOTE_DIALECT_MIDI, clap_host_note_ports,
    clap_note_dialect, clap_note_port_info,
};
use clap_sys::host::clap_host;
use clap_sys::plugin::clap_plugin;
use clap_sys::process::{CLAP_PROCESS_ERROR, clap_process, clap_process_status};

use crate::plugin::midi_out;

/// The dialect one instance sends its notes in, chosen on the main thread, read on the audio
/// thread.
pub struct Dialect(AtomicU32);

impl Default for Dialect {
    /// MIDI until the host has been asked: it is the dialect every host reads.
    fn default() -> Self {
        Self(AtomicU32::new(CLAP_NOTE_DIALECT_MIDI))
    }
}

impl Dialect {
    /// Asks the host which dialects it supports and chooses (see the module docs).
    ///
    /// # Safety
    /// On the main thread, with `host` null or the instance's live `clap_host`.
    pub unsafe fn choose(&self, host: *const clap_host) -> clap_note_dialect {
        // SAFETY: the caller's contract.
        let dialect = choose(unsafe { host_dialects(host) });
        self.0.store(dialect, Ordering::Relaxed);
        dialect
    }

    pub fn get(&self) -> clap_note_dialect {
        self.0.load(Ordering::Relaxed)
    }
}

/// The dialect for a host that declares `host` (`None`: no `clap.note-ports` of its own).
pub fn choose(host: Option<clap_note_dialect>) -> clap_note_dialect {
    match host {
        Some(dialects) if dialects & CLAP_NOTE_DIALECT_CLAP != 0 => CLAP_NOTE_DIALECT_CLAP,
        _ => CLAP_NOTE_DIALECT_MIDI,
    }
}

/// What the host's `clap.note-ports` says it supports, if it has the extension.
///
/// # Safety
/// On the main thread, with `host` null or a live `clap_host`.
unsafe fn host_dialects(host: *const clap_host) -> Option<clap_note_dialect> {
    if host.is_null() {
        return None;
    }
    // SAFETY: non-null and live (the contract).
    let get_extension = unsafe { (*host).get_extension }?;
    // SAFETY: the host's own function with a NUL-terminated id.
    let ext = unsafe { get_extension(host, CLAP_EXT_NOTE_PORTS.as_ptr()) };
    if ext.is_null() {
        return None;
    }
    // SAFETY: the host returned its `clap_host_note_ports` for this id.
    let supported = unsafe { (*(ext as *const clap_host_note_ports)).supported_dialects }?;
    // SAFETY: the host's own function, on the main thread (the contract).
    Some(unsafe { supported(host) })
}

/// Fills in note port `index`: one input (both dialects, CLAP preferred, as nice-plug declares
/// it) and one output (both dialects, `output` preferred).
pub fn port_info(
    index: u32,
    is_input: bool,
    output: clap_note_dialect,
    info: &mut clap_note_port_info,
) -> bool {
    if index != 0 {
        return false;
    }
    let (preferred, name) = if is_input {
        (CLAP_NOTE_DIALECT_CLAP, "Note Input")
    } else {
        (output, "Note Output")
    };
    info.id = 0;
    info.supported_dialects = CLAP_NOTE_DIALECT_CLAP | CLAP_NOTE_DIALECT_MIDI;
    info.preferred_dialect = preferred;
    info.name = [0; clap_sys::string_sizes::CLAP_NAME_SIZE];
    for (slot, byte) in info.name.iter_mut().zip(name.bytes()) {
        *slot = byte as std::ffi::c_char;
    }
    true
}

/// Runs nice-plug's `process` with the host's output events, translated into MIDI when the
/// dialect is MIDI. No allocation: the translating list lives on this stack frame.
///
/// # Safety
/// The host's arguments to `clap_plugin.process`, with `inner` nice-plug's own function.
pub unsafe fn process(
    inner: Option<
        unsafe extern "C" fn(*const clap_plugin, *const clap_process) -> clap_process_status,
    >,
    plugin: *const clap_plugin,
    process: *const clap_process,
    dialect: clap_note_dialect,
) -> clap_process_status {
    let Some(inner) = inner else {
        return CLAP_PROCESS_ERROR;
    };
    // SAFETY: null-checked; the host's process data for this call.
    if process.is_null()
        || dialect != CLAP_NOTE_DIALECT_MIDI
        || unsafe { (*process).out_events }.is_null()
    {
        // SAFETY: nice-plug's own function with the host's arguments.
        return unsafe { inner(plugin, process) };
    }
    // SAFETY: non-null, checked above.
    let mut data = unsafe { *process };
    let translator = MidiOutput {
        host: data.out_events,
    };
    let events = clap_output_events {
        ctx: &translator as *const MidiOutput as *mut c_void,
        try_push: Some(push_as_midi),
    };
    data.out_events = &events;
    // SAFETY: nice-plug's own function; `data` is the host's, with an output list that lives
    // until it returns.
    unsafe { inner(plugin, &data) }
}

/// The context of the translating output list: the host's list.
struct MidiOutput {
    host: *const clap_output_events,
}

unsafe extern "C" fn push_as_midi(
    list: *const clap_output_events,
    event: *const clap_event_header,
) -> bool {
    if list.is_null() || event.is_null() {
        return false;
    }
    // SAFETY: our own list, whose context is the `MidiOutput` on `process`'s frame.
    let host = unsafe { (*((*list).ctx as *const MidiOutput)).host };
    // SAFETY: the host's live output list.
    let Some(try_push) = (unsafe { (*host).try_push }) else {
        return false;
    };
    // SAFETY: nice-plug passes a valid event header.
    let header = unsafe { *event };
    let is_note = header.space_id == CLAP_CORE_EVENT_SPACE_ID
        && (header.type_ == CLAP_EVENT_NOTE_ON || header.type_ == CLAP_EVENT_NOTE_OFF);
    if !is_note {
        // SAFETY: the host's function with the event as nice-plug made it.
        return unsafe { try_push(host, event) };
    }
    // SAFETY: a note on/off header heads a `clap_event_note`.
    let note = unsafe { *(event as *const clap_event_note) };
    let messages = note_as_midi(header.type_ == CLAP_EVENT_NOTE_ON, &note);
    let mut pushed = true;
    for data in messages.as_slice() {
        let midi = clap_event_midi {
            header: clap_event_header {
                size: std::mem::size_of::<clap_event_midi>() as u32,
                type_: CLAP_EVENT_MIDI,
                ..header
            },
            port_index: u16::try_from(note.port_index).unwrap_or(0),
            data: *data,
        };
        // SAFETY: the host's function with an event that lives for the call.
        pushed &= unsafe { try_push(host, &midi.header) };
    }
    pushed
}

/// Up to 16 MIDI messages: one note becomes one message, a note-off for every key of a channel
/// (or of every channel) an All Notes Off per channel.
pub struct Messages {
    data: [[u8; 3]; 16],
    len: usize,
}

impl Messages {
    pub fn as_slice(&self) -> &[[u8; 3]] {
        &self.data[..self.len]
    }

    fn push(&mut self, message: [u8; 3]) {
        if self.len < self.data.len() {
            self.data[self.len] = message;
            self.len += 1;
        }
    }
}

/// A CLAP note on/off as MIDI 1.0. A note-on needs a channel and a key (a wildcard has no MIDI
/// form and is dropped); a note-off with a wildcard key releases every key of its channel (or of
/// every channel).
pub fn note_as_midi(on: bool, note: &clap_event_note) -> Messages {
    let mut messages = Messages {
        data: [[0; 3]; 16],
        len: 0,
    };
    let channel = u8::try_from(note.channel).ok().filter(|c| *c < 16);
    let key = u8::try_from(note.key).ok().filter(|k| *k < 128);
    let velocity = note.velocity as f32;
    match (on, channel, key) {
        (true, Some(channel), Some(key)) => {
            messages.push(midi_out::note_on_bytes(channel, key, velocity))
        }
        (true, _, _) => {}
        (false, Some(channel), Some(key)) => {
            messages.push(midi_out::note_off_bytes(channel, key, velocity))
        }
        (false, Some(channel), None) => messages.push(midi_out::all_notes_off_bytes(channel)),
        (false, None, _) => {
            for channel in 0..16 {
                messages.push(midi_out::all_notes_off_bytes(channel));
            }
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(channel: i16, key: i16, velocity: f64) -> clap_event_note {
        clap_event_note {
            header: clap_event_header {
                size: std::mem::size_of::<clap_event_note>() as u32,
                time: 17,
                space_id: CLAP_CORE_EVENT_SPACE_ID,
                type_: CLAP_EVENT_NOTE_ON,
                flags: 0,
            },
            note_id: -1,
            port_index: 0,
            channel,
            key,
            velocity,
        }
    }

    #[test]
    fn the_host_decides_and_midi_is_the_fallback() {
        assert_eq!(choose(None), CLAP_NOTE_DIALECT_MIDI);
        assert_eq!(choose(Some(0)), CLAP_NOTE_DIALECT_MIDI);
        assert_eq!(choose(Some(CLAP_NOTE_DIALECT_MIDI)), CLAP_NOTE_DIALECT_MIDI);
        let both = CLAP_NOTE_DIALECT_CLAP | CLAP_NOTE_DIALECT_MIDI;
        assert_eq!(choose(Some(both)), CLAP_NOTE_DIALECT_CLAP);
        assert_eq!(choose(Some(CLAP_NOTE_DIALECT_CLAP)), CLAP_NOTE_DIALECT_CLAP);
    }

    #[test]
    fn notes_become_midi_1_bytes() {
        let on = note_as_midi(true, &note(3, 60, 100.0 / 127.0));
        assert_eq!(on.as_slice(), &[[0x93, 60, 100]]);
        // A note-on never turns into a note-off through a zero velocity.
        assert_eq!(
            note_as_midi(true, &note(0, 60, 0.0)).as_slice(),
            &[[0x90, 60, 1]]
        );
        let off = note_as_midi(false, &note(15, 127, 0.0));
        assert_eq!(off.as_slice(), &[[0x8f, 127, 0]]);
        assert!(note_as_midi(true, &note(-1, 60, 1.0)).as_slice().is_empty());
        assert!(note_as_midi(true, &note(0, -1, 1.0)).as_slice().is_empty());
        assert_eq!(
            note_as_midi(false, &note(2, -1, 0.0)).as_slice(),
            &[[0xb2, 123, 0]]
        );
        assert_eq!(note_as_midi(false, &note(-1, -1, 0.0)).as_slice().len(), 16);
    }
}
