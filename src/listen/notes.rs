//! Basic Pitch's note decoding (`output_to_notes_polyphonic` and `get_pitch_bends` in its
//! Python package), reimplemented step for step so the same posteriors give the same notes:
//! onsets are peaks of the onset posterior (sharpened by jumps in the note posterior), each
//! held while the note posterior stays above the frame threshold; then the "melodia trick"
//! turns the strongest energy left into notes too.

use super::basic_pitch::{CONTOUR_BINS, KEYS, LOWEST_NOTE, Posteriors, frame_time};

/// A transcribed note; frames are Basic Pitch frames, the end exclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteEvent {
    pub start_frame: usize,
    pub end_frame: usize,
    pub pitch: u8,
    /// Mean note posterior over the note, 0…1 (velocity = round(127 · amplitude)).
    pub amplitude: f32,
    /// Per frame, the pitch offset in thirds of a semitone.
    pub bends: Vec<i32>,
    pub start: f64,
    pub end: f64,
}

/// Basic Pitch's defaults (`predict`'s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeSettings {
    pub onset_threshold: f32,
    pub frame_threshold: f32,
    /// A note must last more than this many frames (127.7 ms → 11).
    pub min_note_frames: usize,
    /// Frames below the frame threshold a note survives.
    pub energy_tolerance: usize,
    pub infer_onsets: bool,
    pub melodia_trick: bool,
}

impl Default for DecodeSettings {
    fn default() -> Self {
        Self {
            onset_threshold: 0.5,
            frame_threshold: 0.3,
            min_note_frames: 11,
            energy_tolerance: 11,
            infer_onsets: true,
            melodia_trick: true,
        }
    }
}

/// The notes in Basic Pitch's order: onset notes latest first, then melodia notes.
pub fn decode(posteriors: &Posteriors, settings: &DecodeSettings) -> Vec<NoteEvent> {
    let frames = posteriors.frames;
    if frames == 0 {
        return Vec::new();
    }
    let note = &posteriors.note;
    let onsets = onset_strength(posteriors, settings.infer_onsets);
    let threshold = f64::from(settings.frame_threshold);
    let mut remaining: Vec<f64> = note.iter().map(|&v| f64::from(v)).collect();
    let mut events = Vec::new();
    let push = |start: usize, end: usize, key: usize, events: &mut Vec<NoteEvent>| {
        let sum: f64 = (start..end).map(|t| f64::from(note[t * KEYS + key])).sum();
        events.push(NoteEvent {
            start_frame: start,
            end_frame: end,
            pitch: LOWEST_NOTE + key as u8,
            amplitude: (sum / (end - start) as f64) as f32,
            bends: Vec::new(),
            start: frame_time(start),
            end: frame_time(end),
        });
    };
    let clear = |remaining: &mut [f64], t: usize, key: usize| {
        for k in key.saturating_sub(1)..=(key + 1).min(KEYS - 1) {
            remaining[t * KEYS + k] = 0.0;
        }
    };

    if let Some(onsets) = onsets {
        // Strict local maxima in time (never the first or last frame), walked backwards.
        for start in (1..frames.saturating_sub(1)).rev() {
            for key in (0..KEYS).rev() {
                let value = onsets[start * KEYS + key];
                let peak = value > onsets[(start - 1) * KEYS + key]
                    && value > onsets[(start + 1) * KEYS + key];
                if !peak || value < f64::from(settings.onset_threshold) {
                    continue;
                }
                let (mut i, mut k) = (start + 1, 0);
                while i < frames - 1 && k < settings.energy_tolerance {
                    if remaining[i * KEYS + key] < threshold {
                        k += 1;
                    } else {
                        k = 0;
                    }
                    i += 1;
                }
                let end = i - k;
                if end - start <= settings.min_note_frames {
                    continue;
                }
                for t in start..end {
                    clear(&mut remaining, t, key);
                }
                push(start, end, key, &mut events);
            }
        }
    }

    if settings.melodia_trick {
        // The remaining energy only ever drops to zero, so the strongest cell left is the first
        // still-untouched one in (value descending, position ascending) order: numpy's argmax.
        let mut candidates: Vec<(f64, usize)> = remaining
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > threshold)
            .map(|(i, v)| (*v, i))
            .collect();
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (value, index) in candidates {
            if remaining[index] != value {
                continue;
            }
            let (middle, key) = (index / KEYS, index % KEYS);
            remaining[index] = 0.0;
            let (mut i, mut k) = (middle + 1, 0);
            while i < frames - 1 && k < settings.energy_tolerance {
                if remaining[i * KEYS + key] < threshold {
                    k += 1;
                } else {
                    k = 0;
                }
                clear(&mut remaining, i, key);
                i += 1;
            }
            let end = i as isize - 1 - k as isize;
            let (mut i, mut k) = (middle as isize - 1, 0);
            while i > 0 && k < settings.energy_tolerance {
                if remaining[i as usize * KEYS + key] < threshold {
                    k += 1;
                } else {
                    k = 0;
                }
                clear(&mut remaining, i as usize, key);
                i -= 1;
            }
            let start = i + 1 + k as isize;
            if end - start <= settings.min_note_frames as isize {
                continue;
            }
            push(start as usize, end as usize, key, &mut events);
        }
    }
    for event in &mut events {
        event.bends = pitch_bends(posteriors, event);
    }
    events
}

