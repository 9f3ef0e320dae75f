//! The run on the host's timeline, through a real CLAP host in offline bounce with the tiny
//! fixture model: positions rounded as real hosts report them play exactly like exact ones
//! (the drone struck once, notes keep their lengths); stop releases everything and plays
//! nothing until the transport rolls again; relocating back replays the same notes; relocating
//! past the frontier generates on; a loop plays identical passes (or new ones, when asked);
//! every block's events are sorted.

mod common;

use common::bounce::{Blocks, Bounce, Rounding, Stretch, assert_paired, exact, play_session};
use common::clap_host::{Block, HostedPlugin, InEvent, OutNote, Transport};
use common::isolate::isolated;
use common::paths::fixture;
use common::state::with_field;

/// Voices on channels 1–3, the drone on 4, no ornaments (they fall between grid steps).
/// No ornaments and no humanise: every note on the grid.
const SETUP: [(&str, f64); 2] = [("Ornaments", 0.0), ("Humanise", 0.0)];
const DRONE: u8 = 3;
/// Samples per beat at 48 kHz and 120 BPM.
const BEAT: u64 = 24_000;

fn ardour(beat: f64) -> f64 {
    (beat * 1920.0).round() / 1920.0
}

fn play(beat: f64, beats: u64) -> Stretch {
    Stretch {
        beat,
        tempo: 120.0,
        samples: beats * BEAT,
        playing: true,
    }
}

/// Plays `session` with the tiny model (its map cached in a private folder).
fn session(
    stretches: &[Stretch],
    setup: &[(&str, f64)],
    blocks: Blocks,
    rounding: Rounding,
) -> Bounce {
    let mut plugin = tiny_model_plugin();
    let mut all = SETUP.to_vec();
    all.extend_from_slice(setup);
    let bounce = play_session(&mut plugin, &all, stretches, &[], blocks, None, rounding);
    assert_sorted(&bounce);
    assert_paired(&bounce.notes);
    bounce
}

/// A plugin set to the tiny fixture model, its map cached in a folder of this process.
fn tiny_model_plugin() -> HostedPlugin {
    let cache = std::env::temp_dir().join(format!("latent-choir-daw-{}", std::process::id()));
    // SAFETY: set before the plugin (and any thread reading the environment) starts.
    unsafe { std::env::set_var("XDG_CACHE_HOME", &cache) };
    let mut plugin = HostedPlugin::new();
    let model = fixture("tiny-llama");
    let state = with_field(
        &plugin.save_state(),
        "model",
        &serde_json::json!(model.to_string_lossy()),
    );
    assert!(plugin.load_state(&state), "the state with the model loads");
    plugin
}

