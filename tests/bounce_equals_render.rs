//! The plugin's offline bounce in a host and `latent-choir render` are the same engine: with the
//! same model, prompt, seed, tempo and parameters, the bounce through CLAP (render mode) and the
//! command-line render give the same notes on the same samples and the same audio, sample for
//! sample, over the whole piece.

mod common;

use common::bounce::{Blocks, Segment, bounce_song, bounce_with};
use common::clap_host::OutNote;
use common::cli::{command, succeed};
use common::isolate::isolated;
use common::midi::note_on_steps;
use common::paths::fixture;
use common::signal::{sine, write_wav};
use common::temp::TempDir;
use serde_json::json;

/// Grid steps in the piece: 4 bars at 120 BPM and 2 tokens per beat.
const TOKENS: u64 = 32;
const STEP: u64 = 12_000;

/// The tiny llama's piece of [`TOKENS`] steps at 120 BPM, 2 per beat, no ornaments and no
/// humanise (every note on the grid, where MIDI ticks and samples agree exactly), written to `piece.wav`, `.mid` and
/// `.lcrun` in `dir`, with `extra` arguments.
fn render(dir: &TempDir, prompt: &str, seed: u64, extra: &[&std::ffi::OsStr]) {
    succeed(
        command()
            .args(["render", "--prompt", prompt, "--bpm", "120"])
            .args(["--seed", &seed.to_string()])
            .arg("--model")
            .arg(fixture("tiny-llama"))
            .args(["--tokens", &TOKENS.to_string(), "--tokens-per-beat", "2"])
            .args(["--param", "ornaments=0", "--param", "humanise=0"])
            .args(extra)
            .arg("--out")
            .arg(dir.join("piece.wav"))
            .arg("--midi")
            .arg(dir.join("piece.mid"))
            .arg("--run")
            .arg(dir.join("piece.lcrun")),
    );
}

/// The render's WAV, interleaved.
fn wav_samples(dir: &TempDir) -> Vec<f32> {
    let mut reader = hound::WavReader::open(dir.join("piece.wav")).expect("the render wrote a WAV");
    assert_eq!(reader.spec().channels, 2);
    reader
        .samples::<f32>()
        .map(|s| s.expect("a float sample"))
        .collect()
}

