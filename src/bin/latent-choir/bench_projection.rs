//! `latent-choir bench-projection`: how long projecting one token's hidden states through every
//! layer's PCA map takes (the worker does it for every token; the budget is 50 µs for the
//! default model).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use latent_choir::activation::cache::MapCache;
use latent_choir::activation::{ProjectionMap, file, identify};
use latent_choir::llm::discovery;

#[derive(clap::Args)]
pub struct Args {
    /// A map file; by default the map of --model (or the default model) in the user's cache.
    #[arg(long)]
    map: Option<PathBuf>,
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tokens to project.
    #[arg(long, default_value_t = 20_000)]
    tokens: usize,
}

pub fn run(args: Args) -> Result<(), String> {
    let path = match args.map {
        Some(path) => path,
        None => {
            let model = discovery::resolve(args.model.as_deref()).map_err(|e| e.to_string())?;
            let identity = identify(&model).map_err(|e| e.to_string())?;
            let cache = MapCache::user().map_err(|e| e.to_string())?;
            cache.path_for(&identity.sha256)
        }
    };
    let map =
        file::load(&path).map_err(|e| format!("{e} (fit one with `latent-choir fit-pca`)"))?;
    let (states, width) = (map.n_states(), map.metadata().width);
    // Hidden states near each layer's mean, so coordinates land inside the ranges; the cost
    // does not depend on the values.
    let hidden = synthetic_hidden(&map);
    let mut out = vec![0.0f32; map.coords_len()];
    // Warm the caches.
    for _ in 0..100 {
        map.project_into(black_box(&hidden), 1, &mut out);
    }
    let mut per_token = Vec::with_capacity(args.tokens);
    let start = Instant::now();
    for _ in 0..args.tokens {
        let t = Instant::now();
        map.project_into(black_box(&hidden), 1, &mut out);
        black_box(&out);
        per_token.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let total = start.elapsed().as_secs_f64() * 1e6 / args.tokens.max(1) as f64;
    per_token.sort_by(f64::total_cmp);
    let at = |q: f64| per_token[((per_token.len() - 1) as f64 * q) as usize];
    println!("map          {}", path.display());
    println!(
        "shape        {states} hidden states × width {width} → {} components each",
        map.components()
    );
    println!(
        "projection   {:.1} µs per token (median {:.1}, p99 {:.1}, max {:.1}; {} tokens)",
        total,
        at(0.5),
        at(0.99),
        at(1.0),
        args.tokens
    );
    Ok(())
}

fn synthetic_hidden(map: &ProjectionMap) -> Vec<f32> {
    let mut state = 1u32;
    map.layers()
        .iter()
        .flat_map(|layer| layer.mean.iter())
        .map(|m| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            m + (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}
