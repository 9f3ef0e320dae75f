//! SoundFont voices through a real CLAP host: the same notes play on a General MIDI font
//! instead of the built-in synth, a voice's program changes its instrument, and a missing font
//! leaves the built-in synth playing, sample for sample, with no crash.

mod common;

use std::path::Path;

use common::bounce::{Blocks, Bounce, Segment, bounce_with};
use common::isolate::isolated;
use common::paths::fixture;
use common::signal::assert_clean;
use serde_json::json;

/// Debian's `timgm6mb-soundfont`, which `cargo xtask test` installs.
const FONT: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";

const TWO_BARS: [Segment; 1] = [Segment {
    beat: 0.0,
    tempo: 120.0,
    samples: 8 * 24_000,
}];

fn play(font: Option<&str>, setup: &[(&str, f64)]) -> Bounce {
    let mut fields = vec![("model", json!(fixture("tiny-llama").to_string_lossy()))];
    if let Some(font) = font {
        fields.push(("soundfont", json!(font)));
    }
    let result = bounce_with(&fields, setup, &TWO_BARS, &[], Blocks::Fixed(512));
    assert_clean(&result.audio);
    result
}

fn peak(b: &Bounce) -> f32 {
    b.audio.iter().flatten().fold(0.0, |p, x| p.max(x.abs()))
}

/// Energy of the difference relative to the energy of `a`.
fn difference(a: &Bounce, b: &Bounce) -> f64 {
    let (mut diff, mut energy) = (0.0f64, 0.0f64);
    for (ca, cb) in a.audio.iter().zip(&b.audio) {
        for (x, y) in ca.iter().zip(cb) {
            diff += f64::from(x - y).powi(2);
            energy += f64::from(*x).powi(2);
        }
    }
    diff / energy.max(1e-12)
}

#[test]
fn soundfont_voices_play_the_same_notes_and_a_missing_font_falls_back() {
    isolated(
        "soundfont_voices_play_the_same_notes_and_a_missing_font_falls_back",
        || {
            assert!(
                Path::new(FONT).exists(),
                "{FONT} comes from Debian's timgm6mb-soundfont (cargo xtask test installs it)"
            );
            let cache =
                std::env::temp_dir().join(format!("latent-choir-sf-{}", std::process::id()));
            // SAFETY: set before the plugin (and any thread reading the environment) starts.
            unsafe { std::env::set_var("XDG_CACHE_HOME", &cache) };
            let soundfont = [("Instruments", 1.0)];

            let builtin = play(None, &[]);
            let font = play(Some(FONT), &soundfont);
            let flute_to_piano = play(
                Some(FONT),
                &[("Instruments", 1.0), ("Voice 1 Program", 0.0)],
            );
            let missing = play(Some("/nonexistent/font.sf2"), &soundfont);

            assert!(
                peak(&builtin) > 1e-3 && peak(&font) > 1e-3,
                "both are heard"
            );
            for other in [&font, &flute_to_piano, &missing] {
                assert_eq!(
                    builtin.notes, other.notes,
                    "the instrument never changes the notes"
                );
            }
            let d = difference(&builtin, &font);
            assert!(
                d > 0.1,
                "the font sounds different from the built-in synth ({d})"
            );
            let d = difference(&font, &flute_to_piano);
            assert!(d > 0.01, "a program change changes the instrument ({d})");
            assert!(
                builtin.audio == missing.audio,
                "without the font the built-in synth plays exactly as before"
            );
            let _ = std::fs::remove_dir_all(&cache);
        },
    );
}
