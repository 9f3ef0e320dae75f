//! What the four pieces share: the model's key, statistics scaled to pitches and velocities,
//! section lengths under `--bars`, time slots for layers, and track assembly.

use crate::music::score::{
    BuiltInSound, DRUM_CHANNEL, Marker, Score, ScoreControl, ScoreNote, TempoChange, Track,
};
use crate::music::{Root, Scale};
use crate::weights::{MatrixStats, NormRole, NormStats, Role, WeightStats};

/// Every piece is in 4/4.
pub(super) const BEATS_PER_BAR: u32 = 4;

/// Leading singular values a spectrum-read section uses: a full SVD's tail (near-zero values of
/// a rank-deficient matrix) would flatten the log scale for everything above it.
pub(super) const LEADING: usize = 64;

/// The shortest note a piece writes, so a tiny `--bars` never yields a zero length.
const MIN_LENGTH: f64 = 1.0 / 64.0;

/// The model's own key; a scale name from a newer analysis falls back to major.
pub(super) fn model_key(stats: &WeightStats) -> (Root, Scale) {
    let root = Root::from_pitch_class(stats.key.root);
    let scale = Scale::from_name(&stats.key.scale).unwrap_or(Scale::Major);
    (root, scale)
}

/// The root in `octave` (octave 4 holds middle C); the roots fit in every octave used here.
pub(super) fn root_note(root: Root, octave: i32) -> u8 {
    root.note_in_octave(octave).unwrap_or(60)
}

/// Bars per section: the natural lengths, or `bars` shared out in proportion to them with at
/// least one bar each (so fewer bars than sections still gives every section one bar).
pub(super) fn section_bars(natural: &[u32], bars: Option<u32>) -> Vec<u32> {
    let Some(bars) = bars else {
        return natural.to_vec();
    };
    if natural.is_empty() {
        return Vec::new();
    }
    let sections = natural.len() as u32;
    let total = bars.max(sections);
    let sum: u32 = natural.iter().sum::<u32>().max(1);
    let targets: Vec<f64> = natural
        .iter()
        .map(|&n| f64::from(total) * f64::from(n) / f64::from(sum))
        .collect();
    let mut out: Vec<u32> = targets.iter().map(|&t| (t.floor() as u32).max(1)).collect();
    // Largest remainders first when short; the longest sections give bars back when over.
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = targets[a] - targets[a].floor();
        let rb = targets[b] - targets[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let mut given: u32 = out.iter().sum();
    let mut i = 0;
    while given < total {
        out[order[i % order.len()]] += 1;
        given += 1;
        i += 1;
    }
    while given > total {
        let longest = (0..out.len())
            .max_by(|&a, &b| out[a].cmp(&out[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        out[longest] -= 1;
        given -= 1;
    }
    out
}

/// Beats at which each section starts, plus the end.
pub(super) fn section_starts(bars: &[u32]) -> Vec<f64> {
    let mut starts = Vec::with_capacity(bars.len() + 1);
    let mut beat = 0.0;
    starts.push(beat);
    for &b in bars {
        beat += f64::from(b * BEATS_PER_BAR);
        starts.push(beat);
    }
    starts
}

/// Min–max scaling to 0..=1, so a statistic spans the whole range it drives over this model;
/// a constant (or non-finite) statistic sits in the middle.
pub(super) fn unit(values: &[f64]) -> Vec<f64> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let min = finite.clone().fold(f64::INFINITY, f64::min);
    let max = finite.fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|&v| {
            if !v.is_finite() || max - min <= f64::EPSILON * max.abs().max(1.0) {
                0.5
            } else {
                (v - min) / (max - min)
            }
        })
        .collect()
}

/// Natural log, floored so a zero singular value stays finite.
pub(super) fn ln(value: f64) -> f64 {
    value.max(1e-12).ln()
}

/// `values` reduced to `bins` contiguous means (a short vector is read by index instead).
pub(super) fn bin_means(values: &[f32], bins: usize) -> Vec<f64> {
    if values.is_empty() || bins == 0 {
        return vec![0.0; bins];
    }
    (0..bins)
        .map(|i| {
            let from = i * values.len() / bins;
            let to = ((i + 1) * values.len() / bins).max(from + 1);
            let chunk = &values[from..to.min(values.len())];
            chunk.iter().map(|&v| f64::from(v)).sum::<f64>() / chunk.len() as f64
        })
        .collect()
}

/// The tone of `scale` nearest to `u` (0..=1) spread over `low..=high`: how every statistic
/// becomes a pitch.
pub(super) fn pitch(scale: Scale, root: Root, u: f64, low: u8, high: u8) -> u8 {
    let span = f64::from(high) - f64::from(low);
    let target = f64::from(low) + u.clamp(0.0, 1.0) * span;
    scale.nearest_in_range(target as f32, root, low, high)
}

/// `u` (0..=1) spread over `low..=high` velocities.
pub(super) fn velocity(u: f64, low: u8, high: u8) -> u8 {
    let span = f64::from(high) - f64::from(low);
    (f64::from(low) + u.clamp(0.0, 1.0) * span)
        .round()
        .clamp(1.0, 127.0) as u8
}

/// `note` moved `steps` scale steps, then octaves folded into `low..=high` (a scale tone stays
/// one), for chord tones and imitation in a voice's register.
pub(super) fn step_in_range(
    scale: Scale,
    root: Root,
    note: u8,
    steps: i32,
    low: u8,
    high: u8,
) -> u8 {
    let mut n = i32::from(scale.degree_step(note, root, steps));
    while n > i32::from(high) && n - 12 >= 0 {
        n -= 12;
    }
    while n < i32::from(low) && n + 12 <= 127 {
        n += 12;
    }
    n.clamp(0, 127) as u8
}

/// One stretch of time given to one item (a layer, a matrix).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Slot {
    /// Which of the `count` items plays here.
    pub item: usize,
    pub start: f64,
    pub length: f64,
}

/// `beats` shared among `count` items in order, with boundaries on a `grid`: each item gets a
/// slot when they fit; otherwise evenly spaced items do, so depth always reads left to right.
pub(super) fn slots(beats: f64, count: usize, grid: f64) -> Vec<Slot> {
    if count == 0 || beats <= 0.0 || grid <= 0.0 {
        return Vec::new();
    }
    let cells = ((beats / grid).round() as usize).max(1);
    let n = count.min(cells);
    let boundary = |i: usize| (cells * i / n) as f64 * grid;
    (0..n)
        .map(|i| {
            let item = if n == count {
                i
            } else if n == 1 {
                0
            } else {
                i * (count - 1) / (n - 1)
            };
            Slot {
                item,
                start: boundary(i),
                length: boundary(i + 1) - boundary(i),
            }
        })
        .collect()
}

/// A General MIDI instrument and the built-in sound that stands in for it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Instrument {
    pub name: &'static str,
    pub program: u8,
    pub sound: BuiltInSound,
}

