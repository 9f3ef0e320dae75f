//! The plugin on a host's tempo grid, through a real CLAP host in offline bounce (the render
//! extension), where the audio thread may wait for the model so every run is reproducible:
//! note-ons land exactly on the grid's samples, follow tempo changes and loop jumps, use the
//! configured channels, scale and ranges, all pair with note-offs, and a bounce repeats exactly
//! whatever the host's block sizes. One test plays the embedded default model.

mod common;

use common::bounce::{Blocks, Bounce, Segment, assert_paired, bounce};
use common::clap_host::OutNote;
use common::isolate::isolated;
use common::paths::fixture;
use common::signal::assert_clean;
use latent_choir::music::scale::{Root, Scale};

/// Note-ons of the melodic voices (channels other than the drone's), with their positions.
fn melodic_ons(notes: &[(u64, OutNote)], drone_channel: u8) -> Vec<(u64, u8, u8)> {
    notes
        .iter()
        .filter_map(|(at, n)| match *n {
            OutNote::On { channel, key, .. } if channel != drone_channel => {
                Some((*at, channel, key))
            }
            _ => None,
        })
        .collect()
}

/// Every melodic note-on sits exactly on a grid sample, at most one per voice per step, and
/// most steps sound (a repeated pitch may hold instead of striking again).
fn assert_on_grid(bounce: &Bounce, drone_channel: u8) {
    let ons = melodic_ons(&bounce.notes, drone_channel);
    let mut struck: Vec<u64> = Vec::new();
    for (at, channel, key) in &ons {
        assert!(
            bounce.grid.binary_search(at).is_ok(),
            "note-on (channel {channel}, key {key}) at sample {at} is off the grid"
        );
        struck.push(*at);
    }
    let mut per_voice = ons.iter().map(|(at, ch, _)| (*at, *ch)).collect::<Vec<_>>();
    per_voice.sort_unstable();
    let before = per_voice.len();
    per_voice.dedup();
    assert_eq!(
        before,
        per_voice.len(),
        "two note-ons of one voice at one step"
    );
    struck.sort_unstable();
    struck.dedup();
    assert!(
        struck.len() * 4 >= bounce.grid.len() * 3,
        "only {} of {} grid steps struck a note",
        struck.len(),
        bounce.grid.len()
    );
}

/// 8 bars at 120 BPM from the top.
const EIGHT_BARS: [Segment; 1] = [Segment {
    beat: 0.0,
    tempo: 120.0,
    samples: 32 * 24_000,
}];

/// Voices on MIDI channels 5–7, a held drone on 8, D dorian, no ornaments and no humanise
/// (both fall between grid steps by design). CLAP values of stepped parameters count steps
/// from the minimum, so channel 5 is 4.0; Bass 0 is Held Drone.
const SETUP: [(&str, f64); 9] = [
    ("Ornaments", 0.0),
    ("Humanise", 0.0),
    ("Bass", 0.0),
    ("Voice 1 MIDI Channel", 4.0),
    ("Voice 2 MIDI Channel", 5.0),
    ("Voice 3 MIDI Channel", 6.0),
    ("Drone MIDI Channel", 7.0),
    ("Scale", 3.0),
    ("Root", 2.0),
];

fn check_eight_bars(bounce: &Bounce) {
    assert_clean(&bounce.audio);
    let peak = bounce
        .audio
        .iter()
        .flatten()
        .fold(0.0_f32, |p, x| p.max(x.abs()));
    assert!(peak > 1e-3, "the synth is heard (peak {peak})");
    assert_on_grid(bounce, 7);
    assert_paired(&bounce.notes);
    // Default ranges of voices 1–3 (see params.rs), by channel.
    let ranges = [(4u8, 72u8, 96u8), (5, 55, 79), (6, 48, 72)];
    let mut drone = 0;
    for (_, note) in &bounce.notes {
        if let OutNote::On { channel, key, .. } = *note {
            assert!(
                Scale::Dorian.contains(key, Root::D),
                "{key} is not in D dorian"
            );
            if channel == 7 {
                drone += 1;
                assert_eq!(key % 12, 2, "the drone sits on the root");
                continue;
            }
            let (_, low, high) = ranges
                .iter()
                .find(|r| r.0 == channel)
                .copied()
                .unwrap_or_else(|| panic!("note on unexpected channel {channel}"));
            assert!(
                (low..=high).contains(&key),
                "{key} outside {low}..={high} on channel {channel}"
            );
        }
    }
    assert!(drone >= 1, "the drone plays");
}

