//! Phrasing from the text: the punctuation and line breaks a token carries shape the music.
//! A comma breathes (the notes are cut short, or rest), a sentence end cadences (each voice
//! moves to the nearest tone of the tonic triad and holds it) and the next step rests, a new
//! paragraph moves the voices' register, and a token that continues a word ties into it.
//! Everything is off by default, so the mapping plays exactly as without phrasing.

use super::scale::{Root, Scale};
use super::voices::VoiceNote;

/// Where a token sits in the text's phrasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A word begins or the token is a word by itself.
    Plain,
    /// The token continues the word the previous token began ("silen" + "t").
    InsideWord,
    /// A comma, semicolon, colon or dash closes the token.
    Comma,
    /// A full stop, question or exclamation mark closes the token.
    SentenceEnd,
    /// The token holds a line break.
    Paragraph,
}

/// The mark of `text`, the token after `previous` (the previous token's text).
pub fn classify(previous: &str, text: &str) -> Mark {
    if text.contains('\n') {
        return Mark::Paragraph;
    }
    let trimmed = text.trim_end_matches(['"', '\'', ')', ']', '”', '’', ' ']);
    match trimmed.chars().last() {
        Some('.' | '!' | '?' | '…') => return Mark::SentenceEnd,
        Some(',' | ';' | ':' | '—' | '–') => return Mark::Comma,
        _ => {}
    }
    let starts_word_char = text.chars().next().is_some_and(char::is_alphanumeric);
    let previous_ends_word_char = previous.chars().last().is_some_and(char::is_alphanumeric);
    if starts_word_char && previous_ends_word_char {
        Mark::InsideWord
    } else {
        Mark::Plain
    }
}

/// The phrasing parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhrasingParams {
    /// How much a comma breathes: 0 nothing, up to 1 a rest (the notes' length scaled by
    /// 1 − breath; at 1 the step is silent).
    pub comma_breath: f32,
    /// A sentence end cadences on the tonic triad and the next step rests.
    pub cadence: bool,
    /// Semitones the register moves at each new paragraph (alternating up and down; 0: none).
    pub paragraph_shift: u8,
    /// A token inside a word ties into it (legato).
    pub word_ties: bool,
}

impl Default for PhrasingParams {
    fn default() -> Self {
        Self {
            comma_breath: 0.0,
            cadence: false,
            paragraph_shift: 0,
            word_ties: false,
        }
    }
}

/// What phrasing remembers between steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhrasingState {
    /// The step after a cadence rests.
    rest_next: bool,
    /// Paragraphs seen: odd moves the register up, even back.
    paragraphs: u32,
}

impl PhrasingState {
    pub const fn new() -> Self {
        Self {
            rest_next: false,
            paragraphs: 0,
        }
    }

    /// Semitones the register is moved now.
    pub fn register_shift(&self, params: &PhrasingParams) -> i32 {
        if self.paragraphs % 2 == 1 {
            i32::from(params.paragraph_shift)
        } else {
            0
        }
    }
}

/// Where the notes of a step may go: each voice's range, the key.
#[derive(Clone, Copy, Debug)]
pub struct Harmony<'a> {
    pub scale: Scale,
    pub root: Root,
    pub ranges: &'a [(u8, u8)],
}

/// Applies `mark` to this step's notes; `voices[v]` is voice v's note (None: silent).
pub fn apply(
    mark: Mark,
    params: &PhrasingParams,
    state: &mut PhrasingState,
    harmony: &Harmony,
    voices: &mut [Option<VoiceNote>],
) {
    if std::mem::take(&mut state.rest_next) {
        voices.iter_mut().for_each(|v| *v = None);
        return;
    }
    match mark {
        Mark::Comma if params.comma_breath > 0.0 => {
            let keep = 1.0 - params.comma_breath.clamp(0.0, 1.0);
            for voice in voices.iter_mut() {
                match voice {
                    Some(note) if keep > 0.1 => {
                        note.length = (note.length * keep).max(0.1);
                        note.ornament = None;
                    }
                    _ => *voice = None,
                }
            }
        }
        Mark::SentenceEnd if params.cadence => {
            for (voice, &(low, high)) in voices.iter_mut().zip(harmony.ranges) {
                if let Some(note) = voice {
                    note.note = nearest_tonic_tone(note.note, harmony, low, high);
                    note.length = 1.0;
                    note.tied = false;
                    note.ornament = None;
                }
            }
            state.rest_next = true;
        }
        Mark::Paragraph => state.paragraphs += 1,
        Mark::InsideWord if params.word_ties => {
            for note in voices.iter_mut().flatten() {
                if note.ornament.is_none() {
                    note.length = 1.0;
                }
            }
        }
        _ => {}
    }
}

