//! What the audio thread costs and how far ahead the model stays, on the default model.
//!
//! * `process()` of the built plugin, loaded through CLAP (`clack-host`), for 512-frame blocks
//!   at 48 kHz, stereo in and out, transport playing at 120 BPM, the default 2 tokens per beat,
//!   all voices and the drone sounding, reverb on, the loudness meter reading a −20 dBFS sine on
//!   the track: median and 99th percentile, as a share of the block's real-time budget
//!   (10.7 ms). Blocks are paced in real time so the worker runs as it would in a host. Only the
//!   plugin's `process()` call is timed: the host keeps its buffers across blocks, as a DAW
//!   does, and builds each block's input outside the timing.
//! * The same with Listen on, every bar (the listener tokenizing the track on its thread): the
//!   audio thread only copies the input into the ear's ring.
//! * The same with the Tension voice on and Dissonance at 50 % (the organ and the controller).
//! * The same with Source Model Weights, in the house and acid styles (the piece's score
//!   player, the FM bass, pluck, acid bass and drum kit), once the default model's analysis is
//!   cached (the first run composes it in the first seconds).
//! * The same with Instruments Spectral (every voice an oscillator bank of 32 partials).
//! * The lookahead: the same worker and queue driven at 8 tokens/s, reading how many frames
//!   wait in the queue at every step.
//! * The time to the first note: a fresh instance, transport playing, Generate switched on in
//!   the first block, blocks paced in real time until the plugin sends its first note; three
//!   times, with the default model's map already in the user's cache (as after the first
//!   fit), so the model loads, the map is read, the prompt runs and the first token is
//!   sampled each time.
//!
//! Run with `cargo bench --bench process` (after `cargo xtask fetch-model`); `-- WORD` runs only
//! the lines whose label contains WORD (e.g. `-- Spectral`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::clap_host::{Block, HostedPlugin, InEvent, Transport};
use common::signal::sine;
use latent_choir::llm::discovery;
use latent_choir::loudness::{CurvePoint, LoudnessMeter};
use latent_choir::params::SessionSettings;
use latent_choir::playback::player::FrameSource;
use latent_choir::worker::control::ModelControl;
use latent_choir::worker::link::GateSettings;

const RATE: f64 = 48_000.0;
const BLOCK: usize = 512;
const SECONDS: f64 = 30.0;

fn main() {
    if discovery::default_model_path().is_none() {
        eprintln!("the default model is missing: run `cargo xtask fetch-model` first");
        std::process::exit(1);
    }
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |label: &str| only.as_deref().is_none_or(|word| label.contains(word));
    if wanted("metering") {
        metering();
    }
    let lines: [(&str, &[(&str, f64)]); 7] = [
        ("process()", &[]),
        // Listen Every's CLAP value 0 is 1 bar.
        (
            "process(), Listen every bar",
            &[("Listen", 1.0), ("Listen Every", 0.0)],
        ),
        (
            "process(), Tension Voice and 50 % Dissonance",
            &[("Tension Voice", 1.0), ("Dissonance", 0.5)],
        ),
        // Source 1 is Model Weights; Weight Style 1 is House, 2 Acid.
        (
            "process(), Model Weights: house",
            &[("Source", 1.0), ("Weight Style", 1.0)],
        ),
        (
            "process(), Model Weights: acid",
            &[("Source", 1.0), ("Weight Style", 2.0)],
        ),
        // Instruments 2 is Spectral.
        ("process(), Instruments Spectral", &[("Instruments", 2.0)]),
        (
            "process(), Instruments Spectral, free partials",
            &[("Instruments", 2.0), ("Spectral in Scale", 0.0)],
        ),
    ];
    for (label, setup) in lines {
        if wanted(label) {
            process_time(label, setup);
        }
    }
    if wanted("lookahead") {
        lookahead();
    }
    if wanted("first note") {
        first_note();
    }
}

/// Seconds from switching Generate on to the first note out, three fresh instances.
fn first_note() {
    let budget = BLOCK as f64 / RATE;
    let silence = vec![0.0_f32; BLOCK];
    let mut times = Vec::new();
    for _ in 0..3 {
        let mut plugin = HostedPlugin::new();
        let start = [InEvent::Param {
            time: 0,
            id: plugin.param_id("Generate"),
            value: 1.0,
        }];
        plugin.activate(RATE, BLOCK as u32);
        let began = Instant::now();
        let mut first = None;
        for i in 0..(120.0 / budget) as usize {
            let events: &[InEvent] = if i == 0 { &start } else { &[] };
            let (_, sent) = plugin.process_timed(&rolling(i, &silence, &silence, events));
            if sent > 0 {
                first = Some(began.elapsed().as_secs_f64());
                break;
            }
            pace(began, i);
        }
        plugin.deactivate();
        match first {
            Some(seconds) => times.push(seconds),
            None => {
                println!("first note: none within 120 s");
                return;
            }
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "first note: Generate on → first note out in {:.2} s (median of 3; {:.2}–{:.2} s), map cached",
        times[1], times[0], times[2]
    );
}

/// The loudness meter alone: one 512-frame stereo block added, and the momentary loudness read
/// once (the player reads it once per token, so this is an upper bound per block).
fn metering() {
    let mut meter = LoudnessMeter::new(RATE as f32);
    let signal = sine(997.0, RATE, BLOCK * 4000, 0.1);
    let mut times = Vec::with_capacity(4000);
    let mut sink = 0.0f32;
    for block in signal.chunks_exact(BLOCK) {
        let t = Instant::now();
        meter.add(block, block);
        sink += meter.momentary().unwrap_or(0.0);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let budget = BLOCK as f64 / RATE;
    let median = percentile(&times, 0.5);
    println!(
        "metering: {BLOCK} stereo frames at {RATE} Hz: median {:.1} µs ({:.2}% of the block), p99 {:.1} µs (reading {sink:.0})",
        median * 1e6,
        100.0 * median / budget,
        percentile(&times, 0.99) * 1e6,
    );
}

/// Block `i` of a transport rolling from 0 at 120 BPM, `input` on both main channels.
fn rolling<'a>(i: usize, input: &'a [f32], silence: &'a [f32], events: &'a [InEvent]) -> Block<'a> {
    Block {
        main: [input, input],
        sidechain: [silence, silence],
        events,
        transport: Some(Transport {
            playing: true,
            tempo: 120.0,
            beats: (i * BLOCK) as f64 / RATE * 2.0,
            seconds: (i * BLOCK) as f64 / RATE,
        }),
    }
}

