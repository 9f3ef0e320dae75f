//! `listen --plot`: a picture of the stream. Top, the 8 token layers as colour bands (one hue
//! per token value, so repeats and changes show); below, the transcription as a piano roll.

use super::tokenizer::Heard;
use crate::io::png_image::rgb_png;

const WIDTH: usize = 1200;
const BAND: usize = 18;
const ROLL: usize = 264;
const GAP: usize = 6;

pub fn png_bytes(heard: &Heard) -> Result<Vec<u8>, String> {
    let height = 8 * BAND + GAP + ROLL;
    let mut pixels = vec![24u8; WIDTH * height * 3];
    let mut put = |x: usize, y: usize, rgb: [u8; 3]| {
        if x < WIDTH && y < height {
            pixels[(y * WIDTH + x) * 3..(y * WIDTH + x) * 3 + 3].copy_from_slice(&rgb);
        }
    };
    let frames = heard.frames.len().max(1);
    for x in 0..WIDTH {
        let Some(frame) = heard.frames.get(x * frames / WIDTH) else {
            continue;
        };
        for (layer, token) in frame.tokens().iter().enumerate() {
            let rgb = hue(f64::from(*token) * 0.618_034);
            for y in layer * BAND + 1..(layer + 1) * BAND {
                put(x, y, rgb);
            }
        }
    }
    let seconds = heard.seconds.max(1e-6);
    let top = 8 * BAND + GAP;
    for note in &heard.notes {
        let x0 = (note.start / seconds * WIDTH as f64) as usize;
        let x1 = ((note.end / seconds * WIDTH as f64) as usize).max(x0 + 1);
        let row = 87usize.saturating_sub(usize::from(note.pitch.saturating_sub(21)));
        let shade = (80.0 + 175.0 * f64::from(note.amplitude)) as u8;
        for x in x0..x1 {
            for y in top + row * 3..top + row * 3 + 3 {
                put(x, y, [shade, shade, 255]);
            }
        }
    }
    rgb_png(WIDTH, height, &pixels, &[])
}

/// A bright colour for a position on the hue circle (fractional part of `turns`).
fn hue(turns: f64) -> [u8; 3] {
    let h = turns.fract() * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as usize {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    [(r * 230.0) as u8, (g * 230.0) as u8, (b * 230.0) as u8]
}
