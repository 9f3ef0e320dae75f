//! What the model reads of what was heard: one compact line in its context, e.g.
//! `(what I hear: A minor; notes A3 C4 E4 F3 A3; S0 12 12 40 41; A0 3 3 9 9)`. Key and note
//! names carry meaning a language model knows; the coarsest token of each family, at most
//! two per second, shows how the sound moves.

use super::key::PITCH_CLASSES;
use super::tokenizer::Heard;

const MAX_NOTES: usize = 12;
const MAX_FRAMES: usize = 16;

pub fn note_name(pitch: u8) -> String {
    format!(
        "{}{}",
        PITCH_CLASSES[usize::from(pitch % 12)],
        i32::from(pitch / 12) - 1
    )
}

pub fn describe(heard: &Heard) -> String {
    let mut parts = Vec::new();
    parts.push(match &heard.key {
        Some(key) => key.name(),
        None => "no clear key".to_owned(),
    });
    let mut notes: Vec<_> = heard.notes.iter().collect();
    notes.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.pitch.cmp(&b.pitch)));
    if notes.is_empty() {
        parts.push("no notes".to_owned());
    } else {
        let names: Vec<String> = notes
            .iter()
            .take(MAX_NOTES)
            .map(|n| note_name(n.pitch))
            .collect();
        parts.push(format!("notes {}", names.join(" ")));
    }
    if !heard.frames.is_empty() {
        let step = heard.frames.len().div_ceil(MAX_FRAMES).max(1);
        let pick = |f: fn(&super::tokenizer::TokenFrame) -> u16| {
            heard
                .frames
                .iter()
                .step_by(step)
                .map(|frame| f(frame).to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        parts.push(format!("S0 {}", pick(|f| f.semantic[0])));
        parts.push(format!("A0 {}", pick(|f| f.acoustic[0])));
    }
    format!("(what I hear: {})", parts.join("; "))
}
