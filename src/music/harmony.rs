//! Harmonic rhythm: a chord per bar or half bar that the voices and the bass follow.
//!
//! The chord of each span is chosen from the deepest hidden state over the span before it:
//! the mean of its first coordinate picks among the chords that commonly follow the current
//! one (I → IV, V, vi, ii, iii; V → I, vi, IV; …), so the progression is the model's choice
//! within a grammar a listener knows. The choice is made at the span's first step from frames
//! already played, so it is causal (live and rebuilt after a jump alike) and needs no
//! look-ahead. Only seven-tone scales move; in the others (pentatonic, chromatic) the harmony
//! stays on the tonic triad, the chord every mode used before harmony existed.

use super::scale::{Root, Scale};

/// How often the chord changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HarmonicRhythm {
    /// The tonic triad throughout.
    #[default]
    Off,
    Bar,
    HalfBar,
}

/// The chords that may follow each degree (0 = I … 5 = vi; vii° is left out), ordered from
/// the closest to home to the furthest: a low mean coordinate picks the first.
const FOLLOWERS: [&[u8]; 7] = [
    &[3, 4, 5, 1, 2], // I → IV V vi ii iii
    &[4, 3, 5],       // ii → V IV vi
    &[5, 3, 1],       // iii → vi IV ii
    &[0, 4, 1, 5],    // IV → I V ii vi
    &[0, 5, 3],       // V → I vi IV
    &[1, 3, 4, 2],    // vi → ii IV V iii
    &[0, 5],          // (vii°) → I vi
];

/// A chord as pitch classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chord {
    /// Root, third and fifth.
    pub tones: [u8; 3],
}

impl Chord {
    pub fn root(&self) -> u8 {
        self.tones[0]
    }

    pub fn fifth(&self) -> u8 {
        self.tones[2]
    }

    /// The triad on scale degree `degree` (0-based) of `scale` on `root`; in a scale with fewer
    /// than seven tones, its tonic triad (every other tone from the first).
    pub fn on_degree(scale: Scale, root: Root, degree: u8) -> Self {
        let intervals = scale.intervals();
        let n = intervals.len().max(1);
        let degree = if n == 7 { usize::from(degree) % 7 } else { 0 };
        let tone = |step: usize| (root.pitch_class() + intervals[(degree + step) % n]) % 12;
        Self {
            tones: [tone(0), tone(2), tone(4)],
        }
    }

    pub fn contains(&self, note: u8) -> bool {
        self.tones.contains(&(note % 12))
    }

    /// The chord tone nearest `note` within `low..=high` (`note` itself when there is none),
    /// the lower one on a tie.
    pub fn nearest(&self, note: u8, low: u8, high: u8) -> u8 {
        (low.min(high)..=high.max(low))
            .filter(|&candidate| self.contains(candidate))
            .min_by_key(|&candidate| (i32::from(candidate) - i32::from(note)).abs())
            .unwrap_or(note)
    }
}

/// What the harmony remembers between steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HarmonyState {
    /// Scale degree of the current chord.
    degree: u8,
    /// The span (bar or half bar) the current chord belongs to; `None` before the first step.
    span: Option<i64>,
    /// Sum and count of the deepest state's first coordinate over the current span.
    sum: f32,
    count: u32,
    /// The chord changed at this step.
    changed: bool,
    /// Second half of a bar-long chord: the bass moves to the fifth.
    on_fifth: bool,
}

impl Default for HarmonyState {
    fn default() -> Self {
        Self::new()
    }
}

impl HarmonyState {
    pub const fn new() -> Self {
        Self {
            degree: 0,
            span: None,
            sum: 0.0,
            count: 0,
            changed: false,
            on_fifth: false,
        }
    }

    /// Moves to grid step `step` (`steps_per_bar` steps a bar): at the first step of a new span,
    /// the next chord is chosen from the span before it.
    pub fn step(&mut self, rhythm: HarmonicRhythm, step: i64, steps_per_bar: u32) {
        self.changed = false;
        self.on_fifth = false;
        let bar = i64::from(steps_per_bar.max(1));
        let length = match rhythm {
            HarmonicRhythm::Off => {
                self.degree = 0;
                self.span = None;
                return;
            }
            HarmonicRhythm::Bar => bar,
            HarmonicRhythm::HalfBar => (bar / 2).max(1),
        };
        let span = step.div_euclid(length);
        self.on_fifth =
            rhythm == HarmonicRhythm::Bar && bar >= 2 && step.rem_euclid(bar) >= bar / 2;
        match self.span {
            Some(current) if current == span => {}
            Some(_) if self.count > 0 => {
                let mean = self.sum / self.count as f32;
                let followers = FOLLOWERS[usize::from(self.degree) % 7];
                let position =
                    ((mean.clamp(-1.0, 1.0) + 1.0) * 0.5 * followers.len() as f32) as usize;
                self.degree = followers[position.min(followers.len() - 1)];
                self.changed = true;
                self.begin(span);
            }
            // The first step heard (or nothing heard over the last span): the tonic.
            _ => {
                self.changed = self.degree != 0 || self.span.is_none();
                self.degree = 0;
                self.begin(span);
            }
        }
    }

