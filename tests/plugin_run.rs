//! The plugin keeps its run: the tokens it played are saved with the project, a reopened
//! project plays them again without the model (the same notes and the same audio, bit for bit),
//! and what it exports is what `latent-choir replay` makes of the exported run file.

mod common;

use std::path::Path;

use common::bounce::{
    Blocks, Bounce, MAX_BLOCK, RATE, Segment, Stretch, assert_paired, bounce_on, exact,
    play_session,
};
use common::clap_host::{HostedPlugin, OutNote};
use common::cli::{command, succeed};
use common::isolate::isolated;
use common::midi::note_on_steps;
use common::paths::fixture;
use common::state::{field, with_field};
use common::temp::TempDir;
use latent_choir::project::export::{ExportKind, ExportRequest, export};
use latent_choir::project::saved_run::SavedRun;
use serde_json::json;

/// 16 grid steps at 120 BPM, 2 tokens per beat.
const TOKENS: u64 = 16;
const STEP: u64 = 12_000;
const PROMPT: &str = "The forest was silent.";

fn piece() -> [Segment; 1] {
    [Segment {
        beat: 0.0,
        tempo: 120.0,
        samples: TOKENS * STEP,
    }]
}

/// No ornaments: every note sits on the grid, where MIDI ticks and samples agree exactly.
/// No ornaments and no humanise: every note on the grid.
const SETUP: [(&str, f64); 2] = [("Ornaments", 0.0), ("Humanise", 0.0)];

/// A plugin with `state`'s fields changed to `fields`.
fn plugin_with(state: Option<&[u8]>, fields: &[(&str, serde_json::Value)]) -> HostedPlugin {
    let mut plugin = HostedPlugin::new();
    let mut state = state.map_or_else(|| plugin.save_state(), <[u8]>::to_vec);
    for (key, value) in fields {
        state = with_field(&state, key, value);
    }
    assert!(plugin.load_state(&state), "the state with {fields:?} loads");
    plugin
}

fn bounce(plugin: &mut HostedPlugin) -> Bounce {
    bounce_on(plugin, &SETUP, &piece(), &[], Blocks::Random(7), None)
}

fn note_ons(bounce: &Bounce) -> Vec<(u64, u8, u8)> {
    bounce
        .notes
        .iter()
        .filter_map(|(at, note)| match *note {
            OutNote::On { channel, key, .. } => Some((*at, channel, key)),
            OutNote::Off { .. } => None,
        })
        .collect()
}

/// A copy of the tiny llama that the test can take away.
fn model_copy(dir: &TempDir) -> std::path::PathBuf {
    let copy = dir.join("model");
    std::fs::create_dir_all(&copy).expect("create the model folder");
    for entry in std::fs::read_dir(fixture("tiny-llama")).expect("the fixture") {
        let entry = entry.expect("a fixture file");
        std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copy the fixture");
    }
    copy
}

/// The bounce that records a run, with the model at `model`; returns it and the saved state.
fn record(model: &Path) -> (Bounce, Vec<u8>) {
    let mut plugin = plugin_with(
        None,
        &[
            ("model", json!(model.to_string_lossy())),
            ("prompt", json!(PROMPT)),
            ("seed", json!(5)),
        ],
    );
    let bounce = bounce(&mut plugin);
    assert!(!note_ons(&bounce).is_empty(), "the model played");
    (bounce, plugin.save_state())
}

fn set_cache(dir: &TempDir) {
    // SAFETY: set before the plugin (and any thread reading the environment) starts.
    unsafe { std::env::set_var("XDG_CACHE_HOME", dir.0.join("cache")) };
}

