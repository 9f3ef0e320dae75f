//! House at 128 BPM: intro → buildup → drop → outro, each section in its own mode on the model's
//! root (Lydian, Dorian, Phrygian, Aeolian), so the piece darkens as it goes. Chords come from
//! q_proj's spectrum, the bassline from down_proj's row norms, the hats from gate_proj's spread.

use super::common::{
    BEATS_PER_BAR, Channels, PLUCK_LEAD, STRING_PAD, SYNTH_BASS, add_note, at, bin_means,
    drum_track, finish, layer_norms, ln, marker, model_key, norm_names, per_layer_unit, role_or,
    root_note, section_bars, section_starts, step_in_range, tempo, tensors, unit, velocity,
};
use crate::music::Scale;
use crate::music::score::{Score, drum};
use crate::weights::{NormRole, Role, WeightStats};

const BPM: f64 = 128.0;
const SECTIONS: [&str; 4] = ["Intro", "Buildup", "Drop", "Outro"];
const NATURAL_BARS: [u32; 4] = [16, 16, 32, 16];
const MODES: [Scale; 4] = [
    Scale::Lydian,
    Scale::Dorian,
    Scale::Phrygian,
    Scale::NaturalMinor,
];
/// Chords per progression: each section loops four, from its own four layers.
const PROGRESSION: usize = 4;
/// Where extra sixteenth hats go as gate_proj's spread grows: off the beat first.
const HAT_ORDER: [f64; 8] = [3.75, 1.75, 2.75, 0.75, 3.25, 1.25, 2.25, 0.25];
/// Scale steps of a chord over two octaves, for the bass and the lead.
const CHORD_TONES: [i32; 6] = [0, 2, 4, 7, 9, 11];