/// The onset posterior, or its maximum with the rescaled positive jumps of the note posterior
/// (`get_infered_onsets`, in f64 as numpy computes it). `None` when that rescaling divides by
/// zero (no note posterior ever rises): numpy's result is then all NaN, and no onset is found.
fn onset_strength(posteriors: &Posteriors, infer: bool) -> Option<Vec<f64>> {
    let onsets: Vec<f64> = posteriors.onset.iter().map(|&v| f64::from(v)).collect();
    if !infer {
        return Some(onsets);
    }
    let note = &posteriors.note;
    let mut jumps = vec![0.0f64; note.len()];
    for t in 2..posteriors.frames {
        for key in 0..KEYS {
            let now = f64::from(note[t * KEYS + key]);
            let one = now - f64::from(note[(t - 1) * KEYS + key]);
            let two = now - f64::from(note[(t - 2) * KEYS + key]);
            jumps[t * KEYS + key] = one.min(two).max(0.0);
        }
    }
    let max_jump = jumps.iter().copied().fold(0.0f64, f64::max);
    if max_jump <= 0.0 || jumps.iter().any(|v| v.is_nan()) {
        return None;
    }
    let max_onset = posteriors.onset.iter().copied().fold(f32::MIN, f32::max);
    let scale = f64::from(max_onset);
    Some(
        onsets
            .iter()
            .zip(&jumps)
            .map(|(&onset, &jump)| onset.max(scale * jump / max_jump))
            .collect(),
    )
}

/// Per frame of the note, where the pitch contour peaks near the note (±25 bins, weighted by a
/// Gaussian of 5 bins), in thirds of a semitone from the note's own bin.
fn pitch_bends(posteriors: &Posteriors, event: &NoteEvent) -> Vec<i32> {
    const TOLERANCE: usize = 25;
    let window = |n: usize| (-0.5 * ((n as f64 - TOLERANCE as f64) / 5.0).powi(2)).exp();
    let bin = 3 * usize::from(event.pitch - LOWEST_NOTE);
    let first = bin.saturating_sub(TOLERANCE);
    let last = CONTOUR_BINS.min(bin + TOLERANCE + 1);
    let window_start = TOLERANCE.saturating_sub(bin);
    let shift = (TOLERANCE - window_start) as i32;
    (event.start_frame..event.end_frame)
        .map(|t| {
            let row = posteriors.contour_row(t);
            let mut best = (f64::NEG_INFINITY, 0usize);
            for (j, b) in (first..last).enumerate() {
                let weighted = f64::from(row[b]) * window(window_start + j);
                if weighted > best.0 {
                    best = (weighted, j);
                }
            }
            best.1 as i32 - shift
        })
        .collect()
}