#[test]
fn a_reopened_project_replays_its_run_without_the_model() {
    isolated(
        "a_reopened_project_replays_its_run_without_the_model",
        || {
            let dir = TempDir::new("plugin-run-replay");
            set_cache(&dir);
            let model = model_copy(&dir);
            let (recorded, state) = record(&model);
            let saved = field(&state, "run").expect("the state keeps the run");
            assert!(saved.as_str().is_some_and(|s| !s.is_empty()));

            // Reopen with the model gone: only the saved tokens can make these notes.
            std::fs::remove_dir_all(&model).expect("remove the model");
            let mut reopened = plugin_with(Some(&state), &[]);
            let replayed = bounce(&mut reopened);
            assert_eq!(note_ons(&replayed), note_ons(&recorded));
            assert_eq!(replayed.notes, recorded.notes, "every note event, in order");
            for (a, b) in replayed.audio.iter().zip(&recorded.audio) {
                assert_eq!(a.len(), b.len());
                assert!(
                    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "the audio is bit for bit the recording's"
                );
            }
            // Saved again while replaying, the project keeps the same run.
            assert_eq!(field(&reopened.save_state(), "run"), Some(saved.clone()));

            // A state loaded into a plugin that has been running (a preset, a host's undo)
            // reaches the audio thread through its handoff ring and replays the same way.
            let mut running = HostedPlugin::new();
            running.activate(RATE, MAX_BLOCK as u32);
            assert!(running.load_state(&state), "the state loads while active");
            running.deactivate();
            assert_eq!(bounce(&mut running).notes, recorded.notes);

            // New text (the saved run cleared, as the editor's Generate does), with a model: the
            // model plays again, and the same prompt and seed give the same music.
            let mut fresh = plugin_with(
                Some(&state),
                &[
                    ("run", json!("")),
                    ("model", json!(fixture("tiny-llama").to_string_lossy())),
                ],
            );
            let generated = bounce(&mut fresh);
            assert_eq!(note_ons(&generated), note_ons(&recorded));
            let again = field(&fresh.save_state(), "run").expect("a new run is kept");
            assert!(again.as_str().is_some_and(|s| !s.is_empty()));
        },
    );
}

#[test]
fn a_reopened_run_plays_where_it_was_played_rests_after_its_end_and_generate_writes_on() {
    isolated(
        "a_reopened_run_plays_where_it_was_played_rests_after_its_end_and_generate_writes_on",
        || {
            let dir = TempDir::new("plugin-run-timeline");
            set_cache(&dir);
            let model = fixture("tiny-llama");
            let mut plugin = plugin_with(
                None,
                &[
                    ("model", json!(model.to_string_lossy())),
                    ("prompt", json!(PROMPT)),
                    ("seed", json!(5)),
                ],
            );
            // Recorded from beat 8: 16 steps at 2 per beat.
            let from_beat_8 = [Segment {
                beat: 8.0,
                ..piece()[0]
            }];
            let recorded = bounce_on(
                &mut plugin,
                &SETUP,
                &from_beat_8,
                &[],
                Blocks::Fixed(512),
                None,
            );
            let state = plugin.save_state();

            // Reopened, played from beat 0: silence until beat 8, the run where it was, silence
            // after its end; then Generate off and on at beat 20 asks the model for new text.
            let beat = 24_000u64;
            let mut reopened = plugin_with(Some(&state), &[]);
            let session = [Stretch {
                beat: 0.0,
                tempo: 120.0,
                samples: 28 * beat,
                playing: true,
            }];
            let toggles = [
                (20 * beat, "Generate", 0.0),
                (20 * beat + 512, "Generate", 1.0),
            ];
            let reopened = play_session(
                &mut reopened,
                &SETUP,
                &session,
                &toggles,
                Blocks::Fixed(512),
                None,
                exact,
            );
            assert_paired(&reopened.notes);
            let shifted: Vec<_> = note_ons(&recorded)
                .into_iter()
                .map(|(at, channel, key)| (at + 8 * beat, channel, key))
                .collect();
            let in_range = |from: u64, to: u64| -> Vec<(u64, u8, u8)> {
                note_ons(&reopened)
                    .into_iter()
                    .filter(|(at, _, _)| (from..to).contains(at))
                    .collect()
            };
            assert!(in_range(0, 8 * beat).is_empty(), "nothing before the run");
            assert_eq!(
                in_range(8 * beat, 16 * beat),
                shifted,
                "the run where it was played"
            );
            assert!(
                in_range(16 * beat, 20 * beat).is_empty(),
                "a rest after its end"
            );
            let sounding_at_end = reopened
                .notes
                .iter()
                .filter(|(at, _)| *at < 17 * beat)
                .fold(0i32, |n, (_, note)| match note {
                    OutNote::On { .. } => n + 1,
                    OutNote::Off { .. } => n - 1,
                });
            assert_eq!(sounding_at_end, 0, "every note released at the run's end");
            assert!(
                in_range(20 * beat, 28 * beat).len() > 10,
                "Generate off and on: the model writes on"
            );
        },
    );
}

