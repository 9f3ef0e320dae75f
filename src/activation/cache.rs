//! Where maps are kept and how a model gets one: `$XDG_CACHE_HOME/latent-choir/maps/` (by
//! default `~/.cache/latent-choir/maps/`), one file per model and K, named
//! `<model sha256>-k<K>.safetensors`. [`ensure_map`] reuses a cached map when it is valid and
//! belongs to the model, and otherwise fits one and stores it.
//!
//! A cached map is *stale*, and refitted, when it was fitted on a different text under the
//! same corpus name — typically the embedded corpus of an older build — or on other positions
//! than the cache's [`MapCache::skip_first`] (a map from before the attention sink was left out
//! of fits, or one fitted with `fit-pca --keep-first`; see [`super::fit`]). A map fitted on a
//! corpus of another name (`latent-choir fit-pca --corpus mine.txt` writes into the cache by
//! default) is a deliberate choice and is kept.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::corpus::Corpus;
use super::error::{MapError, Result};
use super::file;
use super::fit::{self, FitOptions, FitProgress, FitStats};
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

/// A cache folder, the corpus to fit on when a map is missing, K, and which positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapCache {
    pub dir: PathBuf,
    pub corpus: Corpus,
    pub components: usize,
    /// Fit without each line's first position ([`FitOptions::skip_first`]); a cached map
    /// fitted otherwise is refitted.
    pub skip_first: bool,
}

impl MapCache {
    /// The user's cache dir, the embedded corpus, K = 16, first positions skipped: what the
    /// plugin and the CLI use.
    pub fn user() -> Result<Self> {
        let FitOptions {
            components,
            skip_first,
            ..
        } = FitOptions::default();
        Ok(Self {
            dir: maps_dir().ok_or(MapError::NoCacheDir)?,
            corpus: Corpus::embedded(),
            components,
            skip_first,
        })
    }

    /// How this cache fits a missing map.
    pub fn fit_options(&self) -> FitOptions {
        FitOptions {
            components: self.components,
            skip_first: self.skip_first,
            ..FitOptions::default()
        }
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
    let (map, stats) = fit::fit(
        loaded,
        identity,
        &cache.corpus,
        cache.fit_options(),
        progress,
    )?;
    let save_error = file::save(&map, path).err();
    Ok((map, stats, save_error))
}

/// A map file checked against the model: valid, the model's, and (see the
/// [module docs](self)) not stale for `cache`'s corpus, K and positions.
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
    if meta.skip_first != cache.skip_first {
        return Err(MapError::OtherPositions {
            path: path.to_path_buf(),
            map_skip_first: meta.skip_first,
            wanted_skip_first: cache.skip_first,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::map::{LayerMap, MapMetadata};

    fn map(skip_first: bool, corpus: &Corpus) -> ProjectionMap {
        let metadata = MapMetadata {
            model_identity: "ab".repeat(32),
            model_name: "tiny".to_owned(),
            n_layers: 0,
            width: 2,
            components: 1,
            corpus_source: corpus.source().to_owned(),
            corpus_sha256: corpus.sha256(),
            corpus_lines: 1,
            tokens: 3,
            skip_first,
            tool_version: "0".to_owned(),
        };
        let layer = LayerMap {
            mean: vec![0.0, 0.0],
            components: vec![1.0, 0.0],
            explained_variance: vec![1.0],
            total_variance: 1.0,
            lo: vec![-1.0],
            hi: vec![1.0],
        };
        ProjectionMap::new(metadata, vec![layer]).unwrap()
    }

    #[test]
    fn a_map_fitted_on_other_positions_is_refused() {
        let dir = std::env::temp_dir().join(format!("lc-cache-{}", std::process::id()));
        let corpus = Corpus::from_text("One two three.\n", "test");
        let identity = ModelIdentity {
            sha256: "ab".repeat(32),
            name: "tiny".to_owned(),
        };
        let info = ModelInfo {
            architecture: "x".to_owned(),
            n_layers: 0,
            width: 2,
            vocab_size: 1,
            context_length: 1,
            dtype: "f32".to_owned(),
        };
        let mut cache = MapCache {
            dir: dir.clone(),
            corpus: corpus.clone(),
            components: 1,
            skip_first: true,
        };
        let path = cache.path_for(&identity.sha256);
        file::save(&map(false, &corpus), &path).unwrap();
        let err = open_cached(&path, &identity, &info, &cache).unwrap_err();
        assert!(matches!(err, MapError::OtherPositions { .. }), "{err}");
        assert!(err.to_string().contains("every position"), "{err}");
        assert!(err.to_string().contains("attention sink"), "{err}");
        cache.skip_first = false;
        assert!(open_cached(&path, &identity, &info, &cache).is_ok());

        file::save(&map(true, &corpus), &path).unwrap();
        assert!(matches!(
            open_cached(&path, &identity, &info, &cache),
            Err(MapError::OtherPositions { .. })
        ));
        cache.skip_first = true;
        assert!(open_cached(&path, &identity, &info, &cache).is_ok());
        assert_eq!(
            cache.fit_options(),
            FitOptions {
                components: 1,
                skip_first: true,
                token_budget: Some(fit::DEFAULT_TOKEN_BUDGET),
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_user_cache_skips_first_positions() {
        // HOME is set in any test environment; the cache dir is not touched.
        if let Ok(cache) = MapCache::user() {
            assert!(cache.skip_first);
            assert_eq!(cache.fit_options(), FitOptions::default());
            assert!(FitOptions::default().skip_first);
        }
    }
}
