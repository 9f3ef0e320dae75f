//! Instruments "Spectral" through the CLAP host harness: the built plugin, its voices played
//! by oscillator banks of their layers' hidden states, bounces the tiny llama's piece with no
//! allocation on the audio thread (the bounce runs in a child process with
//! `assert_process_allocs`), finite and sounding, sample for sample what `latent-choir render`
//! makes with the same settings and what `replay` makes from its run file without the model;
//! the notes (MIDI out) are the built-in synth's, the sound is not.

mod common;

use std::path::Path;

use common::bounce::{Blocks, Segment, bounce_with};
use common::clap_host::OutNote;
use common::cli::{command, succeed};
use common::isolate::isolated;
use common::paths::fixture;
use common::temp::TempDir;
use serde_json::json;

/// 4 bars at 120 BPM, 2 tokens per beat.
const TOKENS: u64 = 32;
const STEP: u64 = 12_000;
const PROMPT: &str = "The forest was silent.";

fn wav(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).expect("a WAV");
    reader
        .samples::<f32>()
        .map(|s| s.expect("a float sample"))
        .collect()
}

fn ons(notes: &[(u64, OutNote)]) -> Vec<(u64, u8, u8)> {
    notes
        .iter()
        .filter_map(|(at, n)| match *n {
            OutNote::On { channel, key, .. } => Some((*at, channel, key)),
            OutNote::Off { .. } => None,
        })
        .collect()
}

fn same_bits(interleaved: &[f32], audio: &[Vec<f32>; 2], what: &str) {
    let frames = audio[0].len();
    assert!(interleaved.len() / 2 >= frames, "{what} covers the piece");
    for i in 0..frames {
        for (c, channel) in audio.iter().enumerate() {
            assert!(
                interleaved[2 * i + c].to_bits() == channel[i].to_bits(),
                "{what}: sample {i} channel {c}: {} vs {}",
                interleaved[2 * i + c],
                channel[i]
            );
        }
    }
}

#[test]
fn spectral_voices_bounce_as_they_render_and_replay() {
    isolated("spectral_voices_bounce_as_they_render_and_replay", || {
        let dir = TempDir::new("spectral-plugin");
        // SAFETY: set before the plugin (and any thread reading the environment) starts; the
        // CLI children inherit it, so all use the same freshly fitted map.
        unsafe { std::env::set_var("XDG_CACHE_HOME", dir.0.join("cache")) };
        let model = fixture("tiny-llama");
        succeed(
            command()
                .args(["render", "--prompt", PROMPT, "--bpm", "120", "--seed", "5"])
                .arg("--model")
                .arg(&model)
                .args(["--tokens", &TOKENS.to_string(), "--tokens-per-beat", "2"])
                .args(["--param", "instruments=Spectral"])
                .arg("--out")
                .arg(dir.join("piece.wav"))
                .arg("--run")
                .arg(dir.join("piece.lcrun")),
        );
        succeed(
            command()
                .arg("replay")
                .arg(dir.join("piece.lcrun"))
                .arg("--out")
                .arg(dir.join("replayed.wav")),
        );

        let fields = [
            ("model", json!(model.to_string_lossy())),
            ("prompt", json!(PROMPT)),
            ("seed", json!(5)),
        ];
        let piece = [Segment {
            beat: 0.0,
            tempo: 120.0,
            samples: TOKENS * STEP,
        }];
        // Instruments 2 = Spectral.
        let spectral = bounce_with(
            &fields,
            &[("Instruments", 2.0)],
            &piece,
            &[],
            Blocks::Fixed(512),
        );
        let random = bounce_with(
            &fields,
            &[("Instruments", 2.0)],
            &piece,
            &[],
            Blocks::Random(3),
        );
        let builtin = bounce_with(&fields, &[], &piece, &[], Blocks::Fixed(512));

        let audio = &spectral.audio;
        assert!(audio.iter().flatten().all(|v| v.is_finite()));
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        assert!(rms(&audio[0]) > 0.005, "it sounds: rms {}", rms(&audio[0]));
        assert_eq!(
            ons(&spectral.notes),
            ons(&builtin.notes),
            "MIDI out is the voices' notes"
        );
        assert!(ons(&spectral.notes).len() >= TOKENS as usize);
        assert_eq!(
            ons(&random.notes),
            ons(&spectral.notes),
            "whatever the block sizes"
        );
        let differs = audio[0]
            .iter()
            .zip(&builtin.audio[0])
            .filter(|(a, b)| (*a - *b).abs() > 1e-3)
            .count();
        assert!(
            differs > audio[0].len() / 4,
            "the banks, not the synth: {differs} samples differ"
        );

        same_bits(&wav(&dir.join("piece.wav")), audio, "render");
        same_bits(
            &wav(&dir.join("replayed.wav")),
            audio,
            "replay of the run file",
        );
    });
}
