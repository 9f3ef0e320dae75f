//! `latent-choir fit-codebooks AUDIO… --out FILE`: fits `listen`'s residual-VQ codebooks on
//! reference audio. The shipped ones (`assets/listen/codebooks-v1.safetensors`) come from
//! `tools/listen/fit_codebooks.sh`, which makes its reference audio with this project.

use std::path::PathBuf;

use latent_choir::io::audio_file;
use latent_choir::listen::basic_pitch::{BasicPitch, SAMPLE_RATE};
use latent_choir::listen::features::{self, model_frames, token_frames};
use latent_choir::listen::resample::Resampler;
use latent_choir::listen::rvq::{Codebooks, fit_family};
use latent_choir::listen::{mel, runtime};

#[derive(clap::Args)]
pub struct Args {
    /// Reference audio files.
    #[arg(required = true)]
    audio: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// The codebooks' identity, written in every stream's header.
    #[arg(long, default_value = "lc-rvq-v1")]
    id: String,
    /// Frames per second the fit samples (finer than `listen`'s default for more data).
    #[arg(long, default_value_t = 43.0)]
    frame_rate: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(args: Args) -> Result<(), String> {
    let path = runtime::basic_pitch_path().ok_or("neither XDG_DATA_HOME nor HOME is set")?;
    let mut basic_pitch = BasicPitch::load(&path, 2).map_err(|e| e.to_string())?;
    let (mut semantic, mut acoustic) = (Vec::new(), Vec::new());
    for file in &args.audio {
        let audio = audio_file::read(file).map_err(|e| e.to_string())?;
        let mono: Vec<f32> = audio
            .left
            .iter()
            .zip(&audio.right)
            .map(|(l, r)| (l + r) / 2.0)
            .collect();
        let samples = Resampler::new(audio.sample_rate, SAMPLE_RATE).process(&mono);
        let posteriors = basic_pitch.run(&samples).map_err(|e| e.to_string())?;
        let spectrum = mel::log_mel(&samples);
        let available = posteriors.frames.min(spectrum.len() / mel::BANDS);
        for k in 0..token_frames(samples.len(), args.frame_rate) {
            if available == 0 {
                break;
            }
            let range = model_frames(k, args.frame_rate, available);
            semantic.push(features::semantic(&posteriors, range.clone()));
            acoustic.push(features::acoustic(&spectrum, range));
        }
        eprintln!("{}: {:.1} s", file.display(), audio.seconds());
    }
    eprintln!("fitting on {} frames", semantic.len());
    let semantic_family = fit_family(&semantic, args.seed)?;
    let acoustic_family = fit_family(&acoustic, args.seed + 1)?;
    let semantic_norm = (semantic
        .iter()
        .map(|f| {
            semantic_family
                .project(f)
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt()
        })
        .sum::<f64>()
        / semantic.len() as f64) as f32;
    let books = Codebooks {
        id: args.id,
        sha256: String::new(),
        semantic: semantic_family,
        acoustic: acoustic_family,
        semantic_norm,
    };
    super::listen::write_file(&args.out, &books.to_bytes()?)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
