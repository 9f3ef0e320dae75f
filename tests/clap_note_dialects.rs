//! The note output in the dialect the host takes (`clap_export::notes`): a host that declares
//! the CLAP dialect gets CLAP note events, one that declares only MIDI, or has no
//! `clap.note-ports` of its own (Carla), gets MIDI 1.0 bytes; the notes themselves (sample,
//! channel, key, pairing, the grid) are the same in every case, and deactivating mid-note
//! releases every note in MIDI too. Offline bounces with the tiny fixture model.

mod common;

use clack_extensions::note_ports::{NoteDialect, NoteDialects};
use common::bounce::{Bounce, Stretch, assert_paired, exact, note_time, play_session};
use common::clap_host::{
    Block, CLAP_AND_MIDI, HostedPlugin, InEvent, MIDI_ONLY, NO_NOTE_PORTS_EXTENSION, OutNote,
    Transport,
};
use common::isolate::isolated;
use common::paths::fixture;
use common::state::with_field;

/// Samples per beat at 48 kHz and 120 BPM; the grid is two tokens per beat.
const BEAT: u64 = 24_000;
const STEP: u64 = BEAT / 2;
/// No ornaments (they fall between grid steps) and no humanise: every note-on on the grid.
const SETUP: [(&str, f64); 2] = [("Ornaments", 0.0), ("Humanise", 0.0)];

/// A plugin in a host declaring `dialects`, set to the tiny fixture model (its map cached in a
/// folder of this process).
fn tiny_model_plugin(dialects: Option<NoteDialects>) -> HostedPlugin {
    let cache = std::env::temp_dir().join(format!("latent-choir-dialect-{}", std::process::id()));
    // SAFETY: set before the plugin (and any thread reading the environment) starts.
    unsafe { std::env::set_var("XDG_CACHE_HOME", &cache) };
    let mut plugin = HostedPlugin::with_note_dialects(dialects);
    let model = fixture("tiny-llama");
    let state = with_field(
        &plugin.save_state(),
        "model",
        &serde_json::json!(model.to_string_lossy()),
    );
    assert!(plugin.load_state(&state), "the state with the model loads");
    plugin
}

/// 8 beats played, a second stopped, then Generate off.
fn session(dialects: Option<NoteDialects>) -> (Bounce, (NoteDialects, Option<NoteDialect>)) {
    let mut plugin = tiny_model_plugin(dialects);
    let port = plugin.note_port_dialects(false);
    let stretches = [
        Stretch {
            beat: 0.0,
            tempo: 120.0,
            samples: 8 * BEAT,
            playing: true,
        },
        Stretch {
            beat: 8.0,
            tempo: 120.0,
            samples: 48_000,
            playing: false,
        },
    ];
    let bounce = play_session(
        &mut plugin,
        &SETUP,
        &stretches,
        &[],
        common::bounce::Blocks::Fixed(512),
        None,
        exact,
    );
    (bounce, port)
}

#[test]
fn the_host_chooses_the_dialect_and_the_notes_stay_the_same() {
    isolated(
        "the_host_chooses_the_dialect_and_the_notes_stay_the_same",
        || {
            let both = NoteDialects::CLAP | NoteDialects::MIDI;
            let (clap, clap_port) = session(CLAP_AND_MIDI);
            assert_eq!(clap_port, (both, Some(NoteDialect::Clap)));
            assert!(clap.dialects.clap > 20, "{:?}", clap.dialects);
            assert_eq!(clap.dialects.midi, 0, "a CLAP host gets no MIDI notes");

            for (dialects, name) in [
                (MIDI_ONLY, "a host that takes only MIDI"),
                (NO_NOTE_PORTS_EXTENSION, "a host without clap.note-ports"),
            ] {
                let (midi, port) = session(dialects);
                assert_eq!(port, (both, Some(NoteDialect::Midi)), "{name}");
                assert_eq!(midi.dialects.clap, 0, "{name}: no CLAP note events");
                assert_eq!(
                    midi.dialects.midi, clap.dialects.clap,
                    "{name}: one MIDI message per note event"
                );
                assert_eq!(
                    midi.notes, clap.notes,
                    "{name}: the same notes at the same samples"
                );
                assert_paired(&midi.notes);
                for (at, note) in &midi.notes {
                    if let OutNote::On { channel, .. } = note {
                        assert_eq!(at % STEP, 0, "{name}: a note-on off the grid at {at}");
                        assert!(*channel < 4, "{name}: channel {channel}");
                    }
                    // The stop releases everything in its first block.
                    assert!(
                        *at <= 8 * BEAT || matches!(note, OutNote::Off { .. }),
                        "{name}: {note:?} at {at} after the stop"
                    );
                }
            }
            assert_paired(&clap.notes);
        },
    );
}

