//! Listen in the plugin, through the CLAP host: with the track playing a melody, the model reads
//! a line of what it heard at every Listen Every boundary, right before the token the boundary's
//! ticket lets through; the lines are the same however the host cuts its blocks, the project
//! keeps them with its run, and the reopened project replays the same notes.

mod common;

use common::bounce::{Blocks, Bounce, RATE, Segment, bounce_on};
use common::clap_host::{HostedPlugin, OutNote};
use common::cli::{command, succeed};
use common::isolate::isolated;
use common::paths::fixture;
use common::signal::write_wav;
use common::state::{field, with_field};
use common::temp::TempDir;
use latent_choir::io::audio_file;
use latent_choir::io::run_file::HeardLine;
use latent_choir::listen::resample::Resampler;
use latent_choir::project::saved_run::SavedRun;
use serde_json::json;

/// 8 bars at 120 BPM, 2 tokens per beat: 64 steps of 12 000 samples.
const STEPS: u64 = 64;
const STEP: u64 = 12_000;
/// Listen Every 2 bars = 16 steps: boundaries at steps 16, 32 and 48. (nice-plug's CLAP
/// values of integer parameters count from the minimum: 1 is 2 bars, 3 is 4 tokens.)
const SETUP: [(&str, f64); 4] = [
    ("Ornaments", 0.0),
    ("Listen", 1.0),
    ("Listen Every", 1.0),
    ("Lookahead", 3.0),
];

fn piece() -> [Segment; 1] {
    [Segment {
        beat: 0.0,
        tempo: 120.0,
        samples: STEPS * STEP,
    }]
}

/// The melody fixture at 48 kHz, repeated to the piece's length, on both channels.
fn song() -> [Vec<f32>; 2] {
    let melody = audio_file::read(&fixture("listen/melody.wav")).expect("melody");
    let at_rate = Resampler::new(melody.sample_rate, RATE as u32).process(&melody.left);
    let len = (STEPS * STEP) as usize + 4096;
    let track: Vec<f32> = at_rate.iter().copied().cycle().take(len).collect();
    [track.clone(), track]
}

fn plugin() -> HostedPlugin {
    let mut plugin = HostedPlugin::new();
    let mut state = plugin.save_state();
    // The default model: the tiny test model's 128-position context has no room for lines.
    for (key, value) in [
        ("prompt", json!("The forest was silent.")),
        ("seed", json!(3)),
    ] {
        state = with_field(&state, key, &value);
    }
    assert!(plugin.load_state(&state));
    plugin
}

/// Bounces the piece with the melody on the track; the bounce and the saved state.
fn listen(blocks: Blocks) -> (Bounce, Vec<u8>) {
    let mut plugin = plugin();
    let bounce = bounce_on(&mut plugin, &SETUP, &piece(), &[], blocks, Some(&song()));
    (bounce, plugin.save_state())
}

/// Every note event at its absolute sample, whatever block it came in.
fn events(bounce: &Bounce) -> Vec<(u64, bool, u8, u8)> {
    bounce
        .notes
        .iter()
        .map(|(at, note)| match *note {
            OutNote::On { channel, key, .. } => (*at, true, channel, key),
            OutNote::Off { channel, key, .. } => (*at, false, channel, key),
        })
        .collect()
}

fn heard(state: &[u8]) -> Vec<HeardLine> {
    let text = field(state, "run").expect("the state keeps the run");
    let saved = SavedRun::default();
    saved.restore(text.as_str().expect("base64 text"));
    saved.run().expect("a run").manifest.heard
}

