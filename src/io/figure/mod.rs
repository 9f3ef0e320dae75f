//! A figure as a list of shapes in pixel coordinates (y down), written as SVG ([`svg`]) or
//! rasterised into a PNG ([`raster`]) from the same list, so both files show the same
//! picture. Text uses the font built into egui (`epaint_default_fonts`' Ubuntu Light) for
//! the PNG and for measuring; the SVG names it and falls back to any sans-serif.
//! `map-plot` draws through it ([`super::map_plot`]).

mod font;
pub mod raster;
pub mod svg;

use std::path::Path;

pub use font::text_width;

/// An sRGB colour with opacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Colour {
    pub r: u8,
    pub g: u8,
    pub b: u8,
    /// 0 transparent … 1 opaque.
    pub a: f32,
}

impl Colour {
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b, a: 1.0 }
    }

    pub const fn alpha(self, a: f32) -> Self {
        Self { a, ..self }
    }

    /// `#rrggbb`
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }

    /// The straight line from `self` (t = 0) to `other` (t = 1).
    pub fn mix(self, other: Colour, t: f32) -> Colour {
        let t = t.clamp(0.0, 1.0);
        let lerp = |a: u8, b: u8| (f32::from(a) + (f32::from(b) - f32::from(a)) * t).round() as u8;
        Colour {
            r: lerp(self.r, other.r),
            g: lerp(self.g, other.g),
            b: lerp(self.b, other.b),
            a: self.a + (other.a - self.a) * t,
        }
    }
}

/// Where a text's `x` is: its start, middle or end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// An axis-aligned rectangle, filled and/or outlined (1 px).
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill: Option<Colour>,
        stroke: Option<Colour>,
    },
    Circle {
        x: f32,
        y: f32,
        r: f32,
        fill: Colour,
    },
    /// An open polyline, round-joined.
    Line {
        points: Vec<[f32; 2]>,
        colour: Colour,
        width: f32,
    },
    /// One line of text; `y` is its baseline. `vertical` turns it a quarter left (reading
    /// upwards), about `(x, y)`.
    Text {
        x: f32,
        y: f32,
        text: String,
        size: f32,
        colour: Colour,
        anchor: Anchor,
        vertical: bool,
    },
    /// Shapes that belong together, named (an SVG `<g class=…>`; the PNG ignores the name).
    Group {
        class: &'static str,
        shapes: Vec<Shape>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub width: u32,
    pub height: u32,
    pub background: Colour,
    pub shapes: Vec<Shape>,
    /// The SVG `<title>` and the PNG's `Title` chunk.
    pub title: String,
}

/// The file formats a figure is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// By the path's extension (`.png`, `.svg`, any case); anything else is an error that says
    /// what is accepted.
    pub fn of(path: &Path) -> Result<Format, String> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            Some(other) => Err(format!(
                "{}: cannot write a .{other} picture; name the file .png or .svg",
                path.display()
            )),
            None => Err(format!(
                "{}: no extension; name the file .png or .svg",
                path.display()
            )),
        }
    }
}

/// The figure's bytes in `format`.
pub fn encode(figure: &Figure, format: Format) -> Result<Vec<u8>, String> {
    match format {
        Format::Png => raster::png(figure),
        Format::Svg => Ok(svg::svg(figure).into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(Format::of(Path::new("a/b.PNG")), Ok(Format::Png));
        assert_eq!(Format::of(Path::new("b.svg")), Ok(Format::Svg));
        let err = Format::of(Path::new("b.jpg")).unwrap_err();
        assert!(
            err.contains(".jpg") && err.contains(".png or .svg"),
            "{err}"
        );
        assert!(Format::of(Path::new("plot")).is_err());
    }

    #[test]
    fn colours_mix_and_print() {
        let (a, b) = (Colour::rgb(0, 0, 0), Colour::rgb(255, 100, 10));
        assert_eq!(a.mix(b, 0.5), Colour::rgb(128, 50, 5));
        assert_eq!(b.hex(), "#ff640a");
    }
}
