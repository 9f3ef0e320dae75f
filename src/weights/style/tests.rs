use super::test_stats::{gpt2_like_stats, synthetic_stats};
use super::*;
use crate::music::Scale;
use crate::music::score::{BuiltInSound, DRUM_CHANNEL, ScoreNote, Track, drum};
use crate::weights::{MatrixStats, NormRole, Role};

fn natural(style: Style, stats: &WeightStats) -> Score {
    compose(style, stats, &ComposeOptions::default())
}

fn track<'a>(score: &'a Score, name: &str) -> &'a Track {
    score
        .tracks
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no {name} in {}", score.title))
}

fn programs(score: &Score) -> Vec<u8> {
    score.tracks.iter().map(|t| t.program).collect()
}

fn has_drums(score: &Score) -> bool {
    score.tracks.iter().any(|t| t.channel == DRUM_CHANNEL)
}

fn notes_per_beat(score: &Score) -> f64 {
    score.note_count() as f64 / score.length
}

/// The mean key of the pitched tracks (drum keys are not pitches).
fn mean_register(score: &Score) -> f64 {
    let keys: Vec<f64> = score
        .tracks
        .iter()
        .filter(|t| t.channel != DRUM_CHANNEL)
        .flat_map(|t| t.notes.iter().map(|n| f64::from(n.key)))
        .collect();
    keys.iter().sum::<f64>() / keys.len() as f64
}

fn marker_names(score: &Score) -> Vec<&str> {
    score.markers.iter().map(|m| m.name.as_str()).collect()
}

/// Every shape the pieces must cope with: tiny, default-sized, deep, and GPT-2.
fn models() -> Vec<WeightStats> {
    vec![
        synthetic_stats(6, 64),
        synthetic_stats(2, 32),
        synthetic_stats(30, 96),
        gpt2_like_stats(4, 48),
    ]
}

#[test]
fn style_names_round_trip() {
    for style in Style::ALL {
        assert_eq!(Style::from_name(style.name()), Some(style));
        assert_eq!(Style::from_name(&style.name().to_uppercase()), Some(style));
        assert!(!style.title().is_empty());
    }
    assert_eq!(Style::from_name("polka"), None);
}

#[test]
fn every_style_has_its_tempo_and_markers() {
    let stats = synthetic_stats(6, 64);
    let opera = natural(Style::Opera, &stats);
    assert_eq!(opera.tempo.len(), 1);
    assert_eq!(opera.tempo[0].bpm, 66.0);
    assert_eq!(
        marker_names(&opera),
        [
            "Act I: Overture",
            "Act II: Fuguette",
            "Act III: Climax",
            "Act IV: Epilogue"
        ]
    );

    let house = natural(Style::House, &stats);
    assert_eq!(house.tempo[0].bpm, 128.0);
    assert_eq!(marker_names(&house), ["Intro", "Buildup", "Drop", "Outro"]);

    let acid = natural(Style::Acid, &stats);
    assert_eq!(acid.tempo[0].bpm, 138.0);
    let layers: Vec<String> = (0..6).map(|l| format!("Layer {l}")).collect();
    assert_eq!(marker_names(&acid), layers);

    let dna = natural(Style::Dna, &stats);
    assert_eq!(
        marker_names(&dna),
        [
            "I. Prologue",
            "II. Anatomy",
            "III. Memory",
            "IV. Balance",
            "V. Epilogue"
        ]
    );
    let bpms: Vec<f64> = dna.tempo.iter().map(|t| t.bpm).collect();
    assert_eq!(bpms, [72.0, 96.0, 108.0, 80.0, 60.0]);
    for (tempo, marker) in dna.tempo.iter().zip(&dna.markers) {
        assert_eq!(tempo.beat, marker.beat);
    }
    for score in [&opera, &house, &acid, &dna] {
        assert_eq!(score.beats_per_bar, 4);
        assert_eq!(score.tempo[0].beat, 0.0);
        assert_eq!(score.markers[0].beat, 0.0);
        assert!(score.title.contains("synthetic-6x64"), "{}", score.title);
    }
}

