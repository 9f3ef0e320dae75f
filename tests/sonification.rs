//! The whole path through a real CLAP host: the plugin loads a model on its worker, the tokens
//! travel through the queue to the audio thread, and come out as notes on MIDI out and sound
//! from the built-in synth. Uses the tiny llama fixture, so the model (and its activation map,
//! fitted into a private cache) is ready in seconds.

mod common;

use std::time::{Duration, Instant};

use common::clap_host::{Block, HostedPlugin, InEvent, OutNote};
use common::isolate::isolated;
use common::paths::fixture;
use common::signal::assert_clean;
use common::state::with_field;
use latent_choir::music::scale::{Root, Scale};

const RATE: f64 = 48_000.0;
const BLOCK: usize = 512;

#[test]
fn tokens_become_notes_on_midi_out_and_sound() {
    isolated("tokens_become_notes_on_midi_out_and_sound", || {
        let cache =
            std::env::temp_dir().join(format!("latent-choir-sonify-{}", std::process::id()));
        // SAFETY: set before the plugin (and any thread reading the environment) starts.
        unsafe { std::env::set_var("XDG_CACHE_HOME", &cache) };

        let mut plugin = HostedPlugin::new();
        let model = fixture("tiny-llama");
        let state = plugin.save_state();
        let state = with_field(&state, "model", &serde_json::json!(model.to_string_lossy()));
        assert!(
            plugin.load_state(&state),
            "the state with a model path loads"
        );
        let generate = plugin.param_id("Generate");
        let rate = plugin.param_id("Tokens per Second");
        plugin.activate(RATE, BLOCK as u32);

        let silence = vec![0.0_f32; BLOCK];
        let start = [
            InEvent::Param {
                time: 0,
                id: generate,
                value: 1.0,
            },
            InEvent::Param {
                time: 0,
                id: rate,
                value: 16.0,
            },
        ];
        let mut notes: Vec<(u64, OutNote)> = Vec::new();
        let mut peak = 0.0_f32;
        let mut at = 0u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        let melodic_ons = |notes: &[(u64, OutNote)]| {
            notes
                .iter()
                .filter(|(_, n)| matches!(n, OutNote::On { channel, .. } if *channel < 3))
                .count()
        };
        let mut first = true;
        while melodic_ons(&notes) < 24 {
            assert!(Instant::now() < deadline, "no music after 120 s: {notes:?}");
            let events: &[InEvent] = if first { &start } else { &[] };
            first = false;
            let out = plugin.process(&Block::silent(&silence, events));
            assert_clean(&out.audio);
            peak = out.audio.iter().flatten().fold(peak, |p, x| p.max(x.abs()));
            notes.extend(out.notes.into_iter().map(|n| (at, n)));
            at += BLOCK as u64;
            // Roughly real time, so the worker keeps up as it would in a host.
            std::thread::sleep(Duration::from_millis(5));
        }
        // Generate off releases everything.
        let stop = [InEvent::Param {
            time: 0,
            id: generate,
            value: 0.0,
        }];
        for i in 0..4 {
            let events: &[InEvent] = if i == 0 { &stop } else { &[] };
            let out = plugin.process(&Block::silent(&silence, events));
            notes.extend(out.notes.into_iter().map(|n| (at, n)));
            at += BLOCK as u64;
        }
        plugin.deactivate();
        let _ = std::fs::remove_dir_all(&cache);

        assert!(peak > 1e-3, "the synth is heard (peak {peak})");
        let mut sounding: Vec<(u8, u8)> = Vec::new();
        for (_, note) in &notes {
            match *note {
                OutNote::On { channel, key, .. } => {
                    assert!(channel < 4, "voices on channels 1-4: {note:?}");
                    assert!(Scale::Major.contains(key, Root::C), "C major: {note:?}");
                    sounding.push((channel, key));
                }
                OutNote::Off { channel, key, .. } => {
                    let i = sounding.iter().position(|s| *s == (channel, key));
                    assert!(i.is_some(), "note-off without note-on: {note:?}");
                    sounding.remove(i.unwrap_or(0));
                }
            }
        }
        assert!(
            sounding.is_empty(),
            "stuck notes after Generate off: {sounding:?}"
        );
    });
}
