//! `latent-choir spectral`: the residual stream heard directly, every token or dimension a
//! sinusoid (see [`latent_choir::spectral`]). Writes a WAV (32-bit float) and a JSON sidecar
//! beside it (`X.json`) naming every partial.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use latent_choir::activation::Corpus;
use latent_choir::activation::direction::PromptSet;
use latent_choir::io::audio_file;
use latent_choir::io::output_file::PendingFile;
use latent_choir::io::wav_file::WavSink;
use latent_choir::llm::{discovery, loader};
use latent_choir::music::scale::parse_key;
use latent_choir::spectral::additive::{self, Sound};
use latent_choir::spectral::dataset::{DatasetOptions, dataset_score};
use latent_choir::spectral::layers::{LayersOptions, layers_score, opera_score};
use latent_choir::spectral::opera::{self, OperaOptions};
use latent_choir::spectral::sidecar::sidecar;
use serde_json::json;

/// The dataset render's default length: the whole set in a minute.
const DATASET_SECONDS: f32 = 60.0;

#[derive(clap::Args)]
pub struct Args {
    /// layers (one prompt, the layers as time), opera (the same, sung in a scale with
    /// reverb) or dataset (many prompts, the dimensions of highest variance).
    #[arg(long)]
    mode: String,
    /// The WAV to write (32-bit float); the sidecar goes beside it as .json.
    #[arg(long, value_name = "X.wav")]
    out: PathBuf,
    /// The prompt (layers and opera).
    #[arg(long)]
    prompt: Option<String>,
    /// One prompt per line (dataset); the embedded corpus if omitted.
    #[arg(long, value_name = "FILE")]
    prompts: Option<PathBuf>,
    /// The hidden state pooled in dataset mode (0 the embeddings); the middle one if omitted.
    #[arg(long)]
    layer: Option<usize>,
    /// Dimensions heard in dataset mode.
    #[arg(long, default_value_t = 32)]
    dims: usize,
    /// Seconds per slice (per layer, or per prompt); layers 0.6, dataset one minute in all.
    #[arg(long)]
    slice: Option<f32>,
    /// The opera's key, e.g. "D Dorian", "A Harmonic minor".
    #[arg(long, default_value = "D Dorian")]
    key: String,
    /// Keep the prompt's first token (the attention sink) in layers and opera.
    #[arg(long)]
    keep_first: bool,
    /// An impulse response (WAV, FLAC…) for the opera's reverb instead of the synthetic room;
    /// it must be at the render's sample rate.
    #[arg(long, value_name = "FILE")]
    ir: Option<PathBuf>,
    /// The opera's reverb mix, 0 (dry) to 1 (wet).
    #[arg(long, default_value_t = 0.3)]
    reverb: f32,
    /// A GGUF file or a Hugging Face folder; the default model if omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value_t = 48_000, value_parser = clap::value_parser!(u32).range(8_000..=192_000))]
    sample_rate: u32,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Layers,
    Opera,
    Dataset,
}

