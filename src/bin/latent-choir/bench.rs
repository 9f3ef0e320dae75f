//! `latent-choir bench-model`: the numbers for the performance notes. Timing belongs here, not
//! in tests.

use std::path::PathBuf;
use std::time::Instant;

use latent_choir::llm::sampler::SamplerConfig;
use latent_choir::llm::session::{AtEnd, Session};
use latent_choir::llm::tokenizer::PromptMode;
use latent_choir::llm::{discovery, loader};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tokens to decode.
    #[arg(long, default_value_t = 128)]
    tokens: usize,
    #[arg(long, default_value = "The forest was silent. Then")]
    prompt: String,
}

pub fn run(args: Args) -> Result<(), String> {
    let path = discovery::resolve(args.model.as_deref()).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let loaded = loader::load(&path).map_err(|e| e.to_string())?;
    let load_time = start.elapsed();
    let info = loaded.model.info().clone();
    // Greedy and never stopping at the end of an answer, so every run decodes the same tokens.
    let mut session = Session::new(loaded, SamplerConfig::default(), 0, AtEnd::Continue);
    let start = Instant::now();
    let prompt = session
        .start(&args.prompt, PromptMode::Raw, 0)
        .map_err(|e| e.to_string())?;
    let prefill = start.elapsed();
    let start = Instant::now();
    let mut decoded = 0;
    while decoded < args.tokens {
        match session.next(0.0).map_err(|e| e.to_string())? {
            Some(_) => decoded += 1,
            None => break,
        }
    }
    let decode = start.elapsed();
    println!(
        "model          {} ({}, {} layers, width {}, {})",
        path.display(),
        info.architecture,
        info.n_layers,
        info.width,
        info.dtype
    );
    println!("load           {:.0} ms", load_time.as_secs_f64() * 1e3);
    println!(
        "prefill        {} tokens in {:.1} ms",
        prompt.len(),
        prefill.as_secs_f64() * 1e3
    );
    println!(
        "decode         {decoded} tokens in {:.2} s = {:.1} tokens/s (every layer's hidden state, entropy and sparsity captured)",
        decode.as_secs_f64(),
        decoded as f64 / decode.as_secs_f64()
    );
    println!(
        "resident       {}",
        resident_memory().unwrap_or_else(|| "unknown".into())
    );
    Ok(())
}

/// VmRSS from /proc (Linux); what the process holds in memory now.
fn resident_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.trim_start_matches("VmRSS:").trim().to_owned())
}
