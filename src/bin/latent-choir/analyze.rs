//! `latent-choir analyze AUDIO`: the loudness → temperature curve a song gives, the same one the
//! plugin computes from the same samples at the same token rate.

use std::io::Write;
use std::path::PathBuf;

use latent_choir::io::audio_file;
use latent_choir::loudness::{self, CurveMode, CurveSettings, MIN_METERED_SAMPLE_RATE};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// WAV, FLAC, MP3 or Ogg Vorbis.
    audio: PathBuf,
    /// Tokens per second: how often the curve is read.
    #[arg(long, default_value_t = 4.0)]
    tokens_per_second: f32,
    #[command(flatten)]
    curve: CurveArgs,
    /// Write the curve as JSON here (default: print it).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The temperature curve's settings, shared by every command that reads a song.
#[derive(clap::Args, Clone)]
pub struct CurveArgs {
    /// What drives the temperature: velocity (rate of change of loudness), level, or off.
    #[arg(long, default_value = "velocity", value_parser = parse_mode)]
    pub mode: CurveMode,
    #[arg(long, default_value_t = CurveSettings::default().t_min)]
    pub t_min: f32,
    #[arg(long, default_value_t = CurveSettings::default().t_max)]
    pub t_max: f32,
    #[arg(long, default_value_t = CurveSettings::default().sensitivity)]
    pub sensitivity: f32,
    /// Loudness smoothing time constant, seconds.
    #[arg(long, default_value_t = CurveSettings::default().smoothing)]
    pub smoothing: f32,
    /// Temperature in `off` mode.
    #[arg(long, default_value_t = CurveSettings::default().fixed)]
    pub fixed_temperature: f32,
}

impl CurveArgs {
    pub fn settings(&self) -> CurveSettings {
        CurveSettings {
            mode: self.mode,
            t_min: self.t_min,
            t_max: self.t_max,
            sensitivity: self.sensitivity,
            smoothing: self.smoothing,
            fixed: self.fixed_temperature,
        }
    }
}

fn parse_mode(name: &str) -> Result<CurveMode, String> {
    CurveMode::from_name(name).ok_or_else(|| format!("{name:?} is not velocity, level or off"))
}

/// Reads `path` and computes its curve; warnings about how the file is read go to stderr.
pub fn song_curve(
    path: &std::path::Path,
    tokens_per_second: f32,
    settings: &CurveSettings,
) -> Result<(u32, Vec<(f64, loudness::CurvePoint)>), String> {
    if !(tokens_per_second.is_finite() && tokens_per_second > 0.0 && tokens_per_second <= 1000.0) {
        return Err(format!(
            "--tokens-per-second must be in (0, 1000], not {tokens_per_second}"
        ));
    }
    let audio = audio_file::read(path).map_err(|e| e.to_string())?;
    match audio.source_channels {
        1 => eprintln!(
            "note: {} is mono; it is metered as played on both sides",
            path.display()
        ),
        2 => {}
        n => eprintln!(
            "note: {} has {n} channels; only the first two (front left and right) are metered",
            path.display()
        ),
    }
    let rate = audio.sample_rate as f32;
    if rate < MIN_METERED_SAMPLE_RATE {
        eprintln!(
            "note: {} Hz is below {MIN_METERED_SAMPLE_RATE} Hz, where loudness cannot be measured; the temperature stays at {}",
            audio.sample_rate, settings.fixed
        );
    }
    let points = loudness::curve_over(&audio.left, &audio.right, rate, tokens_per_second, settings);
    Ok((audio.sample_rate, points))
}

pub fn run(args: Args) -> Result<(), String> {
    let (sample_rate, points) =
        song_curve(&args.audio, args.tokens_per_second, &args.curve.settings())?;
    let frames: Vec<_> = points
        .iter()
        .map(|(t, p)| {
            json!({"t": t, "lufs": p.lufs, "velocity": p.velocity, "temperature": p.temperature})
        })
        .collect();
    let document = json!({
        "sample_rate": sample_rate,
        "tokens_per_second": args.tokens_per_second,
        "mode": args.curve.mode.name(),
        "frames": frames,
    });
    let text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
    match &args.json {
        Some(path) => {
            std::fs::write(path, text + "\n")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!(
                "{} tokens of curve written to {}",
                points.len(),
                path.display()
            );
        }
        None => {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{text}") {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.to_string()),
                _ => {}
            }
        }
    }
    Ok(())
}
