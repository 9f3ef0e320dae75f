//! The map on disk: a safetensors file, so any tool (Python's `safetensors`, numpy) can read it.
//!
//! Tensors, all f32, for each hidden state `i` in `0..=n_layers`: `layer.{i}.mean` `[width]`,
//! `layer.{i}.components` `[K, width]`, `layer.{i}.explained_variance` `[K]`, `layer.{i}.lo`
//! and `layer.{i}.hi` `[K]`, and `layer.{i}.total_variance` `[1]` (for explained-variance
//! ratios).
//! The header's metadata (strings) says what the map is; see [`MapMetadata`] and the keys
//! below. Loading checks everything and returns [`MapError`], never panics, whatever the bytes.
//!
//! `layer.{i}.cloud` `[n, 2]` (optional, all states or none): the map's [`CorpusCloud`], a
//! sample of the corpus at its normalised (PC1, PC2). It too came without a new format
//! version: readers look tensors up by name, so an older reader ignores it, and a map
//! without it loads with no cloud.
//!
//! `positions` (`skip-first` or `every`, see [`super::fit`]) was added without a new format
//! version: the tensors did not change, and a map without the key was fitted on every position
//! — it still loads (as `every`), and the cache refits it ([`super::cache`]).

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::error::{MapError, Result};
use super::fit::positions_name;
use super::map::{CorpusCloud, LayerMap, MapMetadata, ProjectionMap};

/// `format` in the metadata: what kind of file this is.
pub const FORMAT: &str = "latent-choir-pca-map";
/// `format_version`; a reader refuses any other.
pub const FORMAT_VERSION: u32 = 1;

/// Write `map` to `path`. The bytes go to a temporary file beside it (`.NAME.PID.partial`),
/// synced, then renamed, so a crash never leaves half a map under the final name. Creates the
/// parent folder.
pub fn save(map: &ProjectionMap, path: &Path) -> Result<()> {
    let io = |message: String| MapError::Io {
        path: path.to_path_buf(),
        message,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io(e.to_string()))?;
    }
    let meta = map.metadata();
    let (k, width) = (meta.components, meta.width);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, layer) in map.layers().iter().enumerate() {
        let parts: [(&str, Vec<usize>, &[f32]); 6] = [
            ("mean", vec![width], &layer.mean),
            ("components", vec![k, width], &layer.components),
            ("explained_variance", vec![k], &layer.explained_variance),
            ("lo", vec![k], &layer.lo),
            ("hi", vec![k], &layer.hi),
            (
                "total_variance",
                vec![1],
                std::slice::from_ref(&layer.total_variance),
            ),
        ];
        for (name, shape, values) in parts {
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((format!("layer.{i}.{name}"), shape, bytes));
        }
        if let Some(cloud) = map.cloud(i) {
            let bytes = cloud
                .iter()
                .flatten()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            tensors.push((format!("layer.{i}.cloud"), vec![cloud.len(), 2], bytes));
        }
    }
    write_safetensors(&tensors, metadata_strings(meta), path).map_err(io)
}

/// `tensors` (name, shape, little-endian f32 bytes) and string `metadata` as a safetensors
/// file with a sorted header, written to a temporary file beside `path`
/// (`.NAME.PID.partial`), synced, then renamed, so a crash never leaves half a file under the
/// final name.
pub(crate) fn write_safetensors(
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    metadata: HashMap<String, String>,
    path: &Path,
) -> std::result::Result<(), String> {
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| e.to_string())
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())?;
    let bytes = sorted_header(bytes)?;
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let partial = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let written = std::fs::write(&partial, &bytes)
        .and_then(|()| std::fs::File::open(&partial)?.sync_all())
        .and_then(|()| std::fs::rename(&partial, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e.to_string());
    }
    Ok(())
}

/// A safetensors file of Latent Choir's (a map or a direction) opened for checking: its string
/// metadata and its tensors, every lookup an error message rather than a panic.
pub(crate) struct Checked<'a> {
    strings: HashMap<String, String>,
    tensors: SafeTensors<'a>,
}

