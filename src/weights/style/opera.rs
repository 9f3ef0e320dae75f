//! Opera in four acts at 66 BPM, in the model's own key: the embedding's spectrum as an
//! overture, the attention matrices as a four-voice fuguette, the attention/MLP tension as the
//! climax, the norms' γ as the epilogue.

use super::common::{
    BEATS_PER_BAR, CELLOS, CLARINET, CONTRABASSES, Channels, HARP, HORNS, LEADING, OBOE, ORGAN,
    Spectra, VIOLAS, VIOLINS, add_note, at, bin_means, finish, layer_norms, ln, marker, model_key,
    norm_names, per_layer_unit, pitch, role_or, root_note, section_bars, section_starts, slots,
    step_in_range, tempo, tensors, unit, velocity,
};
use crate::music::score::{Score, Track};
use crate::music::{Root, Scale};
use crate::weights::{MatrixStats, NormRole, Role, WeightStats};

const BPM: f64 = 66.0;
const ACTS: [&str; 4] = [
    "Act I: Overture",
    "Act II: Fuguette",
    "Act III: Climax",
    "Act IV: Epilogue",
];
const NATURAL_BARS: [u32; 4] = [8, 16, 12, 8];
/// Singular values per layer a voice reads: the fugue subject has this many notes.
const SUBJECT: usize = 8;
/// Scale steps of the triad over two octaves: the harp's arpeggios stay in the organ's chord.
const CHORD_TONES: [i32; 6] = [0, 2, 4, 7, 9, 11];

/// One string voice's register.
#[derive(Clone, Copy)]
struct Voice {
    low: u8,
    high: u8,
}

const SOPRANO: Voice = Voice { low: 67, high: 88 };
const ALTO: Voice = Voice { low: 55, high: 76 };
const TENOR: Voice = Voice { low: 43, high: 64 };
const BASS: Voice = Voice { low: 28, high: 50 };

