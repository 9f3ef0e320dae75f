//! Scales, roots and quantisation: how a continuous pitch (the model's trajectory) becomes a note
//! of the chosen key.
//!
//! Quantisation is nearest-tone with ties going down, which keeps it monotone: a melody that
//! rises before quantisation never falls after it, so the notes still read as the trajectory.

/// A scale, as the set of pitch classes above its root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scale {
    #[default]
    Major,
    NaturalMinor,
    HarmonicMinor,
    Dorian,
    Phrygian,
    Lydian,
    Mixolydian,
    PentatonicMajor,
    PentatonicMinor,
    Chromatic,
}

impl Scale {
    /// Every scale, in id order (the order a parameter lists them).
    pub const ALL: [Scale; 10] = [
        Scale::Major,
        Scale::NaturalMinor,
        Scale::HarmonicMinor,
        Scale::Dorian,
        Scale::Phrygian,
        Scale::Lydian,
        Scale::Mixolydian,
        Scale::PentatonicMajor,
        Scale::PentatonicMinor,
        Scale::Chromatic,
    ];

    /// Stable id for parameters and saved state; never renumber, only append.
    pub const fn id(self) -> u8 {
        match self {
            Scale::Major => 0,
            Scale::NaturalMinor => 1,
            Scale::HarmonicMinor => 2,
            Scale::Dorian => 3,
            Scale::Phrygian => 4,
            Scale::Lydian => 5,
            Scale::Mixolydian => 6,
            Scale::PentatonicMajor => 7,
            Scale::PentatonicMinor => 8,
            Scale::Chromatic => 9,
        }
    }

    /// The scale with this id; `None` for ids from a newer version or a corrupt state.
    pub const fn from_id(id: u8) -> Option<Scale> {
        if (id as usize) < Self::ALL.len() {
            Some(Self::ALL[id as usize])
        } else {
            None
        }
    }

