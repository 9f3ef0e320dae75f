//! `latent-choir generate`

use std::io::Write;
use std::path::PathBuf;

use latent_choir::llm::loader;
use latent_choir::llm::sampler::SamplerConfig;
use latent_choir::llm::session::{AtEnd, Session, TokenResult};
use latent_choir::llm::tokenizer::PromptMode;
use latent_choir::llm::{LanguageModel, discovery};

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file or a Hugging Face folder; the default model if omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long)]
    prompt: String,
    /// Tokens to generate; 0 runs the prompt only.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
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
}

pub fn run(args: Args) -> Result<(), String> {
    let path = discovery::resolve(args.model.as_deref()).map_err(|e| {
        format!("{e}. Run `cargo xtask fetch-model` for the default model, or pass --model PATH")
    })?;
    let loaded = loader::load(&path).map_err(|e| e.to_string())?;
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
    let mode = if args.raw {
        PromptMode::Raw
    } else {
        PromptMode::Chat
    };
    let mut results: Vec<TokenResult> = session
        .start(&args.prompt, mode, args.seed)
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for _ in 0..args.max_tokens {
        match session.next(args.temperature).map_err(|e| e.to_string())? {
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
