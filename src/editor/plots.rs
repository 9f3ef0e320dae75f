//! The activation plots: each voice's path through its layer's PC1/PC2 plane (recent tokens
//! fading) over the map's corpus cloud (faint), the current token's layer × component heat
//! map (every component the frame carries, [`FRAME_COMPONENTS`] rows), and the loudness,
//! loudness velocity, temperature and tension (the concept direction's pull) of every played
//! token.

use std::collections::VecDeque;

use egui::{Color32, Pos2, Rect, Sense, Stroke, StrokeKind, Vec2};
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use crate::io::run_file::PlayedToken;
use crate::music::frame::FRAME_COMPONENTS;
use crate::music::voices::VOICES;
use crate::worker::link::MapCloud;

pub const VOICE_COLORS: [Color32; VOICES] = [
    Color32::from_rgb(90, 170, 255),
    Color32::from_rgb(120, 220, 120),
    Color32::from_rgb(255, 130, 90),
];

/// Tokens a trajectory shows before they have faded out.
const TRAIL: usize = 48;

/// Which layer each voice follows, `None` for a voice that is off.
pub type VoiceLayers = [Option<usize>; VOICES];

/// The `(PC1, PC2)` path of each voice over the last [`TRAIL`] records, oldest first.
pub fn trajectories(
    recent: &VecDeque<PlayedToken>,
    layers: &VoiceLayers,
) -> [Vec<[f64; 2]>; VOICES] {
    let start = recent.len().saturating_sub(TRAIL);
    std::array::from_fn(|voice| {
        let Some(layer) = layers[voice] else {
            return Vec::new();
        };
        recent
            .iter()
            .skip(start)
            .filter(|r| r.frame.hidden_states() > 0)
            .map(|r| {
                let coords = r.frame.coords[layer.min(r.frame.hidden_states() - 1)];
                [f64::from(coords[0]), f64::from(coords[1])]
            })
            .collect()
    })
}

/// The corpus points to draw behind the trajectories: per distinct voice layer (clamped to
/// the cloud's states, as the trajectories clamp theirs), the first voice on it gives the
/// colour.
pub fn cloud_layers(cloud: &MapCloud, layers: &VoiceLayers) -> Vec<(usize, Vec<[f64; 2]>)> {
    let MapCloud::Cloud(cloud) = cloud else {
        return Vec::new();
    };
    let Some(last) = cloud.n_states().checked_sub(1) else {
        return Vec::new();
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (voice, layer) in layers.iter().enumerate() {
        let Some(layer) = layer.map(|l| l.min(last)) else {
            continue;
        };
        if seen.contains(&layer) {
            continue;
        }
        seen.push(layer);
        let points = cloud
            .layer(layer)
            .iter()
            .map(|p| [f64::from(p[0]), f64::from(p[1])])
            .collect();
        out.push((voice, points));
    }
    out
}

/// A line under the plot when there is nothing to draw behind the trajectories.
pub fn cloud_hint(cloud: &MapCloud) -> Option<&'static str> {
    match cloud {
        MapCloud::NoCloud => Some(
            "This map has no corpus cloud (fitted by an older version): run `latent-choir fit-pca` to refit it with one.",
        ),
        MapCloud::NoMap | MapCloud::Cloud(_) => None,
    }
}