    /// Display name (stable: also used as the parameter's value text).
    pub const fn name(self) -> &'static str {
        match self {
            Scale::Major => "Major",
            Scale::NaturalMinor => "Natural minor",
            Scale::HarmonicMinor => "Harmonic minor",
            Scale::Dorian => "Dorian",
            Scale::Phrygian => "Phrygian",
            Scale::Lydian => "Lydian",
            Scale::Mixolydian => "Mixolydian",
            Scale::PentatonicMajor => "Pentatonic major",
            Scale::PentatonicMinor => "Pentatonic minor",
            Scale::Chromatic => "Chromatic",
        }
    }

    /// The scale whose name is `name` (case-insensitive), for parsing parameter text.
    pub fn from_name(name: &str) -> Option<Scale> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|scale| scale.name().eq_ignore_ascii_case(name))
    }

    /// Semitones above the root, ascending, starting with 0.
    pub const fn intervals(self) -> &'static [u8] {
        match self {
            Scale::Major => &[0, 2, 4, 5, 7, 9, 11],
            Scale::NaturalMinor => &[0, 2, 3, 5, 7, 8, 10],
            Scale::HarmonicMinor => &[0, 2, 3, 5, 7, 8, 11],
            Scale::Dorian => &[0, 2, 3, 5, 7, 9, 10],
            Scale::Phrygian => &[0, 1, 3, 5, 7, 8, 10],
            Scale::Lydian => &[0, 2, 4, 6, 7, 9, 11],
            Scale::Mixolydian => &[0, 2, 4, 5, 7, 9, 10],
            Scale::PentatonicMajor => &[0, 2, 4, 7, 9],
            Scale::PentatonicMinor => &[0, 3, 5, 7, 10],
            Scale::Chromatic => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        }
    }

    /// The intervals as a 12-bit set (bit i = i semitones above the root): one lookup per test.
    pub const fn mask(self) -> u16 {
        let intervals = self.intervals();
        let mut mask = 0u16;
        let mut i = 0;
        while i < intervals.len() {
            mask |= 1 << intervals[i];
            i += 1;
        }
        mask
    }

    /// Whether MIDI `note` belongs to this scale on `root`.
    pub const fn contains(self, note: u8, root: Root) -> bool {
        let class = (note as u32 + 12 - root.pitch_class() as u32) % 12;
        self.mask() & (1 << class) != 0
    }

    /// The scale tone nearest to `pitch` (a continuous MIDI pitch) over the whole MIDI range.
    /// Ties go to the lower tone; NaN counts as middle C. Monotone in `pitch`.
    pub fn quantize(self, pitch: f32, root: Root) -> u8 {
        self.nearest_in_range(pitch, root, 0, 127)
    }

    /// The scale tone nearest to `pitch` among the notes `low..=high` (swapped if given the wrong
    /// way round). Ties go to the lower tone; NaN counts as middle C. Monotone in `pitch`.
    ///
    /// If the range holds no scale tone at all (narrower than the scale's widest gap), staying
    /// in the key wins over staying in the range: the scale tone nearest to the range is
    /// returned.
    pub fn nearest_in_range(self, pitch: f32, root: Root, low: u8, high: u8) -> u8 {
        let (low, high) = if low <= high {
            (low.min(127), high.min(127))
        } else {
            (high.min(127), low.min(127))
        };
        let pitch = if pitch.is_nan() { 60.0 } else { pitch };
        let pitch = pitch.clamp(f32::from(low), f32::from(high));

        // Nearest tone at or below and at or above the pitch, inside the range. A scale has a
        // tone in every 12 semitones, so each search is short.
        let floor = pitch.floor() as u8; // pitch is within 0..=127 here
        let below = (low..=floor).rev().find(|&n| self.contains(n, root));
        let ceil = pitch.ceil() as u8;
        let above = (ceil..=high).find(|&n| self.contains(n, root));
        match (below, above) {
            (Some(b), Some(a)) => {
                if pitch - f32::from(b) <= f32::from(a) - pitch {
                    b
                } else {
                    a
                }
            }
            (Some(b), None) => b,
            (None, Some(a)) => a,
            (None, None) => {
                // No tone in range: the nearest outside it (ties down), always exists.
                let below = (0..low).rev().find(|&n| self.contains(n, root));
                let above = (high.saturating_add(1)..=127).find(|&n| self.contains(n, root));
                match (below, above) {
                    (Some(b), Some(a)) if low - b <= a - high => b,
                    (_, Some(a)) => a,
                    (Some(b), None) => b,
                    (None, None) => low,
                }
            }
        }
    }

    /// Move `steps` scale steps from `note` (up if positive), for passing and grace notes.
    /// A note outside the scale first snaps to its nearest tone when `steps` is 0; otherwise the
    /// first step goes to the next tone in that direction. Stops at the last scale tone inside
    /// the MIDI range instead of wrapping.
    pub fn degree_step(self, note: u8, root: Root, steps: i32) -> u8 {
        let note = note.min(127);
        if steps == 0 {
            return self.quantize(f32::from(note), root);
        }
        let mut current = note;
        // More than 127 steps cannot move further than the edge of the MIDI range.
        for _ in 0..steps.unsigned_abs().min(128) {
            let next = if steps > 0 {
                (current.saturating_add(1)..=127).find(|&n| self.contains(n, root))
            } else {
                (0..current).rev().find(|&n| self.contains(n, root))
            };
            match next {
                Some(n) => current = n,
                None => break,
            }
        }
        if self.contains(current, root) {
            current
        } else {
            // Started off-scale at the edge with nowhere to go: snap instead.
            self.quantize(f32::from(current), root)
        }
    }
}

/// The key's root: one of the 12 pitch classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Root {
    #[default]
    C,
    CSharp,
    D,
    DSharp,
    E,
    F,
    FSharp,
    G,
    GSharp,
    A,
    ASharp,
    B,
}

impl Root {
    /// Every root, in pitch-class order (the order a parameter lists them).
    pub const ALL: [Root; 12] = [
        Root::C,
        Root::CSharp,
        Root::D,
        Root::DSharp,
        Root::E,
        Root::F,
        Root::FSharp,
        Root::G,
        Root::GSharp,
        Root::A,
        Root::ASharp,
        Root::B,
    ];

    /// Pitch class, 0 = C .. 11 = B; also the stable id.
    pub const fn pitch_class(self) -> u8 {
        self as u8
    }

