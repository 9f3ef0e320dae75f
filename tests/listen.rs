//! `listen` against its references: Basic Pitch through `ort` equals Python `onnxruntime` on
//! fixture audio, the note decoding equals Python `basic-pitch`'s, and the CLI's NDJSON stream is
//! well-formed, deterministic and fails clearly on bad input. Fixtures: tools/listen/make_fixtures.py.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::cli::{command, fail, succeed};
use common::paths::fixture;
use common::temp::TempDir;
use latent_choir::io::audio_file;
use latent_choir::listen::basic_pitch::{BasicPitch, Posteriors};
use latent_choir::listen::notes::{DecodeSettings, NoteEvent, decode};
use latent_choir::listen::runtime;
use ndarray::Array2;
use serde_json::Value;

fn reference(name: &str) -> Array2<f32> {
    let file = std::fs::File::open(fixture("listen/melody.onnx.npz")).expect("fixture npz");
    let mut npz = ndarray_npy::NpzReader::new(file).expect("npz");
    npz.by_name(&format!("{name}.npy")).expect(name)
}

fn mono(name: &str) -> Vec<f32> {
    let audio = audio_file::read(&fixture(&format!("listen/{name}"))).expect("fixture wav");
    assert_eq!(audio.sample_rate, 22_050);
    audio.left
}

fn basic_pitch() -> BasicPitch {
    let path = runtime::basic_pitch_path().expect("models dir");
    BasicPitch::load(&path, 2).expect("`cargo xtask fetch-model` stores nmp.onnx and ONNX Runtime")
}