#[test]
fn eight_bars_land_on_the_grid_and_bounce_identically() {
    isolated("eight_bars_land_on_the_grid_and_bounce_identically", || {
        let cache = std::env::temp_dir().join(format!("latent-choir-grid-{}", std::process::id()));
        // SAFETY: set before the plugin (and any thread reading the environment) starts.
        unsafe { std::env::set_var("XDG_CACHE_HOME", &cache) };
        let model = fixture("tiny-llama");
        let first = bounce(Some(&model), &SETUP, &EIGHT_BARS, &[], Blocks::Fixed(512));
        check_eight_bars(&first);

        let again = bounce(Some(&model), &SETUP, &EIGHT_BARS, &[], Blocks::Fixed(512));
        assert_eq!(
            first.notes, again.notes,
            "a second bounce plays the same notes"
        );
        assert!(
            first.audio == again.audio,
            "and the same audio, sample for sample"
        );

        let ragged = bounce(Some(&model), &SETUP, &EIGHT_BARS, &[], Blocks::Random(3));
        let on_times = |b: &Bounce| {
            b.notes
                .iter()
                .filter(|(_, n)| matches!(n, OutNote::On { .. }))
                .map(|(at, n)| (*at, *n))
                .map(|(at, n)| match n {
                    OutNote::On { channel, key, .. } => (at, channel, key),
                    OutNote::Off { .. } => unreachable!(),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            on_times(&first),
            on_times(&ragged),
            "the host's block sizes do not change the music"
        );
        let _ = std::fs::remove_dir_all(&cache);
    });
}

#[test]
fn tempo_changes_and_loop_jumps_move_the_grid() {
    isolated("tempo_changes_and_loop_jumps_move_the_grid", || {
        let cache = std::env::temp_dir().join(format!("latent-choir-loop-{}", std::process::id()));
        // SAFETY: as above.
        unsafe { std::env::set_var("XDG_CACHE_HOME", &cache) };
        // Two bars at 120, two at 90, then the host loops back to beat 4 and plays on at 90.
        let timeline = [
            Segment {
                beat: 0.0,
                tempo: 120.0,
                samples: 8 * 24_000,
            },
            Segment {
                beat: 8.0,
                tempo: 90.0,
                samples: 8 * 32_000,
            },
            Segment {
                beat: 4.0,
                tempo: 90.0,
                samples: 8 * 32_000,
            },
        ];
        let result = bounce(
            Some(&fixture("tiny-llama")),
            &SETUP,
            &timeline,
            &[],
            Blocks::Random(11),
        );
        assert_clean(&result.audio);
        assert_on_grid(&result, 7);
        assert_paired(&result.notes);
        // The steps right after each change sound where the new grid says.
        let ons = melodic_ons(&result.notes, 7);
        for boundary in [8 * 24_000u64, 8 * 24_000 + 8 * 32_000] {
            let first_after = ons.iter().map(|o| o.0).find(|at| *at >= boundary);
            assert!(
                matches!(first_after, Some(at) if at == boundary || at == boundary + 16_000),
                "after the change at {boundary} the next note-on is at {first_after:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&cache);
    });
}

#[test]
fn a_scale_change_applies_from_the_next_note_and_stop_releases_everything() {
    isolated(
        "a_scale_change_applies_from_the_next_note_and_stop_releases_everything",
        || {
            let cache =
                std::env::temp_dir().join(format!("latent-choir-scale-{}", std::process::id()));
            // SAFETY: as above.
            unsafe { std::env::set_var("XDG_CACHE_HOME", &cache) };
            // C major (white keys) until bar 3, then F# major pentatonic (black keys only); the
            // Generate switch goes off in bar 5 and on again in bar 6.
            let change = 8 * 24_000u64;
            let (off, on) = (16 * 24_000u64, 20 * 24_000u64);
            let result = bounce(
                Some(&fixture("tiny-llama")),
                &[("Ornaments", 0.5)],
                &EIGHT_BARS,
                &[
                    (change, "Scale", 7.0),
                    (change, "Root", 6.0),
                    (off, "Generate", 0.0),
                    (on, "Generate", 1.0),
                ],
                Blocks::Fixed(480),
            );
            assert_eq!(
                result.change_at[0], change,
                "the change lands on a block start"
            );
            let mut late = 0;
            for (at, note) in &result.notes {
                if let OutNote::On { key, .. } = *note {
                    if *at < change {
                        assert!(Scale::Major.contains(key, Root::C), "{key} at {at}");
                    } else {
                        late += 1;
                        assert!(
                            Scale::PentatonicMajor.contains(key, Root::FSharp),
                            "{key} at {at}: the new scale applies from the next note"
                        );
                    }
                }
            }
            assert!(late > 8, "notes after the change: {late}");
            // Nothing sounds while Generate is off, and nothing stays stuck.
            let mut sounding: Vec<(u8, u8)> = Vec::new();
            for (at, note) in &result.notes {
                match *note {
                    OutNote::On { channel, key, .. } => {
                        assert!(!(off..on).contains(at), "note-on at {at} while stopped");
                        sounding.push((channel, key));
                    }
                    OutNote::Off { channel, key, .. } => {
                        sounding.retain(|s| *s != (channel, key));
                    }
                }
                if *at >= off && *at < on {
                    assert!(sounding.is_empty(), "still sounding at {at}: {sounding:?}");
                }
            }
            assert_paired(&result.notes);
            assert!(
                result.notes.iter().any(|(at, _)| *at >= on),
                "Generate on again plays again"
            );
            let _ = std::fs::remove_dir_all(&cache);
        },
    );
}

#[test]
fn the_default_model_plays_eight_bars_on_the_grid() {
    isolated("the_default_model_plays_eight_bars_on_the_grid", || {
        assert!(
            latent_choir::llm::discovery::default_model_path().is_some(),
            "the default model is installed by `cargo xtask test` (cargo xtask fetch-model)"
        );
        let result = bounce(None, &SETUP, &EIGHT_BARS, &[], Blocks::Fixed(512));
        check_eight_bars(&result);
    });
}