pub fn trajectory_plot(
    ui: &mut egui::Ui,
    paths: &[Vec<[f64; 2]>; VOICES],
    cloud: &[(usize, Vec<[f64; 2]>)],
    hint: Option<&str>,
) {
    if let Some(hint) = hint {
        ui.small(hint);
    }
    Plot::new("trajectories")
        .data_aspect(1.0)
        .default_x_bounds(-1.1, 1.1)
        .default_y_bounds(-1.1, 1.1)
        .x_axis_label("PC1")
        .y_axis_label("PC2")
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .show_crosshair(false)
        .legend(Legend::default())
        .show(ui, |plot| {
            // The corpus first, so the live paths draw over it.
            for (voice, points) in cloud {
                plot.points(
                    Points::new("", points.clone())
                        .color(VOICE_COLORS[*voice].gamma_multiply(0.22))
                        .radius(1.2)
                        .filled(true)
                        .allow_hover(false),
                );
            }
            for (voice, path) in paths.iter().enumerate() {
                let color = VOICE_COLORS[voice];
                let n = path.len();
                // Older segments fade: each is drawn on its own with less alpha.
                for (k, pair) in path.windows(2).enumerate() {
                    let alpha = (k + 1) as f32 / n as f32;
                    plot.line(
                        Line::new("", PlotPoints::from(pair.to_vec()))
                            .color(color.gamma_multiply(alpha))
                            .width(1.5)
                            .allow_hover(false),
                    );
                }
                if let Some(last) = path.last() {
                    plot.points(
                        Points::new(format!("Voice {}", voice + 1), vec![*last])
                            .color(color)
                            .radius(5.0)
                            .filled(true),
                    );
                }
            }
        });
}

