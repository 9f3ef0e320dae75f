//! Where directions are kept and how a model gets one: `$XDG_CACHE_HOME/latent-choir/directions/`
//! (beside the maps), one file per model and shipped set, `<model sha256>-<name>.safetensors`.
//! A cached direction is refitted when its prompts differ from the set's now (a newer build's
//! prompts) or it belongs to another model; a user's file is used as it is, if it is the
//! model's.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::error::{DirectionError, Result};
use super::fit::{self, DirectionFitStats};
use super::prompts::{self, PromptPair, SHIPPED_NAMES};
use super::{ConceptDirection, file};
use crate::activation::FitProgress;
use crate::activation::identity::{self, ModelIdentity};
use crate::llm::loader::LoadedModel;

/// Which direction drives the tension: none, a shipped set, or a user's file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DirectionChoice {
    #[default]
    Off,
    /// One of [`SHIPPED_NAMES`], fitted for the model on first use.
    Shipped(String),
    /// A direction file from `latent-choir fit-direction`.
    File(PathBuf),
}

impl DirectionChoice {
    /// As typed: empty or `none`/`off` is off, a shipped name is that set, anything else a
    /// file path.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("off")
        {
            return Self::Off;
        }
        match SHIPPED_NAMES.iter().find(|n| n.eq_ignore_ascii_case(text)) {
            Some(name) => Self::Shipped((*name).to_owned()),
            None => Self::File(PathBuf::from(text)),
        }
    }

    /// The text [`DirectionChoice::parse`] reads back.
    pub fn text(&self) -> String {
        match self {
            Self::Off => "none".to_owned(),
            Self::Shipped(name) => name.clone(),
            Self::File(path) => path.display().to_string(),
        }
    }
}

/// `$XDG_CACHE_HOME/latent-choir/directions`, by default `~/.cache/latent-choir/directions`.
pub fn directions_dir() -> Option<PathBuf> {
    crate::activation::cache::maps_dir()
        .and_then(|maps| maps.parent().map(|p| p.join("directions")))
}

/// A folder of cached directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectionCache {
    pub dir: PathBuf,
}

impl DirectionCache {
    pub fn user() -> Result<Self> {
        Ok(Self {
            dir: directions_dir().ok_or(DirectionError::NoCacheDir)?,
        })
    }

    pub fn path_for(&self, model_sha256: &str, name: &str) -> PathBuf {
        self.dir.join(format!("{model_sha256}-{name}.safetensors"))
    }
}

/// Where [`ensure_direction`]'s direction came from.
#[derive(Debug)]
pub enum DirectionOrigin {
    Cached,
    /// Fitted now; `replaced` says why a cached file was not used.
    Fitted {
        replaced: Option<Box<DirectionError>>,
        stats: DirectionFitStats,
    },
    /// The user's file.
    File,
}

#[derive(Debug)]
pub struct EnsuredDirection {
    pub direction: ConceptDirection,
    pub path: PathBuf,
    pub origin: DirectionOrigin,
    /// A fitted direction that could not be stored is still used; this says why.
    pub save_error: Option<DirectionError>,
}

/// The model's direction for `choice` (`None` for [`DirectionChoice::Off`]): a user's file
/// checked against the model; a shipped set from the cache, or fitted and stored.
pub fn ensure_direction(
    loaded: &mut LoadedModel,
    cache: &DirectionCache,
    choice: &DirectionChoice,
    progress: &mut dyn FnMut(FitProgress) -> ControlFlow<()>,
) -> Result<Option<EnsuredDirection>> {
    let name = match choice {
        DirectionChoice::Off => return Ok(None),
        DirectionChoice::File(path) => {
            let identity = identity::identify(&loaded.path)?;
            let direction = open_for_model(path, &identity, loaded)?;
            return Ok(Some(EnsuredDirection {
                direction,
                path: path.clone(),
                origin: DirectionOrigin::File,
                save_error: None,
            }));
        }
        DirectionChoice::Shipped(name) => name,
    };
    let pair = prompts::shipped(name)?;
    let identity = identity::identify(&loaded.path)?;
    let path = cache.path_for(&identity.sha256, &pair.name);
    let replaced = if path.exists() {
        match open_cached(&path, &identity, loaded, &pair) {
            Ok(direction) => {
                return Ok(Some(EnsuredDirection {
                    direction,
                    path,
                    origin: DirectionOrigin::Cached,
                    save_error: None,
                }));
            }
            Err(reason) => Some(Box::new(reason)),
        }
    } else {
        None
    };
    let (direction, stats) = fit::fit(loaded, &identity, &pair, progress)?;
    let save_error = file::save(&direction, &path).err();
    Ok(Some(EnsuredDirection {
        direction,
        path,
        origin: DirectionOrigin::Fitted { replaced, stats },
        save_error,
    }))
}

/// A cached direction, refused unless it is the model's and fitted on `pair` as it is now.
pub fn open_cached(
    path: &Path,
    identity: &ModelIdentity,
    loaded: &LoadedModel,
    pair: &PromptPair,
) -> Result<ConceptDirection> {
    let direction = open_for_model(path, identity, loaded)?;
    let meta = direction.metadata();
    if meta.positive_sha256 != pair.positive.sha256()
        || meta.negative_sha256 != pair.negative.sha256()
    {
        return Err(DirectionError::Corrupt {
            path: path.to_path_buf(),
            message: format!("it was fitted on other {} prompts", pair.name),
        });
    }
    Ok(direction)
}

/// Load `path` and refuse it unless it belongs to the model (weights hash and shape).
pub fn open_for_model(
    path: &Path,
    identity: &ModelIdentity,
    loaded: &LoadedModel,
) -> Result<ConceptDirection> {
    let direction = file::load(path)?;
    let meta = direction.metadata();
    let info = loaded.model.info();
    if meta.model_identity != identity.sha256
        || (meta.n_layers, meta.width) != (info.n_layers, info.width)
    {
        return Err(DirectionError::WrongModel {
            path: path.to_path_buf(),
            file_model: meta.model_name.clone(),
            model: identity.name.clone(),
        });
    }
    Ok(direction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_reads_back_from_its_text() {
        assert_eq!(DirectionChoice::parse(""), DirectionChoice::Off);
        assert_eq!(DirectionChoice::parse(" None "), DirectionChoice::Off);
        assert_eq!(
            DirectionChoice::parse("Refusal"),
            DirectionChoice::Shipped("refusal".to_owned())
        );
        let file = DirectionChoice::parse("/tmp/mine.safetensors");
        assert_eq!(file, DirectionChoice::File("/tmp/mine.safetensors".into()));
        for choice in [
            DirectionChoice::Off,
            DirectionChoice::Shipped("grief".into()),
            file,
        ] {
            assert_eq!(DirectionChoice::parse(&choice.text()), choice);
        }
    }
}
