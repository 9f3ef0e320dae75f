//! The plugin's offline bounce in a host and `latent-choir render` are the same engine: with the
//! same model, prompt, seed, tempo and parameters, the bounce through CLAP (render mode) and the
//! command-line render give the same notes on the same samples and the same audio, sample for
//! sample, over the whole piece.

mod common;

use std::process::Command;

use common::bounce::{Blocks, Segment, bounce_with};
use common::clap_host::OutNote;
use common::isolate::isolated;
use common::paths::fixture;
use common::temp::TempDir;
use serde_json::json;

/// Grid steps in the piece: 4 bars at 120 BPM and 2 tokens per beat.
const TOKENS: u64 = 32;
const STEP: u64 = 12_000;

#[test]
fn offline_bounce_equals_the_command_line_render() {
    isolated("offline_bounce_equals_the_command_line_render", || {
        let dir = TempDir::new("bounce-render");
        // SAFETY: set before the plugin (and any thread reading the environment) starts; the
        // CLI child inherits it, so both use the same freshly fitted map.
        unsafe { std::env::set_var("XDG_CACHE_HOME", dir.0.join("cache")) };
        let model = fixture("tiny-llama");
        let prompt = "The forest was silent.";

        let wav = dir.0.join("piece.wav");
        let midi = dir.0.join("piece.mid");
        let out = Command::new(env!("CARGO_BIN_EXE_latent-choir"))
            .args(["render", "--prompt", prompt, "--bpm", "120", "--seed", "9"])
            .arg("--model")
            .arg(&model)
            .args(["--tokens", &TOKENS.to_string(), "--sample-rate", "48000"])
            .args(["--tokens-per-beat", "2", "--param", "scale=Dorian"])
            .args(["--param", "ornaments=0"])
            .arg("--out")
            .arg(&wav)
            .arg("--midi")
            .arg(&midi)
            .arg("--run")
            .arg(dir.0.join("piece.lcrun"))
            .output()
            .expect("run latent-choir render");
        assert!(
            out.status.success(),
            "render failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let fields = [
            ("model", json!(model.to_string_lossy())),
            ("prompt", json!(prompt)),
            ("seed", json!(9)),
        ];
        let piece = [Segment {
            beat: 0.0,
            tempo: 120.0,
            samples: TOKENS * STEP,
        }];
        // Scale index 3 is Dorian; Tokens per Beat stays at its default, 2. No ornaments, so
        // every note sits on the grid, where MIDI ticks and samples agree exactly.
        let setup = [("Scale", 3.0), ("Ornaments", 0.0)];
        let bounce = bounce_with(&fields, &setup, &piece, &[], Blocks::Fixed(512));

        // Notes: every note-on of the bounce, as (grid step, channel, key), against the file's.
        let bounced: Vec<(u64, u8, u8)> = bounce
            .notes
            .iter()
            .filter_map(|(at, note)| match *note {
                OutNote::On { channel, key, .. } => {
                    assert_eq!(at % STEP, 0, "note-on off the grid at sample {at}");
                    Some((at / STEP, channel, key))
                }
                OutNote::Off { .. } => None,
            })
            .collect();
        let bytes = std::fs::read(&midi).expect("the render wrote MIDI");
        let smf = midly::Smf::parse(&bytes).expect("the MIDI parses");
        let ppq = match smf.header.timing {
            midly::Timing::Metrical(ppq) => u64::from(ppq.as_int()),
            other => panic!("timing {other:?}"),
        };
        let mut rendered: Vec<(u64, u8, u8)> = Vec::new();
        for track in &smf.tracks {
            let mut ticks = 0u64;
            for event in track {
                ticks += u64::from(event.delta.as_int());
                if let midly::TrackEventKind::Midi {
                    channel,
                    message: midly::MidiMessage::NoteOn { key, vel },
                } = event.kind
                    && vel.as_int() > 0
                {
                    // Two steps per beat.
                    assert_eq!(ticks % (ppq / 2), 0, "note-on off the grid at tick {ticks}");
                    rendered.push((ticks / (ppq / 2), channel.as_int(), key.as_int()));
                }
            }
        }
        let mut sorted_bounce = bounced.clone();
        sorted_bounce.sort_unstable();
        rendered.sort_unstable();
        assert!(
            bounced.len() >= TOKENS as usize,
            "{} note-ons",
            bounced.len()
        );
        assert_eq!(sorted_bounce, rendered, "the same notes on the same steps");

        // Audio: the render's WAV over the piece equals the bounce, sample for sample.
        let mut reader = hound::WavReader::open(&wav).expect("the render wrote a WAV");
        assert_eq!(reader.spec().channels, 2);
        let samples: Vec<f32> = reader
            .samples::<f32>()
            .map(|s| s.expect("a float sample"))
            .collect();
        let frames = bounce.audio[0].len();
        assert!(samples.len() / 2 >= frames, "the render covers the piece");
        for i in 0..frames {
            for (c, channel) in bounce.audio.iter().enumerate() {
                let (rendered, bounced) = (samples[2 * i + c], channel[i]);
                assert!(
                    rendered.to_bits() == bounced.to_bits(),
                    "sample {i} channel {c}: render {rendered}, bounce {bounced}"
                );
            }
        }
    });
}
