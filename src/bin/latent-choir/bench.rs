//! `latent-choir bench-model`: the numbers for the performance notes. Timing belongs here, not
//! in tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use latent_choir::llm::arch::qlinear;
use latent_choir::llm::model::ModelInfo;
use latent_choir::llm::sampler::SamplerConfig;
use latent_choir::llm::tokenizer::PromptMode;
use latent_choir::llm::{discovery, loader};
use latent_choir::worker::session::{AtEnd, Session};

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

/// One timed run: load, prompt, decode.
struct Timing {
    load: Duration,
    prompt_tokens: usize,
    prefill: Duration,
    decoded: usize,
    decode: Duration,
    /// Read while the model is still loaded: afterwards it is freed.
    resident: Option<String>,
}

fn time_run(path: &Path, args: &Args) -> Result<(Timing, ModelInfo), String> {
    let start = Instant::now();
    let loaded = loader::load(path).map_err(|e| e.to_string())?;
    let load = start.elapsed();
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
    let timing = Timing {
        load,
        prompt_tokens: prompt.len(),
        prefill,
        decoded,
        decode: start.elapsed(),
        resident: super::memory::resident(),
    };
    Ok((timing, info))
}

/// Greedy decode on the model alone (no session, no sampler), for comparing capture on and
/// off; tokens per second.
fn model_only(path: &Path, tokens: usize, capture: bool) -> Result<f64, String> {
    let mut loaded = loader::load(path).map_err(|e| e.to_string())?;
    let model = &mut loaded.model;
    model.set_capture(capture);
    let prompt: Vec<u32> = (1..9).collect();
    let mut step = model.forward(&prompt).map_err(|e| e.to_string())?;
    let start = Instant::now();
    for _ in 0..tokens.min(model.info().context_length - prompt.len()) {
        let next = (0..step.logits.len())
            .max_by(|&a, &b| step.logits[a].total_cmp(&step.logits[b]))
            .unwrap_or(0) as u32;
        step = model.forward(&[next]).map_err(|e| e.to_string())?;
    }
    Ok(tokens as f64 / start.elapsed().as_secs_f64())
}

/// Larger than any cache, so the read comes from memory.
const BANDWIDTH_BUFFER: usize = 512 << 20;

/// Bytes of weights a decode step reads, taken as the size of the weight files: every matrix
/// is read once per token, a tied embedding too (as the LM head); the one-row lookups and
/// norms this overcounts are well under 1% of the total.
fn weight_bytes(path: &Path) -> Option<u64> {
    if path.is_file() {
        return Some(std::fs::metadata(path).ok()?.len());
    }
    let total = std::fs::read_dir(path)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "safetensors"))
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.len())
        .sum();
    (total > 0).then_some(total)
}

pub fn run(args: Args) -> Result<(), String> {
    let path = discovery::resolve(args.model.as_deref()).map_err(|e| e.to_string())?;
    let (timing, info) = time_run(&path, &args)?;
    let Timing {
        load: load_time,
        prompt_tokens,
        prefill,
        decoded,
        decode,
        resident,
    } = timing;
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
        prompt_tokens,
        prefill.as_secs_f64() * 1e3
    );
    let rate = decoded as f64 / decode.as_secs_f64();
    println!(
        "decode         {decoded} tokens in {:.2} s = {rate:.1} tokens/s (every layer's hidden state, entropy and sparsity captured)",
        decode.as_secs_f64(),
    );
    let with = model_only(&path, args.tokens, true)?;
    let without = model_only(&path, args.tokens, false)?;
    println!(
        "model alone    {with:.1} tokens/s with capture, {without:.1} without: capture costs {:.1}% (models that cannot skip it show ~0)",
        (1.0 - with / without) * 100.0
    );
    if let Some(bytes) = weight_bytes(&path) {
        let bandwidth = qlinear::read_bandwidth(BANDWIDTH_BUFFER, 5);
        let limit = bandwidth * 1e9 / bytes as f64;
        println!(
            "bandwidth      {bandwidth:.1} GB/s read by the decode threads; {:.0} MB of weights per token caps decode at {limit:.1} tokens/s: decode ran at {:.0}% of it",
            bytes as f64 / 1e6,
            100.0 * rate / limit
        );
    }
    println!(
        "resident       {} with the model loaded (peak {})",
        resident.unwrap_or_else(|| "unknown".into()),
        super::memory::peak().unwrap_or_else(|| "unknown".into())
    );
    Ok(())
}
