//! `latent-choir models`: every model found, one line each, and why one will not load.

use latent_choir::llm::discovery;

pub fn run() -> Result<(), String> {
    let found = discovery::discover_all();
    if found.is_empty() {
        return Err(format!(
            "no models found. Run `cargo xtask fetch-model` for the default model, or pass --model PATH. Looked in {} and {}",
            discovery::models_dir().map_or("(no data dir)".into(), |d| d.display().to_string()),
            discovery::hf_cache_dir().map_or("(no HF cache)".into(), |d| d.display().to_string()),
        ));
    }
    println!(
        "{:<10} {:>6} {:>6} {:>9} {:<16}  path",
        "family", "layers", "width", "size", "weights"
    );
    for model in found {
        let mut line = format!(
            "{:<10} {:>6} {:>6} {:>7.1}MB {:<16}  {}",
            model.architecture,
            model.n_layers,
            model.width,
            model.size as f64 / 1e6,
            model.dtype,
            model.path.display()
        );
        if let Some(problem) = &model.problem {
            line.push_str("  — will not load: ");
            line.push_str(problem);
        }
        println!("{line}");
    }
    Ok(())
}
