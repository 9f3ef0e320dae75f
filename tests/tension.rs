//! Tension through the command line: `render --direction` fits the concept direction for the
//! model, every token carries its projection and tension into the run file, the Tension voice
//! plays on its channel only above the gate, the tension goes out as a controller whose value
//! is the recorded tension at every step, and Dissonance moves notes off the scale.

mod common;

use std::path::Path;

use common::cli::{command, fail, succeed};
use common::paths::fixture;
use common::temp::TempDir;
use latent_choir::io::run_file::Run;

const TOKENS: u64 = 24;

fn render(dir: &TempDir, name: &str, extra: &[&str]) -> (Vec<u8>, Run) {
    let out = dir.join(&format!("{name}.wav"));
    let midi = dir.join(&format!("{name}.mid"));
    let run = dir.join(&format!("{name}.lcrun"));
    succeed(
        command()
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .args(["render", "--prompt", "Tell me how to open a locked door."])
            .arg("--model")
            .arg(fixture("tiny-llama"))
            .args(["--tokens", &TOKENS.to_string(), "--bpm", "120"])
            .args(["--param", "humanise=0", "--param", "ornaments=0"])
            .args(extra)
            .arg("--out")
            .arg(&out)
            .arg("--midi")
            .arg(&midi)
            .arg("--run")
            .arg(&run),
    );
    let bytes = std::fs::read(&midi).expect("MIDI written");
    (bytes, Run::read(&run).expect("run file"))
}

/// (channel, controller, value) of a control change.
type Control = (u8, u8, u8);

/// (channel, controller, value) of every control change, and (channel, key) of every note-on.
fn midi_events(bytes: &[u8]) -> (Vec<Control>, Vec<(u8, u8)>) {
    let smf = midly::Smf::parse(bytes).expect("MIDI parses");
    let (mut controls, mut notes) = (Vec::new(), Vec::new());
    for track in &smf.tracks {
        for event in track {
            if let midly::TrackEventKind::Midi { channel, message } = event.kind {
                match message {
                    midly::MidiMessage::Controller { controller, value } => {
                        controls.push((channel.as_int(), controller.as_int(), value.as_int()))
                    }
                    midly::MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                        notes.push((channel.as_int(), key.as_int()))
                    }
                    _ => {}
                }
            }
        }
    }
    (controls, notes)
}

#[test]
fn tension_is_recorded_played_and_sent_as_a_controller() {
    let dir = TempDir::new("tension");
    let on = ["--direction", "refusal", "--param", "tension_voice=On"];
    let (midi, run) = render(&dir, "refusal", &on);
    assert_eq!(run.manifest.direction.as_deref(), Some("refusal"));
    let tension: Vec<f32> = run.tokens.iter().map(|t| t.frame.tension).collect();
    assert_eq!(tension.len() as u64, TOKENS);
    assert!(run.tokens.iter().all(|t| t.frame.has_direction));
    assert!(
        tension.iter().all(|t| (0.0..=1.0).contains(t)),
        "{tension:?}"
    );
    for token in &run.tokens {
        let states = token.frame.hidden_states();
        assert!(
            token.frame.projection[..states]
                .iter()
                .all(|p| p.is_finite())
        );
        assert!(token.frame.projection[..states].iter().any(|p| *p != 0.0));
    }
    // The controller: channel 5, CC 1, one per step, the recorded tension × 127.
    let (controls, notes) = midi_events(&midi);
    let expected: Vec<Control> = tension
        .iter()
        .map(|t| (4, 1, (t * 127.0).round() as u8))
        .collect();
    assert_eq!(controls, expected);
    // The organ plays on channel 5 exactly when the tension is over the gate.
    let organ = notes.iter().filter(|(channel, _)| *channel == 4).count();
    let tense = tension.iter().filter(|t| **t >= 0.15).count();
    assert_eq!(organ > 0, tense > 0, "{tension:?}");
    println!("tension {tension:?}; organ note-ons {organ}, tense steps {tense}");

    // The same again: the same bytes (the direction now comes from the cache).
    let (again, _) = render(&dir, "refusal-again", &on);
    assert_eq!(again, midi);

    // Off: no controller, no organ, no tension recorded.
    let (midi, run) = render(
        &dir,
        "none",
        &["--direction", "none", "--param", "tension_voice=On"],
    );
    assert_eq!(run.manifest.direction, None);
    assert!(run.tokens.iter().all(|t| !t.frame.has_direction));
    let (controls, notes) = midi_events(&midi);
    assert!(controls.is_empty());
    assert!(notes.iter().all(|(channel, _)| *channel != 4));
}

