//! `latent-choir fit-pca`: fit a model's per-layer PCA map on a corpus and store it where the
//! plugin and `generate` find it (or anywhere, with `--out`). Each line's first position (the
//! attention sink) is left out of the fit unless `--keep-first`; see
//! [`latent_choir::activation::fit`].

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use latent_choir::activation::cache::{self, MapCache};
use latent_choir::activation::fit::DEFAULT_TOKEN_BUDGET;
use latent_choir::activation::{
    Corpus, DEFAULT_COMPONENTS, FitOptions, FitProgress, ProjectionMap, compare, file, fit,
};
use latent_choir::llm::{discovery, loader};

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file or a Hugging Face folder; the default model if omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    /// A text file, one sentence per line; the reference corpus built into the program if
    /// omitted.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Principal components per layer.
    #[arg(long, default_value_t = DEFAULT_COMPONENTS)]
    components: usize,
    /// Where to write the map. Default: the user's map cache
    /// ($XDG_CACHE_HOME/latent-choir/maps/<model sha256>-k<K>.safetensors), where the plugin
    /// and `generate` look for it — also when it was fitted on another corpus.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the map already at the output if it is valid, belongs to this model and was fitted
    /// with this K and these positions on the current text of this corpus, and keeps a sample
    /// of it for pictures (`cargo xtask fetch-model` uses this).
    #[arg(long)]
    reuse: bool,
    /// Fit on every position, each line's first included: the literal procedure, for
    /// comparison with other tools. By default the first position is left out: it is an
    /// attention sink whose hidden states are orders of magnitude larger than the others in
    /// the middle layers (SmolLM2-135M, block 12: norm ~22,700 against ~150), so PC1 of most
    /// layers would only tell first tokens from the rest, and generated tokens (never first)
    /// would all sit at one end of it. The plugin and `generate` refit a cached map fitted
    /// with this option.
    #[arg(long)]
    keep_first: bool,
    /// Print the explained-variance ratios of every layer, not only the first, middle and last.
    #[arg(long)]
    all_layers: bool,
    /// Fit on evenly spaced corpus lines holding about this many tokens (the default keeps
    /// the first fit of the default model under half a minute).
    #[arg(long, default_value_t = DEFAULT_TOKEN_BUDGET, conflicts_with = "all_lines")]
    tokens: usize,
    /// Fit on every corpus line, however many tokens they hold.
    #[arg(long)]
    all_lines: bool,
    /// Another map of the same model: print how far this fit's subspaces agree with it
    /// (mean cos² of the principal angles of the first 4 and of all components, |cos| of
    /// PC1s), e.g. a fit on fewer lines against one on all.
    #[arg(long)]
    compare: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), String> {
    let path = discovery::resolve(args.model.as_deref()).map_err(|e| {
        format!("{e}. Run `cargo xtask fetch-model` for the default model, or pass --model PATH")
    })?;
    let corpus = match &args.corpus {
        Some(file) => Corpus::from_file(file).map_err(|e| e.to_string())?,
        None => Corpus::embedded(),
    };
    let start = Instant::now();
    let mut loaded = loader::load(&path).map_err(|e| e.to_string())?;
    let info = loaded.model.info().clone();
    let identity = latent_choir::activation::identify(&path).map_err(|e| e.to_string())?;
    let options = FitOptions {
        components: args.components,
        skip_first: !args.keep_first,
        token_budget: (!args.all_lines).then_some(args.tokens),
    };
    // Read before the fit, so a bad path fails in a second, not after it.
    let compare = match &args.compare {
        Some(path) => Some(file::load(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => None,
    };
    let cache = MapCache {
        dir: cache::maps_dir().unwrap_or_default(),
        corpus: corpus.clone(),
        components: options.components,
        skip_first: options.skip_first,
    };
    let into_cache = args.out.is_none();
    let out = match args.out {
        Some(out) => out,
        None => {
            if cache.dir.as_os_str().is_empty() {
                return Err(
                    "no cache directory (neither XDG_CACHE_HOME nor HOME is set); pass --out FILE"
                        .to_owned(),
                );
            }
            cache.path_for(&identity.sha256)
        }
    };
    if args.reuse && out.exists() {
        match cache::open_cached(&out, &identity, &info, &cache) {
            Ok(map)
                if map.metadata().corpus_sha256 == corpus.sha256()
                    && map.corpus_cloud().is_some() =>
            {
                println!(
                    "map          {} (kept: valid for this model, K, positions and corpus)",
                    out.display()
                );
                return Ok(());
            }
            // Maps fitted before they kept a corpus sample: the editor's view needs one.
            Ok(map) if map.metadata().corpus_sha256 == corpus.sha256() => eprintln!(
                "{} has no corpus cloud (fitted by an older version); fitting again",
                out.display()
            ),
            Ok(_) => eprintln!(
                "{} was fitted on another corpus; fitting again",
                out.display()
            ),
            Err(reason) => eprintln!("{reason}; fitting again"),
        }
    }
    eprintln!(
        "fitting {} components per layer of {} on {} ({} lines, {})",
        args.components,
        identity.name,
        corpus.source(),
        corpus.line_count(),
        if options.skip_first {
            "each line's first position left out"
        } else {
            "every position"
        }
    );
    let mut progress = ProgressLine::new("fitting the PCA map");
    let (map, stats) = fit::fit(&mut loaded, &identity, &corpus, options, &mut |p| {
        progress.show(p)
    })
    .map_err(|e| e.to_string())?;
    progress.finish();
    file::save(&map, &out).map_err(|e| e.to_string())?;
    let total = start.elapsed();

    println!(
        "model        {} ({}, {} layers, width {}, {})",
        path.display(),
        info.architecture,
        info.n_layers,
        info.width,
        info.dtype
    );
    println!(
        "corpus       {} ({} of {} lines, sha256 {:.12}…)",
        corpus.source(),
        stats.lines,
        corpus.line_count(),
        map.metadata().corpus_sha256
    );
    if options.skip_first {
        println!(
            "positions    skip-first: each line's first token (the attention sink, {} positions) \
             left out; --keep-first keeps it",
            stats.skipped_first
        );
    } else {
        println!(
            "positions    every (--keep-first): each line's first token (the attention sink) included"
        );
    }
    println!(
        "tokens       {} fitted ({} line(s) cut to the {}-token context; {} sampled for the ranges)",
        stats.tokens, stats.truncated_lines, info.context_length, stats.sampled_tokens
    );
    println!(
        "time         fit {:.1} s ({:.0} tokens/s), {:.1} s with loading and hashing; model {:.1} s, \
         covariance {:.1} s, eigen and ranges {:.1} s",
        stats.elapsed.as_secs_f64(),
        stats.tokens as f64 / stats.elapsed.as_secs_f64(),
        total.as_secs_f64(),
        stats.model_time.as_secs_f64(),
        stats.accumulate_time.as_secs_f64(),
        stats.solve_time.as_secs_f64()
    );
    if let Some(peak) = super::memory::peak() {
        println!("peak memory  {peak}");
    }
    println!(
        "explained-variance ratio (PC1 PC2 PC3 PC4 | all {} components):",
        args.components
    );
    print_ratios(&map, args.all_layers);
    if let (Some(other), Some(path)) = (&compare, &args.compare) {
        print_agreement(&map, other, path, args.all_layers)?;
    }
    println!("map          {}", out.display());
    if into_cache && !options.skip_first {
        eprintln!(
            "note: the plugin and `generate` refit a cached map that keeps first positions; \
             pass this one with --map, or write it elsewhere with --out"
        );
    }
    Ok(())
}

/// The states a summary prints: all, or the first, middle and last.
fn shown_states(map: &ProjectionMap, all: bool) -> Vec<usize> {
    let last = map.n_states() - 1;
    if all {
        (0..=last).collect()
    } else {
        let mut shown = vec![0, last / 2, last];
        shown.dedup();
        shown
    }
}

fn print_agreement(
    map: &ProjectionMap,
    other: &ProjectionMap,
    path: &std::path::Path,
    all: bool,
) -> Result<(), String> {
    if other.n_states() != map.n_states() || other.metadata().width != map.metadata().width {
        return Err(format!(
            "{} is a map of {} states of width {}, this fit has {} of width {}",
            path.display(),
            other.n_states(),
            other.metadata().width,
            map.n_states(),
            map.metadata().width
        ));
    }
    let k = map.components().min(other.components());
    println!(
        "agreement with {} ({} lines, {} tokens): mean cos² of principal angles, first 4 | first {k}; |cos| of PC1",
        path.display(),
        other.metadata().corpus_lines,
        other.metadata().tokens
    );
    let (mut worst4, mut worst_k) = (1.0_f64, 1.0_f64);
    for state in 0..map.n_states() {
        let (a, b) = (&map.layers()[state], &other.layers()[state]);
        let four = compare::agreement(a, b, k.min(4)).ok_or("maps of different shapes")?;
        let all_k = compare::agreement(a, b, k).ok_or("maps of different shapes")?;
        worst4 = worst4.min(four.subspace);
        worst_k = worst_k.min(all_k.subspace);
        if shown_states(map, all).contains(&state) {
            println!(
                "  state {state:3}  {:.3} | {:.3}   PC1 {:.3}",
                four.subspace, all_k.subspace, four.pc1
            );
        }
    }
    println!("  worst state: {worst4:.3} | {worst_k:.3}");
    Ok(())
}

fn print_ratios(map: &ProjectionMap, all: bool) {
    let last = map.n_states() - 1;
    for state in shown_states(map, all) {
        let label = match state {
            0 => "embedding".to_owned(),
            s if s == last => "final norm".to_owned(),
            s => format!("block {s}"),
        };
        let ratios = map.layers()[state].explained_variance_ratio();
        let first: Vec<String> = ratios.iter().take(4).map(|r| format!("{r:.3}")).collect();
        let sum: f64 = ratios.iter().sum();
        println!(
            "  state {state:>3} {label:<11} {} | {sum:.3}",
            first.join(" ")
        );
    }
}

/// Fit progress on stderr: one line redrawn in place on a terminal; otherwise a line at
/// every tenth, so logs stay short.
pub struct ProgressLine {
    what: &'static str,
    terminal: bool,
    shown: Option<u64>,
}

impl ProgressLine {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            terminal: std::io::stderr().is_terminal(),
            shown: None,
        }
    }

    /// Report `p`; never cancels.
    pub fn show(&mut self, p: FitProgress) -> ControlFlow<()> {
        let percent = (p.fraction() * 100.0).floor() as u64;
        let step = if self.terminal {
            percent
        } else {
            percent / 10 * 10
        };
        if self.shown != Some(step) {
            self.shown = Some(step);
            let mut err = std::io::stderr().lock();
            if self.terminal {
                let _ = write!(
                    err,
                    "\r{}: {percent:>3}% ({}/{} lines)",
                    self.what, p.done, p.total
                );
            } else {
                let _ = writeln!(err, "{}: {step}% ({}/{} lines)", self.what, p.done, p.total);
            }
            let _ = err.flush();
        }
        ControlFlow::Continue(())
    }

    pub fn finish(&mut self) {
        if self.terminal && self.shown.is_some() {
            eprintln!();
        }
    }
}