#[test]
fn each_piece_has_its_instruments_and_drums_only_where_they_belong() {
    let stats = synthetic_stats(6, 64);
    let opera = natural(Style::Opera, &stats);
    for program in [40, 41, 42, 43, 60, 19, 46] {
        assert!(programs(&opera).contains(&program), "opera lacks {program}");
    }
    assert!(programs(&opera).contains(&68) || programs(&opera).contains(&71));
    assert_eq!(track(&opera, "Organ").sound, BuiltInSound::Organ);
    assert_eq!(track(&opera, "Harp").sound, BuiltInSound::Pluck);
    assert_eq!(track(&opera, "French Horns").sound, BuiltInSound::Brass);

    let house = natural(Style::House, &stats);
    let bass = track(&house, "Synth Bass");
    assert_eq!((bass.program, bass.sound), (38, BuiltInSound::FmBass));
    assert_eq!(track(&house, "Pluck Lead").sound, BuiltInSound::Pluck);

    let acid = natural(Style::Acid, &stats);
    let bass = track(&acid, "Acid Bass");
    assert_eq!((bass.program, bass.sound), (38, BuiltInSound::AcidBass));

    let dna = natural(Style::Dna, &stats);
    for program in [19, 40, 41, 42, 60, 73] {
        assert!(programs(&dna).contains(&program), "dna lacks {program}");
    }
    assert_eq!(track(&dna, "Flute").sound, BuiltInSound::Flute);

    for score in [&house, &acid] {
        let drums = track(score, "Drums");
        assert_eq!(drums.channel, DRUM_CHANNEL);
        assert_eq!(drums.sound, BuiltInSound::Drums);
    }
    assert!(!has_drums(&opera) && !has_drums(&dna));

    for score in [&opera, &house, &acid, &dna] {
        let mut channels: Vec<u8> = score.tracks.iter().map(|t| t.channel).collect();
        let mut names: Vec<&str> = score.tracks.iter().map(|t| t.name.as_str()).collect();
        channels.sort_unstable();
        channels.dedup();
        names.sort_unstable();
        names.dedup();
        assert_eq!(channels.len(), score.tracks.len(), "{}", score.title);
        assert_eq!(names.len(), score.tracks.len(), "{}", score.title);
        for t in &score.tracks {
            assert!(t.channel <= 15);
            assert_eq!(t.channel == DRUM_CHANNEL, t.sound == BuiltInSound::Drums);
            assert!(!t.source.is_empty() && !t.source.contains("(absent)"));
        }
    }
}

#[test]
fn notes_are_playable_sorted_and_never_double_struck() {
    for stats in models() {
        for style in Style::ALL {
            for bars in [None, Some(1), Some(8)] {
                let score = compose(style, &stats, &ComposeOptions { bars });
                let what = format!("{} {bars:?}", score.title);
                assert!(score.note_count() > 0, "{what}");
                for t in &score.tracks {
                    assert!(t.notes.windows(2).all(|w| w[0].start <= w[1].start));
                    assert!(t.controls.windows(2).all(|w| w[0].beat <= w[1].beat));
                    for (i, n) in t.notes.iter().enumerate() {
                        assert!(n.key <= 127 && (1..=127).contains(&n.velocity), "{what}");
                        assert!(n.length > 0.0 && n.start >= 0.0, "{what}");
                        assert!(n.start + n.length <= score.length + 1e-9, "{what}");
                        let later = t.notes[i + 1..]
                            .iter()
                            .take_while(|m| m.start < n.start + n.length);
                        assert!(
                            later.clone().all(|m| m.key != n.key),
                            "{what}: {} repeats key {} inside a note",
                            t.name,
                            n.key
                        );
                    }
                    for c in &t.controls {
                        assert!(c.value <= 127 && c.beat >= 0.0);
                    }
                }
                assert!(score.markers.windows(2).all(|w| w[0].beat < w[1].beat));
            }
        }
    }
}

#[test]
fn composing_is_deterministic() {
    for stats in [synthetic_stats(6, 64), gpt2_like_stats(4, 48)] {
        for style in Style::ALL {
            let options = ComposeOptions { bars: Some(12) };
            assert_eq!(
                compose(style, &stats, &options),
                compose(style, &stats, &options)
            );
            assert_eq!(natural(style, &stats), natural(style, &stats));
        }
    }
}

#[test]
fn bars_set_the_length() {
    let stats = synthetic_stats(30, 64);
    for style in Style::ALL {
        // Every section keeps at least a bar; acid plays fewer layers instead.
        let sections = match style {
            Style::Opera | Style::House => 4,
            Style::Acid => 1,
            Style::Dna => 5,
        };
        for bars in [1u32, 8, 40] {
            let score = compose(style, &stats, &ComposeOptions { bars: Some(bars) });
            let beats = f64::from(bars.max(sections) * 4);
            assert!(
                score.length >= beats && score.length <= beats + 1.0,
                "{}: {bars} bars gave {} beats",
                style.name(),
                score.length
            );
        }
    }
    // Whole bars, plus at most a short release.
    let natural_bars = |style| (natural(style, &stats).length / 4.0).floor();
    assert_eq!(natural_bars(Style::Opera), 44.0);
    assert!((64.0..=128.0).contains(&natural_bars(Style::House)));
    assert_eq!(natural_bars(Style::Acid), 60.0);
    assert_eq!(natural_bars(Style::Dna), 48.0);
}

