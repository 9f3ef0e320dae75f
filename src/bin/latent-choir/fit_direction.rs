//! `latent-choir fit-direction`: fit a concept direction from two prompt files (or a shipped
//! set) and store it where the plugin and `render --direction FILE` find it. See
//! [`latent_choir::activation::direction`].

use std::path::PathBuf;

use latent_choir::activation::direction::cache::{self, DirectionCache};
use latent_choir::activation::direction::fit::fit;
use latent_choir::activation::direction::{ConceptDirection, PromptPair, PromptSet, file, prompts};
use latent_choir::llm::{discovery, loader};

use crate::fit_pca::ProgressLine;

#[derive(clap::Args)]
pub struct Args {
    /// Prompts of the positive (tense) pole, one per line; paired line by line with
    /// --negative when both have as many lines, else taken as two groups.
    #[arg(long, requires = "negative", conflicts_with = "set")]
    positive: Option<PathBuf>,
    /// Prompts of the negative (calm) pole, one per line.
    #[arg(long, requires = "positive")]
    negative: Option<PathBuf>,
    /// A shipped set instead of files: refusal, doubt or grief.
    #[arg(long)]
    set: Option<String>,
    /// The direction's name (default: the shipped set's, or the positive file's stem).
    #[arg(long)]
    name: Option<String>,
    /// A GGUF file or a Hugging Face folder; the default model if omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where to write it. Default: the user's direction cache
    /// ($XDG_CACHE_HOME/latent-choir/directions/<model sha256>-<name>.safetensors).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the direction already at the output if it is this model's and was fitted on these
    /// prompts (`cargo xtask fetch-model` uses this).
    #[arg(long)]
    reuse: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    let mut pair = match (&args.positive, &args.negative, &args.set) {
        (Some(positive), Some(negative), _) => {
            let name = positive.file_stem().map_or_else(
                || "direction".to_owned(),
                |s| s.to_string_lossy().into_owned(),
            );
            PromptPair {
                name,
                positive: PromptSet::from_file(positive).map_err(|e| e.to_string())?,
                negative: PromptSet::from_file(negative).map_err(|e| e.to_string())?,
            }
        }
        (_, _, Some(set)) => prompts::shipped(set).map_err(|e| e.to_string())?,
        _ => return Err("give --positive FILE --negative FILE, or --set NAME".to_owned()),
    };
    if let Some(name) = &args.name {
        pair.name = name.clone();
    }
    let path = discovery::resolve(args.model.as_deref()).map_err(|e| {
        format!("{e}. Run `cargo xtask fetch-model` for the default model, or pass --model PATH")
    })?;
    let mut loaded = loader::load(&path).map_err(|e| e.to_string())?;
    let identity = latent_choir::activation::identify(&path).map_err(|e| e.to_string())?;
    let out = match args.out {
        Some(out) => out,
        None => DirectionCache::user()
            .map_err(|e| format!("{e}; pass --out FILE"))?
            .path_for(&identity.sha256, &pair.name),
    };
    if args.reuse && out.exists() {
        match cache::open_cached(&out, &identity, &loaded, &pair) {
            Ok(_) => {
                println!(
                    "direction    {} (kept: this model's, fitted on these prompts)",
                    out.display()
                );
                return Ok(());
            }
            Err(reason) => eprintln!("{reason}; fitting again"),
        }
    }
    eprintln!(
        "fitting the {} direction of {} from {} positive and {} negative prompts ({})",
        pair.name,
        identity.name,
        pair.positive.len(),
        pair.negative.len(),
        if pair.is_paired() {
            "paired by line"
        } else {
            "as two groups"
        }
    );
    let mut progress = ProgressLine::new("fitting the direction");
    let (direction, stats) =
        fit(&mut loaded, &identity, &pair, &mut |p| progress.show(p)).map_err(|e| e.to_string())?;
    file::save(&direction, &out).map_err(|e| e.to_string())?;
    summarise(&direction);
    println!(
        "time         {:.2} s ({:.2} s in the model, {} prompts, {} positions{})",
        stats.elapsed.as_secs_f64(),
        stats.model_time.as_secs_f64(),
        stats.prompts,
        stats.tokens,
        if stats.truncated > 0 {
            format!(", {} cut to the context", stats.truncated)
        } else {
            String::new()
        }
    );
    println!("direction    {}", out.display());
    Ok(())
}

/// The fit in a few lines: what was pooled, how much of it r̂ holds, how far apart the poles
/// sit at the pooled states (in pooled standard deviations).
fn summarise(direction: &ConceptDirection) {
    let meta = direction.metadata();
    let layers = &meta.layers;
    println!("name         {}", meta.name);
    println!("model        {}", meta.model_name);
    println!(
        "states       {}..={} of {} (the final half), {}",
        layers.first().copied().unwrap_or(0),
        layers.last().copied().unwrap_or(0),
        meta.n_layers + 1,
        meta.pairing.name()
    );
    println!(
        "explained    {:.3} of the differences' variance",
        meta.explained_variance_ratio
    );
    let separation: Vec<String> = layers
        .iter()
        .filter_map(|&l| direction.poles().get(l).map(|p| (l, p)))
        .map(|(l, p)| {
            let spread = ((p.positive_std.powi(2) + p.negative_std.powi(2)) / 2.0).sqrt();
            let d = (p.positive_mean - p.negative_mean) / spread.max(1e-12);
            format!("{l}:{d:.2}")
        })
        .collect();
    println!("separation   {} (state:d′)", separation.join(" "));
}