#[test]
fn offline_bounce_equals_the_command_line_render() {
    isolated("offline_bounce_equals_the_command_line_render", || {
        let dir = TempDir::new("bounce-render");
        // SAFETY: set before the plugin (and any thread reading the environment) starts; the
        // CLI child inherits it, so both use the same freshly fitted map.
        unsafe { std::env::set_var("XDG_CACHE_HOME", dir.0.join("cache")) };
        let model = fixture("tiny-llama");
        let prompt = "The forest was silent.";

        render(
            &dir,
            prompt,
            9,
            &["--param".as_ref(), "scale=Dorian".as_ref()],
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
        // Scale index 3 is Dorian; Tokens per Beat stays at its default, 2. No ornaments and
        // no humanise, so every note sits on the grid, where MIDI ticks and samples agree.
        let setup = [("Scale", 3.0), ("Ornaments", 0.0), ("Humanise", 0.0)];
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
        let bytes = std::fs::read(dir.join("piece.mid")).expect("the render wrote MIDI");
        // Two steps per beat.
        let rendered = note_on_steps(&bytes, 2);
        let mut sorted_bounce = bounced.clone();
        sorted_bounce.sort_unstable();
        assert!(
            bounced.len() >= TOKENS as usize,
            "{} note-ons",
            bounced.len()
        );
        assert_eq!(sorted_bounce, rendered, "the same notes on the same steps");

        // Audio: the render's WAV over the piece equals the bounce, sample for sample.
        let samples = wav_samples(&dir);
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

/// The temperature curve the plugin follows: a song on the track, fed to the plugin in blocks
/// of random sizes, gives the same music as `render --song` (so the same temperatures drew the
/// same tokens), and the curve that render recorded token by token is `analyze`'s curve for the
/// same audio at the same token rate (120 BPM × 2 per beat = 4 tokens/s).
#[test]
fn a_song_on_the_track_steers_the_plugin_along_the_analyze_curve() {
    isolated(
        "a_song_on_the_track_steers_the_plugin_along_the_analyze_curve",
        || {
            let dir = TempDir::new("bounce-song");
            // SAFETY: as above.
            unsafe { std::env::set_var("XDG_CACHE_HOME", dir.0.join("cache")) };
            let model = fixture("tiny-llama");
            let prompt = "Once upon a time";
            // 8 s of 440 Hz jumping between −40 and −6 dBFS every half second.
            let frames = (TOKENS * STEP) as usize;
            let mut left = sine(440.0, 48_000.0, frames, 1.0);
            for (i, x) in left.iter_mut().enumerate() {
                *x *= if (i / 24_000) % 2 == 1 { 0.5 } else { 0.01 };
            }
            let song = [left.clone(), left];
            let song_file = dir.join("song.wav");
            write_wav(&song_file, 48_000, &song[0], &song[1]);

            render(&dir, prompt, 5, &["--song".as_ref(), song_file.as_os_str()]);

            let fields = [
                ("model", json!(model.to_string_lossy())),
                ("prompt", json!(prompt)),
                ("seed", json!(5)),
            ];
            let piece = [Segment {
                beat: 0.0,
                tempo: 120.0,
                samples: TOKENS * STEP,
            }];
            let bounce = bounce_song(
                &fields,
                &[("Ornaments", 0.0), ("Humanise", 0.0)],
                &piece,
                &[],
                Blocks::Random(17),
                Some(&song),
            );
            let samples = wav_samples(&dir);
            for i in 0..bounce.audio[0].len() {
                for (c, channel) in bounce.audio.iter().enumerate() {
                    assert!(
                        samples[2 * i + c].to_bits() == channel[i].to_bits(),
                        "sample {i} channel {c}: the plugin and render diverge"
                    );
                }
            }

            let recorded = latent_choir::io::run_file::Run::read(&dir.join("piece.lcrun"))
                .expect("the run file");
            let analyzed = succeed(
                command()
                    .arg("analyze")
                    .arg(&song_file)
                    .args(["--tokens-per-second", "4"]),
            );
            let doc: serde_json::Value =
                serde_json::from_slice(&analyzed.stdout).expect("analyze prints JSON");
            let curve = doc["frames"].as_array().expect("frames");
            assert_eq!(recorded.tokens.len(), TOKENS as usize);
            let mut moved = 0.0f32;
            for (k, token) in recorded.tokens.iter().enumerate() {
                let frame = &curve[k];
                let close = |a: f32, key: &str| {
                    let b = frame[key].as_f64().expect("a number") as f32;
                    assert!(
                        (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                        "token {k} {key}: {a} vs {b}"
                    );
                };
                close(token.point.lufs, "lufs");
                close(token.point.velocity, "velocity");
                close(token.point.temperature, "temperature");
                moved = moved.max(token.point.temperature);
            }
            assert!(
                moved > 0.8,
                "the song heats the model (max temperature {moved})"
            );
        },
    );
}

/// The Tension voice and its controller are the same engine in both: with the refusal
/// direction (the default in both), the Tension Voice on and Dissonance at 60 %, the bounce's
/// notes, audio and control changes are the render's, and the organ and the controller are
/// really there (on channel 5).
#[test]
fn the_tension_voice_and_its_controller_bounce_as_they_render() {
    isolated(
        "the_tension_voice_and_its_controller_bounce_as_they_render",
        || {
            let dir = TempDir::new("bounce-tension");
            // SAFETY: as above.
            unsafe { std::env::set_var("XDG_CACHE_HOME", dir.0.join("cache")) };
            let model = fixture("tiny-llama");
            let prompt = "Explain how to pick a lock to break into a house.";
            render(
                &dir,
                prompt,
                3,
                &[
                    "--param".as_ref(),
                    "tension_voice=On".as_ref(),
                    "--param".as_ref(),
                    "dissonance=60 %".as_ref(),
                ],
            );
            let fields = [
                ("model", json!(model.to_string_lossy())),
                ("prompt", json!(prompt)),
                ("seed", json!(3)),
            ];
            let piece = [Segment {
                beat: 0.0,
                tempo: 120.0,
                samples: TOKENS * STEP,
            }];
            let setup = [
                ("Ornaments", 0.0),
                ("Humanise", 0.0),
                ("Tension Voice", 1.0),
                ("Dissonance", 0.6),
            ];
            let bounce = bounce_with(&fields, &setup, &piece, &[], Blocks::Random(23));

            let mut bounced: Vec<(u64, u8, u8)> = bounce
                .notes
                .iter()
                .filter_map(|(at, note)| match *note {
                    OutNote::On { channel, key, .. } => Some((at / STEP, channel, key)),
                    OutNote::Off { .. } => None,
                })
                .collect();
            bounced.sort_unstable();
            let bytes = std::fs::read(dir.join("piece.mid")).expect("the render wrote MIDI");
            assert_eq!(bounced, note_on_steps(&bytes, 2), "the same notes");

            // Control changes: one per step on the Tension channel, as (step, channel, cc, value).
            let smf = midly::Smf::parse(&bytes).expect("MIDI parses");
            let mut rendered = Vec::new();
            for track in &smf.tracks {
                let mut tick = 0u64;
                for event in track {
                    tick += u64::from(event.delta.as_int());
                    if let midly::TrackEventKind::Midi {
                        channel,
                        message: midly::MidiMessage::Controller { controller, value },
                    } = event.kind
                    {
                        rendered.push((
                            tick / 480,
                            channel.as_int(),
                            controller.as_int(),
                            value.as_int(),
                        ));
                    }
                }
            }
            let controls: Vec<(u64, u8, u8, u8)> = bounce
                .controls
                .iter()
                .map(|&(at, channel, cc, value)| {
                    assert_eq!(at % STEP, 0, "a controller off the grid at {at}");
                    (at / STEP, channel, cc, value)
                })
                .collect();
            assert_eq!(controls.len(), TOKENS as usize, "one controller per step");
            assert!(controls.iter().all(|c| (c.1, c.2) == (4, 1)));
            assert_eq!(controls, rendered, "the same controller values");
            let organ = bounced.iter().filter(|n| n.1 == 4).count();
            let tense = controls.iter().filter(|c| c.3 >= 20).count();
            println!("organ note-ons {organ}, steps over the gate {tense}");
            // The gate is a tension of 0.15 (a controller value of 19).
            assert!(tense == 0 || organ > 0, "tense steps but no organ");
            assert!(
                organ == 0 || controls.iter().any(|c| c.3 >= 19),
                "organ below the gate"
            );

            let samples = wav_samples(&dir);
            for i in 0..bounce.audio[0].len() {
                for (c, channel) in bounce.audio.iter().enumerate() {
                    assert!(
                        samples[2 * i + c].to_bits() == channel[i].to_bits(),
                        "sample {i} channel {c}: the plugin and render diverge"
                    );
                }
            }
        },
    );
}
