//! `latent-choir abliterate` and `delta` as a user runs them, on the tiny llama fixture with its
//! own `XDG_CACHE_HOME` (the refusal direction is fitted there in a moment): the copy without
//! the direction has no projection on it before the final norm, delta's JSON shows that per
//! state, and the piece, MIDI file and heat map are well formed and the same every time.

mod common;

use std::path::Path;
use std::process::Command;

use common::cli;
use common::paths::fixture;
use common::temp::TempDir;
use latent_choir::io::audio_file;
use latent_choir::io::png_image::GRID_KEY;
use midly::{MidiMessage, Smf, TrackEventKind};

fn with_cache(dir: &TempDir, args: &[&str]) -> Command {
    let mut command = cli::command();
    command.args(args).env("XDG_CACHE_HOME", dir.join("cache"));
    command
}

fn succeed(dir: &TempDir, args: &[&str]) -> String {
    String::from_utf8_lossy(&cli::succeed(&mut with_cache(dir, args)).stdout).into_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const TOKENS: usize = 8;

/// `delta` of the tiny llama against `b` into `name.{wav,mid,png,json}`.
fn delta(dir: &TempDir, b: &Path, name: &str) -> String {
    let model = fixture("tiny-llama");
    let [wav, mid, png, json] =
        ["wav", "mid", "png", "json"].map(|e| dir.join(&format!("{name}.{e}")));
    let tokens = TOKENS.to_string();
    succeed(
        dir,
        &[
            "delta",
            "--model",
            s(&model),
            "--model-b",
            s(b),
            "--prompt",
            "The forest was silent.",
            "--tokens",
            &tokens,
            "--out",
            s(&wav),
            "--midi",
            s(&mid),
            "--plot",
            s(&png),
            "--json",
            s(&json),
        ],
    )
}

#[test]
fn delta_hears_where_the_abliterated_copy_lost_the_direction() {
    let dir = TempDir::new("cli-delta");
    let copy = dir.join("abliterated");
    let said = succeed(
        &dir,
        &[
            "abliterate",
            "--model",
            s(&fixture("tiny-llama")),
            "--direction",
            "refusal",
            "--out",
            s(&copy),
        ],
    );
    assert!(
        said.contains("changed") && said.contains("tensors"),
        "{said}"
    );
    assert!(said.contains("untied"), "{said}");
    assert!(copy.join("model.safetensors").is_file());

    delta(&dir, &copy, "one");
    let json: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("one.json"))).expect("delta's JSON parses");
    assert_eq!(json["direction"], "refusal");
    let states = json["states"].as_array().expect("states");
    // Two blocks: the embedding output, one block output, the final norm's output.
    assert_eq!(states.len(), 3);
    let value = |state: &serde_json::Value, key: &str| state[key].as_f64().expect(key);
    for (i, state) in states.iter().enumerate() {
        let (mean_a, mean_b, rms_a, rms_b) = (
            value(state, "mean_a"),
            value(state, "mean_b"),
            value(state, "rms_a"),
            value(state, "rms_b"),
        );
        assert!(
            (value(state, "delta") - (mean_b - mean_a)).abs() < 1e-5,
            "{state}"
        );
        // Before the final norm the copy has nothing along r̂; A has.
        if i + 1 < states.len() {
            assert!(rms_a > 1e-3, "state {i}: A projects nothing: {state}");
            assert!(rms_b < 1e-4 * rms_a.max(1.0), "state {i}: {state}");
            assert!(mean_b.abs() < 1e-4 * rms_a.max(1.0), "state {i}: {state}");
        }
    }
    let tokens = json["tokens"].as_array().expect("tokens").len();
    assert_eq!(json["generated"], TOKENS);
    assert!(tokens > TOKENS);

    let audio = audio_file::read(&dir.join("one.wav")).expect("the WAV reads");
    assert_eq!(audio.sample_rate, 48_000);
    let beat = (48_000.0 * 60.0 / 96.0_f64).round() as usize;
    assert_eq!(audio.frames(), 3 * beat + 2 * 48_000);
    assert!(audio.left.iter().chain(&audio.right).all(|v| v.is_finite()));
    let peak = audio
        .left
        .iter()
        .chain(&audio.right)
        .fold(0.0f32, |p, v| p.max(v.abs()));
    assert!(peak > 0.01 && peak < 1.0, "peak {peak}");

    let midi = read(&dir.join("one.mid"));
    let smf = Smf::parse(&midi).expect("midly parses the MIDI file");
    assert_eq!(smf.header.format, midly::Format::Parallel);
    let ons = |track: &[midly::TrackEvent]| {
        track
            .iter()
            .filter(|e| {
                matches!(e.kind, TrackEventKind::Midi { message: MidiMessage::NoteOn { vel, .. }, .. } if vel > 0)
            })
            .count()
    };
    // Tempo track, model A, pulses, model B, the unused drone and Tension slots.
    assert_eq!(smf.tracks.len(), 6);
    assert_eq!(ons(&smf.tracks[1]), 3, "one chord note of A per state");
    assert_eq!(ons(&smf.tracks[3]), 3, "one chord note of B per state");
    assert_eq!(ons(&smf.tracks[2]), 3 * 8, "eight pulses per state");

    let png = read(&dir.join("one.png"));
    let reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .expect("the PNG decodes");
    let grid = reader
        .info()
        .uncompressed_latin1_text
        .iter()
        .find(|t| t.keyword == GRID_KEY)
        .map(|t| t.text.clone());
    assert_eq!(grid, Some(format!("3x{}", tokens - 1)));
    assert_eq!(reader.info().height % 3, 0);

    // The same inputs make the same files.
    delta(&dir, &copy, "two");
    for ext in ["wav", "mid", "png", "json"] {
        assert!(
            read(&dir.join(&format!("one.{ext}"))) == read(&dir.join(&format!("two.{ext}"))),
            "the {ext} differs between two runs"
        );
    }
}

#[test]
fn delta_refuses_models_of_another_shape_and_bad_options() {
    let dir = TempDir::new("cli-delta-refuse");
    let llama = fixture("tiny-llama");
    let gpt2 = fixture("tiny-gpt2");
    let out = dir.join("x.wav");
    let base = [
        "delta",
        "--model",
        s(&llama),
        "--prompt",
        "The forest was silent.",
        "--out",
        s(&out),
    ];
    let message = cli::fail(&mut with_cache(
        &dir,
        &[&base[..], &["--model-b", s(&gpt2)]].concat(),
    ));
    assert!(
        message.contains("the models differ") && message.contains("gpt2"),
        "{message}"
    );
    let message = cli::fail(&mut with_cache(
        &dir,
        &[&base[..], &["--model-b", s(&llama), "--direction", "none"]].concat(),
    ));
    assert!(message.contains("needs a direction"), "{message}");
    let message = cli::fail(&mut with_cache(
        &dir,
        &[&base[..], &["--model-b", s(&llama), "--tokens", "500"]].concat(),
    ));
    assert!(message.contains("context"), "{message}");
    let message = cli::fail(&mut with_cache(
        &dir,
        &[
            "abliterate",
            "--model",
            s(&llama),
            "--direction",
            "none",
            "--out",
            s(&dir.join("a")),
        ],
    ));
    assert!(message.contains("--direction"), "{message}");
    assert_eq!(dir.files(), Vec::<String>::new(), "nothing is left behind");
}