#[test]
fn styles_differ_in_tempo_density_register_and_drums() {
    let stats = synthetic_stats(12, 64);
    let [opera, house, acid, dna] = Style::ALL.map(|s| natural(s, &stats));
    let first_bpm = |s: &Score| s.tempo[0].bpm;
    let mut bpms: Vec<f64> = [&opera, &house, &acid, &dna].map(first_bpm).to_vec();
    bpms.dedup();
    assert_eq!(bpms.len(), 4);

    let density = [&opera, &house, &acid, &dna].map(notes_per_beat);
    let register = [&opera, &house, &acid, &dna].map(mean_register);
    // The dance pieces are busier than the concert pieces.
    for dance in [density[1], density[2]] {
        for concert in [density[0], density[3]] {
            assert!(dance > concert * 1.5, "{density:?}");
        }
    }
    // The acid line lives in the bass; the orchestra and the flute far above it.
    assert!(register[2] < 52.0, "{register:?}");
    assert!(register[0] > register[2] + 8.0, "{register:?}");
    assert!(register[3] > register[2] + 8.0, "{register:?}");
    assert!(has_drums(&house) && has_drums(&acid));
}

#[test]
fn acid_slides_accents_and_turns_the_filter() {
    let stats = synthetic_stats(8, 64);
    let acid = natural(Style::Acid, &stats);
    let bass = track(&acid, "Acid Bass");
    let slides = bass
        .notes
        .windows(2)
        .filter(|w| w[0].start + w[0].length > w[1].start && w[0].key != w[1].key)
        .count();
    assert!(slides > 0);
    // Layer 0 has no spectral change before it, so its pattern never slides.
    let layer_one = acid.markers[1].beat;
    assert!(
        bass.notes
            .windows(2)
            .filter(|w| w[1].start < layer_one)
            .all(|w| w[0].start + w[0].length <= w[1].start)
    );
    assert!(bass.notes.iter().any(|n| n.velocity >= 110));
    assert!(bass.notes.iter().any(|n| (75..=85).contains(&n.velocity)));
    assert!(bass.notes.iter().all(|n| (36..=60).contains(&n.key)));
    for cc in [71, 74] {
        let values: Vec<u8> = bass
            .controls
            .iter()
            .filter(|c| c.controller == cc)
            .map(|c| c.value)
            .collect();
        assert_eq!(values.len(), acid.markers.len(), "CC {cc}");
        assert!(
            values.iter().any(|&v| v != values[0]),
            "CC {cc} never moves"
        );
    }
    // Rests: some of a pattern's 16 steps stay silent.
    assert!(bass.notes.len() < 16 * 2 * 8);
    let kicks = track(&acid, "Drums")
        .notes
        .iter()
        .filter(|n| n.key == 36)
        .count();
    assert_eq!(kicks, 4 * 2 * 8);
}

/// `stats` with one role's statistic changed in every layer, differently per layer.
fn perturbed(
    stats: &WeightStats,
    role: Role,
    change: impl Fn(&mut MatrixStats, f64),
) -> WeightStats {
    let mut out = stats.clone();
    for m in out.matrices.iter_mut().filter(|m| m.role == role) {
        let l = m.layer.unwrap_or(0) as f64;
        change(m, l);
    }
    out
}

fn same_notes(a: &Score, b: &Score, name: &str) -> bool {
    track(a, name).notes == track(b, name).notes
}

