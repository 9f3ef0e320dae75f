//! DNA in five movements, walking the model's anatomy from the embeddings to the last matrix,
//! each movement in its own mode and tempo: the embedding (Lydian organ), attention (Dorian
//! strings), the MLP (Phrygian brass), the norms (Aeolian flute), and the Frobenius norms of
//! every matrix in order, fading to silence.

use super::common::{
    BEATS_PER_BAR, CELLOS, Channels, FLUTE, HORNS, LEADING, ORGAN, Spectra, VIOLAS, VIOLINS,
    add_control, add_note, at, bin_means, finish, layer_norms, ln, marker, model_key, norm_names,
    per_layer_unit, pitch, role_or, section_bars, section_starts, slots, step_in_range, tempo,
    tensors, unit, velocity,
};
use crate::music::Scale;
use crate::music::score::Score;
use crate::weights::{MatrixStats, NormRole, NormStats, Role, WeightStats};

const MOVEMENTS: [&str; 5] = [
    "I. Prologue",
    "II. Anatomy",
    "III. Memory",
    "IV. Balance",
    "V. Epilogue",
];
const NATURAL_BARS: [u32; 5] = [8, 12, 12, 8, 8];
/// Quickening through the blocks, then slowing to the end.
const TEMPI: [f64; 5] = [72.0, 96.0, 108.0, 80.0, 60.0];
const VOLUME: u8 = 7;