/// Within each block, events go out in time order, a note-off before a note-on at one sample.
fn assert_sorted(bounce: &Bounce) {
    for (start, notes) in &bounce.blocks {
        let key = |n: &OutNote| match *n {
            OutNote::On { time, .. } => (time, 1),
            OutNote::Off { time, .. } => (time, 0),
        };
        for pair in notes.windows(2) {
            assert!(
                key(&pair[0]) <= key(&pair[1]),
                "block at {start}: {:?} sent before {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}

/// `(sample, channel, key)` of every note-on in `range`, times relative to its start, sorted
/// (notes struck at one sample may go out in any order).
fn ons_in(bounce: &Bounce, range: std::ops::Range<u64>, melodic: bool) -> Vec<(u64, u8, u8)> {
    let mut ons: Vec<_> = bounce
        .notes
        .iter()
        .filter_map(|(at, n)| match *n {
            OutNote::On { channel, key, .. }
                if range.contains(at) && (!melodic || channel != DRONE) =>
            {
                Some((at - range.start, channel, key))
            }
            _ => None,
        })
        .collect();
    ons.sort_unstable();
    ons
}

/// Lengths in samples of the melodic notes, note-on to note-off.
fn melodic_lengths(bounce: &Bounce) -> Vec<u64> {
    let mut open: Vec<(u8, u8, u64)> = Vec::new();
    let mut lengths = Vec::new();
    for (at, note) in &bounce.notes {
        match *note {
            OutNote::On { channel, key, .. } if channel != DRONE => open.push((channel, key, *at)),
            OutNote::Off { channel, key, .. } => {
                if let Some(i) = open.iter().position(|o| (o.0, o.1) == (channel, key)) {
                    lengths.push(at - open.remove(i).2);
                }
            }
            _ => {}
        }
    }
    lengths
}

#[test]
fn rounded_host_positions_play_like_exact_ones() {
    isolated("rounded_host_positions_play_like_exact_ones", || {
        let whole_samples: Rounding = |beat| (beat * 24_000.0).round() / 24_000.0;
        for (blocks, rounding, name) in [
            (
                Blocks::Fixed(1024),
                ardour as Rounding,
                "Ardour 1/1920 beat",
            ),
            (
                Blocks::Fixed(256),
                ardour as Rounding,
                "Ardour, 256-frame blocks",
            ),
            (Blocks::Random(5), whole_samples, "whole samples"),
        ] {
            let stretches = [play(0.0, 16)];
            // A held drone (Bass 0: Held Drone) is struck once however positions round.
            let held = session(&stretches, &[("Bass", 0.0)], blocks, rounding);
            let drone_ons = ons_in(&held, 0..u64::MAX, false)
                .iter()
                .filter(|o| o.1 == DRONE)
                .count();
            assert_eq!(drone_ons, 1, "{name}: the drone is struck once");
            let exact_run = session(&stretches, &[], blocks, exact);
            let rounded = session(&stretches, &[], blocks, rounding);
            assert_eq!(
                ons_in(&rounded, 0..u64::MAX, false),
                ons_in(&exact_run, 0..u64::MAX, false),
                "{name}: the same notes at the same samples as exact positions"
            );
            let lengths = melodic_lengths(&rounded);
            assert_eq!(
                lengths,
                melodic_lengths(&exact_run),
                "{name}: every note as long as with exact positions"
            );
            let mut sorted = lengths.clone();
            sorted.sort_unstable();
            let median = sorted[sorted.len() / 2];
            assert!(
                median >= 4096,
                "{name}: notes last longer than a few blocks (median {median} samples)"
            );
        }
    });
}

#[test]
fn stop_releases_everything_and_play_goes_on() {
    isolated("stop_releases_everything_and_play_goes_on", || {
        // 4 bars, 3 s stopped at beat 16, then on from beat 16.
        let stopped = Stretch {
            beat: 16.0,
            tempo: 120.0,
            samples: 3 * 48_000,
            playing: false,
        };
        let bounce = session(
            &[play(0.0, 16), stopped, play(16.0, 16)],
            &[],
            Blocks::Fixed(512),
            exact,
        );
        let (stop, resume) = (16 * BEAT, 16 * BEAT + 3 * 48_000);
        let mut sounding: Vec<(u8, u8)> = Vec::new();
        for (at, note) in &bounce.notes {
            match *note {
                OutNote::On { channel, key, .. } => {
                    assert!(
                        !(stop..resume).contains(at),
                        "note-on at {at} while stopped"
                    );
                    sounding.push((channel, key));
                }
                OutNote::Off { channel, key, .. } => sounding.retain(|s| *s != (channel, key)),
            }
            if *at >= stop + 512 && *at < resume {
                panic!("an event at {at}, after the stop's first block");
            }
            if *at >= stop && *at < resume {
                assert_eq!(*at, stop, "released in the stop's block, at its start");
            }
        }
        // The stopped stretch goes on where the playhead is: the same music as without it.
        let straight = session(&[play(0.0, 32)], &[], Blocks::Fixed(512), exact);
        let step = BEAT / 2;
        let after = ons_in(&bounce, resume + step..resume + 16 * BEAT, true);
        let expected = ons_in(&straight, stop + step..32 * BEAT, true);
        assert!(after.len() > 20, "it plays on after the stop");
        assert_eq!(after, expected, "the tokens go on where they stopped");
    });
}

#[test]
fn relocating_back_replays_the_same_notes() {
    isolated("relocating_back_replays_the_same_notes", || {
        // 8 bars, then the playhead goes back 4 bars and plays them again.
        let bounce = session(
            &[play(0.0, 32), play(16.0, 16)],
            &[],
            Blocks::Random(9),
            ardour,
        );
        let first = ons_in(&bounce, 16 * BEAT..32 * BEAT, true);
        let again = ons_in(&bounce, 32 * BEAT..48 * BEAT, true);
        assert!(first.len() > 20);
        // The first step after the jump strikes what the first pass may have tied over.
        let step = BEAT / 2;
        let later = |ons: &[(u64, u8, u8)]| -> Vec<(u64, u8, u8)> {
            ons.iter().copied().filter(|o| o.0 >= step).collect()
        };
        assert_eq!(
            later(&again),
            later(&first),
            "the same notes as the first time"
        );
    });
}

#[test]
fn relocating_past_the_frontier_generates_on_and_leaves_a_rest() {
    isolated(
        "relocating_past_the_frontier_generates_on_and_leaves_a_rest",
        || {
            // Bars 1–2, then bars 9–10 (never played), then back into the gap (bars 5–6).
            let bounce = session(
                &[play(0.0, 8), play(32.0, 8), play(16.0, 8)],
                &[],
                Blocks::Fixed(1024),
                exact,
            );
            let ahead = ons_in(&bounce, 8 * BEAT..16 * BEAT, true);
            let first = ons_in(&bounce, 0..8 * BEAT, true);
            assert!(ahead.len() > 10, "generation goes on past the frontier");
            assert_ne!(ahead, first, "with new tokens");
            let gap = ons_in(&bounce, 16 * BEAT..24 * BEAT, true);
            assert!(gap.is_empty(), "the skipped bars rest: {gap:?}");
        },
    );
}

#[test]
fn a_looped_region_plays_identical_passes() {
    isolated("a_looped_region_plays_identical_passes", || {
        let passes = [play(0.0, 32), play(0.0, 32), play(0.0, 32)];
        let bounce = session(&passes, &[], Blocks::Random(21), ardour);
        let pass = |i: u64| ons_in(&bounce, i * 32 * BEAT..(i + 1) * 32 * BEAT, false);
        assert!(pass(0).len() > 40);
        assert_eq!(pass(1), pass(0), "the second pass plays the first's notes");
        assert_eq!(pass(2), pass(0), "and so does the third");

        // Generate Anew: the model writes on at the loop start.
        let anew = session(&passes, &[("Loop Passes", 1.0)], Blocks::Random(21), ardour);
        let pass = |i: u64| ons_in(&anew, i * 32 * BEAT..(i + 1) * 32 * BEAT, true);
        assert!(pass(1).len() > 20);
        assert_ne!(pass(1), pass(0), "a fresh pass plays new tokens");
    });
}

#[test]
fn free_run_ignores_the_stopped_transport() {
    isolated("free_run_ignores_the_stopped_transport", || {
        let stopped = Stretch {
            beat: 0.0,
            tempo: 120.0,
            samples: 4 * 48_000,
            playing: false,
        };
        let follow = session(&[stopped], &[], Blocks::Fixed(512), exact);
        assert!(
            follow.notes.is_empty(),
            "Follow Transport: nothing plays while stopped"
        );
        let free = session(&[stopped], &[("Timing", 1.0)], Blocks::Fixed(512), exact);
        assert!(
            ons_in(&free, 0..u64::MAX, true).len() >= 8,
            "Free Run plays at Tokens per Second"
        );
    });
}

#[test]
fn midi_thru_and_generated_notes_go_out_in_time_order() {
    isolated("midi_thru_and_generated_notes_go_out_in_time_order", || {
        let mut plugin = tiny_model_plugin();
        let generate = plugin.param_id("Generate");
        plugin.set_offline(true);
        plugin.activate(48_000.0, 1024);
        let silence = vec![0.0_f32; 1000];
        let (mut generated, mut passed) = (0, 0);
        for block in 0..200u64 {
            // Incoming notes late in every block; the grid's notes fall on its first samples.
            let mut events = vec![
                InEvent::NoteOn {
                    time: 700,
                    channel: 9,
                    key: 40,
                    velocity: 0.8,
                },
                InEvent::NoteOff {
                    time: 900,
                    channel: 9,
                    key: 40,
                },
            ];
            if block == 0 {
                events.insert(
                    0,
                    InEvent::Param {
                        time: 0,
                        id: generate,
                        value: 1.0,
                    },
                );
            }
            let mut input = Block::silent(&silence, &events);
            input.transport = Some(Transport {
                playing: true,
                tempo: 120.0,
                beats: block as f64 * 1000.0 / BEAT as f64,
                seconds: block as f64 * 1000.0 / 48_000.0,
            });
            let out = plugin.process(&input);
            let times: Vec<u32> = out
                .notes
                .iter()
                .map(|n| match *n {
                    OutNote::On { time, .. } | OutNote::Off { time, .. } => time,
                })
                .collect();
            assert!(
                times.is_sorted(),
                "block {block}: events out of order {:?}",
                out.notes
            );
            for note in &out.notes {
                match *note {
                    OutNote::On { channel: 9, .. } | OutNote::Off { channel: 9, .. } => passed += 1,
                    _ => generated += 1,
                }
            }
        }
        plugin.deactivate();
        assert_eq!(passed, 400, "every incoming event passes through");
        assert!(
            generated > 40,
            "the model played meanwhile ({generated} events)"
        );
    });
}
