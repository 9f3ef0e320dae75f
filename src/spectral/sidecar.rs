//! The JSON beside a spectral render: what every partial is (token or dimension, frequency)
//! and every slice (layer or prompt, when, each partial's raw amplitude and phase), and the gain
//! that turned raw amplitudes into the file's, so a render can be read back into numbers.

use serde_json::{Value, json};

use super::additive::CROSSFADE_SECONDS;
use super::{PartialSource, SliceSource, SpectralScore};

/// Seconds as the sidecar writes them: to the microsecond, so f32 times read cleanly.
fn seconds(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// What the sidecar's `format` says.
pub const FORMAT: &str = "latent-choir-spectral";
pub const VERSION: u32 = 1;

/// The sidecar of `score` rendered at `sample_rate` with `gain`; `model` names the model and
/// `extra` (an object, or null) adds mode-specific fields.
pub fn sidecar(
    score: &SpectralScore,
    gain: f32,
    sample_rate: u32,
    model: &str,
    extra: Value,
) -> Value {
    let partials: Vec<Value> = score
        .partials
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let source = match &p.source {
                PartialSource::Token { position, id, text } => json!({
                    "token": { "position": position, "id": id, "text": text }
                }),
                PartialSource::Dimension {
                    layer,
                    index,
                    rank,
                    variance,
                } => json!({
                    "dimension": { "layer": layer, "index": index, "rank": rank, "variance": variance }
                }),
            };
            let mut entry = json!({ "index": i, "frequency_hz": p.frequency, "pan": p.pan });
            if let (Some(entry), Value::Object(source)) = (entry.as_object_mut(), source) {
                entry.extend(source);
            }
            entry
        })
        .collect();
    let slices: Vec<Value> = score
        .slices
        .iter()
        .enumerate()
        .map(|(s, slice)| {
            let what = match &slice.source {
                SliceSource::Layer(layer) => json!({ "layer": layer }),
                SliceSource::Prompt { line, text } => {
                    json!({ "prompt": { "line": line, "text": text } })
                }
            };
            let mut entry = json!({
                "index": s,
                "start_seconds": seconds(
                    s as f64 * f64::from(score.slice_seconds) + f64::from(CROSSFADE_SECONDS) / 2.0
                ),
                "amplitudes": slice.amplitudes,
                "phases": slice.phases,
            });
            if let (Some(entry), Value::Object(what)) = (entry.as_object_mut(), what) {
                entry.extend(what);
            }
            entry
        })
        .collect();
    let mut root = json!({
        "format": FORMAT,
        "version": VERSION,
        "mode": score.mode,
        "model": model,
        "sample_rate": sample_rate,
        "slice_seconds": seconds(score.slice_seconds.into()),
        "crossfade_seconds": seconds(CROSSFADE_SECONDS.into()),
        "gain": gain,
        "partials": partials,
        "slices": slices,
    });
    if let (Some(root), Value::Object(extra)) = (root.as_object_mut(), extra) {
        root.extend(extra);
    }
    root
}