    /// The root of a pitch class, taken modulo 12 so any MIDI note works.
    pub const fn from_pitch_class(class: u8) -> Root {
        Self::ALL[(class % 12) as usize]
    }

    /// Display name with sharps (stable: also the parameter's value text).
    pub const fn name(self) -> &'static str {
        match self {
            Root::C => "C",
            Root::CSharp => "C#",
            Root::D => "D",
            Root::DSharp => "D#",
            Root::E => "E",
            Root::F => "F",
            Root::FSharp => "F#",
            Root::G => "G",
            Root::GSharp => "G#",
            Root::A => "A",
            Root::ASharp => "A#",
            Root::B => "B",
        }
    }

    /// The root whose name is `name` (case-insensitive; flats such as "Eb" are accepted too).
    pub fn from_name(name: &str) -> Option<Root> {
        let name = name.trim();
        if let Some(root) = Self::ALL
            .into_iter()
            .find(|root| root.name().eq_ignore_ascii_case(name))
        {
            return Some(root);
        }
        let mut chars = name.chars();
        let letter = chars.next()?;
        let natural = Self::ALL.into_iter().find(|root| {
            root.name().len() == 1 && root.name().starts_with(letter.to_ascii_uppercase())
        })?;
        match chars.as_str() {
            "b" | "♭" => Some(Root::from_pitch_class(natural.pitch_class() + 11)),
            "♯" => Some(Root::from_pitch_class(natural.pitch_class() + 1)),
            _ => None,
        }
    }

    /// MIDI note of this root in `octave`, where octave 4 holds middle C (C4 = 60, so C2 = 36);
    /// `None` if it falls outside 0..=127.
    pub const fn note_in_octave(self, octave: i32) -> Option<u8> {
        let note = (octave + 1) * 12 + self.pitch_class() as i32;
        if note >= 0 && note <= 127 {
            Some(note as u8)
        } else {
            None
        }
    }
}

/// A key as text, "C# Major": the root's name, a space, the scale's.
pub fn key_name(scale: Scale, root: Root) -> String {
    format!("{} {}", root.name(), scale.name())
}