/// The tone of the tonic triad (scale degrees 1, 3, 5) nearest `note` within `low..=high`
/// (`note` itself when the range holds none).
pub fn nearest_tonic_tone(note: u8, harmony: &Harmony, low: u8, high: u8) -> u8 {
    // No allocation: this runs on the audio thread.
    let intervals = harmony.scale.intervals();
    let triad: [Option<u8>; 3] = [0usize, 2, 4].map(|degree| {
        intervals
            .get(degree)
            .map(|interval| (harmony.root.pitch_class() + interval) % 12)
    });
    (low..=high)
        .filter(|candidate| triad.contains(&Some(candidate % 12)))
        .min_by_key(|candidate| (i32::from(*candidate) - i32::from(note)).abs())
        .unwrap_or(note)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(pitch: u8, length: f32) -> Option<VoiceNote> {
        Some(VoiceNote {
            note: pitch,
            velocity: 80,
            length,
            tied: false,
            ornament: None,
        })
    }

    const RANGES: [(u8, u8); 3] = [(72, 96), (55, 71), (48, 60)];

    fn harmony() -> Harmony<'static> {
        Harmony {
            scale: Scale::Major,
            root: Root::C,
            ranges: &RANGES,
        }
    }

    #[test]
    fn tokens_are_classified_by_their_punctuation_and_word_boundaries() {
        assert_eq!(classify("", "The"), Mark::Plain);
        assert_eq!(classify("The", " forest"), Mark::Plain);
        assert_eq!(classify(" sil", "ent"), Mark::InsideWord);
        assert_eq!(classify(" silent", "."), Mark::SentenceEnd);
        assert_eq!(classify(" night", "?\""), Mark::SentenceEnd);
        assert_eq!(classify(" trees", ","), Mark::Comma);
        assert_eq!(classify(" wait", ";"), Mark::Comma);
        assert_eq!(classify(".", "\n\n"), Mark::Paragraph);
        assert_eq!(classify(" a", " "), Mark::Plain);
    }

    #[test]
    fn everything_off_changes_nothing() {
        let params = PhrasingParams::default();
        let mut state = PhrasingState::new();
        for mark in [
            Mark::Plain,
            Mark::InsideWord,
            Mark::Comma,
            Mark::SentenceEnd,
            Mark::Paragraph,
        ] {
            let mut voices = [note(74, 0.7), note(62, 0.4), None];
            let before = voices;
            apply(mark, &params, &mut state, &harmony(), &mut voices);
            assert_eq!(voices, before, "{mark:?}");
        }
        assert_eq!(state.register_shift(&params), 0);
    }

    #[test]
    fn a_comma_breathes_a_sentence_cadences_then_rests_and_words_tie() {
        let params = PhrasingParams {
            comma_breath: 0.5,
            cadence: true,
            paragraph_shift: 12,
            word_ties: true,
        };
        let mut state = PhrasingState::new();
        let mut voices = [note(74, 0.8), note(62, 0.4), None];
        apply(Mark::Comma, &params, &mut state, &harmony(), &mut voices);
        assert_eq!(
            voices.map(|v| v.map(|n| n.length)),
            [Some(0.4), Some(0.2), None]
        );

        let full = PhrasingParams {
            comma_breath: 1.0,
            ..params
        };
        let mut voices = [note(74, 0.8), note(62, 0.4), None];
        apply(Mark::Comma, &full, &mut state, &harmony(), &mut voices);
        assert_eq!(voices, [None, None, None], "a full breath is a rest");

        // D5 and D4 go to the nearest C-major triad tones in range: C5 or E5, C4 or E4.
        let mut voices = [note(74, 0.5), note(62, 0.5), note(50, 0.5)];
        apply(
            Mark::SentenceEnd,
            &params,
            &mut state,
            &harmony(),
            &mut voices,
        );
        let cadence: Vec<u8> = voices.iter().flatten().map(|n| n.note).collect();
        assert!(
            cadence.iter().all(|n| [0, 4, 7].contains(&(n % 12))),
            "{cadence:?}"
        );
        assert!(voices.iter().flatten().all(|n| n.length == 1.0));
        let mut next = [note(74, 0.5), note(62, 0.5), None];
        apply(Mark::Plain, &params, &mut state, &harmony(), &mut next);
        assert_eq!(next, [None, None, None], "the step after a cadence rests");

        let mut voices = [note(74, 0.5), None, None];
        apply(
            Mark::InsideWord,
            &params,
            &mut state,
            &harmony(),
            &mut voices,
        );
        assert_eq!(voices[0].map(|n| n.length), Some(1.0));

        apply(
            Mark::Paragraph,
            &params,
            &mut state,
            &harmony(),
            &mut [None; 3],
        );
        assert_eq!(state.register_shift(&params), 12);
        apply(
            Mark::Paragraph,
            &params,
            &mut state,
            &harmony(),
            &mut [None; 3],
        );
        assert_eq!(state.register_shift(&params), 0);
    }
}
