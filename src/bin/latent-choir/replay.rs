//! `latent-choir replay RUN`: a render heard again without the model. The run file's frames
//! feed the same offline engine; with the recorded parameters the WAV and MIDI come out
//! byte-identical, and changed mapping parameters re-map the recorded coordinates.

use std::path::{Path, PathBuf};
use std::time::Instant;

use latent_choir::io::run_file::Run;
use latent_choir::offline::replay;
use latent_choir::params::text as param_text;

use crate::render::{self, Outputs};

#[derive(clap::Args)]
pub struct Args {
    /// A run file written by `latent-choir render`.
    run: PathBuf,
    /// The WAV (default: the run file's name with `.wav`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The MIDI file (default: next to --out, `.mid`).
    #[arg(long)]
    midi: Option<PathBuf>,
    /// Tempo (default: the render's).
    #[arg(long)]
    bpm: Option<f64>,
    /// Tokens per beat (default: the render's).
    #[arg(long)]
    tokens_per_beat: Option<f32>,
    /// Play the run with a factory preset's parameters instead of the recorded ones (by name
    /// or key); `--param` then changes them.
    #[arg(long)]
    preset: Option<String>,
    /// Change a parameter from the recorded value, by id (repeatable).
    #[arg(long = "param", value_name = "ID=VALUE")]
    params: Vec<String>,
    /// Play against this audio instead of the render's song.
    #[arg(long, conflicts_with = "no_song")]
    song: Option<PathBuf>,
    /// Leave out the render's song.
    #[arg(long)]
    no_song: bool,
    /// Play the voices on this SoundFont instead of the render's.
    #[arg(long)]
    soundfont: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), String> {
    let run = Run::read(&args.run).map_err(|e| e.to_string())?;
    let manifest = &run.manifest;
    let params =
        replay::recorded_params(&run).map_err(|e| format!("{}: {e}", args.run.display()))?;
    if let Some(name) = &args.preset {
        render::apply_preset(&params, name)?;
    }
    if render::list_params(&params, &args.params) {
        return Ok(());
    }
    render::apply_params(&params, &args.params)?;
    if let Some(per_beat) = args.tokens_per_beat {
        param_text::set(&params, "tokens_per_beat", &per_beat.to_string())
            .map_err(|e| format!("--tokens-per-beat: {e}"))?;
    }
    let bpm = args.bpm.unwrap_or(manifest.bpm);
    render::check_bpm(bpm)?;

    let song_path = match (&args.song, args.no_song, &manifest.song) {
        (Some(path), _, _) => Some(path.clone()),
        (None, true, _) | (None, false, None) => None,
        (None, false, Some(recorded)) => {
            let recorded = PathBuf::from(recorded);
            if !recorded.exists() {
                return Err(format!(
                    "the render's song {} is not there any more; pass --song AUDIO or --no-song",
                    recorded.display()
                ));
            }
            Some(recorded)
        }
    };
    let song = render::read_song(song_path.as_deref())?;
    let sample_rate = render::sample_rate(Some(manifest.sample_rate), song.as_ref())?;
    let soundfont_path = args
        .soundfont
        .clone()
        .or_else(|| manifest.soundfont.as_ref().map(PathBuf::from));
    let soundfont = render::load_soundfont(soundfont_path.as_deref(), sample_rate)?;

    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.with_extension("wav"));
    let midi = args
        .midi
        .clone()
        .unwrap_or_else(|| out.with_extension("mid"));
    if same_file(&out, &args.run) || same_file(&midi, &args.run) {
        return Err("the outputs would overwrite the run file".to_owned());
    }
    let outputs = Outputs::reserve_some(&out, &midi, None)?;

    let timeline = replay::timeline(&run, &params, bpm, sample_rate);
    let started = Instant::now();
    let text: String = run.tokens.iter().map(|t| t.frame.text()).collect();
    let (report, midi) = render::into_wav(
        &timeline,
        soundfont,
        song.as_ref(),
        &outputs,
        None,
        |surroundings| replay::replay(&run, &params, &timeline, surroundings),
    )?;
    let written = outputs.commit(midi, None)?;
    println!("{}", text.trim());
    render::summarize(&report, &timeline, started.elapsed(), &written);
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::path::absolute(a), std::path::absolute(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
