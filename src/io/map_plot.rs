//! `map-plot`'s picture: the reference corpus as a cloud in a hidden state's plane (the PCA
//! map's PC1/PC2, or a t-SNE / UMAP embedding), a prompt's tokens as a path through it in
//! order, each labelled with its text; one panel, or a grid of small multiples (one per
//! state). [`compose`] runs the model and the embeddings; [`figure`] lays the panels out on
//! a [`Figure`] for SVG or PNG.
//!
//! In the PCA view the corpus is the map's own [`CorpusCloud`](crate::activation::CorpusCloud)
//! when it has one (no corpus run at all), placed exactly as the plugin places tokens
//! (normalised, clamped to [-1, 1]). t-SNE and UMAP embed the corpus and prompt tokens
//! together from their 16 raw PCA coordinates in that state (see
//! [`crate::activation::embedding`] for why), seeded.

use std::time::{Duration, Instant};

use super::figure::{Anchor, Colour, Figure, Shape, text_width};
use crate::activation::embedding::{Embedding, tsne, umap};
use crate::activation::tokens::{PlacedTokens, place_lines, spread};
use crate::activation::{Corpus, ProjectionMap};
use crate::llm::loader::LoadedModel;

/// Corpus lines run for the picture when the map has no cloud, or for t-SNE / UMAP, unless
/// told otherwise: about 1,150 tokens of the embedded corpus with SmolLM2 (spread over all
/// of it), just over the [`MAX_EMBEDDED`] a t-SNE / UMAP panel keeps; 120 lines took 60–85 s
/// in a debug build against 0.8 s for UMAP itself.
pub const DEFAULT_LINES: usize = 60;
/// Most corpus tokens a t-SNE / UMAP panel embeds (evenly spread over those run): exact
/// t-SNE is O(n²) per iteration.
pub const MAX_EMBEDDED: usize = 1000;

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotRequest {
    pub prompt: String,
    /// Hidden states, one panel each.
    pub states: Vec<usize>,
    pub embedding: Embedding,
    pub seed: u64,
    /// Corpus lines to run; `None`: the map's cloud for PCA if it has one, else
    /// [`DEFAULT_LINES`].
    pub lines: Option<usize>,
    /// The model's name for the title.
    pub model_name: String,
}

/// One panel: points in data coordinates and how to frame them.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// `[x_min, x_max, y_min, y_max]`
    pub bounds: [f32; 4],
    /// Whether the axes mean something numerically (PCA), so ticks are drawn.
    pub ticks: bool,
    pub corpus: Vec<[f32; 2]>,
    pub path: Vec<[f32; 2]>,
    /// One per path point.
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapPlot {
    pub title: String,
    pub caption: String,
    pub panels: Vec<Panel>,
}

/// Where the time went, for the command's summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlotStats {
    pub corpus_tokens: usize,
    pub corpus_lines: usize,
    /// The corpus came from the map's cloud (no corpus run).
    pub from_cloud: bool,
    pub prompt_tokens: usize,
    pub model_time: Duration,
    pub embed_time: Duration,
}

/// How a hidden state is named: the embedding output, a block, the final norm.
pub fn state_name(state: usize, n_states: usize) -> String {
    match state {
        0 => "embedding output".to_owned(),
        s if s + 1 == n_states => "final norm".to_owned(),
        s => format!("block {s}"),
    }
}