impl<'a> Checked<'a> {
    /// `bytes` as a safetensors file with metadata; `what` names the expected content.
    pub(crate) fn parse(bytes: &'a [u8], what: &str) -> std::result::Result<Self, String> {
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a safetensors file ({e})"))?;
        let tensors =
            SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file ({e})"))?;
        let strings = header
            .metadata()
            .clone()
            .ok_or_else(|| format!("no metadata in the header (not a Latent Choir {what})"))?;
        Ok(Self { strings, tensors })
    }

    /// The shape of tensor `name`, `None` if the file has no such tensor.
    pub(crate) fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors
            .tensor(name)
            .ok()
            .map(|view| view.shape().to_vec())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.strings.get(key).map(String::as_str)
    }

    pub(crate) fn text(&self, key: &str) -> std::result::Result<String, String> {
        self.strings
            .get(key)
            .cloned()
            .ok_or_else(|| format!("metadata has no {key:?}"))
    }

    pub(crate) fn number(&self, key: &str) -> std::result::Result<usize, String> {
        let value = self.text(key)?;
        value
            .parse()
            .map_err(|_| format!("metadata {key:?} is {value:?}, not a number"))
    }

    /// Tensor `name`, which must be F32 of `shape`.
    pub(crate) fn f32s(
        &self,
        name: &str,
        shape: &[usize],
    ) -> std::result::Result<Vec<f32>, String> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| format!("tensor {name} is missing"))?;
        if view.dtype() != Dtype::F32 {
            return Err(format!("{name} is {:?}, not F32", view.dtype()));
        }
        if view.shape() != shape {
            return Err(format!(
                "{name} has shape {:?}, expected {shape:?}",
                view.shape()
            ));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

/// The same file with its JSON header's keys in sorted order. `safetensors` writes them in
/// `HashMap` order, which changes from run to run; sorted, the same fit gives the same bytes.
fn sorted_header(bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let broken = |what: &str| format!("safetensors wrote an unexpected file ({what})");
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| broken("no header length"))?;
    let len =
        usize::try_from(u64::from_le_bytes(len_bytes)).map_err(|_| broken("header length"))?;
    let header = bytes
        .get(8..8 + len)
        .ok_or_else(|| broken("short header"))?;
    // BTreeMaps print their keys sorted. Only the top level and `__metadata__` come from
    // HashMaps; each tensor's entry is written in a fixed order already.
    let mut top: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|_| broken("header is not JSON"))?;
    if let Some(metadata) = top.get_mut("__metadata__") {
        let sorted: std::collections::BTreeMap<String, String> =
            serde_json::from_value(metadata.take()).map_err(|_| broken("metadata"))?;
        *metadata = serde_json::to_value(sorted).map_err(|e| e.to_string())?;
    }
    let mut sorted = serde_json::to_string(&top)
        .map_err(|e| e.to_string())?
        .into_bytes();
    // Same padding rule as safetensors: spaces up to a multiple of 8.
    sorted.resize(sorted.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + sorted.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    out.extend_from_slice(&sorted);
    out.extend_from_slice(&bytes[8 + len..]);
    Ok(out)
}