pub fn run(args: Args) -> Result<(), String> {
    let mode = match args.mode.as_str() {
        "layers" => Mode::Layers,
        "opera" => Mode::Opera,
        "dataset" => Mode::Dataset,
        other => {
            return Err(format!(
                "--mode {other:?}: not a mode (layers, opera or dataset)"
            ));
        }
    };
    if args
        .out
        .extension()
        .is_none_or(|e| !e.eq_ignore_ascii_case("wav"))
    {
        return Err(format!("--out {}: give a .wav file", args.out.display()));
    }
    if let Some(slice) = args.slice
        && !(slice.is_finite() && slice > 0.0)
    {
        return Err(format!(
            "--slice {slice}: give a positive number of seconds"
        ));
    }
    if !(0.0..=1.0).contains(&args.reverb) {
        return Err(format!("--reverb {}: give a mix from 0 to 1", args.reverb));
    }
    let key = parse_key(&args.key).ok_or_else(|| {
        format!(
            "--key {:?}: give a root and a scale, e.g. \"D Dorian\" or \"F# Major\"",
            args.key
        )
    })?;
    let prompt = match mode {
        Mode::Layers | Mode::Opera => {
            let prompt = args
                .prompt
                .clone()
                .ok_or_else(|| format!("--mode {}: give the prompt with --prompt", args.mode))?;
            if prompt.trim().is_empty() {
                return Err("--prompt is empty: nothing to sonify".into());
            }
            Some(prompt)
        }
        Mode::Dataset => None,
    };
    let prompts = match mode {
        Mode::Dataset => Some(read_prompts(args.prompts.as_deref())?),
        _ => None,
    };
    let impulse = args
        .ir
        .as_deref()
        .map(|path| read_impulse(path, args.sample_rate))
        .transpose()?;

    let path = discovery::resolve(args.model.as_deref()).map_err(|e| {
        format!("{e}. Run `cargo xtask fetch-model` for the default model, or pass --model PATH")
    })?;
    let started = Instant::now();
    let mut loaded = loader::load(&path).map_err(|e| e.to_string())?;
    let info = loaded.model.info().clone();
    let model_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let (score, sound, extra) = match (mode, prompt, prompts) {
        (Mode::Layers | Mode::Opera, Some(prompt), _) => {
            let map = crate::generate::projection_map(&mut loaded, None)?;
            let options = LayersOptions {
                slice_seconds: args.slice.unwrap_or(LayersOptions::default().slice_seconds),
                keep_first: args.keep_first,
            };
            let score =
                layers_score(&mut loaded, &map, &prompt, options).map_err(|e| e.to_string())?;
            if mode == Mode::Layers {
                let sound = additive::render(&score, args.sample_rate);
                (score, sound, json!({ "prompt": prompt }))
            } else {
                let (scale, root) = key;
                let score = opera_score(score, scale, root);
                let options = OperaOptions {
                    reverb_mix: args.reverb,
                    impulse,
                    ..OperaOptions::default()
                };
                let sound = opera::render(&score, args.sample_rate, &options);
                let extra = json!({
                    "prompt": prompt,
                    "key": args.key.trim(),
                    "reverb_mix": args.reverb,
                    "impulse_response": args.ir.as_ref().map_or_else(
                        || format!("synthetic room, {} s", options.room_seconds),
                        |p| p.display().to_string(),
                    ),
                });
                (score, sound, extra)
            }
        }
        (Mode::Dataset, _, Some((prompts, source))) => {
            let states = info.n_layers + 1;
            let layer = args.layer.unwrap_or(states / 2);
            let slice = args.slice.unwrap_or_else(|| {
                (DATASET_SECONDS / prompts.len().max(1) as f32).clamp(0.02, 2.0)
            });
            let options = DatasetOptions {
                layer,
                dims: args.dims,
                slice_seconds: slice,
            };
            let mut shown = 0;
            let mut progress = |done: usize, total: usize| {
                let tenth = done * 10 / total.max(1);
                if tenth > shown {
                    shown = tenth;
                    eprintln!("pooled {done}/{total} prompts");
                }
                ControlFlow::Continue(())
            };
            let score = dataset_score(&mut loaded, &prompts, options, &mut progress)
                .map_err(|e| e.to_string())?;
            let sound = additive::render(&score, args.sample_rate);
            (score, sound, json!({ "prompts": source, "layer": layer }))
        }
        _ => return Err("nothing to sonify".into()),
    };

    let sidecar_path = args.out.with_extension("json");
    write_wav(&args.out, &sound, args.sample_rate)?;
    let text = serde_json::to_string_pretty(&sidecar(
        &score,
        sound.gain,
        args.sample_rate,
        &model_name,
        extra,
    ))
    .map_err(|e| e.to_string())?;
    let pending = PendingFile::new(&sidecar_path).map_err(|e| e.to_string())?;
    std::fs::write(pending.temp(), text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", sidecar_path.display()))?;
    pending.commit().map_err(|e| e.to_string())?;
    eprintln!(
        "{} partials × {} slices, {:.1} s of sound in {:.1} s → {} and {}",
        score.partials.len(),
        score.slices.len(),
        sound.left.len() as f64 / f64::from(args.sample_rate),
        started.elapsed().as_secs_f64(),
        args.out.display(),
        sidecar_path.display()
    );
    Ok(())
}

/// The prompts of `path` (one per non-empty line, read as a direction's prompt sets are), or
/// the embedded corpus; with what to call them in the sidecar.
fn read_prompts(path: Option<&Path>) -> Result<(Vec<String>, String), String> {
    let Some(path) = path else {
        let corpus = Corpus::embedded();
        return Ok((
            corpus.lines().map(str::to_owned).collect(),
            corpus.source().to_owned(),
        ));
    };
    let set = PromptSet::from_file(path).map_err(|e| format!("--prompts: {e}"))?;
    Ok((set.prompts().to_vec(), path.display().to_string()))
}

fn read_impulse(path: &Path, sample_rate: u32) -> Result<(Vec<f32>, Vec<f32>), String> {
    let audio = audio_file::read(path).map_err(|e| format!("--ir: {e}"))?;
    if audio.sample_rate != sample_rate {
        return Err(format!(
            "--ir {}: the impulse response is at {} Hz and the render at {sample_rate} Hz; \
             render with --sample-rate {} or resample the response",
            path.display(),
            audio.sample_rate,
            audio.sample_rate
        ));
    }
    Ok((audio.left, audio.right))
}

fn write_wav(out: &Path, sound: &Sound, sample_rate: u32) -> Result<(), String> {
    let wav = PendingFile::new(out).map_err(|e| e.to_string())?;
    let mut sink = WavSink::create(wav.temp(), sample_rate).map_err(|e| e.to_string())?;
    sink.write(&sound.left, &sound.right)
        .map_err(|e| e.to_string())?;
    sink.finish().map_err(|e| e.to_string())?;
    wav.commit().map_err(|e| e.to_string())?;
    Ok(())
}
