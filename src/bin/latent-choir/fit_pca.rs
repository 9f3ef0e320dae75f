//! `latent-choir fit-pca`: fit a model's per-layer PCA map on a corpus and store it where the
//! plugin and `generate` find it (or anywhere, with `--out`).

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use latent_choir::activation::cache::{self, MapCache};
use latent_choir::activation::{Corpus, DEFAULT_COMPONENTS, FitProgress, ProjectionMap, file, fit};
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
    /// with this K on the current text of this corpus (`cargo xtask fetch-model` uses this).
    #[arg(long)]
    reuse: bool,
    /// Print the explained-variance ratios of every layer, not only the first, middle and last.
    #[arg(long)]
    all_layers: bool,
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
    let cache = MapCache {
        dir: cache::maps_dir().unwrap_or_default(),
        corpus: corpus.clone(),
        components: args.components,
    };
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
            Ok(map) if map.metadata().corpus_sha256 == corpus.sha256() => {
                println!(
                    "map          {} (kept: valid for this model, K and corpus)",
                    out.display()
                );
                return Ok(());
            }
            Ok(_) => eprintln!(
                "{} was fitted on another corpus; fitting again",
                out.display()
            ),
            Err(reason) => eprintln!("{reason}; fitting again"),
        }
    }
    eprintln!(
        "fitting {} components per layer of {} on {} ({} lines)",
        args.components,
        identity.name,
        corpus.source(),
        corpus.line_count()
    );
    let mut progress = ProgressLine::new("fitting the PCA map");
    let (map, stats) = fit::fit(&mut loaded, &identity, &corpus, args.components, &mut |p| {
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
        "corpus       {} ({} lines, sha256 {:.12}…)",
        corpus.source(),
        stats.lines,
        map.metadata().corpus_sha256
    );
    println!(
        "tokens       {} ({} line(s) cut to the {}-token context; {} sampled for the ranges)",
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
    if let Some(peak) = peak_memory() {
        println!("peak memory  {peak}");
    }
    println!(
        "explained-variance ratio (PC1 PC2 PC3 PC4 | all {} components):",
        args.components
    );
    print_ratios(&map, args.all_layers);
    println!("map          {}", out.display());
    Ok(())
}

fn print_ratios(map: &ProjectionMap, all: bool) {
    let last = map.n_states() - 1;
    let shown: Vec<usize> = if all {
        (0..=last).collect()
    } else {
        let mut shown = vec![0, last / 2, last];
        shown.dedup();
        shown
    };
    for state in shown {
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

/// VmHWM from /proc (Linux): the most memory the process has held.
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_owned())
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
