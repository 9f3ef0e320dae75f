//! The live text: everything played so far in this run, the token sounding now highlighted,
//! scrolled to the end while the reader stays at the end.

use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, FontId, ScrollArea, Stroke};

use super::playback::{Playback, Span};
use crate::music::phrasing::Mark;

pub const HIGHLIGHT: Color32 = Color32::from_rgb(250, 200, 70);
/// Colour of the phrasing marks drawn into the text.
const MARK: Color32 = Color32::from_rgb(110, 170, 255);

/// Which phrasing rules are on: only those are marked in the text.
#[derive(Clone, Copy, Debug, Default)]
pub struct Marks {
    /// A comma breathes: ʼ after it.
    pub breath: bool,
    /// A sentence end cadences and rests: ‖ after it.
    pub cadence: bool,
    /// A paragraph moves the register: ¶ before it.
    pub paragraph: bool,
    /// A token inside a word ties: the word is underlined across the join.
    pub ties: bool,
}

/// The text with the token sounding now highlighted and the phrasing the music takes from it
/// marked: what the listener hears as a breath, a cadence, a new register or a tie.
pub fn show(ui: &mut egui::Ui, playback: &Playback, marks: Marks, waiting: &str) {
    let font = FontId::proportional(17.0);
    let text_color = ui.visuals().text_color();
    let frame = egui::Frame::group(ui.style()).fill(ui.visuals().extreme_bg_color);
    frame.show(ui, |ui| {
        ui.set_min_size(ui.available_size());
        ScrollArea::vertical()
            .id_salt("live text")
            .stick_to_bottom(true)
            .auto_shrink([false, false])
            .show(ui, |ui| {
                let text = playback.transcript();
                if text.is_empty() {
                    ui.weak(waiting);
                    return;
                }
                let mut job = LayoutJob {
                    wrap: egui::text::TextWrapping {
                        max_width: ui.available_width(),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let plain = TextFormat::simple(font.clone(), text_color);
                let current = TextFormat {
                    color: Color32::BLACK,
                    background: HIGHLIGHT,
                    underline: Stroke::new(2.0, Color32::from_rgb(200, 120, 0)),
                    ..TextFormat::simple(font.clone(), Color32::BLACK)
                };
                let highlight = playback.highlight();
                let mark_format = TextFormat::simple(font.clone(), MARK);
                let tied = TextFormat {
                    underline: Stroke::new(1.0, MARK),
                    ..plain.clone()
                };
                // Text cut away before the first span (after a long run) is not shown.
                let spans = playback.spans();
                for (i, span) in spans.iter().enumerate() {
                    let Span { bytes, mark, .. } = *span;
                    let Some(token) = text.get(bytes.0..bytes.1) else {
                        continue;
                    };
                    let next_ties = marks.ties
                        && spans
                            .get(i + 1)
                            .is_some_and(|next| next.mark == Mark::InsideWord);
                    let format = if highlight == Some(bytes.0..bytes.1) {
                        current.clone()
                    } else if marks.ties && (mark == Mark::InsideWord || next_ties) {
                        tied.clone()
                    } else {
                        plain.clone()
                    };
                    if marks.paragraph && mark == Mark::Paragraph {
                        job.append("¶", 0.0, mark_format.clone());
                    }
                    job.append(token, 0.0, format);
                    let after = match mark {
                        Mark::Comma if marks.breath => "ʼ",
                        Mark::SentenceEnd if marks.cadence => " ‖",
                        _ => "",
                    };
                    if !after.is_empty() {
                        job.append(after, 0.0, mark_format.clone());
                    }
                }
                ui.label(job);
            });
    });
}
