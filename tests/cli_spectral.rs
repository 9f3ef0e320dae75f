//! `latent-choir spectral` as a user runs it, on the tiny llama fixture with its own map cache,
//! against `tools/reference/spectral_reference.py` (transformers and NumPy,
//! `tests/fixtures/spectral/tiny-llama.json`):
//!
//! * layers: the WAV's partials, measured by a windowed DFT of every slice's steady middle,
//!   have the amplitudes of the reference's hidden-state norms (one gain for all) and the
//!   phases the sidecar names; the same command gives the same bytes;
//! * dataset: the dimensions it picks are the reference's highest-variance ones, and each
//!   prompt's slice sounds |activation| with the sign as phase;
//! * opera: a finite stereo render at −1 dBFS with the voices in the key;
//! * bad arguments are clear errors.

mod common;

use std::f64::consts::{PI, TAU};
use std::path::Path;
use std::process::Command;

use common::cli;
use common::paths::fixture;
use common::temp::TempDir;
use serde_json::Value;

fn spectral(dir: &TempDir, args: &[&str]) -> Command {
    let mut command = cli::command();
    command
        .arg("spectral")
        .arg("--model")
        .arg(fixture("tiny-llama"))
        .args(args)
        .env("XDG_CACHE_HOME", dir.join("cache"));
    command
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture("spectral").join("tiny-llama.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn read_wav(path: &Path) -> (u32, Vec<f32>, Vec<f32>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let rate = reader.spec().sample_rate;
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<f32> = reader.samples::<f32>().map(Result::unwrap).collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (rate, left, right)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f64s(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// Amplitude and phase (of `a·sin(2π f t + φ)`, t from `x[0]`) of the sinusoid at `f` in `x`,
/// by a Hann-windowed correlation.
fn sinusoid_at(x: &[f32], f: f64, rate: u32) -> (f64, f64) {
    let n = x.len() as f64;
    let (mut re, mut im, mut weight) = (0.0f64, 0.0f64, 0.0f64);
    for (t, &v) in x.iter().enumerate() {
        let w = 0.5 - 0.5 * (TAU * t as f64 / n).cos();
        let angle = TAU * f * t as f64 / f64::from(rate);
        re += f64::from(v) * w * angle.cos();
        im -= f64::from(v) * w * angle.sin();
        weight += w;
    }
    // Σ a·sin(ωt + φ)·e^{−iωt} ≈ (a/2)·e^{i(φ − π/2)}·Σw.
    let amplitude = 2.0 * re.hypot(im) / weight;
    let phase = im.atan2(re) + PI / 2.0;
    (amplitude, phase)
}

fn wrapped(a: f64) -> f64 {
    (a + PI).rem_euclid(TAU) - PI
}

#[test]
fn layers_mode_sounds_each_tokens_norm_at_its_frequency_with_its_phase() {
    let dir = TempDir::new("cli-spectral-layers");
    let reference = reference();
    let layers = &reference["layers"];
    let prompt = layers["prompt"].as_str().unwrap();
    let wav = dir.join("layers.wav");
    cli::succeed(&mut spectral(
        &dir,
        &["--mode", "layers", "--prompt", prompt, "--out", s(&wav)],
    ));
    let sidecar = read_json(&dir.join("layers.json"));
    assert_eq!(sidecar["mode"], "layers");
    let partials = sidecar["partials"].as_array().unwrap();
    let ids: Vec<u64> = partials
        .iter()
        .map(|p| p["token"]["id"].as_u64().unwrap())
        .collect();
    let expected_ids: Vec<u64> = layers["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(ids, expected_ids, "every token but the first, in order");
    let norms: Vec<Vec<f64>> = layers["norms"]
        .as_array()
        .unwrap()
        .iter()
        .map(f64s)
        .collect();
    let slices = sidecar["slices"].as_array().unwrap();
    assert_eq!(slices.len(), norms.len(), "one slice per hidden state");

    let (rate, left, right) = read_wav(&wav);
    assert_eq!(left, right, "the layers render is mono");
    let peak = left.iter().fold(0.0f32, |p, v| p.max(v.abs()));
    assert!((peak - 0.891_25).abs() < 1e-3, "peak {peak}");
    let gain = sidecar["gain"].as_f64().unwrap();
    let slice = (sidecar["slice_seconds"].as_f64().unwrap() * f64::from(rate)).round() as usize;
    let fade = (sidecar["crossfade_seconds"].as_f64().unwrap() * f64::from(rate)).round() as usize;
    let largest = norms.iter().flatten().fold(0.0f64, |m, &v| m.max(v));
    let mut checked = 0;
    for (layer, slice_json) in slices.iter().enumerate() {
        assert_eq!(slice_json["layer"].as_u64(), Some(layer as u64));
        let phases = f64s(&slice_json["phases"]);
        // The steady middle, away from both crossfades.
        let first = layer * slice + fade;
        let part = &left[first..first + slice - fade];
        // Time since the slice started at the part's first sample.
        let offset = (first - (layer * slice + fade / 2)) as f64 / f64::from(rate);
        for (k, partial) in partials.iter().enumerate() {
            let f = partial["frequency_hz"].as_f64().unwrap();
            let (amplitude, phase) = sinusoid_at(part, f, rate);
            let expected = gain * norms[layer][k];
            assert!(
                (amplitude - expected).abs() <= 2e-3 * gain * largest,
                "layer {layer} token {k}: amplitude {amplitude}, norm × gain {expected}"
            );
            if norms[layer][k] > 0.2 * largest {
                let at_start = wrapped(phase - TAU * f * offset);
                assert!(
                    wrapped(at_start - phases[k]).abs() < 0.02,
                    "layer {layer} token {k}: phase {at_start} vs {}",
                    phases[k]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > norms.len() * 5, "{checked} phases checked");

    // The same command, the same bytes.
    let again = dir.join("again.wav");
    cli::succeed(&mut spectral(
        &dir,
        &["--mode", "layers", "--prompt", prompt, "--out", s(&again)],
    ));
    assert_eq!(std::fs::read(&wav).unwrap(), std::fs::read(&again).unwrap());
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("prompt");
        v
    };
    assert_eq!(
        strip(sidecar),
        strip(read_json(&dir.join("again.json"))),
        "the sidecar too"
    );
}

#[test]
fn dataset_mode_hears_the_dimensions_of_highest_variance_as_the_reference_picks_them() {
    let dir = TempDir::new("cli-spectral-dataset");
    let reference = reference();
    let dataset = &reference["dataset"];
    let prompts: Vec<&str> = dataset["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let file = dir.join("prompts.txt");
    std::fs::write(&file, prompts.join("\n\n") + "\n").unwrap();
    let layer = dataset["layer"].as_u64().unwrap().to_string();
    let dims: Vec<u64> = dataset["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let wav = dir.join("set.wav");
    cli::succeed(&mut spectral(
        &dir,
        &[
            "--mode",
            "dataset",
            "--prompts",
            s(&file),
            "--layer",
            &layer,
            "--dims",
            &dims.len().to_string(),
            "--slice",
            "0.25",
            "--out",
            s(&wav),
        ],
    ));
    let sidecar = read_json(&dir.join("set.json"));
    let picked: Vec<u64> = sidecar["partials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["dimension"]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        picked, dims,
        "the reference's highest-variance dimensions, in order"
    );
    let variance = f64s(&dataset["variance"]);
    for (p, v) in sidecar["partials"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&variance)
    {
        let got = p["dimension"]["variance"].as_f64().unwrap();
        assert!((got - v).abs() <= 1e-4 * v.abs().max(1e-3), "{got} vs {v}");
    }
    let values: Vec<Vec<f64>> = dataset["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(f64s)
        .collect();
    let slices = sidecar["slices"].as_array().unwrap();
    assert_eq!(
        slices.len(),
        prompts.len(),
        "one slice per prompt, blank lines skipped"
    );
    let largest = values.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let (rate, left, _) = read_wav(&wav);
    let gain = sidecar["gain"].as_f64().unwrap();
    let slice = (0.25 * f64::from(rate)).round() as usize;
    let fade = (sidecar["crossfade_seconds"].as_f64().unwrap() * f64::from(rate)).round() as usize;
    for (line, (slice_json, row)) in slices.iter().zip(&values).enumerate() {
        assert_eq!(slice_json["prompt"]["text"], prompts[line]);
        let amplitudes = f64s(&slice_json["amplitudes"]);
        let phases = f64s(&slice_json["phases"]);
        let first = line * slice + fade;
        let part = &left[first..first + slice - fade];
        let offset = (first - (line * slice + fade / 2)) as f64 / f64::from(rate);
        for (k, &value) in row.iter().enumerate() {
            assert!((amplitudes[k] - value.abs()).abs() <= 1e-4 * largest);
            let sign = if value < 0.0 { PI } else { 0.0 };
            assert!((phases[k] - sign).abs() < 1e-6, "the sign as phase");
            let f = sidecar["partials"][k]["frequency_hz"].as_f64().unwrap();
            let (amplitude, phase) = sinusoid_at(part, f, rate);
            assert!(
                (amplitude - gain * value.abs()).abs() <= 3e-3 * gain * largest,
                "prompt {line} dim {k}: {amplitude} vs {}",
                gain * value.abs()
            );
            if value.abs() > 0.2 * largest {
                let at_start = wrapped(phase - TAU * f * offset);
                assert!(
                    wrapped(at_start - phases[k]).abs() < 0.05,
                    "sign of prompt {line} dim {k}"
                );
            }
        }
    }
}

#[test]
fn opera_sings_in_stereo_at_minus_one_dbfs_in_its_key() {
    let dir = TempDir::new("cli-spectral-opera");
    let wav = dir.join("opera.wav");
    cli::succeed(&mut spectral(
        &dir,
        &[
            "--mode",
            "opera",
            "--prompt",
            "A choir of small numbers",
            "--key",
            "A Harmonic minor",
            "--slice",
            "0.3",
            "--out",
            s(&wav),
        ],
    ));
    let (_, left, right) = read_wav(&wav);
    assert!(left.iter().chain(&right).all(|v| v.is_finite()));
    let peak = left
        .iter()
        .chain(&right)
        .fold(0.0f32, |p, v| p.max(v.abs()));
    assert!((peak - 0.891_25).abs() < 1e-3, "peak {peak}");
    assert_ne!(left, right, "the voices stand across the stereo field");
    let sidecar = read_json(&dir.join("opera.json"));
    assert_eq!(sidecar["key"], "A Harmonic minor");
    // A harmonic minor: A B C D E F G#.
    let allowed = [9, 11, 0, 2, 4, 5, 8];
    for partial in sidecar["partials"].as_array().unwrap() {
        let f = partial["frequency_hz"].as_f64().unwrap();
        let pitch = 69.0 + 12.0 * (f / 440.0).log2();
        assert!((pitch - pitch.round()).abs() < 1e-3);
        let class = (pitch.round() as i64).rem_euclid(12);
        assert!(
            allowed.contains(&class),
            "{pitch} is not in A harmonic minor"
        );
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let dir = TempDir::new("cli-spectral-errors");
    let out = dir.join("x.wav");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    let binary = dir.join("binary.txt");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let cases: [(&[&str], &str); 7] = [
        (
            &["--mode", "dataset", "--prompts", s(&empty)],
            "no prompts (the file is empty",
        ),
        (
            &["--mode", "dataset", "--prompts", s(&binary)],
            "not a UTF-8 text file",
        ),
        (&["--mode", "dataset", "--layer", "7"], "out of range"),
        (&["--mode", "layers", "--prompt", "  "], "--prompt is empty"),
        (&["--mode", "layers"], "give the prompt"),
        (&["--mode", "chorale", "--prompt", "x"], "not a mode"),
        (
            &["--mode", "opera", "--prompt", "x", "--key", "H Major"],
            "give a root and a scale",
        ),
    ];
    for (args, expected) in cases {
        let message = cli::fail(spectral(&dir, args).arg("--out").arg(&out));
        assert!(
            message.contains(expected),
            "{args:?}: expected {expected:?} in {message:?}"
        );
    }
    let message = cli::fail(
        spectral(&dir, &["--mode", "dataset", "--layer", "7"])
            .arg("--out")
            .arg(&out),
    );
    assert!(message.contains("0..=2"), "the valid range: {message}");
    let message = cli::fail(&mut spectral(
        &dir,
        &[
            "--mode",
            "layers",
            "--prompt",
            "x",
            "--out",
            s(&dir.join("x.mp3")),
        ],
    ));
    assert!(message.contains("give a .wav file"), "{message}");
    assert!(!out.exists(), "nothing written on an error");
}