/// Run the prompt (and the corpus, when needed) through the model and place everything in
/// each asked state. Errors are messages for the user.
pub fn compose(
    loaded: &mut LoadedModel,
    map: &ProjectionMap,
    corpus: &Corpus,
    request: &PlotRequest,
) -> Result<(MapPlot, PlotStats), String> {
    let prompt = request.prompt.trim();
    if prompt.is_empty() {
        return Err("the prompt is empty: give --prompt the text whose path to draw".to_owned());
    }
    let n_states = map.n_states();
    if let Some(&bad) = request.states.iter().find(|&&s| s >= n_states) {
        return Err(format!(
            "layer {bad} is out of range: this model has hidden states 0..={} (0 the \
             embedding output, {} the final norm), or `all`",
            n_states - 1,
            n_states - 1
        ));
    }
    let mut stats = PlotStats::default();
    let start = Instant::now();
    let placed =
        place_lines(loaded, map, [prompt], &request.states, 0).map_err(|e| e.to_string())?;
    if placed.is_empty() {
        return Err(format!("the prompt {prompt:?} gives no tokens"));
    }
    stats.prompt_tokens = placed.len();
    let use_cloud = request.embedding == Embedding::Pca
        && request.lines.is_none()
        && request.states.iter().all(|&s| map.cloud(s).is_some());
    let corpus_placed = if use_cloud {
        stats.from_cloud = true;
        PlacedTokens::default()
    } else {
        let lines: Vec<&str> = corpus.lines().collect();
        let chosen = spread(&lines, request.lines.unwrap_or(DEFAULT_LINES));
        stats.corpus_lines = chosen.len();
        let first = usize::from(map.metadata().skip_first);
        place_lines(loaded, map, chosen, &request.states, first).map_err(|e| e.to_string())?
    };
    stats.model_time = start.elapsed();

    let embed_start = Instant::now();
    let k = map.components();
    let panels = in_parallel(request.states.len(), |i| {
        let state = request.states[i];
        let prompt_raw = &placed.raw[i];
        let mut title = format!("state {state} ({})", state_name(state, n_states));
        if request.states.len() == 1 {
            title.clear();
        }
        let labels = placed.texts.iter().map(|t| label_of(t)).collect();
        match request.embedding {
            Embedding::Pca => {
                let normalise = |raw: &[f32]| -> Vec<[f32; 2]> {
                    raw.chunks_exact(k)
                        .map(|row| {
                            let mut c = row.to_vec();
                            map.normalise_into(state, &mut c);
                            [c[0], c.get(1).copied().unwrap_or(0.0)]
                        })
                        .collect()
                };
                let corpus_points = match map.cloud(state) {
                    Some(cloud) if use_cloud => cloud.to_vec(),
                    _ => normalise(&corpus_placed.raw[i]),
                };
                let ratios = map.layers()[state].explained_variance_ratio();
                let percent = |c: usize| ratios.get(c).map_or(0.0, |r| r * 100.0);
                Ok(Panel {
                    title,
                    x_label: format!("PC1 ({:.1} % of variance)", percent(0)),
                    y_label: format!("PC2 ({:.1} % of variance)", percent(1)),
                    bounds: [-1.08, 1.08, -1.08, 1.08],
                    ticks: true,
                    corpus: corpus_points,
                    path: normalise(prompt_raw),
                    labels,
                })
            }
            embedding => {
                let corpus_raw = thin(&corpus_placed.raw[i], k, MAX_EMBEDDED);
                let n_corpus = corpus_raw.len() / k;
                let mut data = corpus_raw;
                data.extend_from_slice(prompt_raw);
                let points = match embedding {
                    Embedding::Tsne => {
                        tsne::embed(&data, k, request.seed, tsne::TsneOptions::default())
                    }
                    _ => umap::embed(&data, k, request.seed, umap::UmapOptions::default()),
                }
                .map_err(|e| format!("state {state}: {e}"))?;
                let (corpus_points, path) = points.split_at(n_corpus);
                let axis = embedding.axis_name();
                Ok(Panel {
                    title,
                    x_label: format!("{axis}1"),
                    y_label: format!("{axis}2"),
                    bounds: bounds_of(&points),
                    ticks: false,
                    corpus: corpus_points.to_vec(),
                    path: path.to_vec(),
                    labels,
                })
            }
        }
    })?;
    stats.embed_time = embed_start.elapsed();
    stats.corpus_tokens = panels.first().map_or(0, |p| p.corpus.len());

    let method = match request.embedding {
        Embedding::Pca => "PCA map (PC1/PC2)".to_owned(),
        Embedding::Tsne => format!("t-SNE of the 16 PCA coordinates, seed {}", request.seed),
        Embedding::Umap => format!("UMAP of the 16 PCA coordinates, seed {}", request.seed),
    };
    let title = match request.states.as_slice() {
        [state] => format!(
            "{} · state {state} ({}) · {method}",
            request.model_name,
            state_name(*state, n_states)
        ),
        _ => format!(
            "{} · all {n_states} hidden states · {method}",
            request.model_name
        ),
    };
    let source = if stats.from_cloud {
        format!(
            "the map's own sample of its corpus ({}, {} tokens)",
            map.metadata().corpus_source,
            stats.corpus_tokens
        )
    } else {
        format!(
            "{} tokens of {} corpus lines ({})",
            stats.corpus_tokens,
            stats.corpus_lines,
            corpus.source()
        )
    };
    let caption = format!(
        "grey dots: {source}  ·  line: the prompt's {} tokens in order, light (first) to dark (last)",
        stats.prompt_tokens
    );
    Ok((
        MapPlot {
            title,
            caption,
            panels,
        },
        stats,
    ))
}

