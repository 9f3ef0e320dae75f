//! `latent-choir render` and `replay` as a user runs them: a subprocess on the tiny llama
//! fixture with its own `XDG_CACHE_HOME` (its activation map is fitted there in seconds). The
//! MIDI is read back with `midly`, an implementation independent of the writer, and the run
//! file with `ndarray-npy`.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use common::cli;
use common::paths::fixture;
use common::temp::TempDir;
use latent_choir::music::scale::{Root, Scale};
use midly::{MetaMessage, MidiMessage, Smf, TrackEventKind};
use ndarray::{Array1, Array2, Array3};
use ndarray_npy::NpzReader;

/// The CLI with its map cache inside `dir`.
fn with_cache(dir: &TempDir, args: &[&str]) -> Command {
    let mut command = cli::command();
    command.args(args).env("XDG_CACHE_HOME", dir.join("cache"));
    command
}

fn succeed(dir: &TempDir, args: &[&str]) -> String {
    String::from_utf8_lossy(&cli::succeed(&mut with_cache(dir, args)).stdout).into_owned()
}

fn fail(dir: &TempDir, args: &[&str]) -> String {
    cli::fail(&mut with_cache(dir, args))
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

const TOKENS: usize = 24;

/// Renders `name.{wav,mid,lcrun}` on the tiny llama.
fn render(dir: &TempDir, name: &str, extra: &[&str]) -> String {
    let model = fixture("tiny-llama");
    let wav = dir.join(&format!("{name}.wav"));
    let tokens = TOKENS.to_string();
    let mut args = vec![
        "render",
        "--model",
        s(&model),
        "--prompt",
        "The forest was silent.",
        "--bpm",
        "180",
        "--tokens",
        &tokens,
        "--seed",
        "7",
        "--out",
        s(&wav),
    ];
    args.extend_from_slice(extra);
    succeed(dir, &args)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Per track: its name and its notes as (tick, channel, key, on).
struct Midi {
    names: Vec<String>,
    notes: Vec<Vec<(u64, u8, u8, bool)>>,
    tempo: Option<u32>,
}

fn parse_midi(bytes: &[u8]) -> Midi {
    let smf = Smf::parse(bytes).expect("midly parses the file");
    assert_eq!(smf.header.format, midly::Format::Parallel);
    assert_eq!(smf.header.timing, midly::Timing::Metrical(960.into()));
    let mut midi = Midi {
        names: Vec::new(),
        notes: Vec::new(),
        tempo: None,
    };
    for track in &smf.tracks {
        let mut tick = 0u64;
        let mut name = String::new();
        let mut notes = Vec::new();
        for event in track {
            tick += u64::from(event.delta.as_int());
            match event.kind {
                TrackEventKind::Meta(MetaMessage::TrackName(n)) => {
                    name = String::from_utf8_lossy(n).into_owned()
                }
                TrackEventKind::Meta(MetaMessage::Tempo(t)) => midi.tempo = Some(t.as_int()),
                TrackEventKind::Midi { channel, message } => match message {
                    MidiMessage::NoteOn { key, vel } => {
                        notes.push((tick, channel.as_int(), key.as_int(), vel.as_int() > 0))
                    }
                    MidiMessage::NoteOff { key, .. } => {
                        notes.push((tick, channel.as_int(), key.as_int(), false))
                    }
                    // The tension controller (Tension Voice on) is checked in tests/tension.rs.
                    MidiMessage::Controller { .. } => {}
                    other => panic!("unexpected {other:?}"),
                },
                _ => {}
            }
        }
        midi.names.push(name);
        midi.notes.push(notes);
    }
    midi
}

/// Every note-on of a track is ended by one note-off of the same channel and key.
fn assert_paired(notes: &[(u64, u8, u8, bool)]) {
    let mut sounding: Vec<(u8, u8)> = Vec::new();
    for &(tick, channel, key, on) in notes {
        if on {
            assert!(
                !sounding.contains(&(channel, key)),
                "{key} struck twice at {tick}"
            );
            sounding.push((channel, key));
        } else {
            let i = sounding.iter().position(|k| *k == (channel, key));
            assert!(i.is_some(), "note-off without note-on: {key} at {tick}");
            sounding.remove(i.unwrap_or(0));
        }
    }
    assert!(sounding.is_empty(), "left sounding: {sounding:?}");
}

#[test]
fn render_is_deterministic_replays_exactly_and_remaps_on_new_parameters() {
    let dir = TempDir::new("render-det");
    let first = render(&dir, "a", &[]);
    assert!(!first.trim().is_empty(), "the generated text is printed");
    render(&dir, "b", &[]);
    let (wav_a, mid_a) = (read(&dir.join("a.wav")), read(&dir.join("a.mid")));
    assert!(
        wav_a == read(&dir.join("b.wav")),
        "two renders: the same WAV"
    );
    assert!(
        mid_a == read(&dir.join("b.mid")),
        "two renders: the same MIDI"
    );

    // The WAV: stereo float at 48 kHz, not silent, the length of the piece plus its tail.
    let wav = hound::WavReader::open(dir.join("a.wav")).expect("hound reads the WAV");
    let spec = wav.spec();
    assert_eq!((spec.channels, spec.sample_rate), (2, 48_000));
    assert_eq!(spec.sample_format, hound::SampleFormat::Float);
    let samples: Vec<f32> = wav.into_samples().map(|x| x.expect("sample")).collect();
    let piece = TOKENS as f64 * 48_000.0 * 60.0 / (180.0 * 2.0);
    assert_eq!(samples.len() / 2, piece.ceil() as usize + 3 * 48_000);
    let peak = samples.iter().fold(0.0_f32, |p, x| p.max(x.abs()));
    assert!(peak > 1e-3 && peak.is_finite(), "peak {peak}");

    // The MIDI: a tempo track and one per voice and the drone, named, on channels 1-4.
    let midi = parse_midi(&mid_a);
    assert_eq!(midi.tempo, Some(333_333), "180 BPM");
    assert_eq!(midi.names.len(), 6);
    assert_eq!(&midi.names[4], "Drone");
    assert_eq!(&midi.names[5], "Tension");
    for (i, name) in midi.names[1..4].iter().enumerate() {
        assert!(name.starts_with(&format!("Voice {}", i + 1)), "{name}");
    }
    assert!(midi.notes[0].is_empty());
    // The Tension voice is off by default: its track is empty (tests/tension.rs plays it).
    assert!(midi.notes[5].is_empty());
    for (track, notes) in midi.notes[1..5].iter().enumerate() {
        assert!(!notes.is_empty(), "track {} has notes", track + 1);
        assert!(notes.iter().all(|n| usize::from(n.1) == track), "channels");
        assert_paired(notes);
        for &(_, _, key, on) in notes {
            assert!(
                !on || Scale::Major.contains(key, Root::C),
                "{key} in C major"
            );
        }
    }
    let grid = 960 / 2;
    let ons: Vec<u64> = midi.notes[1..4]
        .iter()
        .flatten()
        .filter(|n| n.3)
        .map(|n| n.0)
        .collect();
    // A note per voice and token on the grid, or a little after it (Humanise, 20 % by
    // default, plays a note up to 8 % of a step late); ornaments fall later in the step.
    let window = grid * 8 / 100 * 20 / 100 + 1;
    assert!(ons.iter().filter(|t| *t % grid <= window).count() >= TOKENS);
    assert!(ons.iter().any(|t| *t % grid != 0), "humanised");

    // The run file: the arrays NumPy sees.
    let run = dir.join("a.lcrun");
    let mut npz = NpzReader::new(std::fs::File::open(&run).expect("open the run")).expect("npz");
    let coords: Array3<f32> = npz.by_name("coords").expect("coords");
    let ids: Array1<i64> = npz.by_name("token_ids").expect("token_ids");
    let norm: Array2<f32> = npz.by_name("norm").expect("norm");
    let temperature: Array1<f32> = npz.by_name("temperature").expect("temperature");
    let curve: Array1<f32> = npz.by_name("curve_temperature").expect("curve");
    assert_eq!(
        coords.shape(),
        &[3, TOKENS, 16],
        "tiny llama: 2 layers + embeddings, 16 components"
    );
    let partials: Array3<i8> = npz.by_name("partials").expect("partials");
    assert_eq!(
        partials.shape(),
        &[3, TOKENS, 32],
        "each state's Spectral partials"
    );
    assert!(
        partials.iter().filter(|&&q| q != 0).count() > partials.len() / 2,
        "the partials are z-scores, mostly not zero"
    );
    assert_eq!(ids.len(), TOKENS);
    assert_eq!(norm.shape(), &[3, TOKENS]);
    assert_eq!((temperature.len(), curve.len()), (TOKENS, TOKENS));
    assert!(coords.iter().all(|c| (-1.0..=1.0).contains(c)));
    assert!(coords.iter().any(|c| *c != 0.0), "a map was applied");
    assert!(norm.iter().all(|n| *n > 0.0));
    let manifest = manifest(&run);
    assert_eq!(manifest["format"], "latent-choir-run");
    assert_eq!(manifest["version"], 1);
    assert_eq!(manifest["prompt"], "The forest was silent.");
    assert_eq!(manifest["seed"], 7);
    assert_eq!(manifest["params"]["scale"]["text"], "Major");
    assert_eq!(manifest["tokens"].as_array().map(Vec::len), Some(TOKENS));
    assert_eq!(manifest["model"]["sha256"].as_str().map(str::len), Some(64));

    // Replay without the model: the same bytes.
    let replayed = succeed(
        &dir,
        &["replay", s(&run), "--out", s(&dir.join("replay.wav"))],
    );
    assert_eq!(replayed.trim(), first.trim(), "the same text");
    assert!(
        wav_a == read(&dir.join("replay.wav")),
        "replay: the same WAV"
    );
    assert!(
        mid_a == read(&dir.join("replay.mid")),
        "replay: the same MIDI"
    );

    // Replay in another key with a held drone: other notes, all of them in D Phrygian, the
    // drone on D.
    succeed(
        &dir,
        &[
            "replay",
            s(&run),
            "--out",
            s(&dir.join("phrygian.wav")),
            "--param",
            "scale=phrygian",
            "--param",
            "root=D",
            "--param",
            "bass=Held Drone",
        ],
    );
    let remapped = parse_midi(&read(&dir.join("phrygian.mid")));
    assert_ne!(remapped.notes, midi.notes);
    for notes in &remapped.notes[1..4] {
        assert_paired(notes);
        for &(_, _, key, on) in notes {
            assert!(!on || Scale::Phrygian.contains(key, Root::D), "{key}");
        }
    }
    assert!(
        remapped.notes[4].iter().all(|n| n.2 % 12 == 2),
        "drone on D"
    );
    // The rhythm is the recorded one: note-ons on the same ticks.
    let ticks = |m: &Midi| -> Vec<u64> {
        let mut t: Vec<u64> = m.notes[1..4]
            .iter()
            .flatten()
            .filter(|n| n.3)
            .map(|n| n.0)
            .filter(|t| t % grid == 0)
            .collect();
        t.dedup();
        t
    };
    assert_eq!(ticks(&remapped), ticks(&midi));
}

fn manifest(run: &Path) -> serde_json::Value {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(run).expect("open")).expect("zip");
    let mut text = String::new();
    zip.by_name("manifest.json")
        .expect("manifest entry")
        .read_to_string(&mut text)
        .expect("read");
    serde_json::from_str(&text).expect("manifest JSON")
}

/// A copy of `run` with its manifest changed by `edit`.
fn edited_run(run: &Path, to: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut manifest = manifest(run);
    edit(&mut manifest);
    let mut source = zip::ZipArchive::new(std::fs::File::open(run).expect("open")).expect("zip");
    let mut out = zip::ZipWriter::new(std::fs::File::create(to).expect("create"));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut entries = BTreeMap::new();
    for i in 0..source.len() {
        let mut entry = source.by_index(i).expect("entry");
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read entry");
        entries.insert(entry.name().to_owned(), bytes);
    }
    entries.insert(
        "manifest.json".to_owned(),
        serde_json::to_vec(&manifest).expect("json"),
    );
    for (name, bytes) in entries {
        out.start_file(name, options).expect("start");
        out.write_all(&bytes).expect("write");
    }
    out.finish().expect("finish");
}

#[test]
fn bad_input_gives_a_clear_message_and_leaves_no_files() {
    let dir = TempDir::new("render-bad");
    let model = fixture("tiny-llama");
    let out = dir.join("x.wav");
    let base = [
        "render",
        "--model",
        s(&model),
        "--prompt",
        "Hi",
        "--tokens",
        "4",
        "--out",
        s(&out),
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        fail(&dir, &args)
    };
    let unknown = with(&["--param", "tempo=3"]);
    assert!(
        unknown.contains("tempo") && unknown.contains("scale") && unknown.contains("voice_1"),
        "{unknown}"
    );
    let bad_value = with(&["--param", "scale=klezmer"]);
    assert!(
        bad_value.contains("Dorian"),
        "lists the scales: {bad_value}"
    );
    let out_of_range = with(&["--param", "layer_1=99"]);
    assert!(out_of_range.contains("0 to 64"), "{out_of_range}");
    assert!(dir.files().is_empty(), "nothing written: {:?}", dir.files());

    let nowhere = dir.join("no/such/dir/x.wav");
    let mut args = base.to_vec();
    args[8] = s(&nowhere);
    let unwritable = fail(&dir, &args);
    assert!(unwritable.contains("no/such/dir"), "{unwritable}");

    // A good run, then damaged copies of it.
    succeed(&dir, &base);
    let run = dir.join("x.lcrun");
    let bytes = read(&run);
    let before = dir.files();
    for (name, data) in [
        ("truncated.lcrun", &bytes[..bytes.len() * 2 / 3]),
        ("empty.lcrun", &bytes[..0]),
        ("garbage.lcrun", &b"not a zip at all"[..]),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, data).expect("write");
        let message = fail(&dir, &["replay", s(&path)]);
        assert!(
            message.contains("damaged or truncated"),
            "{name}: {message}"
        );
        std::fs::remove_file(&path).expect("remove");
    }
    let future = dir.join("future.lcrun");
    edited_run(&run, &future, |m| m["version"] = 99.into());
    let message = fail(&dir, &["replay", s(&future)]);
    assert!(message.contains("version 99"), "{message}");
    std::fs::remove_file(&future).expect("remove");
    let missing = fail(&dir, &["replay", s(&dir.join("nope.lcrun"))]);
    assert!(missing.contains("nope.lcrun"), "{missing}");
    assert_eq!(dir.files(), before, "no partial outputs");
}