pub(super) const VIOLINS: Instrument = Instrument {
    name: "Violins",
    program: 40,
    sound: BuiltInSound::Strings,
};
pub(super) const VIOLAS: Instrument = Instrument {
    name: "Violas",
    program: 41,
    sound: BuiltInSound::Strings,
};
pub(super) const CELLOS: Instrument = Instrument {
    name: "Cellos",
    program: 42,
    sound: BuiltInSound::Strings,
};
pub(super) const CONTRABASSES: Instrument = Instrument {
    name: "Contrabasses",
    program: 43,
    sound: BuiltInSound::Strings,
};
pub(super) const HORNS: Instrument = Instrument {
    name: "French Horns",
    program: 60,
    sound: BuiltInSound::Brass,
};
pub(super) const OBOE: Instrument = Instrument {
    name: "Oboe",
    program: 68,
    sound: BuiltInSound::Clarinet,
};
pub(super) const CLARINET: Instrument = Instrument {
    name: "Clarinet",
    program: 71,
    sound: BuiltInSound::Clarinet,
};
pub(super) const FLUTE: Instrument = Instrument {
    name: "Flute",
    program: 73,
    sound: BuiltInSound::Flute,
};
pub(super) const HARP: Instrument = Instrument {
    name: "Harp",
    program: 46,
    sound: BuiltInSound::Pluck,
};
pub(super) const ORGAN: Instrument = Instrument {
    name: "Organ",
    program: 19,
    sound: BuiltInSound::Organ,
};
pub(super) const STRING_PAD: Instrument = Instrument {
    name: "String Pad",
    program: 48,
    sound: BuiltInSound::Strings,
};
pub(super) const PLUCK_LEAD: Instrument = Instrument {
    name: "Pluck Lead",
    program: 46,
    sound: BuiltInSound::Pluck,
};
pub(super) const SYNTH_BASS: Instrument = Instrument {
    name: "Synth Bass",
    program: 38,
    sound: BuiltInSound::FmBass,
};
pub(super) const ACID_BASS: Instrument = Instrument {
    name: "Acid Bass",
    program: 38,
    sound: BuiltInSound::AcidBass,
};

/// Hands out melodic channels in order, skipping the drum channel.
#[derive(Debug, Default)]
pub(super) struct Channels(u8);

