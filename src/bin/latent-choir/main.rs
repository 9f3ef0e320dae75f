//! `latent-choir`: the command-line face of the engine.
//!
//! * `latent-choir models` — what discovery finds on this machine.
//! * `latent-choir generate --prompt TEXT` — generate text, optionally saving hidden states.
//! * `latent-choir analyze AUDIO` — the loudness → temperature curve a song gives.
//! * `latent-choir bench-model` — load time, prefill time, decode speed with full capture.
//! * `latent-choir fit-pca` — fit a model's per-layer PCA map on the reference corpus (each
//!   line's first position, an attention sink, left out unless `--keep-first`).
//! * `latent-choir fit-direction` — fit a concept direction (tension) from two prompt sets.
//! * `latent-choir bench-projection` — time one token's projection through a map.
//! * `latent-choir render --prompt TEXT` — the plugin run offline: WAV, MIDI and run file.
//! * `latent-choir album PROMPTS --out DIR` — one render per prompt, joined, with a track list
//!   and tension heat maps; `--dialogue` orders them calm → peak → resolution.
//! * `latent-choir abliterate --direction NAME --out DIR` — a model copy without a direction.
//! * `latent-choir delta --model-b B --prompt TEXT` — two models' projections on a direction,
//!   state by state, as a piece (WAV, MIDI), a heat map and JSON.
//! * `latent-choir replay RUN` — a render heard again from its run file, without the model.
//! * `latent-choir listen AUDIO…` — audio → NDJSON semantic/acoustic tokens, notes (MIDI), key.
//! * `latent-choir fit-codebooks AUDIO… --out FILE` — fit `listen`'s codebooks (by hand).
//! * `latent-choir map-plot --prompt TEXT --out X.png|X.svg` — the corpus and a prompt's path in
//!   a hidden state's PCA plane (or t-SNE / UMAP), one state or all.
//! * `latent-choir serve` — an OpenAI-compatible HTTP server over the engine (completions,
//!   chat, streaming, logprobs, and per-token hidden-state projections as an extension).

mod abliterate;
mod album;
mod analyze;
mod bench;
mod bench_projection;
mod delta;
mod fit_codebooks;
mod fit_direction;
mod fit_pca;
mod generate;
mod listen;
mod map_plot;
mod memory;
mod models;
mod render;
mod replay;
mod serve;
mod spectral;
mod weights;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "latent-choir", version, about = "Hear a language model think")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the models discovery finds: the default model, the user data dir, the Hugging Face cache.
    Models,
    /// Generate text and optionally save every layer's hidden states.
    Generate(generate::Args),
    /// The loudness → temperature curve of an audio file, as the plugin would compute it.
    Analyze(analyze::Args),
    /// Measure load time, prefill time, decode tokens/s with full capture, and memory.
    BenchModel(bench::Args),
    /// Fit a model's per-layer PCA map (the plugin and `generate --projections` use it) on the
    /// built-in reference corpus or your own, leaving each line's first position (an attention
    /// sink) out unless --keep-first.
    FitPca(fit_pca::Args),
    /// Fit a concept direction from two prompt files (or a shipped set): the tension the
    /// Tension voice and the album follow.
    FitDirection(fit_direction::Args),
    /// Time projecting one token's hidden states through every layer's PCA map.
    BenchProjection(bench_projection::Args),
    /// Render a piece offline with the plugin's engine: the model generates, a simulated
    /// transport plays the grid, and out come a WAV, a MIDI file and a run file.
    Render(render::Args),
    /// Render one track per prompt of a file (CATEGORY<TAB>PROMPT lines allowed) with
    /// `render`, join them into album.wav with a track list (JSON, Markdown) and a tension
    /// heat map per track; --dialogue orders them calm → peak → resolution by measured
    /// tension, with tempo and mode from it, into dialogue.wav.
    Album(album::Args),
    /// Write a copy of a model with a concept direction projected out of every weight that
    /// writes into the residual stream (Arditi et al. 2024), as a Hugging Face folder.
    Abliterate(abliterate::Args),
    /// Play two models of the same shape (e.g. one and its abliterated copy) against each
    /// other on the same tokens: per hidden state a chord of their projections on a direction
    /// that opens where they part; with a heat map (--plot) and per-state JSON (--json).
    Delta(delta::Args),
    /// Re-render a run file without the model (same parameters: the same WAV and MIDI;
    /// changed mapping parameters re-map the recorded coordinates).
    Replay(replay::Args),
    /// Listen to audio: an NDJSON stream of 4 semantic and 4 acoustic tokens per frame (from
    /// Basic Pitch and a log-mel spectrum), the notes as MIDI, and the key.
    Listen(listen::Args),
    /// Fit `listen`'s residual-VQ codebooks on reference audio (the shipped ones come from
    /// tools/listen/fit_codebooks.sh).
    FitCodebooks(fit_codebooks::Args),
    /// The model's frozen weights: every matrix's SVD spectrum and statistics (--stats), the
    /// model's own key from its norms (--key), and pieces composed from them (--style opera,
    /// house, acid or dna) as WAV and MIDI.
    Weights(weights::Args),
    /// The residual stream heard directly, every token or dimension a sinusoid: --mode layers
    /// (one prompt, the layers as time), opera (sung in a scale, with reverb) or dataset (many
    /// prompts, the dimensions of highest variance). WAV plus a JSON sidecar.
    Spectral(spectral::Args),
    /// Draw the activation space (PNG or SVG): the reference corpus as a cloud in a hidden
    /// state's PC1/PC2 plane (or a seeded t-SNE / UMAP of it), the prompt's tokens as a
    /// labelled path through it; --layer all draws one panel per state.
    MapPlot(map_plot::Args),
    /// An OpenAI-compatible HTTP server over the model: GET /v1/models, POST /v1/completions
    /// and /v1/chat/completions, streamed (SSE) or not, with logprobs and, on request, every
    /// token's hidden-state projections (`"latent_choir": {"states": true}`). Prints
    /// `listening on http://HOST:PORT` once ready.
    Serve(serve::Args),
}

fn main() -> ExitCode {
    // The big products run on the engine's own pool (`llm::arch::qlinear`); candle's pool only
    // gets the small per-layer ops, where waking threads costs more than it saves on a couple of
    // cores (decode 53 → 64 tokens/s on 2 cores). Candle reads this once, at first use.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: nothing else runs yet; no other thread can be reading the environment.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Models => models::run(),
        Command::Generate(args) => generate::run(args),
        Command::BenchModel(args) => bench::run(args),
        Command::FitPca(args) => fit_pca::run(args),
        Command::FitDirection(args) => fit_direction::run(args),
        Command::BenchProjection(args) => bench_projection::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Render(args) => render::run(args),
        Command::Album(args) => album::run(args),
        Command::Abliterate(args) => abliterate::run(args),
        Command::Delta(args) => delta::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Listen(args) => listen::run(args),
        Command::FitCodebooks(args) => fit_codebooks::run(args),
        Command::Weights(args) => weights::run(args),
        Command::Spectral(args) => spectral::run(args),
        Command::MapPlot(args) => map_plot::run(args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
