//! Times every format's dot on every path this CPU has, one thread, at a ~1B llama's width:
//! GB/s of weight bytes read and ns per row. A measurement for the performance notes:
//! `cargo run --release -p latent-choir-kernels --example dots`.

use std::time::Instant;

use latent_choir_kernels::{
    Activations, Format, Path, block_sums, dot_f32_activations_rows, dot_on, dot_packed,
    dot_packed_on, dot_rows, dot_tile, pack, packable,
};

const ROWS: usize = 2048;
const COLS: usize = 2048;

fn main() {
    // Deterministic bytes; the f16 scales forced finite (exponent 0x3c00-ish).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut byte = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    let x: Vec<f32> = (0..COLS).map(|i| (i as f32 * 0.37).sin()).collect();
    println!(
        "{ROWS} rows × {COLS} columns, one thread; paths: {:?}",
        Path::available()
    );
    for format in Format::ALL {
        let Some(row_bytes) = format.row_bytes(COLS) else {
            continue;
        };
        let mut data: Vec<u8> = (0..ROWS * row_bytes).map(|_| byte()).collect();
        for block in data.chunks_exact_mut(format.block_bytes()) {
            let at = if format == Format::Q6K { 208 } else { 0 };
            block[at + 1] = 0x20;
            if matches!(format, Format::Q4_1 | Format::Q4K | Format::Q5K) {
                block[3] = 0x20;
            }
        }
        let Some(activations) = Activations::quantize(format.blocking(), &x) else {
            continue;
        };
        for path in Path::available() {
            let mut sink = 0.0f32;
            let mut best = f64::INFINITY;
            for _ in 0..7 {
                let start = Instant::now();
                for row in data.chunks_exact(row_bytes) {
                    sink += dot_on(path, format, row, &activations);
                }
                best = best.min(start.elapsed().as_secs_f64());
            }
            std::hint::black_box(sink);
            println!(
                "{format:?} {path:?}: {:6.2} GB/s, {:6.1} ns/row",
                (ROWS * row_bytes) as f64 / best / 1e9,
                best / ROWS as f64 * 1e9
            );
        }
        if format.has_f32_activations() {
            // What the default model decodes with: f32 activations, exact to rounding.
            let sums = block_sums(&x);
            let mut out = vec![0.0f32; ROWS];
            let mut sink = 0.0f32;
            let mut best = f64::INFINITY;
            for _ in 0..7 {
                let start = Instant::now();
                dot_f32_activations_rows(format, &data, &x, &sums, &mut out);
                sink += out[0];
                best = best.min(start.elapsed().as_secs_f64());
            }
            std::hint::black_box(sink);
            println!(
                "{format:?} f32 activations: {:6.2} GB/s, {:6.1} ns/row",
                (ROWS * row_bytes) as f64 / best / 1e9,
                best / ROWS as f64 * 1e9
            );
        }
        // A prompt's product: tiles of 16 rows against 16 positions.
        let xs = vec![activations.clone(); 16];
        let mut out = vec![0.0f32; 16 * xs.len()];
        let start = Instant::now();
        for tile in data.chunks_exact(16 * row_bytes) {
            dot_tile(format, tile, &xs, &mut out);
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{format:?} 16 positions: {:6.1} ns per row and position",
            secs / (ROWS * xs.len()) as f64 * 1e9
        );
        if packable(format, ROWS) {
            // The packed layout: one position (decode), and 16 (a prompt), per path.
            let packed = pack(format, &data, COLS);
            for path in Path::available() {
                for n in [1, 16] {
                    let xs = vec![activations.clone(); n];
                    let mut out = vec![0.0f32; ROWS * n];
                    let mut best = f64::INFINITY;
                    for _ in 0..if n == 1 { 7 } else { 2 } {
                        let start = Instant::now();
                        dot_packed_on(path, format, &packed, &xs, &mut out, ROWS);
                        best = best.min(start.elapsed().as_secs_f64());
                    }
                    std::hint::black_box(&out);
                    println!(
                        "{format:?} packed {path:?}, {n:2} positions: {:6.2} GB/s, {:6.1} ns per row and position",
                        (ROWS * row_bytes * n) as f64 / best / 1e9,
                        best / (ROWS * n) as f64 * 1e9
                    );
                }
            }
            // Decode reads weights from memory, not cache: 16× the rows, rows against packed.
            let big: Vec<u8> = data.iter().cycle().take(16 * data.len()).copied().collect();
            let big_packed = pack(format, &big, COLS);
            let mut out = vec![0.0f32; 16 * ROWS];
            let (mut rows_best, mut packed_best) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..3 {
                let start = Instant::now();
                dot_rows(format, &big, &activations, &mut out);
                rows_best = rows_best.min(start.elapsed().as_secs_f64());
                let start = Instant::now();
                let x = std::slice::from_ref(&activations);
                dot_packed(format, &big_packed, x, &mut out, 16 * ROWS);
                packed_best = packed_best.min(start.elapsed().as_secs_f64());
            }
            let gb = big.len() as f64 / 1e9;
            println!(
                "{format:?} one position from memory ({:.0} MB): rows {:6.2} GB/s, packed {:6.2} GB/s",
                gb * 1e3,
                gb / rows_best,
                gb / packed_best
            );
        }
    }
}