pub(super) fn compose(stats: &WeightStats, bars: Option<u32>, title: String) -> Score {
    let (root, scale) = model_key(stats);
    let acts = section_bars(&NATURAL_BARS, bars);
    let starts = section_starts(&acts);
    let span = |act: usize| (starts[act], starts[act + 1] - starts[act]);

    let embedding: Vec<&MatrixStats> = stats.embedding().into_iter().collect();
    let q = stats.per_layer(Role::Q);
    let k = stats.per_layer(Role::K);
    let v = stats.per_layer(Role::V);
    let o = stats.per_layer(Role::O);
    let (gate_role, gate) = role_or(stats, Role::Gate, Role::Up);
    let up = stats.per_layer(Role::Up);
    let down = stats.per_layer(Role::Down);
    let final_norm: Vec<_> = stats.norm(NormRole::Final, None).into_iter().collect();
    let mut layer_gammas = layer_norms(stats, NormRole::Attention);
    layer_gammas.extend(layer_norms(stats, NormRole::Mlp));
    layer_gammas.sort_by_key(|n| (n.layer, n.role));

    let mut channels = Channels::default();
    let emb = tensors(&embedding);
    let mut violins = channels.track(
        VIOLINS,
        format!(
            "I: {emb}: top {LEADING} singular values, smallest to largest (log) → scale tones, \
             loudness; II–III: {}: top {SUBJECT} singular values (log) → subject and runs",
            tensors(&q)
        ),
    );
    let mut violas = channels.track(
        VIOLAS,
        format!(
            "I: a third under the violins ({emb} spectrum); II–III: {}: top {SUBJECT} singular \
             values (log) → subject and runs",
            tensors(&k)
        ),
    );
    let mut cellos = channels.track(
        CELLOS,
        format!(
            "I: {emb}: row norms in bins → bass line; II–III: {}: top {SUBJECT} singular \
             values (log) → subject and runs",
            tensors(&v)
        ),
    );
    let mut basses = channels.track(
        CONTRABASSES,
        format!(
            "II: {}: top {SUBJECT} singular values (log) → subject; III: {}: mean row norm → \
             bass note per layer",
            tensors(&o),
            tensors(&down)
        ),
    );
    let mut horns = channels.track(
        HORNS,
        format!(
            "III: {}: top singular value (log) → held note, when the layer's tension is high",
            tensors(&gate)
        ),
    );
    // A major key gets the brighter oboe, a minor one the darker clarinet.
    let reed = if scale.contains(root_note(root, 4) + 4, root) {
        OBOE
    } else {
        CLARINET
    };
    let mut winds = channels.track(
        reed,
        format!(
            "III: {}: top two singular values (log) → answering notes where tension is above \
             the middle",
            tensors(&up)
        ),
    );
    let mut organ = channels.track(
        ORGAN,
        format!(
            "IV: {}: γ in bins (mean) → chord roots and loudness",
            norm_names(&final_norm)
        ),
    );
    let mut harp = channels.track(
        HARP,
        format!(
            "IV: {}: γ in eight bins → arpeggio chord tones, γ std → loudness",
            norm_names(&layer_gammas)
        ),
    );

    // Act I: the embedding spectrum read upwards, a crescendo from the faintest direction the
    // top-k found to the strongest; violas a third below, cellos from the row norms.
    let (start, beats) = span(0);
    if let Some(e) = embedding.first() {
        let logs: Vec<f64> = e
            .singular_values
            .iter()
            .take(LEADING)
            .rev()
            .map(|&s| ln(f64::from(s)))
            .collect();
        let rising = unit(&logs);
        let quarters = beats as usize;
        let bar_count = (beats / f64::from(BEATS_PER_BAR)).round() as usize;
        for j in 0..quarters {
            let u = at(&rising, j, quarters);
            let key = pitch(scale, root, u, SOPRANO.low, SOPRANO.high);
            let beat = start + j as f64;
            add_note(&mut violins, beat, 0.95, key, velocity(u, 45, 100));
            if j % 2 == 0 {
                let under = step_in_range(scale, root, key, -2, ALTO.low, ALTO.high);
                add_note(&mut violas, beat, 1.9, under, velocity(u, 40, 90));
            }
        }
        let rows = unit(&bin_means(&e.row_norms, bar_count));
        for (b, &u) in rows.iter().enumerate() {
            let key = pitch(scale, root, u, TENOR.low, TENOR.high - 9);
            let beat = start + (b as u32 * BEATS_PER_BAR) as f64;
            add_note(&mut cellos, beat, 3.9, key, velocity(u, 50, 85));
        }
    }

    // Act II: each attention matrix states its own subject (the decay of its mean spectrum as
    // falling scale steps from the voice's tonic), entering one after another, then walks its
    // layers' strongest singular value.
    let (start, beats) = span(1);
    let gap = (beats / 5.0).floor().clamp(1.0, 8.0);
    let voices: [(&[&MatrixStats], Voice, &mut Track); 4] = [
        (&q, SOPRANO, &mut violins),
        (&k, ALTO, &mut violas),
        (&v, TENOR, &mut cellos),
        (&o, BASS, &mut basses),
    ];
    for (entry, (mats, voice, track)) in voices.into_iter().enumerate() {
        fugue_voice(
            track,
            mats,
            voice,
            (root, scale),
            start + entry as f64 * gap,
            gap,
            start + beats,
        );
    }

    // Act III: each layer gets a slot; its tension sets density (1, 2 or 4 notes a beat),
    // loudness and register; horns join when tension rises, the reed above the middle.
    let (start, beats) = span(2);
    let tension = unit(&stats.layers.iter().map(|l| l.tension).collect::<Vec<_>>());
    let layer_count = stats.layers.len().max(q.len());
    let (sq, sk, sv) = (
        Spectra::new(&q, SUBJECT),
        Spectra::new(&k, SUBJECT),
        Spectra::new(&v, SUBJECT),
    );
    let sg = Spectra::new(&gate, 1);
    let su = Spectra::new(&up, 2);
    let down_mean = per_layer_unit(&down, |m| {
        m.row_norms.iter().map(|&r| f64::from(r)).sum::<f64>() / m.row_norms.len().max(1) as f64
    });
    for slot in slots(beats, layer_count, 1.0) {
        let l = slot.item;
        let t = at(&tension, l, layer_count);
        let density = [1.0, 2.0, 4.0][((t * 3.0) as usize).min(2)];
        let lift = (t * 12.0).round() as u8;
        let loud = |low: u8| velocity(t, low, 120);
        let runs: [(&Spectra, &mut Track, Voice, f64); 3] = [
            (&sq, &mut violins, SOPRANO, density),
            (&sk, &mut violas, ALTO, (density / 2.0).max(1.0)),
            (&sv, &mut cellos, TENOR, (density / 2.0).max(1.0)),
        ];
        for (spectra, track, voice, per_beat) in runs {
            if spectra.layers() == 0 {
                continue;
            }
            let n = ((slot.length * per_beat).round() as usize).max(1);
            let step = slot.length / n as f64;
            let s = slot.item * spectra.layers() / layer_count;
            for j in 0..n {
                let key = pitch(
                    scale,
                    root,
                    spectra.unit(s, j % SUBJECT),
                    voice.low + lift,
                    voice.high + lift,
                );
                add_note(
                    track,
                    start + slot.start + j as f64 * step,
                    step * 0.9,
                    key,
                    loud(60),
                );
            }
        }
        if !down.is_empty() {
            let u = at(&down_mean, l, layer_count);
            let key = pitch(scale, root, u, BASS.low, BASS.high - 2);
            add_note(&mut basses, start + slot.start, slot.length, key, loud(60));
        }
        if sg.layers() > 0 && t > 0.25 {
            let u = sg.unit(l * sg.layers() / layer_count, 0);
            let key = pitch(scale, root, u, 53 + lift / 2, 72 + lift / 2);
            add_note(&mut horns, start + slot.start, slot.length, key, loud(50));
        }
        if su.layers() > 0 && t >= 0.5 {
            let s = l * su.layers() / layer_count;
            let half = slot.length / 2.0;
            for j in 0..2 {
                let key = pitch(scale, root, su.unit(s, j), 64 + lift, 86 + lift);
                let beat = start + slot.start + j as f64 * half;
                add_note(&mut winds, beat, half * 0.95, key, loud(60));
            }
        }
    }
    if gate_role != Role::Gate {
        horns
            .source
            .push_str(" (no gate_proj in this family: up_proj instead)");
    }

    // Act IV: the final norm's γ as organ chords, one per bar; the blocks' γ as harp arpeggios
    // over them, through the layers in order.
    let (start, beats) = span(3);
    let bar_count = ((beats / f64::from(BEATS_PER_BAR)).round() as usize).max(1);
    let bar_len = f64::from(BEATS_PER_BAR);
    let chord_roots: Vec<u8> = match final_norm.first() {
        Some(n) => unit(&bin_means(&n.gamma, bar_count))
            .into_iter()
            .map(|u| pitch(scale, root, u, 48, 62))
            .collect(),
        None => vec![root_note(root, 3); bar_count],
    };
    let chord_level = final_norm
        .first()
        .map(|n| unit(&bin_means(&n.gamma, bar_count)))
        .unwrap_or_default();
    if !final_norm.is_empty() {
        for (b, &r) in chord_roots.iter().enumerate() {
            let vel = velocity(at(&chord_level, b, bar_count), 45, 80);
            for steps in [0, 2, 4] {
                let key = scale.degree_step(r, root, steps);
                add_note(&mut organ, start + b as f64 * bar_len, bar_len, key, vel);
            }
        }
    }
    let spread = unit(
        &layer_gammas
            .iter()
            .map(|n| n.moments.std)
            .collect::<Vec<_>>(),
    );
    for b in 0..bar_count {
        if layer_gammas.is_empty() {
            break;
        }
        let g = (b * layer_gammas.len() / bar_count).min(layer_gammas.len() - 1);
        let tones = unit(&bin_means(&layer_gammas[g].gamma, 8));
        let vel = velocity(spread[g], 50, 85);
        let base = chord_roots[b.min(chord_roots.len() - 1)] + 12;
        for (j, &u) in tones.iter().enumerate() {
            let steps = CHORD_TONES[((u * 5.0).round() as usize).min(5)];
            let key = scale.degree_step(base, root, steps);
            let beat = start + b as f64 * bar_len + j as f64 * 0.5;
            add_note(&mut harp, beat, 1.0, key, vel);
        }
    }

    let markers = ACTS
        .iter()
        .enumerate()
        .map(|(i, name)| marker(starts[i], name))
        .collect();
    finish(
        title,
        vec![tempo(0.0, BPM)],
        markers,
        vec![violins, violas, cellos, basses, horns, winds, organ, harp],
        starts[4],
    )
}