fn max_difference(ours: &[f32], theirs: &Array2<f32>) -> f32 {
    assert_eq!(ours.len(), theirs.len(), "sizes differ");
    ours.iter()
        .zip(theirs.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn ort_outputs_equal_python_onnxruntime() {
    let mut model = basic_pitch();
    let audio = mono("melody.wav");
    // One call: the first window (half an overlap of silence, then the audio).
    let mut window = vec![0.0f32; 3840];
    window.extend_from_slice(&audio[..43_844 - 3840]);
    let first = model.run_window(&window).expect("run");
    for (ours, name) in [
        (&first.note, "window0_note"),
        (&first.onset, "window0_onset"),
        (&first.contour, "window0_contour"),
    ] {
        let difference = max_difference(ours, &reference(name));
        assert!(difference <= 1e-4, "{name}: {difference}");
    }
    // The whole file, windowed and stitched as the Python package does.
    let all = model.run(&audio).expect("run");
    assert_eq!(all.frames, 387);
    for (ours, name) in [
        (&all.note, "note"),
        (&all.onset, "onset"),
        (&all.contour, "contour"),
    ] {
        let difference = max_difference(ours, &reference(name));
        assert!(difference <= 1e-4, "{name}: {difference}");
    }
}

#[derive(Debug)]
struct PythonNote {
    start_frame: usize,
    end_frame: usize,
    pitch: u8,
    amplitude: f32,
    start: f64,
    bends: Option<Vec<i32>>,
}

fn python_notes(name: &str) -> Vec<PythonNote> {
    let text =
        std::fs::read_to_string(fixture(&format!("listen/{name}.notes.json"))).expect("notes");
    let json: Value = serde_json::from_str(&text).expect("json");
    json["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| PythonNote {
            start_frame: n["start_frame"].as_u64().expect("start_frame") as usize,
            end_frame: n["end_frame"].as_u64().expect("end_frame") as usize,
            pitch: n["pitch"].as_u64().expect("pitch") as u8,
            amplitude: n["amplitude"].as_f64().expect("amplitude") as f32,
            start: n["start"].as_f64().expect("start"),
            bends: n["pitch_bends"]
                .as_array()
                .map(|b| b.iter().map(|v| v.as_i64().unwrap_or(0) as i32).collect()),
        })
        .collect()
}

fn sorted(mut notes: Vec<NoteEvent>) -> Vec<NoteEvent> {
    notes.sort_by(|a, b| {
        a.start_frame
            .cmp(&b.start_frame)
            .then(a.pitch.cmp(&b.pitch))
    });
    notes
}

/// mir_eval's onset-only note F-measure: same pitch, onsets within 50 ms, one-to-one.
fn f_measure(ours: &[NoteEvent], theirs: &[PythonNote]) -> f64 {
    let mut used = vec![false; theirs.len()];
    let mut hits = 0;
    for note in ours {
        if let Some(j) = (0..theirs.len()).find(|&j| {
            !used[j]
                && theirs[j].pitch == note.pitch
                && (theirs[j].start - note.start).abs() <= 0.05
        }) {
            used[j] = true;
            hits += 1;
        }
    }
    let (p, r) = (
        hits as f64 / ours.len().max(1) as f64,
        hits as f64 / theirs.len().max(1) as f64,
    );
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

#[test]
fn the_decoder_on_pythons_posteriors_gives_pythons_notes_exactly() {
    let posteriors = Posteriors {
        frames: 387,
        note: reference("note").into_raw_vec_and_offset().0,
        onset: reference("onset").into_raw_vec_and_offset().0,
        contour: reference("contour").into_raw_vec_and_offset().0,
    };
    let ours = sorted(decode(&posteriors, &DecodeSettings::default()));
    let theirs = python_notes("melody");
    assert_eq!(ours.len(), theirs.len(), "{ours:#?}");
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(
            (a.start_frame, a.end_frame, a.pitch),
            (b.start_frame, b.end_frame, b.pitch)
        );
        assert!((a.amplitude - b.amplitude).abs() < 1e-5, "{a:?} vs {b:?}");
        assert!((a.start - b.start).abs() < 1e-9);
        assert_eq!(Some(&a.bends), b.bends.as_ref(), "pitch bends of {a:?}");
    }
}

#[test]
fn transcription_through_ort_matches_python_basic_pitch() {
    let mut model = basic_pitch();
    for name in ["melody", "chords"] {
        let posteriors = model.run(&mono(&format!("{name}.wav"))).expect("run");
        let ours = sorted(decode(&posteriors, &DecodeSettings::default()));
        let theirs = python_notes(name);
        let mut our_pitches: Vec<u8> = ours.iter().map(|n| n.pitch).collect();
        let mut their_pitches: Vec<u8> = theirs.iter().map(|n| n.pitch).collect();
        our_pitches.sort();
        their_pitches.sort();
        assert_eq!(our_pitches, their_pitches, "{name}");
        for (a, b) in ours.iter().zip(&theirs) {
            assert!(
                a.start_frame.abs_diff(b.start_frame) <= 1,
                "{name}: onset {a:?} vs {b:?}"
            );
        }
        let f = f_measure(&ours, &theirs);
        assert!(f >= 0.99, "{name}: F-measure {f}");
    }
}

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// Each stream as (header, frames, stats).
fn streams(values: &[Value]) -> Vec<(Value, Vec<Value>, Value)> {
    let mut out = Vec::new();
    let mut current: Option<(Value, Vec<Value>)> = None;
    for value in values {
        match value["type"].as_str() {
            Some("header") => current = Some((value.clone(), Vec::new())),
            Some("stats") => {
                let (header, frames) = current.take().expect("stats after a header");
                out.push((header, frames, value.clone()));
            }
            _ => current
                .as_mut()
                .expect("frames after a header")
                .1
                .push(value.clone()),
        }
    }
    assert!(current.is_none(), "a stream without stats");
    out
}

fn without_run_time(mut stats: Value) -> Value {
    stats.as_object_mut().expect("stats").remove("run_time_s");
    stats
}

#[test]
fn the_stream_is_well_formed_and_the_same_every_run() {
    let dir = TempDir::new("listen-stream");
    let melody = fixture("listen/melody.wav");
    let midi = dir.join("melody.mid");
    let report = dir.join("report.json");
    let plot = dir.join("melody.png");
    let first = succeed(
        command()
            .arg("listen")
            .arg(&melody)
            .args(["--midi"])
            .arg(&midi)
            .args(["--json-report"])
            .arg(&report)
            .args(["--plot"])
            .arg(&plot),
    );
    let second = succeed(command().arg("listen").arg(&melody));
    let (a, b) = (
        streams(&lines(&first.stdout)),
        streams(&lines(&second.stdout)),
    );
    assert_eq!(a.len(), 1);
    let (header, frames, stats) = &a[0];
    assert_eq!(header["format"], "latent-choir-audio-tokens");
    assert_eq!(header["codebooks"]["id"], "lc-rvq-v1");
    assert_eq!(
        header["encoders"]["semantic"]["name"],
        "basic-pitch-icassp2022"
    );
    assert_eq!(header["input"]["sample_rate"], 22_050);
    // 4.5 s at 10 frames per second.
    assert_eq!(frames.len(), 45);
    assert_eq!(stats["frames"], 45);
    for (i, frame) in frames.iter().enumerate() {
        assert!((frame["t"].as_f64().expect("t") - i as f64 * 0.1).abs() < 1e-9);
        assert_eq!(frame["kf"], i % 10 == 0, "frame {i}");
        for layer in ["S0", "S1", "S2", "S3", "A0", "A1", "A2", "A3"] {
            assert!(frame[layer].as_u64().expect(layer) < 256);
        }
    }
    // The melody is not one repeated sound: the coarse layers move.
    let distinct = |layer: &str| {
        stats["tokens"][layer]["distinct"]
            .as_u64()
            .expect("distinct")
    };
    assert!(distinct("S0") >= 4 && distinct("A0") >= 4, "{stats}");
    assert_eq!(stats["notes"], 9);
    assert_eq!(stats["key"]["name"], "C major", "{stats}");
    // Byte-identical frames and header; stats equal but for the run time.
    assert_eq!(a[0].0, b[0].0);
    assert_eq!(a[0].1, b[0].1);
    assert_eq!(
        without_run_time(a[0].2.clone()),
        without_run_time(b[0].2.clone())
    );
    // The MIDI file holds the 9 notes; the report and the picture exist.
    let bytes = std::fs::read(&midi).expect("midi");
    let smf = midly::Smf::parse(&bytes).expect("a MIDI file");
    let ons = smf.tracks[0]
        .iter()
        .filter(|e| matches!(e.kind, midly::TrackEventKind::Midi { message: midly::MidiMessage::NoteOn { vel, .. }, .. } if vel > 0))
        .count();
    assert_eq!(ons, 9);
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(
        report["inputs"][0]["notes"]
            .as_array()
            .expect("notes")
            .len(),
        9
    );
    assert!(std::fs::read(&plot).expect("png").starts_with(b"\x89PNG"));
}

#[test]
fn delta_and_rle_keep_the_same_tokens() {
    let melody = fixture("listen/melody.wav");
    let full = streams(&lines(
        &succeed(command().arg("listen").arg(&melody)).stdout,
    ));
    let compact = streams(&lines(
        &succeed(command().arg("listen").arg(&melody).args([
            "--delta",
            "--rle",
            "--keyframe-every",
            "20",
        ]))
        .stdout,
    ));
    // Expanding the compact stream gives the full one back.
    let mut expanded: Vec<Value> = Vec::new();
    let mut last = serde_json::Map::new();
    for line in &compact[0].1 {
        let object = line.as_object().expect("frame");
        for (key, value) in object {
            if key.starts_with('S') || key.starts_with('A') {
                last.insert(key.clone(), value.clone());
            }
        }
        let count = object.get("n").and_then(Value::as_u64).unwrap_or(1);
        for _ in 0..count {
            expanded.push(Value::Object(last.clone()));
        }
    }
    let tokens_only = |frame: &Value| {
        let mut object = frame.as_object().expect("frame").clone();
        object.retain(|key, _| key.starts_with('S') || key.starts_with('A'));
        Value::Object(object)
    };
    let full_tokens: Vec<Value> = full[0].1.iter().map(tokens_only).collect();
    assert_eq!(expanded, full_tokens);
    assert!(compact[0].1.len() <= full[0].1.len());
}

#[test]
fn files_piped_with_separators_are_separate_streams() {
    let mut piped = std::fs::read(fixture("listen/melody.wav")).expect("melody");
    piped.push(0x1C);
    piped.extend(std::fs::read(fixture("listen/chords.wav")).expect("chords"));
    let mut child = command()
        .arg("listen")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&piped)
        .expect("pipe");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let streams = streams(&lines(&out.stdout));
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0].0["input"]["name"], "stdin#1");
    assert_eq!(streams[0].1.len(), 45);
    assert_eq!(streams[1].1.len(), 35);
    assert_eq!(streams[1].2["key"]["name"], "A minor", "{}", streams[1].2);
}