pub(super) fn compose(stats: &WeightStats, bars: Option<u32>, title: String) -> Score {
    let (root, home) = model_key(stats);
    let movements = section_bars(&NATURAL_BARS, bars);
    let starts = section_starts(&movements);
    let span = |m: usize| (starts[m], starts[m + 1] - starts[m]);
    let bar_len = f64::from(BEATS_PER_BAR);

    let embedding: Vec<&MatrixStats> = stats.embedding().into_iter().collect();
    let q = stats.per_layer(Role::Q);
    let k = stats.per_layer(Role::K);
    let v = stats.per_layer(Role::V);
    let o = stats.per_layer(Role::O);
    let (gate_role, gate) = role_or(stats, Role::Gate, Role::Up);
    let up = stats.per_layer(Role::Up);
    let down = stats.per_layer(Role::Down);
    let attention_norms = layer_norms(stats, NormRole::Attention);
    let mlp_norms = layer_norms(stats, NormRole::Mlp);
    let mut in_order: Vec<&MatrixStats> = stats.matrices.iter().collect();
    in_order.sort_by_key(|m| (depth(m), m.role));

    let mut channels = Channels::default();
    let mut organ = channels.track(
        ORGAN,
        format!(
            "I: {}: top {LEADING} singular values, strongest first (log) → chord top notes, \
             row norms in bins → pedal; V: every matrix's Frobenius norm in layer order (log) → \
             pitch, velocity and CC {VOLUME} fading to silence",
            tensors(&embedding)
        ),
    );
    let mut violins = channels.track(
        VIOLINS,
        format!(
            "II: {}: top two singular values (log) per layer, std → loudness",
            tensors(&q)
        ),
    );
    let mut violas = channels.track(
        VIOLAS,
        format!(
            "II: {}: top singular value (log) per layer, std → loudness",
            tensors(&k)
        ),
    );
    let mut cellos = channels.track(
        CELLOS,
        format!(
            "II: {} then {}: top singular value (log) per layer, std → loudness",
            tensors(&v),
            tensors(&o)
        ),
    );
    let gate_note = if gate_role == Role::Gate {
        ""
    } else {
        " (no gate_proj in this family: up_proj instead)"
    };
    let mut horns = channels.track(
        HORNS,
        format!(
            "III: {}{gate_note} (top), {} (middle), {} (bottom): top singular value (log) per \
             layer as a held chord, std → loudness",
            tensors(&gate),
            tensors(&up),
            tensors(&down)
        ),
    );
    let mut flute = channels.track(
        FLUTE,
        format!(
            "IV: {} then {}: mean γ per layer → pitch, γ std → loudness",
            norm_names(&attention_norms),
            norm_names(&mlp_norms)
        ),
    );

    // I. Prologue: one organ chord a bar, its top note walking down the embedding spectrum.
    let (start, beats) = span(0);
    let bar_count = ((beats / bar_len).round() as usize).max(1);
    if let Some(e) = embedding.first() {
        let lydian = Scale::Lydian;
        let falling = unit(
            &e.singular_values
                .iter()
                .take(LEADING)
                .map(|&s| ln(f64::from(s)))
                .collect::<Vec<_>>(),
        );
        let pedal = unit(&bin_means(&e.row_norms, bar_count));
        for (b, &level) in pedal.iter().enumerate() {
            let u = at(&falling, b, bar_count);
            let beat = start + b as f64 * bar_len;
            let top = pitch(lydian, root, u, 64, 84);
            let vel = velocity(u, 50, 80);
            add_note(&mut organ, beat, bar_len, top, vel);
            for steps in [-2, -4] {
                let key = step_in_range(lydian, root, top, steps, 52, 80);
                add_note(&mut organ, beat, bar_len, key, vel);
            }
            let low = pitch(lydian, root, level, 36, 48);
            add_note(&mut organ, beat, bar_len, low, velocity(level, 50, 75));
        }
    }

    // II. Anatomy: a slot per layer; each string section reads its attention matrix.
    let (start, beats) = span(1);
    let dorian = Scale::Dorian;
    let layer_count = q.len().max(k.len()).max(v.len()).max(o.len());
    let parts = [
        (Spectra::new(&q, 2), per_layer_unit(&q, |m| m.moments.std)),
        (Spectra::new(&k, 1), per_layer_unit(&k, |m| m.moments.std)),
        (Spectra::new(&v, 1), per_layer_unit(&v, |m| m.moments.std)),
        (Spectra::new(&o, 1), per_layer_unit(&o, |m| m.moments.std)),
    ];
    for slot in slots(beats, layer_count, 1.0) {
        let beat = start + slot.start;
        let half = slot.length / 2.0;
        let l = slot.item;
        // (part, rank, offset, length, track, range)
        let lines: [(usize, usize, f64, f64, u8, u8); 5] = [
            (0, 0, 0.0, half, 67, 91),
            (0, 1, half, half, 67, 91),
            (1, 0, 0.0, slot.length, 55, 76),
            (2, 0, 0.0, half, 40, 64),
            (3, 0, half, half, 40, 64),
        ];
        for (part, rank, offset, length, low, high) in lines {
            let (spectra, loudness) = &parts[part];
            if spectra.layers() == 0 {
                continue;
            }
            let s = l * spectra.layers() / layer_count;
            let key = pitch(dorian, root, spectra.unit(s, rank), low, high);
            let vel = velocity(at(loudness, s, spectra.layers()), 55, 90);
            let track = match part {
                0 => &mut violins,
                1 => &mut violas,
                _ => &mut cellos,
            };
            add_note(track, beat + offset, length * 0.95, key, vel);
        }
    }

    // III. Memory: a held brass chord per layer, gate over up over down.
    let (start, beats) = span(2);
    let phrygian = Scale::Phrygian;
    let mlp_count = gate.len().max(up.len()).max(down.len());
    let voices = [(&gate, 60, 76), (&up, 50, 67), (&down, 38, 55)];
    let voices: Vec<(Spectra, Vec<f64>, usize, u8, u8)> = voices
        .into_iter()
        .map(|(mats, low, high)| {
            (
                Spectra::new(mats, 1),
                per_layer_unit(mats, |m| m.moments.std),
                mats.len(),
                low,
                high,
            )
        })
        .collect();
    for slot in slots(beats, mlp_count, 1.0) {
        for (spectra, loudness, n, low, high) in &voices {
            if *n == 0 {
                continue;
            }
            let s = slot.item * n / mlp_count;
            let key = pitch(phrygian, root, spectra.unit(s, 0), *low, *high);
            let vel = velocity(loudness[s.min(n - 1)], 55, 95);
            add_note(&mut horns, start + slot.start, slot.length * 0.97, key, vel);
        }
    }

    // IV. Balance: the flute sings each block's two norms, before attention then before the MLP.
    let (start, beats) = span(3);
    let aeolian = Scale::NaturalMinor;
    let norm_count = attention_norms.len().max(mlp_norms.len());
    let all_norms: Vec<&NormStats> = attention_norms.iter().chain(&mlp_norms).copied().collect();
    let heights = unit(&all_norms.iter().map(|n| n.moments.mean).collect::<Vec<_>>());
    let spreads = unit(&all_norms.iter().map(|n| n.moments.std).collect::<Vec<_>>());
    for slot in slots(beats, norm_count, 1.0) {
        let half = slot.length / 2.0;
        for (part, list, offset) in [(0, &attention_norms, 0.0), (1, &mlp_norms, half)] {
            if list.is_empty() {
                continue;
            }
            let i = (slot.item * list.len() / norm_count).min(list.len() - 1);
            let index = if part == 0 {
                i
            } else {
                attention_norms.len() + i
            };
            let key = pitch(aeolian, root, heights[index], 72, 93);
            let vel = velocity(spreads[index], 50, 85);
            add_note(
                &mut flute,
                start + slot.start + offset,
                half * 0.95,
                key,
                vel,
            );
        }
    }

    // V. Epilogue: back in the model's own key, every matrix in depth order, each quieter than
    // the one before until the last is barely a whisper; the organ's volume falls with it.
    let (start, beats) = span(4);
    let sizes = unit(&in_order.iter().map(|m| ln(m.frobenius)).collect::<Vec<_>>());
    add_control(&mut organ, 0.0, VOLUME, 100);
    let epilogue = slots(beats, in_order.len(), 0.5);
    let last = epilogue.len().saturating_sub(1).max(1) as f64;
    for (i, slot) in epilogue.iter().enumerate() {
        let u = sizes[slot.item];
        let x = i as f64 / last;
        let fade = (1.0 - x).powi(2) * (0.7 + 0.3 * u);
        let vel = (1.0 + 69.0 * fade).round() as u8;
        let key = pitch(home, root, u, 48, 72);
        let beat = start + slot.start;
        add_note(&mut organ, beat, slot.length, key, vel);
        add_control(&mut organ, beat, VOLUME, (100.0 * (1.0 - x)).round() as u8);
    }

    let markers = MOVEMENTS
        .iter()
        .enumerate()
        .map(|(i, name)| marker(starts[i], name))
        .collect();
    let tempo_map = TEMPI
        .iter()
        .enumerate()
        .map(|(i, &bpm)| tempo(starts[i], bpm))
        .collect();
    finish(
        title,
        tempo_map,
        markers,
        vec![organ, violins, violas, cellos, horns, flute],
        starts[MOVEMENTS.len()],
    )
}

/// Where a matrix sits in the forward pass: embeddings first, blocks in order, the head last.
fn depth(m: &MatrixStats) -> usize {
    match (m.layer, m.role) {
        (Some(l), _) => l + 1,
        (None, Role::Head) => usize::MAX,
        (None, _) => 0,
    }
}