#[test]
fn exports_are_what_the_command_line_replay_makes_of_the_run() {
    isolated(
        "exports_are_what_the_command_line_replay_makes_of_the_run",
        || {
            let dir = TempDir::new("plugin-run-export");
            set_cache(&dir);
            let (recorded, state) = record(&fixture("tiny-llama"));
            let text = field(&state, "run").expect("the state keeps the run");
            let saved = SavedRun::default();
            saved.restore(text.as_str().expect("base64 text"));

            // The editor's export task on the run the plugin saved.
            let base = dir.join("piece");
            let written = |kind| {
                export(
                    &saved,
                    &ExportRequest {
                        kind,
                        path: base.clone(),
                    },
                )
                .expect("export")
            };
            let run_file = written(ExportKind::Run);
            let midi_file = written(ExportKind::Midi);
            assert_eq!(run_file, dir.join("piece.lcrun"));
            assert_eq!(midi_file, dir.join("piece.mid"));

            succeed(
                command()
                    .arg("replay")
                    .arg(&run_file)
                    .arg("--out")
                    .arg(dir.join("replayed.wav"))
                    .arg("--midi")
                    .arg(dir.join("replayed.mid")),
            );
            let exported = std::fs::read(&midi_file).expect("the exported MIDI");
            let replayed = std::fs::read(dir.join("replayed.mid")).expect("the replay's MIDI");
            assert_eq!(exported, replayed, "byte for byte");

            // The MIDI's note-ons are the bounce's: (grid step, channel, key).
            let in_file = note_on_steps(&exported, 2);
            let mut bounced: Vec<(u64, u8, u8)> = note_ons(&recorded)
                .into_iter()
                .map(|(at, channel, key)| {
                    assert_eq!(at % STEP, 0, "note-on off the grid at {at}");
                    (at / STEP, channel, key)
                })
                .collect();
            bounced.sort();
            assert_eq!(in_file, bounced);

            // An unwritable place: a clear message and nothing left behind.
            let blocked = ExportRequest {
                kind: ExportKind::Midi,
                path: dir.join("replayed.wav").join("piece"),
            };
            let error = export(&saved, &blocked).expect_err("a file is no folder");
            assert!(error.to_string().contains("cannot write"), "{error}");
            let mut files = dir.files();
            files.sort();
            assert_eq!(
                files,
                ["piece.lcrun", "piece.mid", "replayed.mid", "replayed.wav"]
            );
        },
    );
}

#[test]
fn a_corrupt_saved_run_is_left_out_and_the_model_plays() {
    isolated(
        "a_corrupt_saved_run_is_left_out_and_the_model_plays",
        || {
            let dir = TempDir::new("plugin-run-corrupt");
            set_cache(&dir);
            for corrupt in [
                json!("not a run at all"),
                json!(base64::encode(b"PK\x03\x04 cut")),
            ] {
                let mut plugin = plugin_with(
                    None,
                    &[
                        ("model", json!(fixture("tiny-llama").to_string_lossy())),
                        ("prompt", json!(PROMPT)),
                        ("run", corrupt),
                    ],
                );
                let played = bounce(&mut plugin);
                assert!(!note_ons(&played).is_empty(), "the model plays");
                let kept = field(&plugin.save_state(), "run").expect("the run field");
                let saved = SavedRun::default();
                saved.restore(kept.as_str().expect("text"));
                assert!(saved.message().is_empty(), "{}", saved.message());
                assert!(
                    saved
                        .take_pending()
                        .is_some_and(|clip| !clip.frames().is_empty())
                );
            }
        },
    );
}
