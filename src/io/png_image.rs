//! PNG pictures: RGB pixels encoded with the `png` crate, and heat maps of a grid of values
//! (hidden states × tokens) that `listen --plot`, `delta --plot` and `album` draw.
//!
//! A heat map has no margins or labels: each cell is a block of whole pixels, so a reader can
//! map pixels back to cells, and the grid's shape and orientation are written into the file as
//! text chunks (`latent-choir:grid` = `ROWSxCOLUMNS`).

use std::io::Write;

/// The widest and tallest a heat map is drawn (cells shrink to fit, never below one pixel).
const MAX_WIDTH: usize = 1200;
const MAX_HEIGHT: usize = 600;
/// The largest cell, so a short grid is not a few giant blocks.
const MAX_CELL: usize = 24;

/// The text-chunk keyword holding a heat map's `ROWSxCOLUMNS`.
pub const GRID_KEY: &str = "latent-choir:grid";

/// How values become colours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeatScale {
    /// `low` dark to `high` bright (black, purple, orange, pale yellow); outside is clamped.
    Sequential { low: f32, high: f32 },
    /// Blue below zero, white at zero, red above; `limit` is full colour (clamped beyond).
    Diverging { limit: f32 },
}

/// A row-major grid of values: `values[row * columns + column]`. Row 0 is drawn at the top.
#[derive(Debug, Clone, Copy)]
pub struct HeatMap<'a> {
    pub values: &'a [f32],
    pub rows: usize,
    pub columns: usize,
    pub scale: HeatScale,
    /// Written as the PNG's `Title`.
    pub title: &'a str,
    /// What the rows are, written as the PNG's `Description` (say which row is on top).
    pub description: &'a str,
}

/// The pixel size of one cell of a `rows × columns` map.
pub fn cell_size(rows: usize, columns: usize) -> (usize, usize) {
    let fit = |room: usize, n: usize| (room / n.max(1)).clamp(1, MAX_CELL);
    (fit(MAX_WIDTH, columns), fit(MAX_HEIGHT, rows))
}

/// `map` as a PNG file's bytes. Non-finite values are drawn grey.
pub fn heat_map_png(map: &HeatMap<'_>) -> Result<Vec<u8>, String> {
    if map.rows == 0 || map.columns == 0 {
        return Err("a heat map needs at least one row and one column".to_owned());
    }
    if map.values.len() != map.rows * map.columns {
        return Err(format!(
            "a {}×{} heat map needs {} values, not {}",
            map.rows,
            map.columns,
            map.rows * map.columns,
            map.values.len()
        ));
    }
    let (cell_w, cell_h) = cell_size(map.rows, map.columns);
    let (width, height) = (map.columns * cell_w, map.rows * cell_h);
    let mut pixels = vec![0u8; width * height * 3];
    for (y, line) in pixels.chunks_exact_mut(width * 3).enumerate() {
        let row = y / cell_h;
        for (x, pixel) in line.chunks_exact_mut(3).enumerate() {
            let value = map.values[row * map.columns + x / cell_w];
            pixel.copy_from_slice(&colour(map.scale, value));
        }
    }
    let grid = format!("{}x{}", map.rows, map.columns);
    rgb_png(
        width,
        height,
        &pixels,
        &[
            ("Title", map.title),
            ("Description", map.description),
            (GRID_KEY, &grid),
        ],
    )
}

/// Encodes 8-bit RGB `pixels` (row-major, `width × height × 3`) with Latin-1 text chunks.
pub fn rgb_png(
    width: usize,
    height: usize,
    pixels: &[u8],
    text: &[(&str, &str)],
) -> Result<Vec<u8>, String> {
    let (w, h) = (
        u32::try_from(width).map_err(|_| format!("{width} pixels is too wide for a PNG"))?,
        u32::try_from(height).map_err(|_| format!("{height} pixels is too tall for a PNG"))?,
    );
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        for (key, value) in text {
            // Latin-1 only: anything else (a prompt's emoji) is replaced rather than refused.
            let latin1: String = value
                .chars()
                .map(|c| if (c as u32) < 256 { c } else { '?' })
                .collect();
            encoder
                .add_text_chunk((*key).to_owned(), latin1)
                .map_err(|e| e.to_string())?;
        }
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(pixels).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    let _ = out.flush();
    Ok(out)
}