/// Diverging colour for a normalised coordinate in [-1, 1]: blue, dark, orange.
fn diverging(value: f32) -> Color32 {
    let v = if value.is_finite() {
        value.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let base = 30.0;
    let (r, g, b) = if v >= 0.0 {
        (base + 225.0 * v, base + 130.0 * v, base)
    } else {
        (base, base + 120.0 * -v, base + 225.0 * -v)
    };
    Color32::from_rgb(r as u8, g as u8, b as u8)
}

/// Layers across, components down, for the last record; the voices' layers are marked.
pub fn heat_map(ui: &mut egui::Ui, current: Option<&PlayedToken>, layers: &VoiceLayers) {
    let size = ui.available_size();
    let (response, painter) = ui.allocate_painter(size, Sense::hover());
    let area = response.rect;
    painter.rect_filled(area, 2.0, ui.visuals().extreme_bg_color);
    let label_w = 34.0;
    let label_h = 16.0;
    let grid = Rect::from_min_max(
        area.min + Vec2::new(label_w, 4.0),
        area.max - Vec2::new(4.0, label_h),
    );
    let text_color = ui.visuals().weak_text_color();
    let font = egui::FontId::proportional(11.0);
    for c in (0..FRAME_COMPONENTS).step_by(label_step(grid.height(), FRAME_COMPONENTS)) {
        let y = grid.top() + (c as f32 + 0.5) * grid.height() / FRAME_COMPONENTS as f32;
        painter.text(
            Pos2::new(area.left() + 4.0, y),
            egui::Align2::LEFT_CENTER,
            format!("PC{}", c + 1),
            font.clone(),
            text_color,
        );
    }
    let Some(record) = current.filter(|r| r.frame.hidden_states() > 0) else {
        painter.text(
            grid.center(),
            egui::Align2::CENTER_CENTER,
            "layer × component map of the token sounding now",
            font,
            text_color,
        );
        return;
    };
    let states = record.frame.hidden_states();
    let cell = Vec2::new(
        grid.width() / states as f32,
        grid.height() / FRAME_COMPONENTS as f32,
    );
    for (layer, coords) in record.frame.coords.iter().take(states).enumerate() {
        for (c, value) in coords.iter().enumerate() {
            let min = grid.min + Vec2::new(layer as f32 * cell.x, c as f32 * cell.y);
            painter.rect_filled(
                Rect::from_min_size(min, cell).shrink(0.5),
                0.0,
                diverging(*value),
            );
        }
    }
    for (voice, layer) in layers.iter().enumerate() {
        let Some(layer) = layer.map(|l| l.min(states - 1)) else {
            continue;
        };
        let column = Rect::from_min_size(
            grid.min + Vec2::new(layer as f32 * cell.x, 0.0),
            Vec2::new(cell.x, grid.height()),
        );
        painter.rect_stroke(
            column,
            0.0,
            Stroke::new(2.0, VOICE_COLORS[voice]),
            StrokeKind::Outside,
        );
    }
    let step = (states / 6).max(1);
    for layer in (0..states).step_by(step) {
        painter.text(
            Pos2::new(
                grid.left() + (layer as f32 + 0.5) * cell.x,
                grid.bottom() + 2.0,
            ),
            egui::Align2::CENTER_TOP,
            layer.to_string(),
            font.clone(),
            text_color,
        );
    }
}

/// Label every n-th of `rows` rows so labels (11 px text) never overlap in `height` px: all
/// four rows of a small frame, every second or fourth of sixteen in a short panel.
pub fn label_step(height: f32, rows: usize) -> usize {
    let per_row = height / rows.max(1) as f32;
    let mut step = 1;
    while per_row * (step as f32) < 12.0 && step < rows {
        step *= 2;
    }
    step
}

/// The heat map's share of the central panel's height: a little more room for each
/// component row the frame carries, so sixteen rows stay readable.
pub fn heat_map_share() -> f32 {
    (0.12 + 0.01 * FRAME_COMPONENTS as f32).min(0.26)
}

/// One series of the history plots.
pub struct Series {
    pub name: &'static str,
    pub unit: &'static str,
    /// Always shown, so a steady value reads as a line at its level rather than filling
    /// the plot.
    pub range: (f64, f64),
    pub color: Color32,
    pub value: fn(&PlayedToken) -> f32,
}

pub const HISTORY: [Series; 4] = [
    Series {
        name: "Loudness",
        unit: "LUFS",
        range: (-70.0, -10.0),
        color: Color32::from_rgb(120, 200, 255),
        value: |r| r.point.smoothed,
    },
    Series {
        name: "Loudness velocity",
        unit: "LU/s",
        range: (-5.0, 5.0),
        color: Color32::from_rgb(200, 160, 255),
        value: |r| r.point.velocity,
    },
    Series {
        name: "Temperature",
        unit: "",
        range: (0.0, 2.0),
        color: Color32::from_rgb(255, 170, 80),
        value: |r| r.point.temperature,
    },
    Series {
        name: "Tension",
        unit: "",
        range: (0.0, 1.0),
        color: Color32::from_rgb(255, 90, 110),
        // Runs without a direction have no tension to show (left out as non-finite).
        value: |r| {
            if r.frame.has_direction {
                r.frame.tension
            } else {
                f32::NAN
            }
        },
    },
];

/// `(token index, value)` of every recent record, non-finite values left out.
pub fn series_points(recent: &VecDeque<PlayedToken>, series: &Series) -> Vec<[f64; 2]> {
    recent
        .iter()
        .map(|r| [f64::from(r.frame.index), f64::from((series.value)(r))])
        .filter(|p| p[1].is_finite())
        .collect()
}

pub fn history_plots(ui: &mut egui::Ui, recent: &VecDeque<PlayedToken>) {
    let height = (ui.available_height() / HISTORY.len() as f32 - 4.0).max(30.0);
    let link = ui.scope_id().with("history x");
    for series in &HISTORY {
        let label = if series.unit.is_empty() {
            series.name.to_owned()
        } else {
            format!("{} ({})", series.name, series.unit)
        };
        Plot::new(series.name)
            .height(height)
            .link_axis(link, [true, false])
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .show_crosshair(false)
            .y_axis_min_width(36.0)
            .include_y(series.range.0)
            .include_y(series.range.1)
            .legend(Legend::default())
            .show(ui, |plot| {
                plot.line(
                    Line::new(label, PlotPoints::from(series_points(recent, series)))
                        .color(series.color)
                        .width(1.5),
                );
            });
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::loudness::CurvePoint;
    use crate::music::frame::TokenFrame;

    /// A frame's coordinates with PC1 and PC2 given, every other component 0.
    pub(crate) fn coords(pc1: f32, pc2: f32) -> [f32; FRAME_COMPONENTS] {
        let mut c = [0.0; FRAME_COMPONENTS];
        c[0] = pc1;
        c[1] = pc2;
        c
    }

    fn record(index: u32, velocity: f32) -> PlayedToken {
        let mut frame = TokenFrame::new(index, 0, "t", 3, 0.5);
        frame.set_state(0, coords(0.1, 0.2), 1.0, 0.0, 0.0);
        frame.set_state(2, coords(index as f32 / 100.0, -0.5), 1.0, 0.0, 0.0);
        let point = CurvePoint {
            lufs: -20.0,
            smoothed: -22.0,
            velocity,
            temperature: 0.9,
        };
        PlayedToken { frame, point }
    }

    #[test]
    fn trajectories_follow_each_voice_layer_over_the_trail() {
        let recent: VecDeque<_> = (0..100).map(|i| record(i, 0.0)).collect();
        // Voice 3 asks for layer 30 of a 3-state model: clamped to the last state.
        let paths = trajectories(&recent, &[Some(0), None, Some(30)]);
        assert_eq!(paths[0].len(), TRAIL);
        assert!(paths[1].is_empty());
        assert!(
            paths[0]
                .iter()
                .all(|p| p == &[0.1f32 as f64, 0.2f32 as f64])
        );
        assert_eq!(paths[2].len(), TRAIL);
        assert_eq!(paths[2].last(), Some(&[f64::from(0.99f32), -0.5]));
        assert_eq!(paths[2][0], [f64::from(0.52f32), -0.5]);
    }

    #[test]
    fn history_series_read_the_curve_and_skip_non_finite_values() {
        let recent: VecDeque<_> = [record(0, 1.0), record(1, f32::NAN), record(2, -2.0)]
            .into_iter()
            .collect();
        let velocity = series_points(&recent, &HISTORY[1]);
        assert_eq!(velocity, [[0.0, 1.0], [2.0, -2.0]]);
        let temperature = series_points(&recent, &HISTORY[2]);
        assert_eq!(temperature.len(), 3);
        assert!(temperature.iter().all(|p| (p[1] - 0.9).abs() < 1e-6));
    }

    #[test]
    fn the_cloud_follows_the_voices_layers_once_each() {
        use crate::activation::CorpusCloud;
        use std::sync::Arc;
        let cloud = CorpusCloud::new(vec![
            vec![[0.5, 0.5]],
            vec![[-0.5, 0.25], [0.0, 1.0]],
            vec![[1.0, -1.0]],
        ])
        .unwrap();
        let shared = MapCloud::Cloud(Arc::new(cloud));
        // Voice 3 asks for layer 30: clamped to the last state; voice 2 shares voice 1's.
        let drawn = cloud_layers(&shared, &[Some(1), Some(1), Some(30)]);
        assert_eq!(drawn.len(), 2);
        assert_eq!(drawn[0], (0, vec![[-0.5, 0.25], [0.0, 1.0]]));
        assert_eq!(drawn[1], (2, vec![[1.0, -1.0]]));
        assert!(cloud_layers(&shared, &[None, None, None]).is_empty());
        assert!(cloud_layers(&MapCloud::NoCloud, &[Some(0), None, None]).is_empty());
        assert!(cloud_hint(&MapCloud::NoCloud).is_some_and(|h| h.contains("fit-pca")));
        assert!(cloud_hint(&shared).is_none() && cloud_hint(&MapCloud::NoMap).is_none());
    }

    #[test]
    fn the_heat_map_has_room_and_labels_for_every_component() {
        // Whatever FRAME_COMPONENTS is (4 now, 16 soon): labels never closer than 12 px.
        for rows in [4, 16, FRAME_COMPONENTS] {
            for height in [60.0f32, 90.0, 140.0, 300.0] {
                let step = label_step(height, rows);
                assert!(height / rows as f32 * step as f32 >= 12.0 || step >= rows);
            }
        }
        assert_eq!(label_step(200.0, 4), 1);
        assert_eq!(label_step(100.0, 16), 2);
        assert_eq!(label_step(60.0, 16), 4);
        assert!(heat_map_share() >= 0.16 && heat_map_share() <= 0.26);
    }

    #[test]
    fn diverging_colours_are_ordered_and_safe() {
        assert_eq!(diverging(f32::NAN), diverging(0.0));
        assert_eq!(diverging(5.0), diverging(1.0));
        assert!(diverging(1.0).r() > diverging(0.0).r());
        assert!(diverging(-1.0).b() > diverging(0.0).b());
    }
}