#[test]
fn dissonance_pulls_the_voices_off_the_scale() {
    let dir = TempDir::new("dissonance");
    let off_scale = |extra: &[&str], name: &str| {
        let mut args = vec!["--direction", "refusal", "--param", "tension_voice=Off"];
        args.extend_from_slice(extra);
        let (midi, run) = render(&dir, name, &args);
        let (_, notes) = midi_events(&midi);
        let c_major = |key: u8| [0, 2, 4, 5, 7, 9, 11].contains(&(key % 12));
        let melodic = notes.iter().filter(|(channel, _)| *channel < 3);
        let count = melodic.filter(|(_, key)| !c_major(*key)).count();
        (count, run)
    };
    let (none, run) = off_scale(&["--param", "dissonance=0 %"], "consonant");
    assert_eq!(none, 0, "no dissonance: every melodic note in C major");
    let (some, _) = off_scale(&["--param", "dissonance=100 %"], "dissonant");
    let mean: f32 = run.tokens.iter().map(|t| t.frame.tension).sum::<f32>() / TOKENS as f32;
    println!("mean tension {mean}, off-scale notes at 100 %: {some}");
    if mean > 0.1 {
        assert!(
            some > 0,
            "tension {mean} with full dissonance moved no note"
        );
    }
}

#[test]
fn a_bad_direction_file_is_refused_with_a_message_and_the_piece_plays_without() {
    let dir = TempDir::new("bad-direction");
    let bogus = dir.join("bogus.safetensors");
    std::fs::write(&bogus, b"not a direction").expect("write");
    let (_, run) = render(
        &dir,
        "bogus",
        &["--direction", bogus.to_str().expect("utf-8")],
    );
    assert_eq!(run.manifest.direction, None);
    assert!(run.tokens.iter().all(|t| !t.frame.has_direction));
    // fit-direction with an empty prompt file: a message, no panic.
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n\n").expect("write");
    let message = fail(
        command()
            .args(["fit-direction", "--positive"])
            .arg(&empty)
            .arg("--negative")
            .arg(&empty)
            .arg("--model")
            .arg(fixture("tiny-llama"))
            .arg("--out")
            .arg(dir.join("d.safetensors")),
    );
    assert!(message.contains("no prompts"), "{message}");
    let binary = dir.join("binary.txt");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00, 0x41]).expect("write");
    let message = fail(
        command()
            .args(["fit-direction", "--positive"])
            .arg(&binary)
            .arg("--negative")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/directions/negative.txt"),
            )
            .arg("--model")
            .arg(fixture("tiny-llama"))
            .arg("--out")
            .arg(dir.join("d.safetensors")),
    );
    assert!(message.contains("not a UTF-8 text file"), "{message}");
}

/// (left, right) samples of a stereo float WAV.
fn stereo(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let mut reader = hound::WavReader::open(path).expect("a WAV");
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<f32> = reader.samples::<f32>().map(|s| s.expect("float")).collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

#[test]
fn contrast_renders_both_prompts_alike_and_puts_them_side_by_side() {
    let dir = TempDir::new("contrast");
    let out = dir.join("pair.wav");
    let stdout = succeed(
        command()
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .args(["render", "--prompt", "Write ransomware for a hospital."])
            .args(["--contrast", "Write a backup script for a hospital."])
            .arg("--model")
            .arg(fixture("tiny-llama"))
            .args(["--tokens", "12", "--param", "tension_voice=On"])
            .arg("--out")
            .arg(&out),
    )
    .stdout;
    let stdout = String::from_utf8_lossy(&stdout);
    assert!(
        stdout.contains("A tension mean") && stdout.contains("B tension mean"),
        "{stdout}"
    );
    for side in ["a", "b"] {
        for ext in ["wav", "mid", "lcrun"] {
            assert!(
                dir.join(&format!("pair-{side}.{ext}")).exists(),
                "pair-{side}.{ext}"
            );
        }
        let run = Run::read(&dir.join(&format!("pair-{side}.lcrun"))).expect("run");
        assert_eq!(run.tokens.len(), 12, "the same grid");
    }
    let (left, right) = stereo(&out);
    let fold = |path: &Path| -> Vec<f32> {
        let (l, r) = stereo(path);
        l.iter().zip(&r).map(|(a, b)| (a + b) / 2.0).collect()
    };
    let (a, b) = (fold(&dir.join("pair-a.wav")), fold(&dir.join("pair-b.wav")));
    assert_eq!(left.len(), a.len().max(b.len()));
    assert!(
        left.iter().zip(&a).all(|(x, y)| x.to_bits() == y.to_bits()),
        "A on the left"
    );
    assert!(
        right
            .iter()
            .zip(&b)
            .all(|(x, y)| x.to_bits() == y.to_bits()),
        "B on the right"
    );
    assert_ne!(left, right, "two different performances");
}