/// Blocks of 512 at 120 BPM, what they sent collected at absolute samples.
struct Run {
    notes: Vec<(u64, OutNote)>,
    midi: usize,
    at: u64,
}

impl Run {
    fn block(&mut self, plugin: &mut HostedPlugin, playing: bool, events: &[InEvent]) {
        let silence = [0.0_f32; 512];
        let mut block = Block::silent(&silence, events);
        block.transport = Some(Transport {
            playing,
            tempo: 120.0,
            beats: self.at as f64 / BEAT as f64,
            seconds: self.at as f64 / 48_000.0,
        });
        let out = plugin.process(&block);
        assert_eq!(out.dialects.clap, 0, "no CLAP note events");
        self.midi += out.dialects.midi;
        let at = self.at;
        self.notes
            .extend(out.notes.iter().map(|n| (at + note_time(n), *n)));
        self.at += 512;
    }
}

#[test]
fn deactivating_mid_note_releases_every_note_as_midi() {
    isolated("deactivating_mid_note_releases_every_note_as_midi", || {
        let mut plugin = tiny_model_plugin(MIDI_ONLY);
        let generate = plugin.param_id("Generate");
        plugin.set_offline(true);
        plugin.activate(48_000.0, 512);
        let mut run = Run {
            notes: Vec::new(),
            midi: 0,
            at: 0,
        };
        let start = [InEvent::Param {
            time: 0,
            id: generate,
            value: 1.0,
        }];
        // Four beats and a bit: notes are sounding.
        run.block(&mut plugin, true, &start);
        while run.at < 4 * BEAT + 4096 {
            run.block(&mut plugin, true, &[]);
        }
        let ons = (run.notes.iter())
            .filter(|(_, n)| matches!(n, OutNote::On { .. }))
            .count();
        let offs = run.notes.len() - ons;
        assert!(
            ons > offs,
            "notes are sounding at the deactivation ({ons} on, {offs} off)"
        );

        // Switched off mid-note and on again: the first block releases them.
        plugin.deactivate();
        plugin.activate(48_000.0, 512);
        let released_at = run.at;
        run.block(&mut plugin, false, &[]);
        assert!(run.midi > 0);
        assert_paired(&run.notes);
        for (when, note) in &run.notes {
            if *when >= released_at {
                assert!(
                    matches!(note, OutNote::Off { .. }) && *when == released_at,
                    "{note:?} at {when}: only releases, at the block's start"
                );
            }
        }
    });
}

/// A project reloaded while the plugin plays (state load while active, between two blocks, as
/// a host does on undo) leaves it working: every note paired, in MIDI, and the run it saved
/// plays again from the start when the transport goes back.
#[test]
fn state_load_while_playing_keeps_the_notes_paired() {
    isolated("state_load_while_playing_keeps_the_notes_paired", || {
        let mut plugin = tiny_model_plugin(NO_NOTE_PORTS_EXTENSION);
        let generate = plugin.param_id("Generate");
        plugin.set_offline(true);
        plugin.activate(48_000.0, 512);
        let mut run = Run {
            notes: Vec::new(),
            midi: 0,
            at: 0,
        };
        let start = [InEvent::Param {
            time: 0,
            id: generate,
            value: 1.0,
        }];
        run.block(&mut plugin, true, &start);
        while run.at < 4 * BEAT {
            run.block(&mut plugin, true, &[]);
        }
        let ons = |notes: &[(u64, OutNote)]| -> Vec<(u64, OutNote)> {
            notes
                .iter()
                .filter(|(at, n)| matches!(n, OutNote::On { .. }) && *at < 2 * BEAT)
                .copied()
                .collect()
        };
        let first = ons(&run.notes);
        assert!(first.len() > 4, "it plays before the reload");
        let state = plugin.save_state();
        assert!(plugin.load_state(&state), "the state loads while active");
        // The transport goes back to the start.
        let mut again = Run {
            notes: Vec::new(),
            midi: 0,
            at: 0,
        };
        while again.at < 3 * BEAT {
            again.block(&mut plugin, true, &[]);
        }
        let stop = [InEvent::Param {
            time: 0,
            id: generate,
            value: 0.0,
        }];
        again.block(&mut plugin, false, &stop);
        assert_eq!(ons(&again.notes), first, "the saved run plays again");
        let mut all = run.notes.clone();
        all.extend(again.notes.iter().map(|(at, n)| (at + 100 * BEAT, *n)));
        assert_paired(&all);
    });
}
