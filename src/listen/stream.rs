//! The NDJSON token stream: a header line, one line per frame (or per run of equal frames),
//! a stats line. README.md ("Listen") documents the format.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value, json};

use super::key::Key;
use super::rvq::{CODEWORDS, STAGES};
use super::tokenizer::{Heard, TokenFrame};

pub const FORMAT: &str = "latent-choir-audio-tokens";
pub const VERSION: u32 = 1;
pub const LAYERS: [&str; 2 * STAGES] = ["S0", "S1", "S2", "S3", "A0", "A1", "A2", "A3"];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamOptions {
    /// A keyframe (all tokens) at least every this many frames; 0 = only the first line.
    pub keyframe_every: usize,
    /// Non-keyframe lines carry only the tokens that changed since the previous line.
    pub delta: bool,
    /// Runs of identical frames become one line with `"n"`.
    pub rle: bool,
}

/// What the header says about the encoders and the input.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamHeader {
    pub frame_rate: f64,
    pub semantic_encoder: Value,
    pub codebooks_id: String,
    pub codebooks_sha256: String,
    pub input: Value,
}

pub fn header_line(header: &StreamHeader, options: &StreamOptions) -> Value {
    json!({
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "tool": format!("latent-choir {}", env!("CARGO_PKG_VERSION")),
        "sample_rate": super::basic_pitch::SAMPLE_RATE,
        "frame_rate": header.frame_rate,
        "keyframe_every": options.keyframe_every,
        "delta": options.delta,
        "rle": options.rle,
        "layers": LAYERS,
        "encoders": {
            "semantic": header.semantic_encoder,
            "acoustic": {
                "name": "log-mel-64",
                "bands": super::mel::BANDS,
                "fft": 1024,
                "hop": super::basic_pitch::HOP,
                "range_hz": [30, 10000],
            },
        },
        "codebooks": {
            "id": header.codebooks_id,
            "sha256": header.codebooks_sha256,
            "stages": STAGES,
            "semantic": vec![CODEWORDS; STAGES],
            "acoustic": vec![CODEWORDS; STAGES],
        },
        "input": header.input,
    })
}

/// The frame lines, in order.
pub fn frame_lines(frames: &[TokenFrame], options: &StreamOptions) -> Vec<String> {
    let mut lines = Vec::new();
    let mut previous: Option<[u16; 2 * STAGES]> = None;
    let mut since_keyframe = 0usize;
    let mut i = 0;
    while i < frames.len() {
        let tokens = frames[i].tokens();
        let mut run = 1;
        if options.rle {
            while i + run < frames.len() && frames[i + run].tokens() == tokens {
                run += 1;
            }
        }
        let keyframe = previous.is_none()
            || (options.keyframe_every > 0 && since_keyframe >= options.keyframe_every);
        let mut line = format!("{{\"t\":{},\"kf\":{keyframe}", seconds(frames[i].t));
        for (layer, (&token, name)) in tokens.iter().zip(LAYERS).enumerate() {
            let changed = previous.is_none_or(|p| p[layer] != token);
            if keyframe || !options.delta || changed {
                line.push_str(&format!(",\"{name}\":{token}"));
            }
        }
        if run > 1 {
            line.push_str(&format!(",\"n\":{run}"));
        }
        line.push('}');
        lines.push(line);
        since_keyframe = if keyframe { run } else { since_keyframe + run };
        previous = Some(tokens);
        i += run;
    }
    lines
}

/// Times printed with millisecond precision (frame times are multiples of 1/rate).
fn seconds(t: f64) -> String {
    let text = format!("{t:.3}");
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    if trimmed.is_empty() || trimmed == "-" {
        "0".into()
    } else {
        trimmed.into()
    }
}

