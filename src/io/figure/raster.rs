//! A [`Figure`] rasterised into RGB pixels and encoded as PNG ([`crate::io::png_image`]).
//! Every shape is drawn with analytic coverage (the share of a pixel it covers, from the
//! distance of the pixel's centre to the edge), so edges are smooth without supersampling;
//! text comes from the font's outlines.

use super::font::layout;
use super::{Anchor, Colour, Figure, Shape};
use crate::io::png_image::rgb_png;

/// The figure as a PNG file's bytes.
pub fn png(figure: &Figure) -> Result<Vec<u8>, String> {
    let pixels = pixels(figure)?;
    rgb_png(
        figure.width as usize,
        figure.height as usize,
        &pixels,
        &[
            ("Title", figure.title.as_str()),
            ("Software", "latent-choir"),
        ],
    )
}

/// The figure as 8-bit RGB pixels, row-major.
pub fn pixels(figure: &Figure) -> Result<Vec<u8>, String> {
    let (w, h) = (figure.width as usize, figure.height as usize);
    if w == 0 || h == 0 || w.saturating_mul(h) > 64 << 20 {
        return Err(format!("a {w}×{h} picture cannot be drawn"));
    }
    let bg = figure.background;
    let mut canvas = Canvas {
        width: w,
        height: h,
        rgb: vec![[f32::from(bg.r), f32::from(bg.g), f32::from(bg.b)]; w * h],
    };
    for shape in &figure.shapes {
        canvas.draw(shape);
    }
    Ok(canvas
        .rgb
        .iter()
        .flat_map(|p| p.map(|v| v.round().clamp(0.0, 255.0) as u8))
        .collect())
}

struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<[f32; 3]>,
}