/// One fugue voice: the subject from `mats`' mean spectrum at `entry`, then one half note per
/// layer (top singular value → pitch in the voice's register) until `end`.
fn fugue_voice(
    track: &mut Track,
    mats: &[&MatrixStats],
    voice: Voice,
    (root, scale): (Root, Scale),
    entry: f64,
    gap: f64,
    end: f64,
) {
    if mats.is_empty() {
        return;
    }
    let ranks = mats
        .iter()
        .map(|m| m.singular_values.len())
        .min()
        .unwrap_or(0)
        .min(SUBJECT);
    if ranks == 0 {
        return;
    }
    let mean_log: Vec<f64> = (0..ranks)
        .map(|i| {
            mats.iter()
                .map(|m| ln(f64::from(m.singular_values[i])))
                .sum::<f64>()
                / mats.len() as f64
        })
        .collect();
    let shape = unit(&mean_log);
    // The voice's lowest tonic, so the subject's octave climb stays in its register.
    let mut tonic = root.pitch_class();
    while tonic < voice.low {
        tonic += 12;
    }
    let note_len = gap / SUBJECT as f64;
    for j in 0..SUBJECT {
        let u = shape[j % ranks];
        let steps = (u * 7.0).round() as i32;
        let key = scale.degree_step(tonic, root, steps);
        let beat = entry + j as f64 * note_len;
        if beat >= end {
            return;
        }
        add_note(track, beat, note_len * 0.95, key, velocity(u, 70, 95));
    }
    let spectra = Spectra::new(mats, 1);
    let loudness = per_layer_unit(mats, |m| m.moments.std);
    let step = (gap / 4.0).max(0.5);
    let mut beat = entry + gap;
    let mut i = 0;
    while beat + step <= end + 1e-9 {
        let l = i % mats.len();
        let key = pitch(scale, root, spectra.unit(l, 0), voice.low, voice.high);
        add_note(track, beat, step * 0.95, key, velocity(loudness[l], 55, 85));
        beat += step;
        i += 1;
    }
}