pub fn stats_line(heard: &Heard, lines: usize, run_time_s: f64) -> Value {
    let mut layers = serde_json::Map::new();
    for (layer, name) in LAYERS.iter().enumerate() {
        let mut histogram: BTreeMap<u16, usize> = BTreeMap::new();
        for frame in &heard.frames {
            *histogram.entry(frame.tokens()[layer]).or_default() += 1;
        }
        let total = heard.frames.len().max(1) as f64;
        let entropy: f64 = histogram
            .values()
            .map(|&c| {
                let p = c as f64 / total;
                -p * p.log2()
            })
            .sum();
        layers.insert(
            (*name).to_owned(),
            json!({
                "distinct": histogram.len(),
                "entropy_bits": (entropy * 1000.0).round() / 1000.0,
                "histogram": histogram.iter().map(|(t, c)| (t.to_string(), json!(c))).collect::<serde_json::Map<_, _>>(),
            }),
        );
    }
    json!({
        "type": "stats",
        "frames": heard.frames.len(),
        "lines": lines,
        "duration_s": (heard.seconds * 1000.0).round() / 1000.0,
        "tokens": layers,
        "notes": heard.notes.len(),
        "key": heard.key.as_ref().map(key_json),
        "run_time_s": (run_time_s * 1000.0).round() / 1000.0,
    })
}

pub fn key_json(key: &Key) -> Value {
    json!({
        "name": key.name(),
        "tonic": super::key::PITCH_CLASSES[usize::from(key.tonic)],
        "mode": match key.mode { super::key::Mode::Major => "major", super::key::Mode::Minor => "minor" },
        "correlation": (key.correlation * 1000.0).round() / 1000.0,
    })
}

/// The whole stream for one input.
pub fn write(
    out: &mut impl Write,
    header: &StreamHeader,
    heard: &Heard,
    options: &StreamOptions,
    run_time_s: f64,
) -> std::io::Result<()> {
    writeln!(out, "{}", header_line(header, options))?;
    let lines = frame_lines(&heard.frames, options);
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "{}", stats_line(heard, lines.len(), run_time_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(t: f64, s0: u16, a0: u16) -> TokenFrame {
        TokenFrame {
            t,
            semantic: [s0, 1, 2, 3],
            acoustic: [a0, 5, 6, 7],
        }
    }

    #[test]
    fn delta_keyframes_and_runs() {
        let frames = [
            frame(0.0, 9, 4),
            frame(0.1, 9, 4),
            frame(0.2, 9, 4),
            frame(0.3, 8, 4),
            frame(0.4, 8, 5),
        ];
        let plain = frame_lines(
            &frames,
            &StreamOptions {
                keyframe_every: 0,
                delta: false,
                rle: false,
            },
        );
        assert_eq!(plain.len(), 5);
        assert_eq!(
            plain[0],
            r#"{"t":0,"kf":true,"S0":9,"S1":1,"S2":2,"S3":3,"A0":4,"A1":5,"A2":6,"A3":7}"#
        );
        assert!(plain[1].starts_with(r#"{"t":0.1,"kf":false,"S0":9"#));
        let delta = frame_lines(
            &frames,
            &StreamOptions {
                keyframe_every: 3,
                delta: true,
                rle: false,
            },
        );
        assert_eq!(delta[1], r#"{"t":0.1,"kf":false}"#);
        assert_eq!(
            delta[3],
            r#"{"t":0.3,"kf":true,"S0":8,"S1":1,"S2":2,"S3":3,"A0":4,"A1":5,"A2":6,"A3":7}"#
        );
        assert_eq!(delta[4], r#"{"t":0.4,"kf":false,"A0":5}"#);
        let rle = frame_lines(
            &frames,
            &StreamOptions {
                keyframe_every: 0,
                delta: true,
                rle: true,
            },
        );
        assert_eq!(rle.len(), 3);
        assert!(rle[0].ends_with(r#""n":3}"#), "{}", rle[0]);
        assert_eq!(rle[1], r#"{"t":0.3,"kf":false,"S0":8}"#);
    }
}