#[test]
fn each_track_follows_its_own_tensors() {
    let stats = synthetic_stats(8, 64);
    let q_moved = perturbed(&stats, Role::Q, |m, l| {
        for (i, s) in m.singular_values.iter_mut().enumerate() {
            *s *= (0.8 * ((l * 1.7 + i as f64 * 0.9).sin())).exp() as f32;
        }
    });
    let (before, after) = (
        natural(Style::Opera, &stats),
        natural(Style::Opera, &q_moved),
    );
    assert!(!same_notes(&before, &after, "Violins"));
    for name in ["Violas", "Contrabasses", "French Horns", "Organ", "Harp"] {
        assert!(
            same_notes(&before, &after, name),
            "{name} moved with q_proj"
        );
    }
    let (before, after) = (
        natural(Style::House, &stats),
        natural(Style::House, &q_moved),
    );
    assert!(!same_notes(&before, &after, "String Pad"));
    assert!(same_notes(&before, &after, "Drums"));

    let down_moved = perturbed(&stats, Role::Down, |m, l| {
        for (r, n) in m.row_norms.iter_mut().enumerate() {
            *n *= (1.0 + 0.5 * ((r as f64 * 0.11 + l).cos())) as f32;
        }
    });
    let (before, after) = (
        natural(Style::House, &stats),
        natural(Style::House, &down_moved),
    );
    assert!(!same_notes(&before, &after, "Synth Bass"));
    for name in ["String Pad", "Pluck Lead", "Drums"] {
        assert!(
            same_notes(&before, &after, name),
            "{name} moved with down_proj"
        );
    }
    let (before, after) = (
        natural(Style::Acid, &stats),
        natural(Style::Acid, &down_moved),
    );
    assert!(!same_notes(&before, &after, "Acid Bass"));
    assert_eq!(
        track(&before, "Acid Bass").controls,
        track(&after, "Acid Bass").controls
    );

    let gate_moved = perturbed(&stats, Role::Gate, |m, l| {
        m.moments.std *= 1.0 + (l * 2.3).sin().abs();
    });
    let (before, after) = (
        natural(Style::House, &stats),
        natural(Style::House, &gate_moved),
    );
    assert!(!same_notes(&before, &after, "Drums"));
    assert!(same_notes(&before, &after, "String Pad"));

    let v_moved = perturbed(&stats, Role::V, |m, l| {
        m.moments.kurtosis = (l * 0.77).cos() * 3.0;
    });
    let (before, after) = (natural(Style::Acid, &stats), natural(Style::Acid, &v_moved));
    let cc = |s: &Score, n: u8| -> Vec<u8> {
        let t = track(s, "Acid Bass");
        t.controls
            .iter()
            .filter(|c| c.controller == n)
            .map(|c| c.value)
            .collect()
    };
    assert_ne!(cc(&before, 71), cc(&after, 71));
    assert_eq!(cc(&before, 74), cc(&after, 74));
    assert!(same_notes(&before, &after, "Acid Bass"));

    let mut norms_moved = stats.clone();
    for n in norms_moved
        .norms
        .iter_mut()
        .filter(|n| n.role == NormRole::Attention)
    {
        let l = n.layer.unwrap_or(0) as f64;
        n.moments.mean += (l * 1.3).sin();
    }
    let (before, after) = (
        natural(Style::Dna, &stats),
        natural(Style::Dna, &norms_moved),
    );
    assert!(!same_notes(&before, &after, "Flute"));
    for name in ["Violins", "Violas", "Cellos", "French Horns", "Organ"] {
        assert!(
            same_notes(&before, &after, name),
            "{name} moved with the norms"
        );
    }
}

#[test]
fn sources_name_their_tensors() {
    let stats = synthetic_stats(6, 64);
    let opera = natural(Style::Opera, &stats);
    assert!(
        track(&opera, "Violins")
            .source
            .contains("model.layers.*.self_attn.q_proj.weight, layers 0–5")
    );
    assert!(track(&opera, "Organ").source.contains("model.norm.weight"));
    let house = natural(Style::House, &stats);
    assert!(track(&house, "Synth Bass").source.contains("mlp.down_proj"));
    assert!(track(&house, "Drums").source.contains("mlp.gate_proj"));
}

#[test]
fn a_family_without_gate_uses_up_instead() {
    let stats = gpt2_like_stats(4, 48);
    assert!(stats.per_layer(Role::Gate).is_empty());
    let opera = natural(Style::Opera, &stats);
    let horns = track(&opera, "French Horns");
    assert!(
        horns.source.contains("h.*.mlp.c_fc.weight"),
        "{}",
        horns.source
    );
    assert!(horns.source.contains("up_proj instead"));
    let house = natural(Style::House, &stats);
    assert!(track(&house, "Drums").notes.iter().any(|n| n.key == 42));
    let acid = natural(Style::Acid, &stats);
    assert!(acid.tracks[0].controls.iter().any(|c| c.controller == 74));
    assert!(
        natural(Style::Dna, &stats)
            .tracks
            .iter()
            .any(|t| t.program == 60)
    );
}

#[test]
fn empty_stats_compose_without_panicking() {
    let mut stats = synthetic_stats(2, 16);
    stats.matrices.clear();
    stats.norms.clear();
    stats.layers.clear();
    for style in Style::ALL {
        for bars in [None, Some(3)] {
            let score = compose(style, &stats, &ComposeOptions { bars });
            assert_eq!(score.tempo[0].beat, 0.0);
        }
    }
}

