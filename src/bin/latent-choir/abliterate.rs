//! `latent-choir abliterate`: a copy of a model with a concept direction projected out of every
//! weight that writes into the residual stream (Arditi et al. 2024; see
//! [`latent_choir::llm::abliterate`]). The direction is the model's own, fitted on first use
//! like `render --direction`, so `delta` can then play the original against the copy.

use std::path::{Path, PathBuf};

use latent_choir::activation::direction::ConceptDirection;
use latent_choir::activation::direction::cache::{
    DirectionCache, DirectionChoice, DirectionOrigin, ensure_direction,
};
use latent_choir::llm::loader::{self, LoadedModel};
use latent_choir::llm::{abliterate, discovery};

use crate::fit_pca::ProgressLine;

#[derive(clap::Args)]
pub struct Args {
    /// The direction to remove: refusal, doubt, grief (fitted for the model on first use, then
    /// cached) or a file from `fit-direction`.
    #[arg(long)]
    direction: String,
    /// A GGUF file or a Hugging Face folder; the default model if omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The Hugging Face folder to write: new, empty, or an earlier output (then replaced).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<(), String> {
    let choice = DirectionChoice::parse(&args.direction);
    if choice == DirectionChoice::Off {
        return Err("--direction: give the direction to remove (refusal, doubt, grief or a file from `fit-direction`)".to_owned());
    }
    let mut loaded = load_model(args.model.as_deref())?;
    let direction = model_direction(&mut loaded, &choice)?;
    let model_path = loaded.path.clone();
    // The weights are read again from the file; the loaded copy is not needed meanwhile.
    drop(loaded);
    eprintln!(
        "projecting the {} direction out of {}",
        direction.name(),
        model_path.display()
    );
    let report = abliterate::abliterate(&model_path, direction.vector(), &args.out)
        .map_err(|e| e.to_string())?;
    println!(
        "changed      {} tensors ({} source): {}",
        report.tensors_changed.len(),
        report.source_format,
        kinds(&report.tensors_changed)
    );
    println!(
        "embeddings   {}",
        if report.tied_embeddings {
            "tied: the LM head is the projected embedding, so the logits' readout changed too"
        } else {
            "untied: the LM head is as it was"
        }
    );
    println!("model        {}", report.out_dir.display());
    Ok(())
}

/// Tensor names counted by kind, the block number left out (`mlp.down_proj.weight ×30`), in
/// order of first appearance: a model's changes in one line.
fn kinds(names: &[String]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for name in names {
        let kind = block_local(name);
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    counts
        .iter()
        .map(|&(kind, n)| match n {
            1 => kind.to_owned(),
            _ => format!("{kind} ×{n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `model.layers.12.mlp.down_proj.weight` → `mlp.down_proj.weight`: what follows the first
/// all-digit part (the block number); names without one as they are.
fn block_local(name: &str) -> &str {
    let mut offset = 0;
    for part in name.split('.') {
        offset += part.len() + 1;
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            return name.get(offset..).unwrap_or(name);
        }
    }
    name
}

/// The model at `path` (the default model if `None`), with a message that says how to get one.
pub fn load_model(path: Option<&Path>) -> Result<LoadedModel, String> {
    let path = discovery::resolve(path).map_err(|e| {
        format!("{e}. Run `cargo xtask fetch-model` for the default model, or pass --model PATH")
    })?;
    loader::load(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The model's direction for `choice` (not [`DirectionChoice::Off`]): from the user's cache,
/// fitted there on first use, or a user's file checked against the model; says which on stderr.
pub fn model_direction(
    loaded: &mut LoadedModel,
    choice: &DirectionChoice,
) -> Result<ConceptDirection, String> {
    let cache = DirectionCache::user().map_err(|e| e.to_string())?;
    let mut progress = ProgressLine::new("fitting the direction");
    let ensured = ensure_direction(loaded, &cache, choice, &mut |p| progress.show(p))
        .map_err(|e| e.to_string())?
        .ok_or("no direction was chosen")?;
    progress.finish();
    let how = match ensured.origin {
        DirectionOrigin::Cached => "cached",
        DirectionOrigin::Fitted { .. } => "fitted now",
        DirectionOrigin::File => "your file",
    };
    eprintln!(
        "direction {} ({how}): {}",
        ensured.direction.name(),
        ensured.path.display()
    );
    if let Some(error) = ensured.save_error {
        eprintln!("warning: the fitted direction could not be cached: {error}");
    }
    Ok(ensured.direction)
}
