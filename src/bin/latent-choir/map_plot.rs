//! `latent-choir map-plot`: a picture of a model's activation space — the reference corpus
//! in one hidden state's plane (the PCA map's PC1/PC2, or a seeded t-SNE / UMAP), the
//! prompt's tokens as a labelled path through it; `--layer all` draws one small panel per
//! state. PNG or SVG by the file's extension. The drawing is `latent_choir::io::map_plot`.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use latent_choir::activation::embedding::Embedding;
use latent_choir::activation::{Corpus, identify};
use latent_choir::io::figure::{self, Format};
use latent_choir::io::map_plot::{self, PlotRequest};
use latent_choir::io::output_file::PendingFile;
use latent_choir::llm::discovery;
use latent_choir::llm::loader;

/// `--layer`: one hidden state, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerChoice {
    One(usize),
    All,
}

impl FromStr for LayerChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(LayerChoice::All);
        }
        s.parse().map(LayerChoice::One).map_err(|_| {
            format!("{s:?} is not a layer: give a hidden state's number (0 is the embedding output) or `all`")
        })
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file or a Hugging Face folder; the default model if omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The text whose tokens are drawn as a path (run on its own, without a chat template,
    /// as the corpus lines are).
    #[arg(long, default_value = "The choir sang softly in the old stone church.")]
    prompt: String,
    /// The hidden state to draw (0 the embedding output … n_layers the final norm), or `all`
    /// for one small panel per state. Default: the middle state.
    #[arg(long)]
    layer: Option<LayerChoice>,
    /// pca (the map's PC1/PC2), tsne or umap (of the corpus and prompt tokens' 16 PCA
    /// coordinates in that state).
    #[arg(long, default_value = "pca")]
    embedding: Embedding,
    /// Seed of t-SNE's and UMAP's random start: the same seed draws the same picture.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Corpus lines to run, spread over the corpus. Default: none for PCA when the map keeps
    /// its corpus cloud (it is drawn as stored), else 60.
    #[arg(long)]
    lines: Option<usize>,
    /// The picture: X.png or X.svg.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<(), String> {
    // Everything a user can get wrong is checked before the model loads.
    let format = Format::of(&args.out)?;
    if args.prompt.trim().is_empty() {
        return Err("the prompt is empty: give --prompt the text whose path to draw".to_owned());
    }
    if args.lines == Some(0) {
        return Err("--lines 0 leaves no corpus to draw".to_owned());
    }
    let pending = PendingFile::new(&args.out).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let path = discovery::resolve(args.model.as_deref()).map_err(|e| {
        format!("{e}. Run `cargo xtask fetch-model` for the default model, or pass --model PATH")
    })?;
    let mut loaded = loader::load(&path).map_err(|e| e.to_string())?;
    let n_states = loaded.model.info().n_layers + 1;
    let states = match args.layer.unwrap_or(LayerChoice::One(n_states / 2)) {
        LayerChoice::All => (0..n_states).collect(),
        LayerChoice::One(state) if state < n_states => vec![state],
        LayerChoice::One(state) => {
            return Err(format!(
                "layer {state} is out of range: this model has hidden states 0..={} (0 the \
                 embedding output, {} the final norm), or `all`",
                n_states - 1,
                n_states - 1
            ));
        }
    };
    let load_time = start.elapsed();
    let map_start = Instant::now();
    let map = crate::generate::projection_map(&mut loaded, None)?;
    let map_time = map_start.elapsed();
    let request = PlotRequest {
        prompt: args.prompt,
        states,
        embedding: args.embedding,
        seed: args.seed,
        lines: args.lines,
        model_name: identify(&loaded.path)
            .map(|i| i.name)
            .unwrap_or_else(|_| path.display().to_string()),
    };
    let (plot, stats) = map_plot::compose(&mut loaded, &map, &Corpus::embedded(), &request)?;
    let draw_start = Instant::now();
    let bytes = figure::encode(&map_plot::figure(&plot), format)?;
    std::fs::write(pending.temp(), &bytes)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    let written = pending.commit().map_err(|e| e.to_string())?;
    let draw_time = draw_start.elapsed();

    let corpus = if stats.from_cloud {
        format!("{} tokens from the map's corpus cloud", stats.corpus_tokens)
    } else {
        format!(
            "{} tokens of {} lines per panel",
            stats.corpus_tokens, stats.corpus_lines
        )
    };
    println!(
        "picture      {} ({} panel(s), {}, {corpus}, prompt {} tokens)",
        written.display(),
        plot.panels.len(),
        request.embedding,
        stats.prompt_tokens
    );
    println!(
        "time         {:.1} s: model load {:.1} s, map {:.1} s, model runs {:.1} s, {} {:.1} s, drawing {:.1} s",
        start.elapsed().as_secs_f64(),
        load_time.as_secs_f64(),
        map_time.as_secs_f64(),
        stats.model_time.as_secs_f64(),
        request.embedding,
        stats.embed_time.as_secs_f64(),
        draw_time.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_parse() {
        assert_eq!("all".parse(), Ok(LayerChoice::All));
        assert_eq!("12".parse(), Ok(LayerChoice::One(12)));
        assert!("-1".parse::<LayerChoice>().unwrap_err().contains("`all`"));
    }
}