pub(super) fn compose(stats: &WeightStats, bars: Option<u32>, title: String) -> Score {
    // The model's root stays; the mode changes section by section.
    let (root, _) = model_key(stats);
    let sections = section_bars(&NATURAL_BARS, bars);
    let starts = section_starts(&sections);
    let total_bars: u32 = sections.iter().sum();
    let bar_len = f64::from(BEATS_PER_BAR);

    let q = stats.per_layer(Role::Q);
    let down = stats.per_layer(Role::Down);
    let (gate_role, gate) = role_or(stats, Role::Gate, Role::Up);
    let attention_norms = layer_norms(stats, NormRole::Attention);

    let q_top = per_layer_unit(&q, |m| {
        ln(f64::from(m.singular_values.first().copied().unwrap_or(1.0)))
    });
    let q_spread = per_layer_unit(&q, |m| m.moments.std);
    let q_tails = per_layer_unit(&q, |m| m.moments.kurtosis);
    let hat_density = per_layer_unit(&gate, |m| m.moments.std);
    let hat_open = per_layer_unit(&gate, |m| m.moments.kurtosis);
    let tension = unit(&stats.layers.iter().map(|l| l.tension).collect::<Vec<_>>());

    let mut channels = Channels::default();
    let mut chords = channels.track(
        STRING_PAD,
        format!(
            "{}: top singular value (log) → chord degree, kurtosis → added seventh, std → \
             loudness; four layers per section",
            tensors(&q)
        ),
    );
    let mut bass = channels.track(
        SYNTH_BASS,
        format!(
            "{}: row norms in eight bins → eighth-note steps (chord tone by size, rest when \
             small), following the chords' layers",
            tensors(&down)
        ),
    );
    let mut lead = channels.track(
        PLUCK_LEAD,
        format!(
            "drop: {}: γ in eight bins → chord tones (rest when small)",
            norm_names(&attention_norms)
        ),
    );
    let gate_note = if gate_role == Role::Gate {
        ""
    } else {
        " (no gate_proj in this family: up_proj instead)"
    };
    let mut drums = drum_track(format!(
        "{}{gate_note}: std → sixteenth hats per bar, kurtosis → open hat; kick and clap \
         by section; buildup roll peak from the mean attention/MLP tension",
        tensors(&gate)
    ));

    let mut global_bar = 0usize;
    for (s, &n) in sections.iter().enumerate() {
        let scale = MODES[s];
        let n = n as usize;
        for b in 0..n {
            let beat = starts[s] + b as f64 * bar_len;
            let position = b as f64 / n as f64;
            let first_half = b < n.div_ceil(2);
            let l = ((s * PROGRESSION + b % PROGRESSION) * q.len().max(1)
                / (SECTIONS.len() * PROGRESSION))
                .min(q.len().saturating_sub(1));

            // Chord on the degree the layer's strongest direction points to.
            let degree = (at(&q_top, l, q.len()) * 6.0).round() as i32;
            let seventh = at(&q_tails, l, q.len()) > 0.5;
            let spread = at(&q_spread, l, q.len());
            let base = root_note(root, 4);
            let mut tones: Vec<u8> = [0, 2, 4]
                .iter()
                .map(|&t| step_in_range(scale, root, base, degree + t, 55, 77))
                .collect();
            if seventh {
                tones.push(step_in_range(scale, root, base, degree + 6, 55, 77));
            }
            if !q.is_empty() {
                for &key in &tones {
                    match s {
                        0 => add_note(&mut chords, beat, bar_len, key, velocity(spread, 50, 70)),
                        1 => {
                            let vel = velocity(0.5 * spread + 0.5 * position, 55, 95);
                            add_note(&mut chords, beat, bar_len, key, vel);
                        }
                        2 => {
                            for off in [0.5, 1.5, 2.5, 3.5] {
                                let vel = velocity(spread, 80, 105);
                                add_note(&mut chords, beat + off, 0.35, key, vel);
                            }
                        }
                        _ => {
                            let vel = velocity(spread * (1.0 - position), 35, 70);
                            add_note(&mut chords, beat, bar_len, key, vel);
                        }
                    }
                }
            }

            // Bassline from the same layer's down_proj row norms.
            let bass_on = match s {
                0 => !first_half || n == 1,
                3 => first_half,
                _ => true,
            };
            if bass_on && let Some(m) = down.get(l * down.len() / q.len().max(1)) {
                let bass_root = step_in_range(scale, root, root_note(root, 2), degree, 31, 45);
                for (j, &u) in unit(&bin_means(&m.row_norms, 8)).iter().enumerate() {
                    if u < 0.2 {
                        continue;
                    }
                    let tone = [0, 2, 4, 7][((u * 3.0).round() as usize).min(3)];
                    let key = scale.degree_step(bass_root, root, tone);
                    add_note(
                        &mut bass,
                        beat + j as f64 * 0.5,
                        0.4,
                        key,
                        velocity(u, 85, 115),
                    );
                }
            }

            // Pluck lead over the drop, one layer's γ per bar.
            if s == 2 && !attention_norms.is_empty() {
                let g = (global_bar * attention_norms.len() / total_bars as usize)
                    .min(attention_norms.len() - 1);
                let high = step_in_range(scale, root, root_note(root, 5), degree, 62, 74);
                for (j, &u) in unit(&bin_means(&attention_norms[g].gamma, 8))
                    .iter()
                    .enumerate()
                {
                    if u < 0.3 {
                        continue;
                    }
                    let steps = CHORD_TONES[((u * 5.0).round() as usize).min(5)];
                    let key = scale.degree_step(high, root, steps);
                    add_note(
                        &mut lead,
                        beat + j as f64 * 0.5,
                        0.45,
                        key,
                        velocity(u, 70, 100),
                    );
                }
            }

            // Drums: hats always, their density the gate's spread in this bar's layer.
            if !gate.is_empty() {
                let gl = (global_bar * gate.len() / total_bars as usize).min(gate.len() - 1);
                let open = hat_open[gl] > 0.5;
                for off in [0.5, 1.5, 2.5, 3.5] {
                    if open && off == 3.5 {
                        add_note(&mut drums, beat + off, 0.5, drum::OPEN_HAT, 85);
                    } else {
                        add_note(&mut drums, beat + off, 0.25, drum::CLOSED_HAT, 80);
                    }
                }
                let extra = (hat_density[gl] * HAT_ORDER.len() as f64).round() as usize;
                for &off in HAT_ORDER.iter().take(extra) {
                    add_note(&mut drums, beat + off, 0.2, drum::CLOSED_HAT, 55);
                }
            }
            let kick = s == 1 || s == 2 || (s == 3 && first_half);
            if kick {
                for k in 0..BEATS_PER_BAR {
                    add_note(&mut drums, beat + f64::from(k), 0.5, drum::KICK, 115);
                }
                for k in [1.0, 3.0] {
                    add_note(&mut drums, beat + k, 0.5, drum::CLAP, 100);
                }
            }
            if s == 1 && n >= 2 && b == n - 1 {
                let peak = 0.5 + 0.5 * tension.iter().sum::<f64>() / tension.len().max(1) as f64;
                for j in 0..16 {
                    let rise = j as f64 / 15.0 * peak;
                    let vel = velocity(rise, 40, 120);
                    add_note(&mut drums, beat + j as f64 * 0.25, 0.2, drum::SNARE, vel);
                }
            }
            global_bar += 1;
        }
    }

    let markers = SECTIONS
        .iter()
        .enumerate()
        .map(|(i, name)| marker(starts[i], name))
        .collect();
    finish(
        title,
        vec![tempo(0.0, BPM)],
        markers,
        vec![chords, bass, lead, drums],
        starts[SECTIONS.len()],
    )
}