/// A token's text as a label: whitespace shown as `·`, and `⏎` for a line break.
fn label_of(text: &str) -> String {
    let shown: String = text
        .chars()
        .map(|c| match c {
            '\n' => '⏎',
            c if c.is_whitespace() => '·',
            c => c,
        })
        .collect();
    let trimmed = shown.trim_start_matches('·');
    if trimmed.is_empty() {
        shown
    } else {
        trimmed.to_owned()
    }
}

/// At most `max` rows of `k` from `raw`, evenly spread.
fn thin(raw: &[f32], k: usize, max: usize) -> Vec<f32> {
    let n = raw.len() / k;
    if n <= max {
        return raw.to_vec();
    }
    (0..max)
        .flat_map(|i| {
            let row = i * n / max;
            raw[row * k..(row + 1) * k].iter().copied()
        })
        .collect()
}

fn bounds_of(points: &[[f32; 2]]) -> [f32; 4] {
    let mut b = [f32::MAX, f32::MIN, f32::MAX, f32::MIN];
    for p in points {
        b = [
            b[0].min(p[0]),
            b[1].max(p[0]),
            b[2].min(p[1]),
            b[3].max(p[1]),
        ];
    }
    let pad = |lo: f32, hi: f32| {
        let margin = ((hi - lo) * 0.05).max(1e-3);
        (lo - margin, hi + margin)
    };
    let (x0, x1) = pad(b[0], b[1]);
    let (y0, y1) = pad(b[2], b[3]);
    [x0, x1, y0, y1]
}

/// `f(0..n)` over the machine's cores, results in order; the first error wins.
fn in_parallel<T: Send>(
    n: usize,
    f: impl Fn(usize) -> Result<T, String> + Sync,
) -> Result<Vec<T>, String> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, n.max(1));
    let mut results: Vec<Option<Result<T, String>>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(|i| (i, f(i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (i, result) in done {
                        results[i] = Some(result);
                    }
                }
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("a panel was not drawn".to_owned())))
        .collect()
}

const INK: Colour = Colour::rgb(40, 40, 48);
const FAINT: Colour = Colour::rgb(120, 120, 130);
const CORPUS: Colour = Colour::rgb(110, 120, 140);
const FIRST: Colour = Colour::rgb(255, 190, 60);
const LAST: Colour = Colour::rgb(150, 20, 40);

/// The plot laid out: one large panel, or a grid of small ones.
pub fn figure(plot: &MapPlot) -> Figure {
    let n = plot.panels.len().max(1);
    let single = n == 1;
    let columns = if single {
        1
    } else {
        (n as f64).sqrt().ceil() as usize
    };
    let rows = n.div_ceil(columns);
    let (panel_w, panel_h) = if single {
        (900.0, 760.0)
    } else {
        (330.0, 300.0)
    };
    let (top, bottom, side) = (56.0, 44.0, 24.0);
    let width = side * 2.0 + panel_w * columns as f32;
    let height = top + bottom + panel_h * rows as f32;
    let mut shapes = vec![
        text(width / 2.0, 30.0, &plot.title, 18.0, INK, Anchor::Middle),
        text(
            width / 2.0,
            height - 16.0,
            &plot.caption,
            13.0,
            FAINT,
            Anchor::Middle,
        ),
    ];
    for (i, panel) in plot.panels.iter().enumerate() {
        let (column, row) = (i % columns, i / columns);
        let origin = [side + column as f32 * panel_w, top + row as f32 * panel_h];
        shapes.push(draw_panel(panel, origin, [panel_w, panel_h], single));
    }
    Figure {
        width: width.ceil() as u32,
        height: height.ceil() as u32,
        background: Colour::rgb(255, 255, 255),
        shapes,
        title: plot.title.clone(),
    }
}

