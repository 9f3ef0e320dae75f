//! Where maps are kept and how a model gets one: `$XDG_CACHE_HOME/latent-choir/maps/` (by
//! default `~/.cache/latent-choir/maps/`), one file per model and K, named
//! `<model sha256>-k<K>.safetensors`. [`ensure_map`] reuses a cached map when it is valid and
//! belongs to the model, and otherwise fits one and stores it.
//!
//! A cached map is *stale*, and refitted, when it was fitted on a different text under the
//! same corpus name — typically the embedded corpus of an older build. A map fitted on a
//! corpus of another name (`latent-choir fit-pca --corpus mine.txt` writes into the cache by
//! default) is a deliberate choice and is kept.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::DEFAULT_COMPONENTS;
use super::corpus::Corpus;
use super::error::{MapError, Result};
use super::file;
use super::fit::{self, FitProgress, FitStats};
use super::identity::{self, ModelIdentity};
use super::map::ProjectionMap;
use crate::llm::ModelInfo;
use crate::llm::loader::LoadedModel;

/// `$XDG_CACHE_HOME/latent-choir/maps`, by default `~/.cache/latent-choir/maps`.
pub fn maps_dir() -> Option<PathBuf> {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let cache = env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|h| h.join(".cache")))?;
    Some(cache.join("latent-choir/maps"))
}

/// `<sha256>-k<K>.safetensors`
pub fn map_file_name(model_sha256: &str, components: usize) -> String {
    format!("{model_sha256}-k{components}.safetensors")
}

/// A cache folder, the corpus to fit on when a map is missing, and K.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapCache {
    pub dir: PathBuf,
    pub corpus: Corpus,
    pub components: usize,
}

impl MapCache {
    /// The user's cache dir, the embedded corpus, K = 16: what the plugin and the CLI use.
    pub fn user() -> Result<Self> {
        Ok(Self {
            dir: maps_dir().ok_or(MapError::NoCacheDir)?,
            corpus: Corpus::embedded(),
            components: DEFAULT_COMPONENTS,
        })
    }

    /// Where this cache keeps the map of the model with weights hash `model_sha256`.
    pub fn path_for(&self, model_sha256: &str) -> PathBuf {
        self.dir.join(map_file_name(model_sha256, self.components))
    }
}

/// Where [`ensure_map`]'s map came from.
#[derive(Debug)]
pub enum MapOrigin {
    /// A valid cached map.
    Cached,
    /// Fitted just now; `replaced` says why a cached file was not used, if there was one.
    Fitted {
        replaced: Option<Box<MapError>>,
        stats: FitStats,
    },
}

#[derive(Debug)]
pub struct EnsuredMap {
    pub map: ProjectionMap,
    /// The cache file (where it was read or written).
    pub path: PathBuf,
    pub origin: MapOrigin,
    /// A fitted map that could not be stored is still returned (the fit was not wasted);
    /// this says why it was not stored.
    pub save_error: Option<MapError>,
}

/// The model's map from `cache`: the cached file if it is valid and belongs to the model,
/// else a fresh fit on the cache's corpus, stored for next time. `progress` sees the fit (see
/// [`fit::fit`]); it is not called when the cache answers.
pub fn ensure_map(
    loaded: &mut LoadedModel,
    cache: &MapCache,
    progress: &mut dyn FnMut(FitProgress) -> ControlFlow<()>,
) -> Result<EnsuredMap> {
    let entry = lookup(loaded, cache)?;
    let replaced = match entry.found {
        Found::Valid(map) => {
            return Ok(EnsuredMap {
                map,
                path: entry.path,
                origin: MapOrigin::Cached,
                save_error: None,
            });
        }
        Found::Missing => None,
        Found::Refused(reason) => Some(Box::new(reason)),
    };
    let (map, stats, save_error) =
        fit_and_store(loaded, cache, &entry.identity, &entry.path, progress)?;
    Ok(EnsuredMap {
        map,
        path: entry.path,
        origin: MapOrigin::Fitted { replaced, stats },
        save_error,
    })
}

/// What the cache holds for a model.
#[derive(Debug)]
pub enum Found {
    Valid(ProjectionMap),
    Missing,
    /// A file is there but cannot serve this model; why.
    Refused(MapError),
}

#[derive(Debug)]
pub struct CacheEntry {
    pub identity: ModelIdentity,
    /// Where the model's map is (or would be) kept.
    pub path: PathBuf,
    pub found: Found,
}

/// Look the model's map up in `cache` without fitting: the first half of [`ensure_map`], for
/// callers that report a refused file before the fit begins.
pub fn lookup(loaded: &LoadedModel, cache: &MapCache) -> Result<CacheEntry> {
    let identity = identity::identify(&loaded.path)?;
    let path = cache.path_for(&identity.sha256);
    let found = if path.exists() {
        match open_cached(&path, &identity, loaded.model.info(), cache) {
            Ok(map) => Found::Valid(map),
            Err(reason) => Found::Refused(reason),
        }
    } else {
        Found::Missing
    };
    Ok(CacheEntry {
        identity,
        path,
        found,
    })
}

/// Fit the model's map on `cache`'s corpus and store it at `path`: the second half of
/// [`ensure_map`]. A map that cannot be stored is returned all the same, with the reason.
pub fn fit_and_store(
    loaded: &mut LoadedModel,
    cache: &MapCache,
    identity: &ModelIdentity,
    path: &Path,
    progress: &mut dyn FnMut(FitProgress) -> ControlFlow<()>,
) -> Result<(ProjectionMap, FitStats, Option<MapError>)> {
    let (map, stats) = fit::fit(loaded, identity, &cache.corpus, cache.components, progress)?;
    let save_error = file::save(&map, path).err();
    Ok((map, stats, save_error))
}

/// A map file checked against the model: valid, the model's, and (see the
/// [module docs](self)) not stale for `cache`'s corpus and K.
pub fn open_cached(
    path: &Path,
    identity: &ModelIdentity,
    info: &ModelInfo,
    cache: &MapCache,
) -> Result<ProjectionMap> {
    let map = open_for_model(path, identity, info)?;
    let meta = map.metadata();
    if meta.components != cache.components {
        return Err(MapError::Corrupt {
            path: path.to_path_buf(),
            message: format!(
                "it holds {} components, its name says {}",
                meta.components, cache.components
            ),
        });
    }
    if meta.corpus_source == cache.corpus.source() && meta.corpus_sha256 != cache.corpus.sha256() {
        return Err(MapError::StaleCorpus {
            path: path.to_path_buf(),
            corpus: meta.corpus_source.clone(),
        });
    }
    Ok(map)
}

/// Load `path` and refuse it unless it belongs to the model (weights hash and shape).
pub fn open_for_model(
    path: &Path,
    identity: &ModelIdentity,
    info: &ModelInfo,
) -> Result<ProjectionMap> {
    let map = file::load(path)?;
    map.check_model(path, identity, info)?;
    Ok(map)
}