#[test]
fn a_song_steers_the_temperature_and_is_heard_in_the_mix() {
    let dir = TempDir::new("render-song");
    // Swells of a 220 Hz tone, 1.5 s up and down: the loudness keeps changing.
    let song = dir.join("song.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(&song, spec).expect("write the song");
    for i in 0..48_000 * 6 {
        let t = f64::from(i) / 48_000.0;
        let swell = 0.5 - 0.5 * (std::f64::consts::TAU * t / 3.0).cos();
        let x = (0.4 * swell * (std::f64::consts::TAU * 220.0 * t).sin()) as f32;
        writer.write_sample(x).expect("sample");
        writer.write_sample(x).expect("sample");
    }
    writer.finalize().expect("finish the song");

    render(&dir, "s", &["--song", s(&song)]);
    let mut npz =
        NpzReader::new(std::fs::File::open(dir.join("s.lcrun")).expect("open")).expect("npz");
    let lufs: Array1<f32> = npz.by_name("loudness_lufs").expect("lufs");
    let curve: Array1<f32> = npz.by_name("curve_temperature").expect("curve");
    let sampled: Array1<f32> = npz.by_name("temperature").expect("temperature");
    assert!(
        lufs.iter().any(|l| *l > -30.0),
        "the song is metered: {lufs}"
    );
    let (lo, hi) = curve
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), t| (a.min(*t), b.max(*t)));
    assert!(hi - lo > 0.3, "the swells move the temperature: {curve}");
    // Token i + lookahead (4) was sampled at the temperature the curve read when i was played.
    for i in 0..TOKENS - 4 {
        assert_eq!(sampled[i + 4], curve[i], "token {}", i + 4);
    }

    // The song is in the output: with the synth muted, the WAV is the song.
    render(&dir, "m", &["--song", s(&song), "--param", "synth_mute=on"]);
    let mut wav = hound::WavReader::open(dir.join("m.wav")).expect("read");
    let out: Vec<f32> = wav.samples::<f32>().map(|x| x.expect("sample")).collect();
    let mut reader = hound::WavReader::open(&song).expect("read the song");
    let input: Vec<f32> = reader
        .samples::<f32>()
        .map(|x| x.expect("sample"))
        .collect();
    let n = input.len().min(out.len());
    assert!(n > 48_000);
    assert_eq!(&out[..n], &input[..n]);

    let replayed = dir.join("replay.wav");
    succeed(
        &dir,
        &["replay", s(&dir.join("s.lcrun")), "--out", s(&replayed)],
    );
    assert!(
        read(&dir.join("s.wav")) == read(&replayed),
        "replay with the song"
    );
}

