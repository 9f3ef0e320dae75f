//! A direction on disk: a safetensors file (like the maps), so Python's `safetensors` or numpy
//! read it too.
//!
//! Tensors, all f32: `direction` `[width]` (r̂), and `positive_mean`, `positive_std`,
//! `negative_mean`, `negative_std` `[n_layers + 1]` (the poles at each hidden state). The
//! header's metadata (strings): `format` = `latent-choir-direction`, `format_version`, `name`,
//! `model_identity`, `model_name`, `n_layers`, `width`, `positive_sha256`, `negative_sha256`,
//! `positive_count`, `negative_count`, `pairing` (`paired` | `groups`), `layers` (the pooled
//! states, comma-separated), `explained_variance_ratio`, `tool_version`. Loading checks all of
//! it and never panics, whatever the bytes.

use std::collections::HashMap;
use std::path::Path;

use super::error::{DirectionError, Result};
use super::{ConceptDirection, DirectionMetadata, Pairing, PoleStats};
use crate::activation::file::{Checked, write_safetensors};

pub const FORMAT: &str = "latent-choir-direction";
pub const FORMAT_VERSION: u32 = 1;
/// A direction file is a few kilobytes; this refuses a model given by mistake unread.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Write `direction` to `path` (atomically; creates the folder).
pub fn save(direction: &ConceptDirection, path: &Path) -> Result<()> {
    let io = |message: String| DirectionError::Io {
        path: path.to_path_buf(),
        message,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io(e.to_string()))?;
    }
    let meta = direction.metadata();
    let bytes = |values: &mut dyn Iterator<Item = f32>| -> Vec<u8> {
        values.flat_map(f32::to_le_bytes).collect()
    };
    let poles = direction.poles();
    let n = poles.len();
    let tensors = vec![
        (
            "direction".to_owned(),
            vec![meta.width],
            bytes(&mut direction.vector().iter().copied()),
        ),
        (
            "positive_mean".to_owned(),
            vec![n],
            bytes(&mut poles.iter().map(|p| p.positive_mean)),
        ),
        (
            "positive_std".to_owned(),
            vec![n],
            bytes(&mut poles.iter().map(|p| p.positive_std)),
        ),
        (
            "negative_mean".to_owned(),
            vec![n],
            bytes(&mut poles.iter().map(|p| p.negative_mean)),
        ),
        (
            "negative_std".to_owned(),
            vec![n],
            bytes(&mut poles.iter().map(|p| p.negative_std)),
        ),
    ];
    write_safetensors(&tensors, metadata_strings(meta), path).map_err(io)
}

fn metadata_strings(meta: &DirectionMetadata) -> HashMap<String, String> {
    let layers = meta
        .layers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    [
        ("format", FORMAT.to_owned()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("name", meta.name.clone()),
        ("model_identity", meta.model_identity.clone()),
        ("model_name", meta.model_name.clone()),
        ("n_layers", meta.n_layers.to_string()),
        ("width", meta.width.to_string()),
        ("positive_sha256", meta.positive_sha256.clone()),
        ("negative_sha256", meta.negative_sha256.clone()),
        ("positive_count", meta.positive_count.to_string()),
        ("negative_count", meta.negative_count.to_string()),
        ("pairing", meta.pairing.name().to_owned()),
        ("layers", layers),
        (
            "explained_variance_ratio",
            meta.explained_variance_ratio.to_string(),
        ),
        ("tool_version", meta.tool_version.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Read and check a direction file.
pub fn load(path: &Path) -> Result<ConceptDirection> {
    let io = |message: String| DirectionError::Io {
        path: path.to_path_buf(),
        message,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| io(e.to_string()))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(DirectionError::Corrupt {
            path: path.to_path_buf(),
            message: format!("{len} bytes is far too big for a direction"),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| io(e.to_string()))?;
    parse(&bytes, path)
}

/// [`load`] from bytes already read; `path` names them in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<ConceptDirection> {
    let corrupt = |message: String| DirectionError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let file = Checked::parse(bytes, "direction").map_err(corrupt)?;
    let text = |key: &str| file.text(key).map_err(corrupt);
    let number = |key: &str| -> Result<usize> { file.number(key).map_err(corrupt) };
    let format = text("format")?;
    if format != FORMAT {
        return Err(corrupt(format!("format is {format:?}, not {FORMAT:?}")));
    }
    let version = text("format_version")?;
    if version != FORMAT_VERSION.to_string() {
        return Err(DirectionError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let pairing = match text("pairing")?.as_str() {
        "paired" => Pairing::Paired,
        "groups" => Pairing::Groups,
        other => return Err(corrupt(format!("pairing is {other:?}"))),
    };
    let layers = text("layers")?
        .split(',')
        .map(|l| l.trim().parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| corrupt("metadata \"layers\" is not a list of numbers".to_owned()))?;
    let ratio = text("explained_variance_ratio")?;
    let metadata = DirectionMetadata {
        name: text("name")?,
        model_identity: text("model_identity")?,
        model_name: text("model_name")?,
        n_layers: number("n_layers")?,
        width: number("width")?,
        positive_sha256: text("positive_sha256")?,
        negative_sha256: text("negative_sha256")?,
        positive_count: number("positive_count")?,
        negative_count: number("negative_count")?,
        pairing,
        layers,
        explained_variance_ratio: ratio
            .parse()
            .map_err(|_| corrupt(format!("explained_variance_ratio is {ratio:?}")))?,
        tool_version: text("tool_version")?,
    };
    let tensor = |name: &str, len: usize| file.f32s(name, &[len]).map_err(corrupt);
    let n = metadata
        .n_layers
        .checked_add(1)
        .ok_or_else(|| corrupt("n_layers".to_owned()))?;
    let vector = tensor("direction", metadata.width)?;
    let columns = [
        tensor("positive_mean", n)?,
        tensor("positive_std", n)?,
        tensor("negative_mean", n)?,
        tensor("negative_std", n)?,
    ];
    let poles = (0..n)
        .map(|i| PoleStats {
            positive_mean: columns[0][i],
            positive_std: columns[1][i],
            negative_mean: columns[2][i],
            negative_std: columns[3][i],
        })
        .collect();
    ConceptDirection::new(metadata, vector, poles).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::direction::tests::toy;

    #[test]
    fn a_direction_round_trips_and_garbage_is_refused() {
        let dir = std::env::temp_dir().join(format!("lc-direction-{}", std::process::id()));
        let path = dir.join("toy.safetensors");
        let direction = toy(4, 3);
        save(&direction, &path).unwrap();
        assert_eq!(load(&path).unwrap(), direction);
        let bytes = std::fs::read(&path).unwrap();
        save(&direction, &path).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the same direction, the same bytes"
        );
        for cut in [0, 7, 40, bytes.len() - 3] {
            let err = parse(&bytes[..cut], &path).unwrap_err();
            assert!(matches!(err, DirectionError::Corrupt { .. }), "{err}");
        }
        let err = parse(b"\x10\0\0\0\0\0\0\0{\"a\":1}        ", &path).unwrap_err();
        assert!(err.to_string().contains("not"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