fn metadata_strings(meta: &MapMetadata) -> HashMap<String, String> {
    [
        ("format", FORMAT.to_owned()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("model_identity", meta.model_identity.clone()),
        ("model_name", meta.model_name.clone()),
        ("n_layers", meta.n_layers.to_string()),
        ("width", meta.width.to_string()),
        ("components", meta.components.to_string()),
        ("corpus_source", meta.corpus_source.clone()),
        ("corpus_sha256", meta.corpus_sha256.clone()),
        ("corpus_lines", meta.corpus_lines.to_string()),
        ("tokens", meta.tokens.to_string()),
        ("positions", positions_name(meta.skip_first).to_owned()),
        ("tool_version", meta.tool_version.clone()),
        ("percentiles", "2,98".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Read and check a map file: format and version, every tensor's presence, type and shape,
/// finite values. Whether it fits a given model is [`ProjectionMap::check_model`]'s job.
pub fn load(path: &Path) -> Result<ProjectionMap> {
    let bytes = std::fs::read(path).map_err(|e| MapError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(&bytes, path)
}

/// [`load`] from bytes already read; `path` names them in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<ProjectionMap> {
    let corrupt = |message: String| MapError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let file = Checked::parse(bytes, "map").map_err(corrupt)?;
    let text = |key: &str| file.text(key).map_err(corrupt);
    let number = |key: &str| -> Result<usize> { file.number(key).map_err(corrupt) };
    let format = text("format")?;
    if format != FORMAT {
        return Err(corrupt(format!("format is {format:?}, not {FORMAT:?}")));
    }
    let version = text("format_version")?;
    if version != FORMAT_VERSION.to_string() {
        return Err(MapError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    // Absent in maps fitted before the choice existed: those kept every position.
    let skip_first = match file.get("positions") {
        None => false,
        Some(name) if name == positions_name(true) => true,
        Some(name) if name == positions_name(false) => false,
        Some(other) => {
            return Err(corrupt(format!(
                "metadata \"positions\" is {other:?}, not {:?} or {:?}",
                positions_name(true),
                positions_name(false)
            )));
        }
    };
    let metadata = MapMetadata {
        model_identity: text("model_identity")?,
        model_name: text("model_name")?,
        n_layers: number("n_layers")?,
        width: number("width")?,
        components: number("components")?,
        corpus_source: text("corpus_source")?,
        corpus_sha256: text("corpus_sha256")?,
        corpus_lines: number("corpus_lines")?,
        tokens: number("tokens")? as u64,
        skip_first,
        tool_version: text("tool_version")?,
    };
    let (k, width) = (metadata.components, metadata.width);
    // Layers are read until one is missing, so a huge n_layers in a garbled header costs
    // nothing before the error.
    let mut layers = Vec::new();
    for i in 0..=metadata.n_layers {
        let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            file.f32s(&format!("layer.{i}.{name}"), shape)
                .map_err(corrupt)
        };
        layers.push(LayerMap {
            mean: tensor("mean", &[width])?,
            components: tensor("components", &[k, width])?,
            explained_variance: tensor("explained_variance", &[k])?,
            total_variance: tensor("total_variance", &[1])?[0],
            lo: tensor("lo", &[k])?,
            hi: tensor("hi", &[k])?,
        });
    }
    let map = ProjectionMap::new(metadata, layers).map_err(|e| corrupt(e.0))?;
    match read_cloud(&file, map.n_states()).map_err(corrupt)? {
        Some(cloud) => map.with_cloud(cloud).map_err(|e| corrupt(e.0)),
        None => Ok(map),
    }
}

/// The `layer.{i}.cloud` tensors: `None` if the file has none (written before clouds); an
/// error if only some states have one or one is not `[n, 2]`.
fn read_cloud(file: &Checked, states: usize) -> std::result::Result<Option<CorpusCloud>, String> {
    let shapes: Vec<Option<Vec<usize>>> = (0..states)
        .map(|i| file.shape(&format!("layer.{i}.cloud")))
        .collect();
    if shapes.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut layers = Vec::with_capacity(states);
    for (i, shape) in shapes.into_iter().enumerate() {
        let name = format!("layer.{i}.cloud");
        let shape =
            shape.ok_or_else(|| format!("tensor {name} is missing (other states have a cloud)"))?;
        if shape.len() != 2 || shape[1] != 2 {
            return Err(format!("{name} has shape {shape:?}, expected [n, 2]"));
        }
        let values = file.f32s(&name, &shape)?;
        layers.push(values.chunks_exact(2).map(|p| [p[0], p[1]]).collect());
    }
    CorpusCloud::new(layers).map(Some).map_err(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::identity::ModelIdentity;
    use crate::llm::ModelInfo;

    /// Two layers (n_layers = 1), width 4, K = 2, orthonormal components, distinct values.
    fn sample_map() -> ProjectionMap {
        let metadata = MapMetadata {
            model_identity: "ab".repeat(32),
            model_name: "tiny".to_owned(),
            n_layers: 1,
            width: 4,
            components: 2,
            corpus_source: "test".to_owned(),
            corpus_sha256: "cd".repeat(32),
            corpus_lines: 3,
            tokens: 17,
            skip_first: true,
            tool_version: "9.9.9".to_owned(),
        };
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let layers = (0..2)
            .map(|i| LayerMap {
                mean: vec![i as f32, 0.5, -1.0, 2.0],
                components: vec![s, s, 0.0, 0.0, 0.0, 0.0, s, -s],
                explained_variance: vec![3.0 + i as f32, 1.0],
                total_variance: 4.5 + i as f32,
                lo: vec![-1.0, -0.5],
                hi: vec![1.0, 0.25],
            })
            .collect();
        ProjectionMap::new(metadata, layers).expect("valid")
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lc-map-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn a_map_round_trips_exactly() {
        let map = sample_map();
        let path = temp("round-trip/nested/map.safetensors");
        save(&map, &path).expect("save");
        let back = load(&path).expect("load");
        assert_eq!(back.metadata(), map.metadata());
        // Byte for byte the same when saved again (header keys in a fixed order).
        let first = std::fs::read(&path).unwrap();
        for _ in 0..3 {
            save(&back, &path).expect("save again");
            assert_eq!(std::fs::read(&path).unwrap(), first);
        }
        assert_eq!(back.layers(), map.layers());
        let hidden: Vec<f32> = (0..8).map(|i| i as f32 * 0.3).collect();
        assert_eq!(back.project(&hidden, 1), map.project(&hidden, 1));
        let identity = ModelIdentity {
            sha256: "ab".repeat(32),
            name: "tiny".to_owned(),
        };
        let info = ModelInfo {
            architecture: "x".to_owned(),
            n_layers: 1,
            width: 4,
            vocab_size: 1,
            context_length: 1,
            dtype: "f32".to_owned(),
        };
        assert!(back.check_model(&path, &identity, &info).is_ok());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn truncated_corrupt_and_foreign_files_are_errors_not_panics() {
        let path = temp("damaged.safetensors");
        save(&sample_map(), &path).expect("save");
        let bytes = std::fs::read(&path).unwrap();
        // Every truncation.
        for len in 0..bytes.len() {
            let result = parse(&bytes[..len], &path);
            assert!(
                matches!(result, Err(MapError::Corrupt { .. })),
                "truncated to {len}"
            );
        }
        // Every single-byte corruption: either refused or (in tensor data) still a valid map
        // — never a panic.
        let mut flips = 0;
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x5a;
            if parse(&damaged, &path).is_err() {
                flips += 1;
            }
        }
        assert!(
            flips > bytes.len() / 4,
            "only {flips} corruptions were noticed"
        );
        // Non-finite data.
        let mut nan = bytes.clone();
        let len = nan.len();
        nan[len - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
        let err = parse(&nan, &path).unwrap_err();
        assert!(matches!(err, MapError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("finite"), "{err}");
        // A safetensors file that is not a map (a model's weights).
        let weights = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tiny-llama/model.safetensors");
        let err = load(&weights).unwrap_err();
        assert!(matches!(err, MapError::Corrupt { .. }), "{err}");
        assert!(matches!(
            load(&temp("missing.safetensors")),
            Err(MapError::Io { .. })
        ));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn another_format_version_is_refused_by_name() {
        let map = sample_map();
        let path = temp("future.safetensors");
        save(&map, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
        // Same length, so the offsets stay valid.
        let changed = header.replace("\"format_version\":\"1\"", "\"format_version\":\"7\"");
        assert_ne!(changed, header);
        let mut future = bytes[..8].to_vec();
        future.extend_from_slice(changed.as_bytes());
        future.extend_from_slice(&bytes[8 + header_len..]);
        let err = parse(&future, &path).unwrap_err();
        assert!(matches!(err, MapError::UnsupportedVersion { .. }), "{err}");
        let _ = std::fs::remove_file(&path);
    }

    /// `bytes` with its JSON header rewritten by `change` (the length prefix follows).
    fn with_header(bytes: &[u8], change: impl Fn(&str) -> String) -> Vec<u8> {
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let mut header = change(std::str::from_utf8(&bytes[8..8 + header_len]).unwrap());
        while !header.len().is_multiple_of(8) {
            header.push(' ');
        }
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&bytes[8 + header_len..]);
        out
    }

    #[test]
    fn positions_round_trip_and_a_map_without_them_kept_every_position() {
        let path = temp("positions.safetensors");
        let skip = sample_map();
        let every = ProjectionMap::new(
            MapMetadata {
                skip_first: false,
                ..skip.metadata().clone()
            },
            skip.layers().to_vec(),
        )
        .unwrap();
        for (map, name) in [(&skip, "\"skip-first\""), (&every, "\"every\"")] {
            save(map, &path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
            assert!(
                header.contains(&format!("\"positions\":{name}")),
                "{header}"
            );
            assert_eq!(load(&path).unwrap().metadata(), map.metadata());
        }
        // A map written before the key existed: every position.
        save(&skip, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let old = with_header(&bytes, |h| h.replace("\"positions\":\"skip-first\",", ""));
        assert_ne!(old, bytes);
        let map = parse(&old, &path).expect("an old map still loads");
        assert!(!map.metadata().skip_first);
        // Anything else is refused.
        let odd = with_header(&bytes, |h| h.replace("\"skip-first\"", "\"skip-last\""));
        let err = parse(&odd, &path).unwrap_err();
        assert!(matches!(err, MapError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("skip-last"), "{err}");
        let _ = std::fs::remove_file(&path);
    }

    fn with_sample_cloud(map: ProjectionMap) -> ProjectionMap {
        let cloud = CorpusCloud::new(vec![
            vec![[0.5, -0.25], [-1.0, 1.0], [0.0, 0.125]],
            vec![[0.75, 0.5]],
        ])
        .unwrap();
        map.with_cloud(cloud).unwrap()
    }

    /// (name, shape, bytes) of each tensor of a file.
    type Tensors = Vec<(String, Vec<usize>, Vec<u8>)>;

    /// Every tensor of the map file at `path` and its metadata.
    fn tensors_of(path: &Path) -> (Tensors, HashMap<String, String>) {
        let bytes = std::fs::read(path).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let metadata = header.metadata().clone().unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors: Vec<_> = file
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().to_vec(), view.data().to_vec()))
            .collect();
        tensors.sort();
        (tensors, metadata)
    }

    #[test]
    fn the_corpus_cloud_round_trips_and_maps_without_one_still_load() {
        let path = temp("cloud.safetensors");
        let map = with_sample_cloud(sample_map());
        save(&map, &path).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.cloud(0), map.cloud(0));
        assert_eq!(back.cloud(1), Some(&[[0.75f32, 0.5]][..]));
        assert_eq!(back.cloud(2), None, "past the last state");
        assert_eq!(back.layers(), map.layers());
        let (with_cloud, _) = tensors_of(&path);

        // A map without a cloud (what every earlier version wrote) loads, without one.
        let old = temp("no-cloud.safetensors");
        save(&sample_map(), &old).unwrap();
        let plain = load(&old).expect("a map without a cloud loads");
        assert!(plain.cloud(0).is_none() && plain.corpus_cloud().is_none());
        assert_eq!(plain.layers(), map.layers());
        // The other way: the file with a cloud holds every tensor of the old one unchanged,
        // and readers look tensors up by name, so an older reader gets the same map.
        let (without, _) = tensors_of(&old);
        for tensor in &without {
            assert!(with_cloud.contains(tensor), "{} changed", tensor.0);
        }
        assert_eq!(with_cloud.len(), without.len() + 2);

        // Only some states with a cloud, or a cloud of the wrong shape: corrupt.
        let (tensors, metadata) = tensors_of(&path);
        let partial: Vec<_> = tensors
            .iter()
            .filter(|t| t.0 != "layer.1.cloud")
            .cloned()
            .collect();
        write_safetensors(&partial, metadata.clone(), &path).unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("layer.1.cloud"), "{err}");
        let mut odd = tensors.clone();
        for t in &mut odd {
            if t.0 == "layer.0.cloud" {
                t.1 = vec![2, 3];
            }
        }
        write_safetensors(&odd, metadata.clone(), &path).unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("[n, 2]"), "{err}");
        // Out of range: not a normalised coordinate.
        let mut far = tensors;
        for t in &mut far {
            if t.0 == "layer.1.cloud" {
                t.2 = [3.0f32, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
            }
        }
        write_safetensors(&far, metadata, &path).unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, MapError::Corrupt { .. }), "{err}");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&old);
    }
}