/// The key [`key_name`] wrote.
pub fn parse_key(text: &str) -> Option<(Scale, Root)> {
    let (root, scale) = text.trim().split_once(' ')?;
    Some((Scale::from_name(scale)?, Root::from_name(root)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_written() {
        for scale in Scale::ALL {
            for root in Root::ALL {
                assert_eq!(parse_key(&key_name(scale, root)), Some((scale, root)));
            }
        }
        assert_eq!(
            key_name(Scale::HarmonicMinor, Root::CSharp),
            "C# Harmonic minor"
        );
        assert_eq!(parse_key("H Major"), None);
        assert_eq!(parse_key("C"), None);
    }

    fn scale_roots() -> impl Iterator<Item = (Scale, Root)> {
        Scale::ALL
            .into_iter()
            .flat_map(|scale| Root::ALL.into_iter().map(move |root| (scale, root)))
    }

    #[test]
    fn interval_sets_are_right() {
        assert_eq!(Scale::Major.intervals(), &[0, 2, 4, 5, 7, 9, 11]);
        assert_eq!(Scale::NaturalMinor.intervals(), &[0, 2, 3, 5, 7, 8, 10]);
        assert_eq!(Scale::HarmonicMinor.intervals(), &[0, 2, 3, 5, 7, 8, 11]);
        assert_eq!(Scale::Dorian.intervals(), &[0, 2, 3, 5, 7, 9, 10]);
        assert_eq!(Scale::Phrygian.intervals(), &[0, 1, 3, 5, 7, 8, 10]);
        assert_eq!(Scale::Lydian.intervals(), &[0, 2, 4, 6, 7, 9, 11]);
        assert_eq!(Scale::Mixolydian.intervals(), &[0, 2, 4, 5, 7, 9, 10]);
        assert_eq!(Scale::PentatonicMajor.intervals(), &[0, 2, 4, 7, 9]);
        assert_eq!(Scale::PentatonicMinor.intervals(), &[0, 3, 5, 7, 10]);
        assert_eq!(Scale::Chromatic.intervals().len(), 12);
    }

    /// The scale that starts on degree `degree` of `parent` (a mode of it).
    fn rotate(parent: Scale, degree: usize) -> Vec<u8> {
        let iv = parent.intervals();
        let base = iv[degree];
        let mut out: Vec<u8> = iv.iter().map(|&i| (i + 12 - base) % 12).collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn modes_are_rotations_of_their_parent() {
        // Independent of the tables: church modes are the major scale from another degree.
        assert_eq!(Scale::Dorian.intervals(), rotate(Scale::Major, 1));
        assert_eq!(Scale::Phrygian.intervals(), rotate(Scale::Major, 2));
        assert_eq!(Scale::Lydian.intervals(), rotate(Scale::Major, 3));
        assert_eq!(Scale::Mixolydian.intervals(), rotate(Scale::Major, 4));
        assert_eq!(Scale::NaturalMinor.intervals(), rotate(Scale::Major, 5));
        assert_eq!(
            Scale::PentatonicMinor.intervals(),
            rotate(Scale::PentatonicMajor, 4)
        );
        // Harmonic minor is natural minor with a raised seventh.
        let mut raised = Scale::NaturalMinor.intervals().to_vec();
        *raised.last_mut().unwrap() += 1;
        assert_eq!(Scale::HarmonicMinor.intervals(), raised);
        // Pentatonic major is the major scale without its 4th and 7th.
        let penta: Vec<u8> = Scale::Major
            .intervals()
            .iter()
            .copied()
            .filter(|&i| i != 5 && i != 11)
            .collect();
        assert_eq!(Scale::PentatonicMajor.intervals(), penta);
        for scale in Scale::ALL {
            assert_eq!(scale.mask().count_ones() as usize, scale.intervals().len());
            assert!(scale.intervals().windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn ids_and_names_are_stable_and_round_trip() {
        for (i, scale) in Scale::ALL.into_iter().enumerate() {
            assert_eq!(scale.id() as usize, i);
            assert_eq!(Scale::from_id(scale.id()), Some(scale));
            assert_eq!(Scale::from_name(scale.name()), Some(scale));
        }
        assert_eq!(Scale::from_id(10), None);
        assert_eq!(Scale::Dorian.id(), 3);
        let names: Vec<&str> = Root::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(
            names,
            [
                "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"
            ]
        );
        for (i, root) in Root::ALL.into_iter().enumerate() {
            assert_eq!(root.pitch_class() as usize, i);
            assert_eq!(Root::from_pitch_class(i as u8 + 24), root);
            assert_eq!(Root::from_name(root.name()), Some(root));
        }
        assert_eq!(Root::from_name("Eb"), Some(Root::DSharp));
        assert_eq!(Root::from_name("cb"), Some(Root::B));
        assert_eq!(Root::from_name("H"), None);
        assert_eq!(Root::C.note_in_octave(2), Some(36));
        assert_eq!(Root::A.note_in_octave(4), Some(69));
        assert_eq!(Root::G.note_in_octave(9), Some(127));
        assert_eq!(Root::GSharp.note_in_octave(9), None);
    }

    #[test]
    fn contains_follows_the_root() {
        // D dorian is the white keys.
        for note in 0..=127u8 {
            let white = matches!(note % 12, 0 | 2 | 4 | 5 | 7 | 9 | 11);
            assert_eq!(Scale::Dorian.contains(note, Root::D), white, "note {note}");
            assert_eq!(Scale::Major.contains(note, Root::C), white, "note {note}");
        }
        assert!(Scale::PentatonicMinor.contains(69 + 3, Root::A));
        assert!(!Scale::PentatonicMinor.contains(69 + 2, Root::A));
    }

    #[test]
    fn quantize_is_monotone_in_scale_and_nearest() {
        for (scale, root) in scale_roots() {
            let mut previous = 0u8;
            // Sweep a little past the MIDI range in 1/64-semitone steps (exact in f32).
            for i in -256..=(130 * 64) {
                let pitch = i as f32 / 64.0;
                let note = scale.quantize(pitch, root);
                assert!(scale.contains(note, root), "{scale:?} {root:?} {pitch}");
                assert!(
                    note >= previous,
                    "{scale:?} {root:?} not monotone at {pitch}"
                );
                previous = note;
                // Nearest: no scale tone in MIDI range is strictly closer.
                let p = pitch.clamp(0.0, 127.0);
                let d = (f32::from(note) - p).abs();
                for other in 0..=127u8 {
                    if scale.contains(other, root) {
                        assert!(
                            (f32::from(other) - p).abs() >= d,
                            "{scale:?} {root:?} {pitch}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn quantize_ties_go_down_and_nan_is_middle_c() {
        // Between E (64) and G (67) in C pentatonic major: 65.5 is a tie.
        assert_eq!(Scale::PentatonicMajor.quantize(65.5, Root::C), 64);
        assert_eq!(Scale::PentatonicMajor.quantize(65.51, Root::C), 67);
        assert_eq!(Scale::Major.quantize(f32::NAN, Root::C), 60);
        assert_eq!(Scale::Major.quantize(f32::INFINITY, Root::C), 127);
        assert_eq!(Scale::Major.quantize(f32::NEG_INFINITY, Root::C), 0);
        // A major's highest tone in MIDI range is F# 126 (G 127 is not in the key).
        assert_eq!(Scale::Major.quantize(200.0, Root::A), 126);
    }

    #[test]
    fn nearest_in_range_stays_in_range_and_scale() {
        for (scale, root) in scale_roots() {
            for (low, high) in [
                (72u8, 96u8),
                (55, 79),
                (48, 72),
                (60, 63),
                (0, 127),
                (100, 90),
            ] {
                let (lo, hi) = (low.min(high), low.max(high));
                let mut previous = 0;
                for i in -64..=(140 * 8) {
                    let pitch = i as f32 / 8.0;
                    let note = scale.nearest_in_range(pitch, root, low, high);
                    assert!(scale.contains(note, root));
                    assert!((lo..=hi).contains(&note), "{scale:?} {root:?} {low}-{high}");
                    assert!(note >= previous);
                    previous = note;
                }
            }
        }
        // No tone in range: stays in the key, as close to the range as it can.
        assert_eq!(
            Scale::PentatonicMajor.nearest_in_range(65.0, Root::C, 65, 66),
            64
        );
    }

    #[test]
    fn degree_step_moves_by_scale_steps() {
        let s = Scale::Major;
        assert_eq!(s.degree_step(60, Root::C, 1), 62);
        assert_eq!(s.degree_step(60, Root::C, 2), 64);
        assert_eq!(s.degree_step(64, Root::C, 1), 65);
        assert_eq!(s.degree_step(60, Root::C, -1), 59);
        assert_eq!(s.degree_step(60, Root::C, 7), 72);
        assert_eq!(s.degree_step(60, Root::C, -7), 48);
        // Off-scale start: the first step goes to the next tone that way.
        assert_eq!(s.degree_step(61, Root::C, 1), 62);
        assert_eq!(s.degree_step(61, Root::C, -1), 60);
        assert_eq!(s.degree_step(61, Root::C, 0), 60);
        // Saturates at the edges.
        assert_eq!(s.degree_step(125, Root::C, 10), 127);
        assert_eq!(s.degree_step(2, Root::C, -10), 0);
        assert_eq!(s.degree_step(60, Root::C, i32::MAX), 127);
        assert_eq!(s.degree_step(60, Root::C, i32::MIN), 0);
        for (scale, root) in scale_roots() {
            for note in 0..=127u8 {
                for steps in -3..=3 {
                    let moved = scale.degree_step(note, root, steps);
                    assert!(scale.contains(moved, root));
                    let above = (note.saturating_add(1)..=127).any(|n| scale.contains(n, root));
                    let below = (0..note).any(|n| scale.contains(n, root));
                    if steps > 0 && above {
                        assert!(moved > note);
                    } else if steps < 0 && below {
                        assert!(moved < note);
                    } else if steps != 0 {
                        // Nowhere to go that way: the nearest tone (the edge of the key).
                        assert_eq!(moved, scale.quantize(f32::from(note), root));
                    }
                }
                if scale.contains(note, root) {
                    let up = scale.degree_step(note, root, 1);
                    if up != note {
                        assert_eq!(scale.degree_step(up, root, -1), note);
                    }
                }
            }
        }
    }
}
