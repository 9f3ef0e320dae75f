//! Source "Model Weights" through the CLAP host harness: the built plugin plays the loaded
//! model's weight piece (here the tiny llama's acid piece) on the host's grid, the same notes
//! `latent-choir weights` writes, drums on channel 10, every note paired, the same whatever the
//! block sizes, and a loop back plays the same bars again. Offline bounces (the plugin waits for
//! the piece, bounded) in a child process, so an allocation on the audio thread is caught.

mod common;

use std::collections::BTreeSet;

use common::bounce::{Blocks, Segment, assert_paired, bounce_with};
use common::clap_host::OutNote;
use common::isolate::isolated;
use common::paths::fixture;
use common::temp::TempDir;
use serde_json::json;

/// 120 BPM at 48 kHz: a beat is 24 000 samples, an acid step (a sixteenth) 6 000.
const BEAT: u64 = 24_000;
const BEATS: u64 = 16;

fn on_notes(notes: &[(u64, OutNote)]) -> Vec<(u64, u8, u8)> {
    notes
        .iter()
        .filter_map(|(at, n)| match *n {
            OutNote::On { channel, key, .. } => Some((*at, channel, key)),
            OutNote::Off { .. } => None,
        })
        .collect()
}

/// The acid piece's note-ons over the first `BEATS` beats as `weights --midi` writes them:
/// (sample at 120 BPM, key, drum).
fn cli_notes(dir: &TempDir) -> BTreeSet<(u64, u8, bool)> {
    let mid = dir.join("acid.mid");
    let wav = dir.join("acid.wav");
    let model = fixture("tiny-llama");
    common::cli::succeed(
        common::cli::command()
            .args(["weights", "--style", "acid", "--model"])
            .arg(&model)
            .arg("--out")
            .arg(&wav)
            .arg("--midi")
            .arg(&mid),
    );
    let bytes = std::fs::read(&mid).unwrap();
    let smf = midly::Smf::parse(&bytes).unwrap();
    let ppq = match smf.header.timing {
        midly::Timing::Metrical(t) => u64::from(t.as_int()),
        other => panic!("{other:?}"),
    };
    let mut out = BTreeSet::new();
    for track in &smf.tracks {
        let mut tick = 0u64;
        for event in track {
            tick += u64::from(event.delta.as_int());
            if let midly::TrackEventKind::Midi {
                channel,
                message: midly::MidiMessage::NoteOn { key, vel },
            } = event.kind
                && vel.as_int() > 0
                && tick < BEATS * ppq
            {
                out.insert((tick * BEAT / ppq, key.as_int(), channel.as_int() == 9));
            }
        }
    }
    out
}

#[test]
fn model_weights_plays_the_piece_on_the_grid_in_any_blocks_and_loops() {
    isolated(
        "model_weights_plays_the_piece_on_the_grid_in_any_blocks_and_loops",
        || {
            let dir = TempDir::new("weights-plugin");
            // SAFETY: set before the plugin (and any thread reading the environment) starts; the
            // CLI child inherits it, so both read the same cached analysis.
            unsafe { std::env::set_var("XDG_CACHE_HOME", dir.0.join("cache")) };
            let fields = [("model", json!(fixture("tiny-llama").to_string_lossy()))];
            // Source 1 = Model Weights, Weight Style 2 = Acid.
            let setup = [("Source", 1.0), ("Weight Style", 2.0)];
            let piece = [Segment {
                beat: 0.0,
                tempo: 120.0,
                samples: BEATS * BEAT,
            }];
            let random = bounce_with(&fields, &setup, &piece, &[], Blocks::Random(11));
            let fixed = bounce_with(&fields, &setup, &piece, &[], Blocks::Fixed(512));

            let ons = on_notes(&random.notes);
            assert!(ons.len() > 40, "{} note-ons", ons.len());
            assert_paired(&random.notes);
            for &(at, _, _) in &ons {
                assert_eq!(at % (BEAT / 4), 0, "note-on off the sixteenth grid at {at}");
            }
            assert!(ons.iter().any(|n| n.1 == 9), "drums on channel 10");
            assert!(ons.iter().any(|n| n.1 != 9), "and the bass");
            let absolute = |notes: &[(u64, OutNote)]| -> Vec<(u64, bool, u8, u8)> {
                notes
                    .iter()
                    .map(|(at, n)| match *n {
                        OutNote::On { channel, key, .. } => (*at, true, channel, key),
                        OutNote::Off { channel, key, .. } => (*at, false, channel, key),
                    })
                    .collect()
            };
            assert_eq!(
                absolute(&fixed.notes),
                absolute(&random.notes),
                "the same whatever the block sizes"
            );
            assert!(random.audio.iter().flatten().all(|v| v.is_finite()));
            let peak = random.audio[0].iter().fold(0.0f32, |p, v| p.max(v.abs()));
            assert!(peak > 0.01, "it sounds: peak {peak}");

            // The piece the command line writes, note for note.
            let played: BTreeSet<(u64, u8, bool)> = ons
                .iter()
                .filter(|n| n.0 < BEATS * BEAT)
                .map(|&(at, channel, key)| (at, key, channel == 9))
                .collect();
            assert_eq!(played, cli_notes(&dir));

            // A loop: beats 0–8, then back to beat 4 for four beats, plays beats 4–8 again.
            let looped = [
                Segment {
                    beat: 0.0,
                    tempo: 120.0,
                    samples: 8 * BEAT,
                },
                Segment {
                    beat: 4.0,
                    tempo: 120.0,
                    samples: 4 * BEAT,
                },
            ];
            let bounce = bounce_with(&fields, &setup, &looped, &[], Blocks::Fixed(480));
            assert_paired(&bounce.notes);
            let all = on_notes(&bounce.notes);
            let first: Vec<(u64, u8, u8)> = all
                .iter()
                .filter(|n| (4 * BEAT..8 * BEAT).contains(&n.0))
                .map(|&(at, c, k)| (at - 4 * BEAT, c, k))
                .collect();
            let again: Vec<(u64, u8, u8)> = all
                .iter()
                .filter(|n| n.0 >= 8 * BEAT)
                .map(|&(at, c, k)| (at - 8 * BEAT, c, k))
                .collect();
            assert!(!again.is_empty());
            // After the jump the notes sounding at beat 4 are struck again at its first sample;
            // from there on the pass repeats exactly.
            let strip = |v: &[(u64, u8, u8)]| -> Vec<(u64, u8, u8)> {
                v.iter().copied().filter(|n| n.0 > 0).collect()
            };
            assert_eq!(strip(&again), strip(&first));
        },
    );
}