impl Channels {
    pub fn track(&mut self, instrument: Instrument, source: String) -> Track {
        let channel = if self.0 >= DRUM_CHANNEL {
            self.0 + 1
        } else {
            self.0
        };
        self.0 += 1;
        Track {
            name: instrument.name.to_string(),
            source,
            program: instrument.program,
            channel: channel.min(15),
            sound: instrument.sound,
            notes: Vec::new(),
            controls: Vec::new(),
        }
    }
}

/// The drum kit on General MIDI's drum channel.
pub(super) fn drum_track(source: String) -> Track {
    Track {
        name: "Drums".to_string(),
        source,
        program: 0,
        channel: DRUM_CHANNEL,
        sound: BuiltInSound::Drums,
        notes: Vec::new(),
        controls: Vec::new(),
    }
}

pub(super) fn add_note(track: &mut Track, start: f64, length: f64, key: u8, velocity: u8) {
    track.notes.push(ScoreNote {
        start: start.max(0.0),
        length: length.max(MIN_LENGTH),
        key: key.min(127),
        velocity: velocity.clamp(1, 127),
    });
}

pub(super) fn add_control(track: &mut Track, beat: f64, controller: u8, value: u8) {
    track.controls.push(ScoreControl {
        beat: beat.max(0.0),
        controller,
        value: value.min(127),
    });
}

/// How a set of per-layer tensors is named in a source: the checkpoint name with the layer
/// index as `*`, and the layers it covers ("model.layers.*.self_attn.q_proj.weight, layers
/// 0–29").
pub(super) fn tensors(mats: &[&MatrixStats]) -> String {
    let Some(first) = mats.first() else {
        return "(absent)".to_string();
    };
    let name = match first.layer {
        Some(layer) => first.name.replacen(&format!(".{layer}."), ".*.", 1),
        None => first.name.clone(),
    };
    let layers: Vec<usize> = mats.iter().filter_map(|m| m.layer).collect();
    match (layers.first(), layers.last()) {
        (Some(a), Some(b)) => format!("{name}, layers {a}–{b}"),
        _ => name,
    }
}

/// The same for norms.
pub(super) fn norm_names(norms: &[&NormStats]) -> String {
    let Some(first) = norms.first() else {
        return "(absent)".to_string();
    };
    let name = match first.layer {
        Some(layer) => first.name.replacen(&format!(".{layer}."), ".*.", 1),
        None => first.name.clone(),
    };
    let layers: Vec<usize> = norms.iter().filter_map(|n| n.layer).collect();
    match (layers.first(), layers.last()) {
        (Some(a), Some(b)) => format!("{name}, layers {a}–{b}"),
        _ => name,
    }
}

/// Every block's norm of `role`, in layer order.
pub(super) fn layer_norms(stats: &WeightStats, role: NormRole) -> Vec<&NormStats> {
    (0..stats.model.layers)
        .filter_map(|l| stats.norm(role, Some(l)))
        .collect()
}

/// The per-layer matrices of `role`, or of `fallback` when the family has none (GPT-2 has no
/// gate), with the role actually used.
pub(super) fn role_or(
    stats: &WeightStats,
    role: Role,
    fallback: Role,
) -> (Role, Vec<&MatrixStats>) {
    let mats = stats.per_layer(role);
    if mats.is_empty() {
        (fallback, stats.per_layer(fallback))
    } else {
        (role, mats)
    }
}

/// The leading singular values of one role in every block, on a log scale normalised over the
/// whole model, so a layer's louder spectrum sits higher.
pub(super) struct Spectra {
    logs: Vec<Vec<f64>>,
    min: f64,
    max: f64,
}

impl Spectra {
    pub fn new(mats: &[&MatrixStats], ranks: usize) -> Spectra {
        let logs: Vec<Vec<f64>> = mats
            .iter()
            .map(|m| {
                m.singular_values
                    .iter()
                    .take(ranks)
                    .map(|&s| ln(f64::from(s)))
                    .collect()
            })
            .collect();
        let all = logs.iter().flatten().copied();
        let min = all.clone().fold(f64::INFINITY, f64::min);
        let max = all.fold(f64::NEG_INFINITY, f64::max);
        Spectra { logs, min, max }
    }

    pub fn layers(&self) -> usize {
        self.logs.len()
    }

    /// Rank `rank` of the `slot`-th layer (both clamped) in 0..=1; 0.5 when there is nothing.
    pub fn unit(&self, slot: usize, rank: usize) -> f64 {
        let Some(layer) = self.logs.get(slot.min(self.logs.len().saturating_sub(1))) else {
            return 0.5;
        };
        let Some(&v) = layer.get(rank.min(layer.len().saturating_sub(1))) else {
            return 0.5;
        };
        if self.max - self.min <= f64::EPSILON {
            0.5
        } else {
            (v - self.min) / (self.max - self.min)
        }
    }
}