/// Notes of `track` starting in `from..to`.
fn notes_in(track: &Track, from: f64, to: f64) -> Vec<ScoreNote> {
    track
        .notes
        .iter()
        .filter(|n| n.start >= from && n.start < to)
        .copied()
        .collect()
}

#[test]
fn opera_climax_rises_with_tension() {
    let mut stats = synthetic_stats(8, 64);
    for layer in &mut stats.layers {
        layer.tension = 0.5 + 0.2 * layer.index as f64;
    }
    let opera = natural(Style::Opera, &stats);
    let (from, to) = (opera.markers[2].beat, opera.markers[3].beat);
    let middle = (from + to) / 2.0;
    let violins = track(&opera, "Violins");
    let (calm, tense) = (
        notes_in(violins, from, middle),
        notes_in(violins, middle, to),
    );
    assert!(
        tense.len() > calm.len(),
        "{} vs {}",
        tense.len(),
        calm.len()
    );
    let mean = |notes: &[ScoreNote], f: fn(&ScoreNote) -> f64| {
        notes.iter().map(f).sum::<f64>() / notes.len() as f64
    };
    assert!(mean(&tense, |n| f64::from(n.velocity)) > mean(&calm, |n| f64::from(n.velocity)));
    assert!(mean(&tense, |n| f64::from(n.key)) > mean(&calm, |n| f64::from(n.key)));
    // The reed only answers above the middle of the model's tension.
    assert!(notes_in(track(&opera, "Clarinet"), from, middle).len() < tense.len() / 4);
}

#[test]
fn house_follows_its_form_and_modes() {
    let stats = synthetic_stats(12, 64);
    let house = natural(Style::House, &stats);
    let (root, _) = common::model_key(&stats);
    let beats: Vec<f64> = house
        .markers
        .iter()
        .map(|m| m.beat)
        .chain([house.length.floor()])
        .collect();
    let modes = [
        Scale::Lydian,
        Scale::Dorian,
        Scale::Phrygian,
        Scale::NaturalMinor,
    ];
    for (s, mode) in modes.into_iter().enumerate() {
        for name in ["String Pad", "Synth Bass", "Pluck Lead"] {
            for n in notes_in(track(&house, name), beats[s], beats[s + 1]) {
                assert!(
                    mode.contains(n.key, root),
                    "{name} {} in section {s}",
                    n.key
                );
            }
        }
    }
    let drums = track(&house, "Drums");
    let hits = |key: u8, from: f64, to: f64| -> Vec<f64> {
        notes_in(drums, from, to)
            .iter()
            .filter(|n| n.key == key)
            .map(|n| n.start - from)
            .collect()
    };
    assert!(hits(drum::KICK, beats[0], beats[1]).is_empty());
    for s in [1, 2] {
        let kicks = hits(drum::KICK, beats[s], beats[s + 1]);
        assert_eq!(kicks.len() as f64, beats[s + 1] - beats[s]);
        assert!(kicks.iter().all(|k| k.fract() == 0.0));
        let claps = hits(drum::CLAP, beats[s], beats[s + 1]);
        assert!(claps.iter().all(|c| c % 4.0 == 1.0 || c % 4.0 == 3.0));
        assert_eq!(claps.len() as f64, (beats[s + 1] - beats[s]) / 2.0);
    }
    // Bars whose gate_proj spread is larger carry more hats.
    let hats_per_bar: Vec<usize> = (0..(house.length / 4.0) as usize)
        .map(|b| hits(drum::CLOSED_HAT, b as f64 * 4.0, b as f64 * 4.0 + 4.0).len())
        .collect();
    assert!(
        hats_per_bar.iter().any(|&h| h != hats_per_bar[0]),
        "{hats_per_bar:?}"
    );
}

#[test]
fn dna_fades_to_silence() {
    let stats = synthetic_stats(6, 64);
    let dna = natural(Style::Dna, &stats);
    let organ = track(&dna, "Organ");
    let epilogue = notes_in(organ, dna.markers[4].beat, dna.length);
    assert!(epilogue.len() > 8);
    assert_eq!(epilogue.last().map(|n| n.velocity), Some(1));
    assert!(
        epilogue
            .windows(2)
            .all(|w| w[1].velocity <= w[0].velocity + 3)
    );
    assert!(epilogue[0].velocity > 40);
    let volume: Vec<u8> = organ
        .controls
        .iter()
        .filter(|c| c.controller == 7 && c.beat >= dna.markers[4].beat)
        .map(|c| c.value)
        .collect();
    assert!(volume.windows(2).all(|w| w[1] <= w[0]));
    assert_eq!(volume.last(), Some(&0));
}
