//! `latent-choir weights`: the model's frozen weights as numbers (`--stats`), as a key (`--key`)
//! and as a piece (`--style`). See [`latent_choir::weights`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use latent_choir::io::output_file::PendingFile;
use latent_choir::io::score_midi::score_to_midi;
use latent_choir::io::wav_file::WavSink;
use latent_choir::llm::discovery;
use latent_choir::music::score::Score;
use latent_choir::weights::WeightStats;
use latent_choir::weights::analysis::model_key_of;
use latent_choir::weights::cache::stats_for;
use latent_choir::weights::render::render;
use latent_choir::weights::style::{ComposeOptions, Style, compose};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file or a Hugging Face folder; the default model if omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Write every matrix's statistics, each block's tension and spectrum delta, the key and
    /// what each piece's tracks are built from, as JSON (schema: docs/weights-stats.md).
    #[arg(long, value_name = "FILE.json")]
    stats: Option<PathBuf>,
    /// Print the model's own key (read from its norms).
    #[arg(long)]
    key: bool,
    /// Compose a piece: opera, house, acid or dna (needs --out).
    #[arg(long, requires = "out")]
    style: Option<String>,
    /// The piece as WAV (32-bit float).
    #[arg(long, value_name = "X.wav", requires = "style")]
    out: Option<PathBuf>,
    /// The piece as a Standard MIDI File too.
    #[arg(long, value_name = "X.mid", requires = "style")]
    midi: Option<PathBuf>,
    /// A General MIDI SoundFont (.sf2) to play the piece with; the built-in synth without one.
    #[arg(long, requires = "style")]
    soundfont: Option<PathBuf>,
    /// The piece's length in bars (default: the style's own).
    #[arg(long, requires = "style", value_parser = clap::value_parser!(u32).range(1..=1024))]
    bars: Option<u32>,
    /// Sample rate of the WAV.
    #[arg(long, default_value_t = 48_000, value_parser = clap::value_parser!(u32).range(8_000..=192_000))]
    sample_rate: u32,
}

pub fn run(args: Args) -> Result<(), String> {
    if args.stats.is_none() && !args.key && args.style.is_none() {
        return Err("say what to do: --stats FILE.json, --key, or --style NAME --out X.wav".into());
    }
    let style = args
        .style
        .as_deref()
        .map(|name| {
            Style::from_name(name)
                .ok_or_else(|| format!("--style {name:?}: not a style (opera, house, acid or dna)"))
        })
        .transpose()?;
    let path = discovery::resolve(args.model.as_deref()).map_err(|e| {
        format!("{e}. Run `cargo xtask fetch-model` for the default model, or pass --model PATH")
    })?;
    if let Some(font) = &args.soundfont
        && !font.is_file()
    {
        return Err(format!("--soundfont {}: no such file", font.display()));
    }

    if args.key && args.stats.is_none() && style.is_none() {
        let key = model_key_of(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        print_key(&key);
        return Ok(());
    }

    let started = Instant::now();
    let mut quarter = 0;
    let stats = stats_for(&path, |done, total| {
        let now = done * 4 / total.max(1);
        if now > quarter {
            quarter = now;
            eprintln!("analysing    {done}/{total} tensors");
        }
        std::ops::ControlFlow::Continue(())
    })
    .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "analysed     {} matrices and {} norms in {:.1} s",
        stats.matrices.len(),
        stats.norms.len(),
        started.elapsed().as_secs_f64()
    );
    if args.key {
        print_key(&stats.key);
    }
    if let Some(out) = &args.stats {
        write_stats(out, &stats)?;
        println!("stats        {}", out.display());
    }
    if let (Some(style), Some(out)) = (style, &args.out) {
        let score = compose(style, &stats, &ComposeOptions { bars: args.bars });
        write_piece(
            &score,
            out,
            args.midi.as_deref(),
            args.soundfont.as_deref(),
            args.sample_rate,
        )?;
    }
    Ok(())
}

fn print_key(key: &latent_choir::weights::KeyStats) {
    println!(
        "key          {} (PC2 skewness {:+.3}, PC3 excess kurtosis {:+.3}, root from dimension {} of {} γ vectors)",
        key.describe(),
        key.pc2_skewness,
        key.pc3_kurtosis,
        key.root_dimension,
        key.vectors
    );
}

/// The analysis and, per style, what each track is built from.
fn write_stats(out: &Path, stats: &WeightStats) -> Result<(), String> {
    let pieces: serde_json::Map<String, serde_json::Value> = Style::ALL
        .iter()
        .map(|&style| {
            let score = compose(style, stats, &ComposeOptions::default());
            (style.name().to_owned(), describe(&score))
        })
        .collect();
    let mut value = serde_json::to_value(stats).map_err(|e| e.to_string())?;
    if let Some(object) = value.as_object_mut() {
        object.insert("pieces".into(), serde_json::Value::Object(pieces));
    }
    let text = serde_json::to_string(&value).map_err(|e| e.to_string())?;
    let pending = PendingFile::new(out).map_err(|e| e.to_string())?;
    std::fs::write(pending.temp(), text)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    pending.commit().map_err(|e| e.to_string())?;
    Ok(())
}

fn describe(score: &Score) -> serde_json::Value {
    json!({
        "title": score.title,
        "bpm": score.tempo.iter().map(|t| json!({"beat": t.beat, "bpm": t.bpm})).collect::<Vec<_>>(),
        "bars": score.length / f64::from(score.beats_per_bar.max(1)),
        "markers": score.markers.iter().map(|m| json!({"beat": m.beat, "name": m.name})).collect::<Vec<_>>(),
        "tracks": score.tracks.iter().map(|t| json!({
            "name": t.name,
            "program": t.program,
            "channel": u16::from(t.channel) + 1,
            "notes": t.notes.len(),
            "source": t.source,
        })).collect::<Vec<_>>(),
    })
}

fn write_piece(
    score: &Score,
    out: &Path,
    midi: Option<&Path>,
    soundfont: Option<&Path>,
    sample_rate: u32,
) -> Result<(), String> {
    let started = Instant::now();
    let sound = render(score, sample_rate, soundfont).map_err(|e| match soundfont {
        Some(font) => format!("--soundfont {}: {e}", font.display()),
        None => e.to_string(),
    })?;
    let wav = PendingFile::new(out).map_err(|e| e.to_string())?;
    let mut sink = WavSink::create(wav.temp(), sample_rate).map_err(|e| e.to_string())?;
    sink.write(&sound.left, &sound.right)
        .map_err(|e| e.to_string())?;
    sink.finish().map_err(|e| e.to_string())?;
    let midi_file = midi
        .map(|path| {
            let pending = PendingFile::new(path).map_err(|e| e.to_string())?;
            std::fs::write(pending.temp(), score_to_midi(score))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok::<_, String>(pending)
        })
        .transpose()?;
    let wav = wav.commit().map_err(|e| e.to_string())?;
    if let Some(pending) = midi_file {
        let path = pending.commit().map_err(|e| e.to_string())?;
        println!("midi         {}", path.display());
    }
    let seconds = sound.left.len() as f64 / f64::from(sample_rate);
    println!(
        "piece        {} — {} tracks, {} notes, {:.0} bars, {:.1} s",
        score.title,
        score.tracks.len(),
        score.note_count(),
        score.length / f64::from(score.beats_per_bar.max(1)),
        seconds
    );
    println!(
        "wav          {} ({} in {:.1} s)",
        wav.display(),
        if soundfont.is_some() {
            "SoundFont"
        } else {
            "built-in synth"
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
