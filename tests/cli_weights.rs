//! `latent-choir weights` as a user runs it, on the tiny llama fixture: the stats JSON, the key,
//! the four pieces as MIDI (read back with `midly` and compared with how `mido` read the same
//! pieces, `tests/fixtures/weights/styles-mido.json`) and WAV (finite, loud enough, the same
//! bytes every time), through the built-in synth and a General MIDI SoundFont, and the errors.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::cli;
use common::paths::fixture;
use common::temp::TempDir;
use midly::{MetaMessage, MidiMessage, Smf, TrackEventKind};
use serde_json::Value;

const FONT: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";
const STYLES: [&str; 4] = ["opera", "house", "acid", "dna"];

fn weights(dir: &TempDir, args: &[&str]) -> Command {
    let mut command = cli::command();
    command
        .arg("weights")
        .args(args)
        .env("XDG_CACHE_HOME", dir.join("cache"));
    command
}

fn succeed(dir: &TempDir, args: &[&str]) -> String {
    String::from_utf8_lossy(&cli::succeed(&mut weights(dir, args)).stdout).into_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

fn model() -> String {
    fixture("tiny-llama").to_string_lossy().into_owned()
}

/// Renders `style` at 8 bars into `name.wav`/`name.mid`; returns both files' bytes.
fn piece(dir: &TempDir, style: &str, name: &str, extra: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let (wav, mid) = (
        dir.join(&format!("{name}.wav")),
        dir.join(&format!("{name}.mid")),
    );
    let model = model();
    let mut args = vec![
        "--model",
        &model,
        "--style",
        style,
        "--bars",
        "8",
        "--out",
        s(&wav),
        "--midi",
        s(&mid),
    ];
    args.extend_from_slice(extra);
    succeed(dir, &args);
    (std::fs::read(&wav).unwrap(), std::fs::read(&mid).unwrap())
}

/// What mido's summary records, read with midly.
fn summarize(bytes: &[u8]) -> Value {
    let smf = Smf::parse(bytes).expect("a valid MIDI file");
    let ticks = match smf.header.timing {
        midly::Timing::Metrical(t) => t.as_int(),
        other => panic!("{other:?}"),
    };
    let (mut tempo, mut markers, mut tracks) = (vec![], vec![], vec![]);
    for (i, track) in smf.tracks.iter().enumerate() {
        let mut tick = 0u64;
        let (mut name, mut programs, mut channels, mut ons) =
            (Value::Null, vec![], BTreeSet::new(), vec![]);
        for event in track {
            tick += u64::from(event.delta.as_int());
            match event.kind {
                TrackEventKind::Meta(MetaMessage::TrackName(n)) => {
                    name = Value::from(String::from_utf8_lossy(n).into_owned());
                }
                TrackEventKind::Meta(MetaMessage::Tempo(t)) => {
                    let bpm = 60_000_000.0 / f64::from(t.as_int());
                    tempo.push(serde_json::json!([tick, (bpm * 1000.0).round() / 1000.0]));
                }
                TrackEventKind::Meta(MetaMessage::Marker(m)) => {
                    markers.push(serde_json::json!([tick, String::from_utf8_lossy(m)]));
                }
                TrackEventKind::Midi { channel, message } => match message {
                    MidiMessage::ProgramChange { program } => {
                        programs.push(serde_json::json!([channel.as_int(), program.as_int()]));
                    }
                    MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                        channels.insert(channel.as_int());
                        ons.push(serde_json::json!([
                            tick,
                            channel.as_int(),
                            key.as_int(),
                            vel.as_int()
                        ]));
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        if i > 0 {
            let count = ons.len();
            ons.truncate(8);
            tracks.push(serde_json::json!({
                "name": name, "programs": programs, "channels": channels,
                "note_ons": count, "first": ons,
            }));
        }
    }
    serde_json::json!({"ticks_per_beat": ticks, "tempo": tempo, "markers": markers, "tracks": tracks})
}

fn wav_samples(bytes: &[u8]) -> Vec<f32> {
    let reader = hound::WavReader::new(bytes).expect("a WAV file");
    assert_eq!(reader.spec().sample_format, hound::SampleFormat::Float);
    assert_eq!(reader.spec().channels, 2);
    reader
        .into_samples::<f32>()
        .map(|s| s.expect("sample"))
        .collect()
}

#[test]
fn every_style_reads_as_mido_reads_it_and_renders_the_same_bytes_twice() {
    let dir = TempDir::new("weights-styles");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("weights").join("styles-mido.json")).unwrap(),
    )
    .unwrap();
    let mut rms = Vec::new();
    for style in STYLES {
        let (wav, mid) = piece(&dir, style, style, &[]);
        assert_eq!(
            summarize(&mid),
            reference[style],
            "{style}: MIDI as mido read it"
        );
        let again = piece(&dir, style, &format!("{style}-again"), &[]);
        assert!(
            again == (wav.clone(), mid.clone()),
            "{style}: deterministic"
        );
        let samples = wav_samples(&wav);
        assert!(samples.iter().all(|v| v.is_finite()), "{style}: finite");
        let peak = samples.iter().fold(0.0f32, |p, v| p.max(v.abs()));
        assert!(
            (0.85..=0.9).contains(&peak),
            "{style}: peak {peak} at −1 dBFS"
        );
        let power = samples.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>();
        rms.push((power / samples.len() as f64).sqrt());
    }
    assert!(
        rms.iter().all(|&r| r > 0.01),
        "none is near silence: {rms:?}"
    );

    // Drums on channel 10 in house and acid only; each piece at its tempo.
    for (style, drums, bpm) in [
        ("opera", false, 66.0),
        ("house", true, 128.0),
        ("acid", true, 138.0),
        ("dna", false, 72.0),
    ] {
        let summary = &reference[style];
        let has_drums = summary["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["channels"] == serde_json::json!([9]));
        assert_eq!(has_drums, drums, "{style}");
        assert_eq!(summary["tempo"][0][1].as_f64(), Some(bpm), "{style}");
    }
}

#[test]
fn stats_name_every_matrix_and_what_each_track_is_built_from() {
    let dir = TempDir::new("weights-stats");
    let out = dir.join("stats.json");
    let printed = succeed(&dir, &["--model", &model(), "--stats", s(&out), "--key"]);
    let stats: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(stats["schema"], 1);
    assert_eq!(stats["model"]["layers"], 2);
    assert_eq!(stats["matrices"].as_array().unwrap().len(), 16);
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("weights").join("tiny-llama.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stats["key"]["root"], reference["key"]["root"]);
    assert_eq!(stats["key"]["scale"], reference["key"]["scale"]);
    assert!(printed.contains("D Dorian"), "{printed}");
    for style in STYLES {
        let tracks = stats["pieces"][style]["tracks"].as_array().unwrap();
        assert!(!tracks.is_empty(), "{style}");
        for track in tracks {
            let source = track["source"].as_str().unwrap();
            assert!(
                source.contains("model.") || source.contains("norm"),
                "{style}/{}: {source}",
                track["name"]
            );
        }
    }
    // The cached analysis gives the same answer.
    let key = succeed(&dir, &["--model", &model(), "--key"]);
    assert!(key.contains("D Dorian"), "{key}");
}

#[test]
fn a_soundfont_plays_the_pieces_with_its_drum_kit() {
    if !Path::new(FONT).exists() {
        panic!("{FONT} is missing: `cargo xtask test` installs timgm6mb-soundfont");
    }
    let dir = TempDir::new("weights-font");
    let (font_wav, font_mid) = piece(&dir, "acid", "font", &["--soundfont", FONT]);
    let (synth_wav, synth_mid) = piece(&dir, "acid", "synth", &[]);
    assert_eq!(
        font_mid, synth_mid,
        "the score does not depend on the sound"
    );
    assert_ne!(font_wav, synth_wav);
    let samples = wav_samples(&font_wav);
    assert!(samples.iter().all(|v| v.is_finite()));
    // The drum kit sounds: the first kick (beat 0) is loud in the first 100 ms.
    let onset = samples[..2 * 4_800]
        .iter()
        .fold(0.0f32, |p, v| p.max(v.abs()));
    assert!(onset > 0.05, "{onset}");
}

#[test]
fn bad_arguments_and_files_are_clear_errors_and_write_nothing() {
    let dir = TempDir::new("weights-bad");
    let out = dir.join("x.wav");
    let model = model();
    let fail = |args: &[&str]| cli::fail(&mut weights(&dir, args));
    let none = fail(&["--model", &model]);
    assert!(
        none.contains("--stats") && none.contains("--style"),
        "{none}"
    );
    let style = fail(&["--model", &model, "--style", "polka", "--out", s(&out)]);
    assert!(
        style.contains("polka") && style.contains("opera"),
        "{style}"
    );
    let no_out = fail(&["--model", &model, "--style", "acid"]);
    assert!(no_out.contains("--out"), "{no_out}");
    let missing = fail(&["--model", "/nowhere/model.gguf", "--key"]);
    assert!(missing.contains("not found"), "{missing}");
    let bad_font = dir.join("bad.sf2");
    std::fs::write(&bad_font, b"RIFF not a font").unwrap();
    let font = fail(&[
        "--model",
        &model,
        "--style",
        "acid",
        "--out",
        s(&out),
        "--soundfont",
        s(&bad_font),
    ]);
    assert!(font.contains("bad.sf2"), "{font}");
    let bars = fail(&[
        "--model",
        &model,
        "--style",
        "acid",
        "--out",
        s(&out),
        "--bars",
        "0",
    ]);
    assert!(bars.contains("--bars"), "{bars}");
    assert!(!out.exists(), "no WAV after a failure");
}