/// Sleeps until block `i` (counted from `began`) has taken its real-time share.
fn pace(began: Instant, i: usize) {
    let due = began + Duration::from_secs_f64((i + 1) as f64 * BLOCK as f64 / RATE);
    if let Some(wait) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `process()` with `setup` (parameter name, CLAP value) and everything else at its default
/// (Tokens per Beat 2, the refusal direction).
fn process_time(label: &str, setup: &[(&str, f64)]) {
    let mut plugin = HostedPlugin::new();
    let mut start = vec![InEvent::Param {
        time: 0,
        id: plugin.param_id("Generate"),
        value: 1.0,
    }];
    for &(name, value) in setup {
        start.push(InEvent::Param {
            time: 0,
            id: plugin.param_id(name),
            value,
        });
    }
    plugin.activate(RATE, BLOCK as u32);
    let budget = BLOCK as f64 / RATE;
    let blocks = (SECONDS / budget) as usize;
    let track = sine(440.0, RATE, BLOCK * blocks, 0.1);
    let silence = vec![0.0_f32; BLOCK];
    let mut times = Vec::with_capacity(blocks);
    let mut notes = 0usize;
    let began = Instant::now();
    for i in 0..blocks {
        let input = &track[i * BLOCK..(i + 1) * BLOCK];
        let events: &[InEvent] = if i == 0 { &start } else { &[] };
        let block = rolling(i, input, &silence, events);
        let (elapsed, sent) = plugin.process_timed(&block);
        times.push(elapsed.as_secs_f64());
        notes += sent;
        pace(began, i);
    }
    plugin.deactivate();
    // The first seconds load the model; measure the blocks where music plays.
    let playing = &mut times[blocks / 3..];
    playing.sort_by(f64::total_cmp);
    let (median, p99) = (percentile(playing, 0.5), percentile(playing, 0.99));
    println!(
        "{label}: {} blocks of {BLOCK} at {RATE} Hz, {notes} note events: median {:.1} µs ({:.2}% of the block), p99 {:.1} µs ({:.2}%), max {:.1} µs",
        playing.len(),
        median * 1e6,
        100.0 * median / budget,
        p99 * 1e6,
        100.0 * p99 / budget,
        playing.last().copied().unwrap_or(0.0) * 1e6,
    );
}

fn lookahead() {
    let gate = Arc::new(GateSettings::new(4, 0.8));
    let control = ModelControl::new(Arc::clone(&gate), Arc::default(), Arc::default());
    let mut source = (control.spawn().expect("worker thread")).expect("a new worker");
    // The default model on a fresh instance's session, as the plugin starts it.
    control
        .generate(&SessionSettings::default())
        .expect("the default model, checked in main");
    let step = Duration::from_secs_f64(1.0 / 8.0);
    let point = CurvePoint {
        lufs: -20.0,
        smoothed: -20.0,
        velocity: 0.0,
        temperature: 0.8,
    };
    let (mut queued, mut underruns, mut played) = (Vec::new(), 0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    // Wait for the first frame, then play 160 steps (20 s) in real time.
    while played == 0 && Instant::now() < deadline {
        if let Some(frame) = source.next_frame() {
            source.played(&frame, &point, None);
            played += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let began = Instant::now();
    for k in 1..=160u32 {
        let due = began + step * k;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        queued.push(source.queued());
        match source.next_frame() {
            Some(frame) => {
                source.played(&frame, &point, None);
                played += 1;
            }
            None => underruns += 1,
        }
    }
    let mean = queued.iter().sum::<usize>() as f64 / queued.len().max(1) as f64;
    println!(
        "lookahead at 8 tokens/s (120 BPM, 4 per beat), setting {}: frames waiting at each step: mean {:.2}, min {}, max {}; {underruns} underruns in {} steps ({played} frames played)",
        gate.lookahead.load(std::sync::atomic::Ordering::Relaxed),
        mean,
        queued.iter().min().unwrap_or(&0),
        queued.iter().max().unwrap_or(&0),
        queued.len(),
    );
}
