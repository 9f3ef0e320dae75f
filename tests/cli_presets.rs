//! `latent-choir render --preset` as a user runs it, on the tiny llama fixture: every factory
//! preset renders, twice alike to the byte, with the parameters the preset sets; the run file
//! traces every note to its token and layer; an unknown preset is refused by name.

mod common;

use std::path::Path;
use std::process::Command;

use common::cli;
use common::paths::fixture;
use common::temp::TempDir;
use latent_choir::params::text as param_text;
use latent_choir::params::{LatentChoirParams, presets};
use ndarray::{Array1, Array2};
use ndarray_npy::NpzReader;

fn with_cache(dir: &TempDir, args: &[&str]) -> Command {
    let mut command = cli::command();
    command.args(args).env("XDG_CACHE_HOME", dir.join("cache"));
    command
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// Renders `name.{wav,mid,lcrun}` with `extra` arguments; returns the three files' bytes.
fn render(dir: &TempDir, name: &str, extra: &[&str]) -> [Vec<u8>; 3] {
    let model = fixture("tiny-llama");
    let wav = dir.join(&format!("{name}.wav"));
    let mut args = vec![
        "render",
        "--model",
        s(&model),
        "--prompt",
        "The forest was silent. The trees, tall and dark, waited.",
        "--bpm",
        "160",
        "--tokens",
        "32",
        "--seed",
        "3",
        "--out",
        s(&wav),
    ];
    args.extend_from_slice(extra);
    cli::succeed(&mut with_cache(dir, &args));
    ["wav", "mid", "lcrun"].map(|ext| {
        std::fs::read(dir.join(&format!("{name}.{ext}"))).expect("an output of the render")
    })
}

fn manifest(run: &Path) -> serde_json::Value {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(run).expect("run file")).expect("zip");
    let entry = zip.by_name("manifest.json").expect("manifest");
    serde_json::from_reader(entry).expect("manifest JSON")
}

#[test]
fn every_factory_preset_renders_deterministically_with_its_parameters() {
    let dir = TempDir::new("cli-presets");
    for preset in presets::FACTORY {
        let first = render(&dir, preset.key, &["--preset", preset.name]);
        let again = render(&dir, "again", &["--preset", preset.key]);
        assert!(first[0] == again[0], "{}: the WAV is the same", preset.name);
        assert!(
            first[1] == again[1],
            "{}: the MIDI is the same",
            preset.name
        );

        // The run file records the preset's parameters, every one of them.
        let expected = LatentChoirParams::default();
        preset.apply(&expected).expect("the preset applies");
        let recorded = manifest(&dir.join(&format!("{}.lcrun", preset.key)));
        for (id, value) in param_text::values(&expected) {
            if id == "generate" {
                continue;
            }
            let plain = recorded["params"][&id]["plain"].as_f64().map(|p| p as f32);
            assert_eq!(plain, Some(value.plain), "{}: parameter {id}", preset.name);
        }
    }
}

#[test]
fn the_run_file_traces_every_note_to_its_token_and_layer() {
    let dir = TempDir::new("cli-traces");
    let [_, midi, _] = render(&dir, "traced", &["--param", "layer_2=1"]);
    let run = dir.join("traced.lcrun");
    let mut npz = NpzReader::new(std::fs::File::open(&run).expect("run file")).expect("npz");
    let notes: Array2<i64> = npz.by_name("notes.npy").expect("notes.npy");
    let index: Array1<i64> = npz.by_name("index.npy").expect("index.npy");
    assert_eq!(notes.ncols(), 6);
    let smf = midly::Smf::parse(&midi).expect("MIDI");
    let note_ons = smf
        .tracks
        .iter()
        .flatten()
        .filter(|e| {
            matches!(
                e.kind,
                midly::TrackEventKind::Midi {
                    message: midly::MidiMessage::NoteOn { vel, .. },
                    ..
                } if vel.as_int() > 0
            )
        })
        .count();
    assert_eq!(
        notes.nrows(),
        note_ons,
        "one row per note-on of the MIDI file"
    );
    // Tiny llama: two blocks, three hidden states; voices default to states 0, 15, 30.
    let layers = [Some(0), Some(1), Some(2)];
    let mut previous = 0;
    for row in notes.rows() {
        let (sample, slot, key, velocity, token, layer) =
            (row[0], row[1], row[2], row[3], row[4], row[5]);
        assert!(sample >= previous, "in time order");
        previous = sample;
        assert!((1..=5).contains(&slot) && (0..128).contains(&key) && velocity > 0);
        assert!(
            (0..index.len() as i64).contains(&token),
            "note at {sample} traced to token {token}"
        );
        let expected = match slot {
            1..=3 => layers[slot as usize - 1],
            // The moving bass follows the deepest state's chords.
            _ => Some(2),
        };
        assert_eq!(Some(layer), expected, "slot {slot}'s layer");
    }
}

#[test]
fn an_unknown_preset_is_refused_by_name_and_list_names_them() {
    let dir = TempDir::new("cli-preset-errors");
    let model = fixture("tiny-llama");
    let wav = dir.join("x.wav");
    let message = cli::fail(&mut with_cache(
        &dir,
        &[
            "render",
            "--model",
            s(&model),
            "--prompt",
            "Hello",
            "--preset",
            "Polka",
            "--out",
            s(&wav),
        ],
    ));
    assert!(
        message.contains("Polka") && message.contains("Dark Drone"),
        "{message}"
    );
    assert!(!wav.exists(), "nothing written");
    let listed = cli::succeed(&mut with_cache(
        &dir,
        &["render", "--prompt", "x", "--preset", "list"],
    ));
    let listed = String::from_utf8_lossy(&listed.stdout);
    for preset in presets::FACTORY {
        assert!(listed.contains(preset.name), "{listed}");
    }
}