/// The colour of `value` on `scale`.
pub fn colour(scale: HeatScale, value: f32) -> [u8; 3] {
    if !value.is_finite() {
        return [128, 128, 128];
    }
    match scale {
        HeatScale::Sequential { low, high } => {
            let span = high - low;
            let t = if span.abs() > f32::EPSILON {
                (value - low) / span
            } else {
                0.0
            };
            ramp(&SEQUENTIAL, t)
        }
        HeatScale::Diverging { limit } => {
            let t = if limit > 0.0 { value / limit } else { 0.0 };
            ramp(&DIVERGING, (t + 1.0) / 2.0)
        }
    }
}

/// Dark to bright, close to matplotlib's "magma": the eye reads it as more.
const SEQUENTIAL: [[u8; 3]; 4] = [[0, 0, 4], [120, 28, 109], [237, 105, 37], [252, 253, 191]];
/// ColorBrewer's RdBu ends around white: negative blue, positive red.
const DIVERGING: [[u8; 3]; 3] = [[33, 102, 172], [247, 247, 247], [178, 24, 43]];

/// `t` in 0…1 (clamped) along evenly spaced colour stops, linearly between them.
fn ramp(stops: &[[u8; 3]], t: f32) -> [u8; 3] {
    let last = stops.len() - 1;
    let position = t.clamp(0.0, 1.0) * last as f32;
    let i = (position.floor() as usize).min(last.saturating_sub(1));
    let frac = position - i as f32;
    let (a, b) = (stops[i], stops[(i + 1).min(last)]);
    let mix =
        |k: usize| (f32::from(a[k]) + (f32::from(b[k]) - f32::from(a[k])) * frac).round() as u8;
    [mix(0), mix(1), mix(2)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_hit_their_ends_and_middle() {
        let seq = HeatScale::Sequential {
            low: 0.0,
            high: 1.0,
        };
        assert_eq!(colour(seq, 0.0), SEQUENTIAL[0]);
        assert_eq!(colour(seq, 1.0), SEQUENTIAL[3]);
        assert_eq!(colour(seq, 7.0), SEQUENTIAL[3]);
        assert_eq!(colour(seq, f32::NAN), [128, 128, 128]);
        let div = HeatScale::Diverging { limit: 2.0 };
        assert_eq!(colour(div, 0.0), DIVERGING[1]);
        assert_eq!(colour(div, -2.0), DIVERGING[0]);
        assert_eq!(colour(div, 5.0), DIVERGING[2]);
    }

    #[test]
    fn a_heat_map_is_whole_cells_and_says_its_grid() {
        let values = [0.0, 0.5, 1.0, 1.0, 0.5, 0.0];
        let map = HeatMap {
            values: &values,
            rows: 2,
            columns: 3,
            scale: HeatScale::Sequential {
                low: 0.0,
                high: 1.0,
            },
            title: "test",
            description: "rows",
        };
        let bytes = heat_map_png(&map).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let (cell_w, cell_h) = cell_size(2, 3);
        assert_eq!(reader.info().width as usize, 3 * cell_w);
        assert_eq!(reader.info().height as usize, 2 * cell_h);
        let grid = reader
            .info()
            .uncompressed_latin1_text
            .iter()
            .find(|t| t.keyword == GRID_KEY)
            .map(|t| t.text.clone());
        assert_eq!(grid.as_deref(), Some("2x3"));
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut pixels).unwrap();
        let width = 3 * cell_w;
        let at = |x: usize, y: usize| &pixels[(y * width + x) * 3..(y * width + x) * 3 + 3];
        assert_eq!(at(0, 0), SEQUENTIAL[0]);
        assert_eq!(at(2 * cell_w, 0), SEQUENTIAL[3]);
        assert_eq!(at(0, cell_h), SEQUENTIAL[3]);
        assert!(heat_map_png(&HeatMap { rows: 3, ..map }).is_err());
    }
}
