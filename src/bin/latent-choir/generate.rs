//! `latent-choir generate`

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use latent_choir::activation::cache::{self, Found, MapCache};
use latent_choir::activation::{ProjectionMap, identify};
use latent_choir::llm::loader::LoadedModel;

use latent_choir::llm::loader;
use latent_choir::llm::sampler::SamplerConfig;
use latent_choir::llm::tokenizer::PromptMode;
use latent_choir::llm::{LanguageModel, discovery};
use latent_choir::worker::session::{AtEnd, Session, TokenResult};

use crate::analyze::{CurveArgs, song_curve};

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file or a Hugging Face folder; the default model if omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long)]
    prompt: String,
    /// Tokens to generate; 0 runs the prompt only. Default: 64, or one per curve point of
    /// --song.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// 0 is greedy. Ignored with --song, whose loudness sets each token's temperature.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Let this song's loudness set each token's temperature, as the plugin does with the
    /// track it sits on: token k takes the curve at k / tokens-per-second seconds (see
    /// `analyze`). Generation ends with the song.
    #[arg(long)]
    song: Option<PathBuf>,
    /// Token rate against the song's time line.
    #[arg(long, default_value_t = 4.0, requires = "song")]
    tokens_per_second: f32,
    #[command(flatten)]
    curve: CurveArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep only the K most likely tokens (0 keeps all).
    #[arg(long, default_value_t = SamplerConfig::default().top_k)]
    top_k: usize,
    /// Keep the most likely tokens up to this total probability.
    #[arg(long, default_value_t = SamplerConfig::default().top_p)]
    top_p: f32,
    /// Penalise tokens seen in the last 64 (1 is off).
    #[arg(long, default_value_t = SamplerConfig::default().repetition_penalty)]
    repetition_penalty: f32,
    /// Continue the text as is instead of answering it as a chat message.
    #[arg(long)]
    raw: bool,
    /// Keep talking past the end of the answer instead of stopping.
    #[arg(long)]
    continue_at_end: bool,
    /// Write `tokens` (int64 [n]) and `hidden_states` (float32 [layers + 1, n, width]) here.
    #[arg(long)]
    hidden_states: Option<PathBuf>,
    /// Write `tokens` (int64 [n]) and `coords` (float32 [layers + 1, n, K]), every token's
    /// hidden states projected through the model's PCA map into [-1, 1], here. The map comes
    /// from --map, or from the user's map cache (fitted now, with progress, if missing).
    #[arg(long)]
    projections: Option<PathBuf>,
    /// The PCA map for --projections (refused unless it was fitted for this model).
    #[arg(long, requires = "projections")]
    map: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), String> {
    // Read the song first: a bad file should not cost a model load.
    let temperatures: Option<Vec<f32>> = match &args.song {
        Some(song) => {
            let (_, points) = song_curve(song, args.tokens_per_second, &args.curve.settings())?;
            Some(points.iter().map(|(_, p)| p.temperature).collect())
        }
        None => None,
    };
    let max_tokens = match (args.max_tokens, &temperatures) {
        (Some(n), _) => n,
        (None, Some(curve)) => curve.len(),
        (None, None) => 64,
    };
    let path = discovery::resolve(args.model.as_deref()).map_err(|e| {
        format!("{e}. Run `cargo xtask fetch-model` for the default model, or pass --model PATH")
    })?;
    let mut loaded = loader::load(&path).map_err(|e| e.to_string())?;
    let map = match &args.projections {
        Some(_) => Some(projection_map(&mut loaded, args.map.as_deref())?),
        None => None,
    };
    let at_end = if args.continue_at_end {
        AtEnd::Continue
    } else {
        AtEnd::Stop
    };
    let sampler = SamplerConfig {
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        ..SamplerConfig::default()
    };
    let mut session = Session::new(loaded, sampler, args.seed, at_end);
    session
        .set_projection(map.map(Arc::new))
        .map_err(|e| e.to_string())?;
    let mode = if args.raw {
        PromptMode::Raw
    } else {
        PromptMode::Chat
    };
    let mut results: Vec<TokenResult> = session
        .start(&args.prompt, mode, args.seed)
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for k in 0..max_tokens {
        let temperature = match &temperatures {
            Some(curve) => match curve.get(k) {
                Some(&t) => t,
                None => {
                    eprintln!("\nthe song ended after {k} tokens");
                    break;
                }
            },
            None => args.temperature,
        };
        match session.next(temperature).map_err(|e| e.to_string())? {
            Some(token) => {
                let _ = write!(out, "{}", token.text);
                let _ = out.flush();
                results.push(token);
            }
            None => break,
        }
    }
    let _ = writeln!(out);
    if let Some(file) = args.hidden_states {
        write_hidden_states(&file, session.loaded().model.as_ref(), &results)?;
        eprintln!(
            "hidden states of {} tokens written to {}",
            results.len(),
            file.display()
        );
    }
    if let (Some(file), Some(map)) = (&args.projections, session.projection()) {
        write_projections(file, map, &results)?;
        eprintln!(
            "PCA coordinates of {} tokens written to {}",
            results.len(),
            file.display()
        );
    }
    Ok(())
}

