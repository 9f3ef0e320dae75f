//! Acid at 138 BPM: one sixteen-step TB-303 pattern per layer, in Phrygian on the model's root.
//! down_proj's row norms give the steps (pitch, accent, rest); a large change of spectrum from
//! the layer before makes the line slide; v_proj's tails and gate_proj's spread turn the
//! resonance and cutoff knobs.

use super::common::{
    ACID_BASS, BEATS_PER_BAR, Channels, add_control, add_note, bin_means, drum_track, finish,
    marker, model_key, per_layer_unit, pitch, role_or, section_bars, tempo, tensors, unit,
    velocity,
};
use crate::music::Scale;
use crate::music::score::{Score, drum};
use crate::weights::{MatrixStats, Role, WeightStats};

const BPM: f64 = 138.0;
/// Bars each layer's pattern plays at the natural length.
const REPEATS: u32 = 2;
const STEPS: usize = 16;
const STEP: f64 = 0.25;
/// A step this many standard deviations above the pattern's mean is accented …
const ACCENT_Z: f64 = 0.8;
/// … and this many below is a rest.
const REST_Z: f64 = -1.0;
/// Slides in the pattern of the layer whose spectrum moved most.
const MAX_SLIDES: f64 = 5.0;
/// How far a sliding note reaches into the next step.
const SLIDE_OVERLAP: f64 = 0.06;
pub(super) const CUTOFF: u8 = 74;
pub(super) const RESONANCE: u8 = 71;

pub(super) fn compose(stats: &WeightStats, bars: Option<u32>, title: String) -> Score {
    let (root, _) = model_key(stats);
    let scale = Scale::Phrygian;
    let (pattern_role, patterns) = role_or(stats, Role::Down, Role::Up);
    let (gate_role, gate) = role_or(stats, Role::Gate, Role::Up);
    let v = stats.per_layer(Role::V);

    // Which layers play, and for how many bars: all of them when the bars allow, otherwise
    // evenly spaced ones for a bar each.
    let count = patterns.len();
    let plan: Vec<(usize, u32)> = match bars {
        _ if count == 0 => Vec::new(),
        None => (0..count).map(|i| (i, REPEATS)).collect(),
        Some(b) if b as usize >= count => section_bars(&vec![1; count], Some(b))
            .into_iter()
            .enumerate()
            .collect(),
        Some(b) => {
            let b = b.max(1) as usize;
            (0..b)
                .map(|i| (if b == 1 { 0 } else { i * (count - 1) / (b - 1) }, 1))
                .collect()
        }
    };

    let deltas = unit(
        &patterns
            .iter()
            .map(|m| {
                stats
                    .layers
                    .iter()
                    .find(|l| Some(l.index) == m.layer)
                    .map_or(0.0, |l| l.svd_delta_mean)
            })
            .collect::<Vec<_>>(),
    );
    let cutoff = per_layer_unit(&gate, |m| m.moments.std);
    let resonance = per_layer_unit(&v, |m| m.moments.kurtosis);
    let hat_level = per_layer_unit(&gate, |m| m.moments.kurtosis);
    let lookup = |values: &[f64], layer: Option<usize>, mats: &[&MatrixStats]| {
        mats.iter()
            .position(|m| m.layer == layer)
            .map_or(0.5, |i| values[i])
    };

    let mut channels = Channels::default();
    let gate_note = if gate_role == Role::Gate {
        ""
    } else {
        " (no gate_proj in this family: up_proj instead)"
    };
    let mut bass = channels.track(
        ACID_BASS,
        format!(
            "{}: row norms in {STEPS} bins → step pitch (Phrygian, 36–60), z > {ACCENT_Z} \
             accent, z < {REST_Z} rest; per-layer svd_delta_mean → slides; CC {RESONANCE} from \
             {} kurtosis, CC {CUTOFF} from {}{gate_note} std",
            tensors(&patterns),
            tensors(&v),
            tensors(&gate)
        ),
    );
    if pattern_role != Role::Down {
        bass.source
            .push_str(" (no down_proj in this model: up_proj instead)");
    }
    let mut drums = drum_track(format!(
        "kick on the beats; offbeat hats, loudness from {}{gate_note} kurtosis",
        tensors(&gate)
    ));

    let mut markers = Vec::new();
    let mut beat = 0.0;
    for (i, repeats) in plan {
        let m = patterns[i];
        let layer = m.layer;
        markers.push(marker(beat, &format!("Layer {}", layer.unwrap_or(i))));
        add_control(
            &mut bass,
            beat,
            RESONANCE,
            velocity(lookup(&resonance, layer, &v), 20, 120),
        );
        add_control(
            &mut bass,
            beat,
            CUTOFF,
            velocity(lookup(&cutoff, layer, &gate), 20, 127),
        );

        let bins = bin_means(&m.row_norms, STEPS);
        let mean = bins.iter().sum::<f64>() / STEPS as f64;
        let sd = (bins.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / STEPS as f64).sqrt();
        let heights = unit(&bins);
        let steps: Vec<Option<(u8, bool)>> = bins
            .iter()
            .zip(&heights)
            .map(|(&b, &u)| {
                let z = if sd > 0.0 { (b - mean) / sd } else { 0.0 };
                (z >= REST_Z).then(|| (pitch(scale, root, u, 36, 60), z > ACCENT_Z))
            })
            .collect();
        let slides = slide_steps(&steps, (deltas[i] * MAX_SLIDES).round() as usize);
        let hats = velocity(lookup(&hat_level, layer, &gate), 60, 100);

        for _ in 0..repeats {
            for (s, step) in steps.iter().enumerate() {
                let Some((key, accent)) = *step else {
                    continue;
                };
                let length = if slides.contains(&s) {
                    STEP + SLIDE_OVERLAP
                } else {
                    STEP / 2.0
                };
                let vel = if accent { 118 } else { 80 };
                add_note(&mut bass, beat + s as f64 * STEP, length, key, vel);
            }
            for k in 0..BEATS_PER_BAR {
                let b = beat + f64::from(k);
                add_note(&mut drums, b, 0.5, drum::KICK, 110);
                add_note(&mut drums, b + 0.5, 0.25, drum::CLOSED_HAT, hats);
            }
            beat += f64::from(BEATS_PER_BAR);
        }
    }

    finish(
        title,
        vec![tempo(0.0, BPM)],
        markers,
        vec![bass, drums],
        beat,
    )
}

/// The `count` steps that slide into the next: those followed by a different sounding note,
/// widest leaps first (a slide is heard most across a large interval).
fn slide_steps(steps: &[Option<(u8, bool)>], count: usize) -> Vec<usize> {
    let mut candidates: Vec<(usize, u8)> = steps
        .windows(2)
        .enumerate()
        .filter_map(|(i, w)| match (w[0], w[1]) {
            (Some((a, _)), Some((b, _))) if a != b => Some((i, a.abs_diff(b))),
            _ => None,
        })
        .collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    candidates.into_iter().take(count).map(|(i, _)| i).collect()
}
