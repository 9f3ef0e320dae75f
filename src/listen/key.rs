//! The key of what was heard: Krumhansl–Kessler key profiles correlated with the
//! pitch-class profile of the transcribed notes (each weighted by its length and loudness).

use super::notes::NoteEvent;

const MAJOR: [f64; 12] = [
    6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
];
const MINOR: [f64; 12] = [
    6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
];
pub const PITCH_CLASSES: [&str; 12] = [
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Major,
    Minor,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key {
    /// Pitch class of the tonic, 0 = C.
    pub tonic: u8,
    pub mode: Mode,
    /// Pearson correlation of the profile with the key's, −1…1.
    pub correlation: f64,
}

impl Key {
    pub fn name(&self) -> String {
        let mode = match self.mode {
            Mode::Major => "major",
            Mode::Minor => "minor",
        };
        format!("{} {mode}", PITCH_CLASSES[usize::from(self.tonic)])
    }
}

/// Duration × amplitude per pitch class.
pub fn pitch_class_profile(notes: &[NoteEvent]) -> [f64; 12] {
    let mut profile = [0.0; 12];
    for note in notes {
        profile[usize::from(note.pitch % 12)] +=
            (note.end - note.start).max(0.0) * f64::from(note.amplitude);
    }
    profile
}

/// The best-correlated of the 24 keys; `None` without notes (or with every class equal).
/// Ties go to the lower tonic, major before minor.
pub fn estimate(notes: &[NoteEvent]) -> Option<Key> {
    let profile = pitch_class_profile(notes);
    let mut best: Option<Key> = None;
    for (mode, template) in [(Mode::Major, &MAJOR), (Mode::Minor, &MINOR)] {
        for tonic in 0..12u8 {
            let rotated: [f64; 12] =
                std::array::from_fn(|pc| template[(pc + 12 - usize::from(tonic)) % 12]);
            let correlation = pearson(&profile, &rotated)?;
            if best.is_none_or(|b| correlation > b.correlation) {
                best = Some(Key {
                    tonic,
                    mode,
                    correlation,
                });
            }
        }
    }
    best
}

fn pearson(a: &[f64; 12], b: &[f64; 12]) -> Option<f64> {
    let mean = |x: &[f64; 12]| x.iter().sum::<f64>() / 12.0;
    let (ma, mb) = (mean(a), mean(b));
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for i in 0..12 {
        num += (a[i] - ma) * (b[i] - mb);
        da += (a[i] - ma) * (a[i] - ma);
        db += (b[i] - mb) * (b[i] - mb);
    }
    (da > 0.0 && db > 0.0).then(|| num / (da * db).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(pitch: u8, seconds: f64) -> NoteEvent {
        NoteEvent {
            start_frame: 0,
            end_frame: 1,
            pitch,
            amplitude: 0.8,
            bends: Vec::new(),
            start: 0.0,
            end: seconds,
        }
    }

    #[test]
    fn scales_and_triads_find_their_keys() {
        let c_major: Vec<_> = [60, 62, 64, 65, 67, 69, 71, 72, 60, 67]
            .iter()
            .map(|&p| note(p, 0.5))
            .collect();
        let key = estimate(&c_major).expect("a key");
        assert_eq!((key.tonic, key.mode), (0, Mode::Major), "{}", key.name());
        let a_minor: Vec<_> = [
            (57, 2.0),
            (60, 1.0),
            (64, 1.5),
            (62, 0.5),
            (59, 0.5),
            (65, 0.5),
            (56, 0.4),
        ]
        .iter()
        .map(|&(p, s)| note(p, s))
        .collect();
        let key = estimate(&a_minor).expect("a key");
        assert_eq!((key.tonic, key.mode), (9, Mode::Minor), "{}", key.name());
        assert!(estimate(&[]).is_none());
    }
}
