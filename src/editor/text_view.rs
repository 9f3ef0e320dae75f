//! The live text: everything played so far in this run, the token sounding now highlighted,
//! scrolled to the end while the reader stays at the end.

use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, FontId, ScrollArea, Stroke};

use super::playback::Playback;

pub const HIGHLIGHT: Color32 = Color32::from_rgb(250, 200, 70);

pub fn show(ui: &mut egui::Ui, playback: &Playback, waiting: &str) {
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
                match playback.highlight() {
                    Some(range) => {
                        job.append(&text[..range.start], 0.0, plain.clone());
                        job.append(&text[range.clone()], 0.0, current);
                        job.append(&text[range.end..], 0.0, plain);
                    }
                    None => job.append(text, 0.0, plain),
                }
                ui.label(job);
            });
    });
}