impl Canvas {
    /// Paint `colour` over pixel (x, y) with `coverage` in [0, 1].
    fn blend(&mut self, x: i64, y: i64, colour: Colour, coverage: f32) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let a = (coverage * colour.a).clamp(0.0, 1.0);
        if a <= 0.0 {
            return;
        }
        let p = &mut self.rgb[y as usize * self.width + x as usize];
        for (v, c) in p.iter_mut().zip([colour.r, colour.g, colour.b]) {
            *v += (f32::from(c) - *v) * a;
        }
    }

    /// Pixels whose centres lie in `[x0, x1) × [y0, y1)` grown by `pad`, clipped to the
    /// canvas.
    fn span(&self, x0: f32, x1: f32, y0: f32, y1: f32, pad: f32) -> (i64, i64, i64, i64) {
        let clip = |v: f32, max: usize| (v.floor() as i64).clamp(0, max as i64);
        (
            clip(x0 - pad, self.width),
            clip(x1 + pad + 1.0, self.width),
            clip(y0 - pad, self.height),
            clip(y1 + pad + 1.0, self.height),
        )
    }

    fn draw(&mut self, shape: &Shape) {
        match shape {
            Shape::Rect {
                x,
                y,
                w,
                h,
                fill,
                stroke,
            } => {
                if let Some(fill) = fill {
                    self.fill_rect(*x, *y, *w, *h, *fill);
                }
                if let Some(stroke) = stroke {
                    let corners =
                        vec![[*x, *y], [x + w, *y], [x + w, y + h], [*x, y + h], [*x, *y]];
                    self.line(&corners, *stroke, 1.0);
                }
            }
            Shape::Circle { x, y, r, fill } => self.circle(*x, *y, *r, *fill),
            Shape::Line {
                points,
                colour,
                width,
            } => self.line(points, *colour, *width),
            Shape::Text {
                x,
                y,
                text,
                size,
                colour,
                anchor,
                vertical,
            } => self.text(*x, *y, text, *size, *colour, *anchor, *vertical),
            Shape::Group { shapes, .. } => {
                for shape in shapes {
                    self.draw(shape);
                }
            }
        }
    }

    fn fill_rect(&mut self, x: f32, y: f32, w: f32, h: f32, colour: Colour) {
        let (px0, px1, py0, py1) = self.span(x, x + w, y, y + h, 0.0);
        for py in py0..py1 {
            let cover_y = overlap(py as f32, y, y + h);
            for px in px0..px1 {
                let cover = overlap(px as f32, x, x + w) * cover_y;
                self.blend(px, py, colour, cover);
            }
        }
    }

    fn circle(&mut self, cx: f32, cy: f32, r: f32, colour: Colour) {
        let (px0, px1, py0, py1) = self.span(cx - r, cx + r, cy - r, cy + r, 1.0);
        for py in py0..py1 {
            for px in px0..px1 {
                let d = ((px as f32 + 0.5 - cx).powi(2) + (py as f32 + 0.5 - cy).powi(2)).sqrt();
                self.blend(px, py, colour, (r + 0.5 - d).clamp(0.0, 1.0));
            }
        }
    }

    /// A polyline of `width`: each pixel's coverage is that of the nearest segment (so joints
    /// of a translucent line are not painted twice).
    fn line(&mut self, points: &[[f32; 2]], colour: Colour, width: f32) {
        if points.len() < 2 {
            return;
        }
        let half = width / 2.0;
        let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in points {
            (x0, x1, y0, y1) = (x0.min(p[0]), x1.max(p[0]), y0.min(p[1]), y1.max(p[1]));
        }
        let (px0, px1, py0, py1) = self.span(x0, x1, y0, y1, half + 1.0);
        let bw = (px1 - px0).max(0) as usize;
        let mut cover = vec![0.0f32; bw * (py1 - py0).max(0) as usize];
        for segment in points.windows(2) {
            let ([ax, ay], [bx, by]) = (segment[0], segment[1]);
            let (sx0, sx1, sy0, sy1) =
                self.span(ax.min(bx), ax.max(bx), ay.min(by), ay.max(by), half + 1.0);
            let (dx, dy) = (bx - ax, by - ay);
            let length2 = (dx * dx + dy * dy).max(f32::MIN_POSITIVE);
            for py in sy0..sy1 {
                for px in sx0..sx1 {
                    let (qx, qy) = (px as f32 + 0.5 - ax, py as f32 + 0.5 - ay);
                    let t = ((qx * dx + qy * dy) / length2).clamp(0.0, 1.0);
                    let d = ((qx - t * dx).powi(2) + (qy - t * dy).powi(2)).sqrt();
                    let c = (half + 0.5 - d).clamp(0.0, 1.0);
                    let cell = &mut cover[(py - py0) as usize * bw + (px - px0) as usize];
                    *cell = cell.max(c);
                }
            }
        }
        for py in py0..py1 {
            for px in px0..px1 {
                let c = cover[(py - py0) as usize * bw + (px - px0) as usize];
                self.blend(px, py, colour, c);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn text(
        &mut self,
        x: f32,
        y: f32,
        text: &str,
        size: f32,
        colour: Colour,
        anchor: Anchor,
        vertical: bool,
    ) {
        let (glyphs, advance) = layout(text, size);
        let shift = match anchor {
            Anchor::Start => 0.0,
            Anchor::Middle => -advance / 2.0,
            Anchor::End => -advance,
        };
        for glyph in glyphs {
            let bounds = glyph.px_bounds();
            glyph.draw(|gx, gy, coverage| {
                // (u along the text, v below the baseline), in pixels from the anchor.
                let u = (bounds.min.x + gx as f32 + shift).round() as i64;
                let v = (bounds.min.y + gy as f32).round() as i64;
                let (px, py) = if vertical {
                    (x.round() as i64 + v, y.round() as i64 - u)
                } else {
                    (x.round() as i64 + u, y.round() as i64 + v)
                };
                self.blend(px, py, colour, coverage);
            });
        }
    }
}

/// How much of the pixel `[p, p + 1)` the interval `[a, b)` covers.
fn overlap(p: f32, a: f32, b: f32) -> f32 {
    (b.min(p + 1.0) - a.max(p)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(shapes: Vec<Shape>) -> Figure {
        Figure {
            width: 40,
            height: 30,
            background: Colour::rgb(255, 255, 255),
            shapes,
            title: String::new(),
        }
    }

    fn at(pixels: &[u8], x: usize, y: usize) -> [u8; 3] {
        let i = (y * 40 + x) * 3;
        [pixels[i], pixels[i + 1], pixels[i + 2]]
    }

    #[test]
    fn shapes_cover_their_pixels_and_no_others() {
        let red = Colour::rgb(255, 0, 0);
        let pixels = pixels(&blank(vec![
            Shape::Rect {
                x: 2.0,
                y: 2.0,
                w: 4.0,
                h: 4.0,
                fill: Some(red),
                stroke: None,
            },
            Shape::Circle {
                x: 20.0,
                y: 15.0,
                r: 4.0,
                fill: Colour::rgb(0, 0, 255).alpha(0.5),
            },
            Shape::Line {
                points: vec![[30.0, 2.5], [38.0, 2.5]],
                colour: Colour::rgb(0, 0, 0),
                width: 1.0,
            },
        ]))
        .unwrap();
        assert_eq!(at(&pixels, 3, 3), [255, 0, 0]);
        assert_eq!(at(&pixels, 7, 3), [255, 255, 255]);
        assert_eq!(
            at(&pixels, 20, 15),
            [128, 128, 255],
            "half-transparent blue"
        );
        assert_eq!(at(&pixels, 20, 25), [255, 255, 255]);
        assert_eq!(at(&pixels, 34, 2), [0, 0, 0]);
        assert_eq!(at(&pixels, 34, 5), [255, 255, 255]);
    }

    #[test]
    fn text_is_drawn_with_the_built_in_font() {
        let word = |vertical| {
            pixels(&blank(vec![Shape::Text {
                x: 20.0,
                y: 20.0,
                text: "Hi".to_owned(),
                size: 14.0,
                colour: Colour::rgb(0, 0, 0),
                anchor: Anchor::Middle,
                vertical,
            }]))
            .unwrap()
        };
        let dark = |p: &[u8]| p.chunks(3).filter(|c| c[0] < 128).count();
        assert!(dark(&word(false)) > 10);
        assert!(dark(&word(true)) > 10);
        assert!(super::super::text_width("Hi", 14.0) > 8.0);
    }
}