#[test]
fn bad_inputs_fail_clearly() {
    let dir = TempDir::new("listen-bad");
    let message = fail(command().args(["listen", "/no/such/song.wav"]));
    assert!(message.contains("no such file"), "{message}");
    let empty = dir.join("empty.wav");
    std::fs::write(&empty, b"").expect("write");
    let message = fail(command().arg("listen").arg(&empty));
    assert!(message.contains("no audio"), "{message}");
    // Not audio: read as raw PCM, with a warning.
    let text = dir.join("notes.txt");
    std::fs::write(
        &text,
        "not audio at all, but bytes all the same ".repeat(2000),
    )
    .expect("write");
    let out = succeed(command().arg("listen").arg(&text));
    assert!(String::from_utf8_lossy(&out.stderr).contains("raw 16-bit PCM"));
    assert_eq!(streams(&lines(&out.stdout))[0].0["input"]["raw_pcm"], true);
    // Not an ONNX model.
    let message = fail(
        command()
            .arg("listen")
            .arg(fixture("listen/melody.wav"))
            .arg("--encoder")
            .arg(&text),
    );
    assert!(message.contains("not an encoder"), "{message}");
}

/// `--encoder`: a model that follows the conventions gives the semantic tokens (named in the
/// header, drawn through the seeded projection), the acoustic ones stay; one that does not is
/// refused with what is wrong (fixtures: tools/listen/make_encoder_fixtures.py).
#[test]
fn another_encoder_gives_the_semantic_tokens_and_a_misfit_is_refused() {
    let melody = fixture("listen/melody.wav");
    let encoder = fixture("listen/frame_encoder.onnx");
    let run = |seed: &str| {
        let out = succeed(
            command()
                .arg("listen")
                .arg(&melody)
                .arg("--encoder")
                .arg(&encoder)
                .args(["--seed", seed]),
        );
        streams(&lines(&out.stdout)).remove(0)
    };
    let (header, frames, _) = run("0");
    let semantic = &header["encoders"]["semantic"];
    assert_eq!(semantic["name"], "frame_encoder");
    assert_eq!(semantic["sample_rate"], 16_000);
    assert_eq!(semantic["sha256"].as_str().map(str::len), Some(64));
    let (_, again, _) = run("0");
    assert_eq!(frames, again, "the same seed, the same tokens");
    let (_, reseeded, _) = run("1");
    let layer = |frames: &[Value], name: &str| -> Vec<u64> {
        frames
            .iter()
            .map(|f| f[name].as_u64().expect(name))
            .collect()
    };
    assert_ne!(
        layer(&frames, "S0"),
        layer(&reseeded, "S0"),
        "another projection"
    );
    let (_, basic_pitch, _) = streams(&lines(
        &succeed(command().arg("listen").arg(&melody)).stdout,
    ))
    .remove(0);
    assert_eq!(frames.len(), basic_pitch.len());
    assert_ne!(layer(&frames, "S0"), layer(&basic_pitch, "S0"));
    assert_eq!(
        layer(&frames, "A0"),
        layer(&basic_pitch, "A0"),
        "acoustic tokens do not change"
    );
    assert!(
        layer(&frames, "S0")
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 3
    );

    let message = fail(
        command()
            .arg("listen")
            .arg(&melody)
            .arg("--encoder")
            .arg(fixture("listen/image_model.onnx")),
    );
    assert!(
        message.contains("expected [1, samples] or [1, samples, 1]"),
        "{message}"
    );
}
