//! The song drives the model from the command line: `analyze` prints the curve and
//! `generate --song` samples each token at the curve's temperature, so a loud, changing song
//! and a quiet, steady one make different text from the same seed, and the same song makes the
//! same text twice.

mod common;

use std::path::Path;

use common::cli::{command, fail, succeed};
use common::paths::fixture;
use common::signal::{sine, write_wav};
use common::temp::TempDir;

const RATE: u32 = 48_000;

/// The token rate and temperature range both commands read the song with.
const CURVE: [&str; 6] = [
    "--tokens-per-second",
    "4",
    "--t-min",
    "0.2",
    "--t-max",
    "2.0",
];

/// 8 s of 440 Hz: `steady` at −40 dBFS throughout, otherwise jumping between −40 and −6 dBFS
/// every half second.
fn song(path: &Path, steady: bool) {
    let frames = 8 * RATE as usize;
    let mut left = sine(440.0, f64::from(RATE), frames, 1.0);
    for (i, x) in left.iter_mut().enumerate() {
        let loud = !steady && (i / (RATE as usize / 2)) % 2 == 1;
        *x *= if loud { 0.5 } else { 0.01 };
    }
    let right = left.clone();
    write_wav(path, RATE, &left, &right);
}

fn generate(song: &Path) -> String {
    let mut command = command();
    command
        .args([
            "generate",
            "--raw",
            "--prompt",
            "Once upon a time",
            "--seed",
            "7",
        ])
        .arg("--model")
        .arg(fixture("tiny-llama"))
        .arg("--song")
        .arg(song)
        .args(CURVE);
    String::from_utf8(succeed(&mut command).stdout).expect("UTF-8 text")
}

fn temperatures(song: &Path) -> Vec<f64> {
    let out = succeed(command().arg("analyze").arg(song).args(CURVE));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("analyze prints JSON");
    assert_eq!(doc["sample_rate"], RATE);
    doc["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["temperature"].as_f64().expect("temperature"))
        .collect()
}

#[test]
fn loud_and_quiet_songs_steer_the_same_seed_apart() {
    let dir = TempDir::new("song-steer");
    let (loud, quiet) = (dir.join("loud.wav"), dir.join("quiet.wav"));
    song(&loud, false);
    song(&quiet, true);

    // The curve itself: a steady song settles to T min once the meter's start-up rise has
    // passed (a few seconds of smoothing), a jumping one keeps heating the model.
    let (hot, calm) = (temperatures(&loud), temperatures(&quiet));
    assert_eq!(hot.len(), 33, "8 s at 4 tokens/s, both ends included");
    assert_eq!(hot.len(), calm.len());
    assert!(
        calm[16..].iter().all(|t| (t - 0.2).abs() < 0.01),
        "{calm:?}"
    );
    let hot_mean = hot[16..].iter().sum::<f64>() / (hot.len() - 16) as f64;
    assert!(hot_mean > 0.6, "a jumping song heats the model: {hot:?}");
    assert!(hot.iter().chain(&calm).all(|t| (0.2..=2.0).contains(t)));

    let first = generate(&loud);
    let again = generate(&loud);
    let other = generate(&quiet);
    assert!(!first.trim().is_empty(), "the model said something");
    assert_eq!(first, again, "the same song and seed give the same text");
    assert_ne!(
        first, other,
        "a loud and a quiet song steer the same seed apart"
    );
}

#[test]
fn a_missing_song_is_a_clear_error() {
    let stderr = fail(
        command()
            .args([
                "generate",
                "--prompt",
                "hi",
                "--song",
                "/nonexistent/song.wav",
            ])
            .arg("--model")
            .arg(fixture("tiny-llama")),
    );
    assert!(stderr.contains("song.wav"), "names the file: {stderr}");
}