/// Scale "Model's Key": the key read from the model's norms (the tiny llama's is D Dorian, as
/// NumPy finds it in `tests/fixtures/weights/tiny-llama.json`) sets scale and root; the run file
/// keeps it, so replay plays the same notes without the model.
#[test]
fn models_key_plays_in_the_key_read_from_its_norms_and_replays_without_it() {
    let dir = TempDir::new("render-model-key");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("weights").join("tiny-llama.json")).expect("fixture"),
    )
    .expect("json");
    let (root, scale) = (
        reference["key"]["root"].as_u64().unwrap() as u8,
        Scale::from_name(reference["key"]["scale"].as_str().unwrap()).unwrap(),
    );
    let root = Root::from_pitch_class(root);
    render(
        &dir,
        "key",
        &[
            "--param",
            "scale=Model's Key",
            "--param",
            "root=C",
            "--param",
            "bass=Held Drone",
        ],
    );
    let run = dir.join("key.lcrun");
    let recorded = manifest(&run);
    assert_eq!(recorded["params"]["scale"]["text"], "Model's Key");
    let expected = latent_choir::music::scale::key_name(scale, root);
    assert_eq!(recorded["model_key"], expected.as_str());
    let midi = parse_midi(&read(&dir.join("key.mid")));
    let ons: Vec<u8> = midi.notes[1..4]
        .iter()
        .flatten()
        .filter(|n| n.3)
        .map(|n| n.2)
        .collect();
    assert!(ons.len() > 10);
    for key in &ons {
        assert!(scale.contains(*key, root), "{key} is not in {expected}");
    }
    assert!(
        midi.notes[4].iter().all(|n| n.2 % 12 == root.pitch_class()),
        "the drone holds the model's root, not the Root parameter (C): {:?}",
        midi.notes[4]
    );
    assert!(!midi.notes[4].is_empty());
    succeed(
        &dir,
        &["replay", s(&run), "--out", s(&dir.join("again.wav"))],
    );
    assert!(read(&dir.join("key.mid")) == read(&dir.join("again.mid")));
    assert!(read(&dir.join("key.wav")) == read(&dir.join("again.wav")));
}