    fn begin(&mut self, span: i64) {
        self.span = Some(span);
        self.sum = 0.0;
        self.count = 0;
    }

    /// Adds the deepest state's first coordinate of a played frame.
    pub fn observe(&mut self, coordinate: f32) {
        if coordinate.is_finite() {
            self.sum += coordinate;
            self.count += 1;
        }
    }

    /// A cadence: the rest of the span is on the tonic.
    pub fn cadence(&mut self) {
        self.changed |= self.degree != 0;
        self.degree = 0;
        self.on_fifth = false;
    }

    pub fn chord(&self, scale: Scale, root: Root) -> Chord {
        Chord::on_degree(scale, root, self.degree)
    }

    /// The chord changed at this step (the voices land on its tones).
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The pitch class the bass plays: the chord's root, its fifth in a bar's second half.
    pub fn bass(&self, scale: Scale, root: Root) -> u8 {
        let chord = self.chord(scale, root);
        if self.on_fifth {
            chord.fifth()
        } else {
            chord.root()
        }
    }

    pub fn degree(&self) -> u8 {
        self.degree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chords_are_the_scale_triads() {
        let c = |degree| Chord::on_degree(Scale::Major, Root::C, degree).tones;
        assert_eq!(c(0), [0, 4, 7]);
        assert_eq!(c(1), [2, 5, 9]);
        assert_eq!(c(4), [7, 11, 2]);
        assert_eq!(c(5), [9, 0, 4]);
        let a_minor = Chord::on_degree(Scale::NaturalMinor, Root::A, 0);
        assert_eq!(a_minor.tones, [9, 0, 4]);
        // Five tones: the tonic "triad" whatever the degree.
        let penta = Chord::on_degree(Scale::PentatonicMajor, Root::C, 3);
        assert_eq!(penta.tones, [0, 4, 9]);
        let e_major = Chord::on_degree(Scale::Major, Root::E, 0);
        assert_eq!(e_major.nearest(61, 48, 72), 59, "B is one away, G# two");
        assert_eq!(e_major.nearest(30, 48, 72), 52, "inside the range");
    }

    #[test]
    fn the_chord_changes_only_at_span_starts_and_follows_the_grammar() {
        let mut harmony = HarmonyState::new();
        let mut degrees = Vec::new();
        // 8 steps a bar, a chord a bar; the coordinate sweeps so several followers are taken.
        for step in 0..64i64 {
            harmony.step(HarmonicRhythm::Bar, step, 8);
            if step % 8 == 0 {
                degrees.push(harmony.degree());
                assert!(harmony.changed() || step == 0 || degrees.len() < 2);
            } else {
                assert!(!harmony.changed(), "step {step}");
            }
            assert_eq!(harmony.on_fifth, step % 8 >= 4);
            harmony.observe(((step / 8) as f32 * 0.7).sin());
        }
        assert_eq!(degrees[0], 0, "it starts on the tonic");
        for pair in degrees.windows(2) {
            assert!(
                FOLLOWERS[usize::from(pair[0])].contains(&pair[1]),
                "{pair:?} follows the grammar"
            );
        }
        assert!(degrees.iter().any(|&d| d != 0));
    }

    #[test]
    fn same_coordinates_same_chords_and_off_stays_on_the_tonic() {
        let run = |rhythm| {
            let mut harmony = HarmonyState::new();
            (0..40i64)
                .map(|step| {
                    harmony.step(rhythm, step, 4);
                    harmony.observe((step as f32 * 1.3).cos());
                    harmony.bass(Scale::Dorian, Root::D)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(HarmonicRhythm::HalfBar), run(HarmonicRhythm::HalfBar));
        assert!(run(HarmonicRhythm::Off).iter().all(|&pc| pc == 2));
        assert!(run(HarmonicRhythm::HalfBar).iter().any(|&pc| pc != 2));
    }

    #[test]
    fn a_cadence_returns_to_the_tonic() {
        let mut harmony = HarmonyState::new();
        harmony.step(HarmonicRhythm::Bar, 0, 4);
        harmony.observe(1.0);
        harmony.step(HarmonicRhythm::Bar, 4, 4);
        assert_ne!(harmony.degree(), 0);
        harmony.cadence();
        assert_eq!(harmony.degree(), 0);
        assert!(harmony.changed());
    }
}
