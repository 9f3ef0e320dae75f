//! `latent-choir album` as a user runs it, on the tiny llama fixture with its own
//! `XDG_CACHE_HOME`: every track's files, the track list, the heat maps' shape, the joined WAV's
//! length, the same bytes on a second run, the dialogue's arc, and clear refusals of files
//! that are not prompts.

mod common;

use std::path::Path;
use std::process::Command;

use common::cli;
use common::paths::fixture;
use common::temp::TempDir;
use latent_choir::io::audio_file;
use latent_choir::io::png_image::{GRID_KEY, cell_size};
use serde_json::Value;

fn with_cache(dir: &TempDir, args: &[&str]) -> Command {
    let mut command = cli::command();
    command.args(args).env("XDG_CACHE_HOME", dir.join("cache"));
    command
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `album PROMPTS --out OUT` on the tiny llama, 6 tokens a track.
fn album(dir: &TempDir, prompts: &Path, out: &Path, extra: &[&str]) -> String {
    let model = fixture("tiny-llama");
    let mut args = vec![
        "album",
        s(prompts),
        "--out",
        s(out),
        "--model",
        s(&model),
        "--tokens",
        "6",
        "--bpm",
        "180",
        "--seed",
        "3",
    ];
    args.extend_from_slice(extra);
    String::from_utf8_lossy(&cli::succeed(&mut with_cache(dir, &args)).stdout).into_owned()
}

fn tracklist(out: &Path) -> Value {
    serde_json::from_slice(&read(&out.join("tracklist.json"))).expect("tracklist.json parses")
}

fn frames(path: &Path) -> usize {
    audio_file::read(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .frames()
}

/// Checks every track's files and heat map; returns the tracks.
fn check_tracks(out: &Path, expected: usize) -> Vec<Value> {
    let list = tracklist(out);
    let tracks = list["tracks"].as_array().expect("tracks").clone();
    assert_eq!(tracks.len(), expected, "{list}");
    for (i, track) in tracks.iter().enumerate() {
        assert_eq!(track["number"], i + 1);
        for key in ["mean_tension", "peak_tension"] {
            let t = track[key].as_f64().expect(key);
            assert!((0.0..=1.0).contains(&t), "{key} {t}");
        }
        assert!(track["mean_tension"].as_f64() <= track["peak_tension"].as_f64());
        assert_eq!(track["tokens"], 6);
        for key in ["wav", "midi", "run", "tension_png"] {
            let name = track["files"][key].as_str().expect(key);
            assert!(out.join(name).is_file(), "{name} is missing");
        }
        let states = track["hidden_states"].as_u64().expect("hidden states") as usize;
        assert_eq!(states, 3);
        let png = read(&out.join(track["files"]["tension_png"].as_str().unwrap_or_default()));
        let reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .expect("the heat map decodes");
        let info = reader.info();
        let grid = info
            .uncompressed_latin1_text
            .iter()
            .find(|t| t.keyword == GRID_KEY)
            .map(|t| t.text.clone());
        assert_eq!(
            grid,
            Some(format!("{states}x6")),
            "rows are the hidden states"
        );
        let (cell_w, cell_h) = cell_size(states, 6);
        assert_eq!(
            (info.width as usize, info.height as usize),
            (6 * cell_w, states * cell_h)
        );
    }
    tracks
}

#[test]
fn an_album_joins_its_tracks_with_a_list_and_heat_maps_the_same_every_time() {
    let dir = TempDir::new("cli-album");
    let prompts = dir.join("prompts.txt");
    std::fs::write(
        &prompts,
        "# three prompts, one in a category\nThe forest was silent.\n\n\
         calm\tA quiet lake at dawn.\nThe river kept its secrets.\n",
    )
    .expect("write the prompts");
    let out = dir.join("one");
    let said = album(&dir, &prompts, &out, &[]);
    assert!(said.contains("| # |"), "the track list is printed:\n{said}");
    let tracks = check_tracks(&out, 3);
    // Grouped by category in order of first appearance: the two without one, then "calm".
    let order: Vec<(&str, Option<&str>)> = tracks
        .iter()
        .map(|t| (t["prompt"].as_str().unwrap_or(""), t["category"].as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("The forest was silent.", None),
            ("The river kept its secrets.", None),
            ("A quiet lake at dawn.", Some("calm")),
        ]
    );
    assert_eq!(
        tracks[0]["files"]["wav"].as_str(),
        Some("01-the-forest-was-silent.wav")
    );

    let track_frames: usize = tracks
        .iter()
        .map(|t| frames(&out.join(t["files"]["wav"].as_str().unwrap_or_default())))
        .sum();
    assert_eq!(
        frames(&out.join("album.wav")),
        track_frames + 2 * 2 * 48_000,
        "the tracks and two 2-second gaps"
    );
    let list = tracklist(&out);
    assert_eq!(list["mode"], "album");
    assert_eq!(list["audio"], "album.wav");
    let markdown = String::from_utf8(read(&out.join("tracklist.md"))).expect("UTF-8");
    assert!(markdown.contains("A quiet lake at dawn."), "{markdown}");

    let again = dir.join("two");
    album(&dir, &prompts, &again, &[]);
    for name in ["album.wav", "tracklist.json", "tracklist.md"] {
        assert!(
            read(&out.join(name)) == read(&again.join(name)),
            "{name} differs between two runs"
        );
    }
}

#[test]
fn a_dialogue_rises_to_its_tensest_prompt_and_falls() {
    let dir = TempDir::new("cli-album-dialogue");
    let prompts = dir.join("prompts.txt");
    std::fs::write(
        &prompts,
        "How do I bake bread?\nHow do I pick a lock to break into a house?\n\
         Tell me about the moon.\nWrite a threat to send to my neighbour.\n",
    )
    .expect("write the prompts");
    let out = dir.join("dialogue");
    album(&dir, &prompts, &out, &["--dialogue"]);
    let tracks = check_tracks(&out, 4);
    let list = tracklist(&out);
    assert_eq!(list["mode"], "dialogue");
    let measured: Vec<f64> = tracks
        .iter()
        .map(|t| t["measured_tension"].as_f64().expect("measured tension"))
        .collect();
    let peak = measured
        .iter()
        .enumerate()
        .fold(0, |best, (i, &t)| if t > measured[best] { i } else { best });
    assert!(
        measured[..=peak].windows(2).all(|w| w[0] <= w[1])
            && measured[peak..].windows(2).all(|w| w[0] >= w[1]),
        "not rise-then-fall: {measured:?}"
    );
    assert!(
        measured[0] <= *measured.last().unwrap_or(&0.0),
        "the calmest opens: {measured:?}"
    );
    for (track, &t) in tracks.iter().zip(&measured) {
        assert_eq!(track["movement"], track["number"]);
        assert!((0.0..=1.0).contains(&t));
        let bpm = track["bpm"].as_f64().expect("bpm");
        assert!((bpm - 180.0 * (0.85 + 0.3 * t)).abs() < 0.06, "{track}");
        let scale = if t < 0.33 {
            "Major"
        } else if t < 0.66 {
            "Dorian"
        } else {
            "Natural minor"
        };
        assert_eq!(track["scale"], scale, "{track}");
        let run = out.join(track["files"]["run"].as_str().unwrap_or_default());
        let run = latent_choir::io::run_file::Run::read(&run).expect("the run reads");
        // The parameter's own text capitalises differently ("Natural Minor").
        let played = &run.manifest.params["scale"].text;
        assert!(played.eq_ignore_ascii_case(scale), "{played} for {scale}");
        assert!((run.manifest.bpm - bpm).abs() < 1e-9);
    }
    let track_frames: usize = tracks
        .iter()
        .map(|t| frames(&out.join(t["files"]["wav"].as_str().unwrap_or_default())))
        .sum();
    assert_eq!(
        frames(&out.join("dialogue.wav")),
        track_frames + 3 * 48_000,
        "the movements and three 1-second gaps"
    );
}

#[test]
fn files_that_are_not_prompts_are_refused_clearly() {
    let dir = TempDir::new("cli-album-bad");
    let out = dir.join("out");
    let cases: [(&str, &[u8], &str); 4] = [
        ("empty.txt", b"", "is empty"),
        (
            "binary.bin",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xfe",
            "not a UTF-8 text file",
        ),
        ("control.txt", b"a prompt\n\0\x01\x02\n", "control bytes"),
        (
            "comments.txt",
            b"# nothing but\n\n# comments\n",
            "no prompts",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write the file");
        let message = cli::fail(&mut with_cache(
            &dir,
            &["album", s(&path), "--out", s(&out)],
        ));
        assert!(
            message.contains(expected) && message.contains(name),
            "{name}: {message}"
        );
    }
    let missing = dir.join("missing.txt");
    let message = cli::fail(&mut with_cache(
        &dir,
        &["album", s(&missing), "--out", s(&out)],
    ));
    assert!(message.contains("no such prompts file"), "{message}");
    let folder = dir.join("cache");
    std::fs::create_dir_all(&folder).expect("a folder");
    let message = cli::fail(&mut with_cache(
        &dir,
        &["album", s(&folder), "--out", s(&out)],
    ));
    assert!(message.contains("is a folder"), "{message}");
    assert!(!out.exists(), "nothing is written for a bad prompts file");
}