fn text(x: f32, y: f32, s: &str, size: f32, colour: Colour, anchor: Anchor) -> Shape {
    Shape::Text {
        x,
        y,
        text: s.to_owned(),
        size,
        colour,
        anchor,
        vertical: false,
    }
}

fn draw_panel(panel: &Panel, origin: [f32; 2], size: [f32; 2], single: bool) -> Shape {
    let (font, label_font) = if single { (14.0, 13.0) } else { (11.0, 9.0) };
    let (left, right, top, bottom) = if single {
        (70.0, 16.0, 12.0, 56.0)
    } else {
        (36.0, 8.0, 22.0, 34.0)
    };
    let area = [
        origin[0] + left,
        origin[1] + top,
        size[0] - left - right,
        size[1] - top - bottom,
    ];
    let [x0, x1, y0, y1] = panel.bounds;
    let to_px = |p: [f32; 2]| {
        [
            area[0] + (p[0] - x0) / (x1 - x0) * area[2],
            area[1] + (1.0 - (p[1] - y0) / (y1 - y0)) * area[3],
        ]
    };
    let mut shapes = vec![Shape::Rect {
        x: area[0],
        y: area[1],
        w: area[2],
        h: area[3],
        fill: Some(Colour::rgb(250, 250, 252)),
        stroke: Some(Colour::rgb(200, 200, 208)),
    }];
    if !panel.title.is_empty() {
        shapes.push(text(
            area[0] + area[2] / 2.0,
            origin[1] + top - 6.0,
            &panel.title,
            font,
            INK,
            Anchor::Middle,
        ));
    }
    if panel.ticks {
        let mut ticks = Vec::new();
        for v in [-1.0f32, 0.0, 1.0] {
            let [px, py] = to_px([v, v]);
            // Zero lines, faint; the ±1 edges are where the map's clamping stops tokens.
            let colour = Colour::rgb(225, 225, 232);
            ticks.push(Shape::Line {
                points: vec![[px, area[1]], [px, area[1] + area[3]]],
                colour,
                width: 1.0,
            });
            ticks.push(Shape::Line {
                points: vec![[area[0], py], [area[0] + area[2], py]],
                colour,
                width: 1.0,
            });
            let label = format!("{v:.0}");
            ticks.push(text(
                px,
                area[1] + area[3] + font + 2.0,
                &label,
                font - 2.0,
                FAINT,
                Anchor::Middle,
            ));
            ticks.push(text(
                area[0] - 5.0,
                py + font / 3.0,
                &label,
                font - 2.0,
                FAINT,
                Anchor::End,
            ));
        }
        shapes.push(Shape::Group {
            class: "axes",
            shapes: ticks,
        });
    }
    shapes.push(text(
        area[0] + area[2] / 2.0,
        origin[1] + size[1] - if single { 14.0 } else { 6.0 },
        &panel.x_label,
        font,
        INK,
        Anchor::Middle,
    ));
    shapes.push(Shape::Text {
        x: origin[0] + if single { 24.0 } else { 12.0 },
        y: area[1] + area[3] / 2.0,
        text: panel.y_label.clone(),
        size: font,
        colour: INK,
        anchor: Anchor::Middle,
        vertical: true,
    });
    let radius = if single { 1.8 } else { 1.1 };
    shapes.push(Shape::Group {
        class: "corpus",
        shapes: panel
            .corpus
            .iter()
            .map(|&p| {
                let [x, y] = to_px(p);
                Shape::Circle {
                    x,
                    y,
                    r: radius,
                    fill: CORPUS.alpha(0.45),
                }
            })
            .collect(),
    });
    let path: Vec<[f32; 2]> = panel.path.iter().map(|&p| to_px(p)).collect();
    shapes.push(Shape::Group {
        class: "trajectory",
        shapes: vec![Shape::Line {
            points: path.clone(),
            colour: Colour::rgb(200, 90, 40).alpha(0.8),
            width: if single { 2.0 } else { 1.2 },
        }],
    });
    let last = path.len().saturating_sub(1).max(1) as f32;
    let colour_of = |i: usize| FIRST.mix(LAST, i as f32 / last);
    shapes.push(Shape::Group {
        class: "tokens",
        shapes: path
            .iter()
            .enumerate()
            .map(|(i, &[x, y])| Shape::Circle {
                x,
                y,
                r: if single { 5.0 } else { 3.0 },
                fill: colour_of(i),
            })
            .collect(),
    });
    shapes.push(Shape::Group {
        class: "labels",
        shapes: path
            .iter()
            .zip(&panel.labels)
            .map(|(&[x, y], label)| {
                // Labels stay inside the panel: right of the point, or left near the edge.
                let w = text_width(label, label_font);
                let (lx, anchor) = if x + 6.0 + w > area[0] + area[2] {
                    (x - 6.0, Anchor::End)
                } else {
                    (x + 6.0, Anchor::Start)
                };
                text(lx, y - 4.0, label, label_font, INK, anchor)
            })
            .collect(),
    });
    Shape::Group {
        class: "panel",
        shapes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(points: usize) -> Panel {
        Panel {
            title: "state 1 (block 1)".to_owned(),
            x_label: "PC1 (10.0 % of variance)".to_owned(),
            y_label: "PC2".to_owned(),
            bounds: [-1.08, 1.08, -1.08, 1.08],
            ticks: true,
            corpus: (0..points)
                .map(|i| [i as f32 / points as f32, 0.5])
                .collect(),
            path: vec![[-0.5, -0.5], [0.0, 0.2], [1.0, 1.0]],
            labels: vec!["The".into(), "cat".into(), "sat".into()],
        }
    }

    fn count(shape: &Shape, class: &str) -> usize {
        match shape {
            Shape::Group { class: c, shapes } => {
                let inner: usize = shapes.iter().map(|s| count(s, class)).sum();
                if *c == class {
                    shapes.len() + inner
                } else {
                    inner
                }
            }
            _ => 0,
        }
    }

    #[test]
    fn small_multiples_make_a_grid_of_panels() {
        let plot = MapPlot {
            title: "t".into(),
            caption: "c".into(),
            panels: (0..5).map(|_| panel(10)).collect(),
        };
        let figure = figure(&plot);
        let panels = figure
            .shapes
            .iter()
            .filter(|s| matches!(s, Shape::Group { class: "panel", .. }))
            .count();
        assert_eq!(panels, 5);
        assert_eq!((figure.width, figure.height), (3 * 330 + 48, 2 * 300 + 100));
        let dots: usize = figure.shapes.iter().map(|s| count(s, "corpus")).sum();
        assert_eq!(dots, 50);
        let labels: usize = figure.shapes.iter().map(|s| count(s, "labels")).sum();
        assert_eq!(labels, 15);
    }

    #[test]
    fn labels_show_whitespace_and_thin_keeps_rows() {
        assert_eq!(label_of(" cat"), "cat");
        assert_eq!(label_of("\n"), "⏎");
        assert_eq!(label_of("  "), "··");
        let raw: Vec<f32> = (0..20).map(|v| v as f32).collect();
        assert_eq!(thin(&raw, 2, 3), [0.0, 1.0, 6.0, 7.0, 12.0, 13.0]);
        assert_eq!(thin(&raw, 2, 50), raw);
        assert_eq!(state_name(0, 3), "embedding output");
        assert_eq!(state_name(2, 3), "final norm");
    }
}