/// Per-layer `f` of some matrices, min–max scaled over them.
pub(super) fn per_layer_unit(mats: &[&MatrixStats], f: impl Fn(&MatrixStats) -> f64) -> Vec<f64> {
    unit(&mats.iter().map(|m| f(m)).collect::<Vec<_>>())
}

/// The value for the `i`-th of `n` positions read from a per-layer list of any length.
pub(super) fn at(values: &[f64], i: usize, n: usize) -> f64 {
    if values.is_empty() {
        return 0.5;
    }
    values[(i * values.len() / n.max(1)).min(values.len() - 1)]
}

/// Trims a note that would still sound when the same key strikes again on its track (and drops
/// an exact double), so note-offs never cut a later note; different keys may overlap (slides).
fn separate_repeats(track: &mut Track) {
    track
        .notes
        .sort_by(|a, b| a.start.total_cmp(&b.start).then(a.key.cmp(&b.key)));
    let mut last: [Option<usize>; 128] = [None; 128];
    let mut doubles = Vec::new();
    for i in 0..track.notes.len() {
        let key = usize::from(track.notes[i].key);
        if let Some(j) = last[key] {
            let gap = track.notes[i].start - track.notes[j].start;
            if gap < MIN_LENGTH {
                let louder = track.notes[i].velocity.max(track.notes[j].velocity);
                track.notes[j].velocity = louder;
                doubles.push(i);
                continue;
            }
            if track.notes[j].start + track.notes[j].length > track.notes[i].start {
                track.notes[j].length = gap;
            }
        }
        last[key] = Some(i);
    }
    let mut index = 0;
    track.notes.retain(|_| {
        let keep = doubles.binary_search(&index).is_err();
        index += 1;
        keep
    });
}

/// The finished score: repeats separated, empty tracks dropped, everything sorted.
pub(super) fn finish(
    title: String,
    tempo: Vec<TempoChange>,
    markers: Vec<Marker>,
    tracks: Vec<Track>,
    beats: f64,
) -> Score {
    let mut tracks: Vec<Track> = tracks.into_iter().filter(|t| !t.notes.is_empty()).collect();
    for track in &mut tracks {
        separate_repeats(track);
    }
    let mut score = Score {
        title,
        beats_per_bar: BEATS_PER_BAR,
        tempo,
        markers,
        tracks,
        length: beats,
    };
    score.normalize();
    score
}

pub(super) fn marker(beat: f64, name: &str) -> Marker {
    Marker {
        beat,
        name: name.to_string(),
    }
}

pub(super) fn tempo(beat: f64, bpm: f64) -> TempoChange {
    TempoChange { beat, bpm }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_bars_keep_natural_lengths_and_scale_with_at_least_one_each() {
        assert_eq!(section_bars(&[8, 16, 12, 8], None), vec![8, 16, 12, 8]);
        assert_eq!(section_bars(&[8, 16, 12, 8], Some(44)), vec![8, 16, 12, 8]);
        let eight = section_bars(&[8, 16, 12, 8], Some(8));
        assert_eq!(eight.iter().sum::<u32>(), 8);
        assert!(eight.iter().all(|&b| b >= 1));
        assert_eq!(section_bars(&[16, 16, 32, 16], Some(2)), vec![1, 1, 1, 1]);
        assert_eq!(section_bars(&[1, 100], Some(10)).iter().sum::<u32>(), 10);
    }

    #[test]
    fn slots_cover_the_time_in_order() {
        let s = slots(48.0, 30, 1.0);
        assert_eq!(s.len(), 30);
        assert_eq!(s[0].start, 0.0);
        assert_eq!(s[29].start + s[29].length, 48.0);
        assert!(s.windows(2).all(|w| w[0].start + w[0].length == w[1].start));
        let few = slots(4.0, 30, 1.0);
        assert_eq!(few.len(), 4);
        assert_eq!(few[0].item, 0);
        assert_eq!(few[3].item, 29);
    }

    #[test]
    fn repeated_keys_are_cut_but_slides_stay() {
        let mut track = drum_track(String::new());
        add_note(&mut track, 0.0, 2.0, 40, 80);
        add_note(&mut track, 1.0, 1.0, 40, 90);
        add_note(&mut track, 1.0, 1.0, 40, 100);
        add_note(&mut track, 1.5, 1.0, 43, 70);
        separate_repeats(&mut track);
        assert_eq!(track.notes.len(), 3);
        assert_eq!(track.notes[0].length, 1.0);
        assert_eq!(track.notes[1].velocity, 100);
        assert_eq!(track.notes[2].key, 43);
    }
}