/// The map at `explicit`, checked against the model, or the model's map from the user cache
/// (fitted now if it is missing or does not belong to the model).
pub fn projection_map(
    loaded: &mut LoadedModel,
    explicit: Option<&std::path::Path>,
) -> Result<ProjectionMap, String> {
    if let Some(path) = explicit {
        let identity = identify(&loaded.path).map_err(|e| e.to_string())?;
        return cache::open_for_model(path, &identity, loaded.model.info())
            .map_err(|e| format!("refusing --map: {e}"));
    }
    let cache = MapCache::user().map_err(|e| e.to_string())?;
    let entry = cache::lookup(loaded, &cache).map_err(|e| e.to_string())?;
    match entry.found {
        Found::Valid(map) => return Ok(map),
        Found::Refused(reason) => eprintln!("not using the cached map: {reason}"),
        Found::Missing => eprintln!("no PCA map for this model yet"),
    }
    let mut progress = crate::fit_pca::ProgressLine::new("fitting the PCA map");
    let (map, stats, save_error) =
        cache::fit_and_store(loaded, &cache, &entry.identity, &entry.path, &mut |p| {
            progress.show(p)
        })
        .map_err(|e| e.to_string())?;
    progress.finish();
    eprintln!(
        "fitted on {} tokens in {:.1} s",
        stats.tokens,
        stats.elapsed.as_secs_f64()
    );
    match save_error {
        Some(error) => eprintln!("warning: the map could not be stored: {error}"),
        None => eprintln!("map stored at {}", entry.path.display()),
    }
    Ok(map)
}

fn write_projections(
    file: &std::path::Path,
    map: &ProjectionMap,
    results: &[TokenResult],
) -> Result<(), String> {
    let (states, k, n) = (map.n_states(), map.components(), results.len());
    let tokens = ndarray::Array1::from_iter(results.iter().map(|r| i64::from(r.id)));
    // Results carry [layers + 1][K] per token; the file is layer-major.
    let coords =
        ndarray::Array3::from_shape_fn((states, n, k), |(l, t, c)| results[t].coords[l * k + c]);
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", file.display());
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(file).map_err(|e| fail(&e))?);
    npz.add_array("tokens", &tokens).map_err(|e| fail(&e))?;
    npz.add_array("coords", &coords).map_err(|e| fail(&e))?;
    npz.finish().map_err(|e| fail(&e))?;
    Ok(())
}

fn write_hidden_states(
    file: &std::path::Path,
    model: &dyn LanguageModel,
    results: &[TokenResult],
) -> Result<(), String> {
    let info = model.info();
    let (layers, width, n) = (info.n_layers + 1, info.width, results.len());
    let tokens = ndarray::Array1::from_iter(results.iter().map(|r| i64::from(r.id)));
    // Results are token-major ([n][layers * width]); the file is layer-major.
    let hidden = ndarray::Array3::from_shape_fn((layers, n, width), |(l, t, w)| {
        results[t].hidden[l * width + w]
    });
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", file.display());
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(file).map_err(|e| fail(&e))?);
    npz.add_array("tokens", &tokens).map_err(|e| fail(&e))?;
    npz.add_array("hidden_states", &hidden)
        .map_err(|e| fail(&e))?;
    npz.finish().map_err(|e| fail(&e))?;
    Ok(())
}