#[test]
fn the_model_reads_what_it_heard_at_every_boundary_the_same_way_every_time() {
    isolated(
        "the_model_reads_what_it_heard_at_every_boundary_the_same_way_every_time",
        || {
            let (first, state) = listen(Blocks::Random(7));
            let lines = heard(&state);
            // Boundaries at frames 16, 32, 48; each line before the token 4 (the lookahead) on.
            let before: Vec<u32> = lines.iter().map(|l| l.before_token).collect();
            assert_eq!(before, [20, 36, 52], "{lines:#?}");
            for line in &lines {
                assert!(line.text.contains("(what I hear: "), "{line:?}");
                assert!(
                    line.text.contains("notes "),
                    "the melody's notes are heard: {line:?}"
                );
                assert!(line.tokens > 5);
            }

            // Other block sizes: the same lines in the same places, the same music.
            let (second, state_b) = listen(Blocks::Fixed(512));
            assert_eq!(heard(&state_b), lines);
            assert!(
                events(&second) == events(&first),
                "the same notes, at the same samples"
            );

            // Without Listen the model writes on undisturbed: other music, no lines.
            let mut deaf = plugin();
            let setup = [("Ornaments", 0.0), ("Listen", 0.0), ("Lookahead", 3.0)];
            let quiet = bounce_on(
                &mut deaf,
                &setup,
                &piece(),
                &[],
                Blocks::Fixed(512),
                Some(&song()),
            );
            assert!(heard(&deaf.save_state()).is_empty());
            assert!(
                events(&quiet) != events(&first),
                "what was heard changed what was written"
            );

            // The reopened project replays the run, heard lines and all.
            let mut reopened = HostedPlugin::new();
            assert!(reopened.load_state(&state));
            let replayed = bounce_on(
                &mut reopened,
                &SETUP,
                &piece(),
                &[],
                Blocks::Random(3),
                Some(&song()),
            );
            assert!(
                events(&replayed) == events(&first),
                "the reopened project replays the run"
            );
            assert_eq!(heard(&reopened.save_state()), lines);
        },
    );
}

/// `latent-choir render --song` with Listen on is the plugin's bounce: the same lines read
/// before the same tokens, the same samples; and two renders are byte for byte the same.
#[test]
fn render_listens_as_the_plugin_does() {
    isolated("render_listens_as_the_plugin_does", || {
        let dir = TempDir::new("listen-render");
        let song = song();
        let song_file = dir.join("song.wav");
        write_wav(&song_file, RATE as u32, &song[0], &song[1]);
        let render = |name: &str| {
            succeed(
                command()
                    .args([
                        "render",
                        "--prompt",
                        "The forest was silent.",
                        "--seed",
                        "3",
                    ])
                    .args([
                        "--bpm",
                        "120",
                        "--tokens",
                        &STEPS.to_string(),
                        "--tokens-per-beat",
                        "2",
                    ])
                    .args(["--param", "ornaments=0", "--param", "listen=On"])
                    .args(["--param", "listen_every=2", "--param", "lookahead=4"])
                    .arg("--song")
                    .arg(&song_file)
                    .arg("--out")
                    .arg(dir.join(&format!("{name}.wav"))),
            );
        };
        render("a");
        render("b");
        for ext in ["wav", "mid", "lcrun"] {
            let read = |name: &str| std::fs::read(dir.join(&format!("{name}.{ext}"))).expect(ext);
            assert!(read("a") == read("b"), "two renders give the same .{ext}");
        }
        let run = latent_choir::io::run_file::Run::read(&dir.join("a.lcrun")).expect("run file");
        let (bounce, state) = listen(Blocks::Random(11));
        assert_eq!(
            run.manifest.heard,
            heard(&state),
            "the same lines before the same tokens"
        );
        assert_eq!(run.manifest.heard.len(), 3);
        let mut reader = hound::WavReader::open(dir.join("a.wav")).expect("wav");
        let samples: Vec<f32> = reader
            .samples::<f32>()
            .map(|s| s.expect("sample"))
            .collect();
        for i in 0..bounce.audio[0].len() {
            for (c, channel) in bounce.audio.iter().enumerate() {
                assert!(
                    samples[2 * i + c].to_bits() == channel[i].to_bits(),
                    "sample {i} channel {c}: the plugin and render diverge"
                );
            }
        }
    });
}
