//! `latent-choir listen AUDIO…`: audio → an NDJSON stream of semantic and acoustic tokens per
//! frame (README.md, "Listen"), with the notes as MIDI, a JSON report and a picture on request.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use latent_choir::io::output_file::PendingFile;
use latent_choir::listen::input::{self, MonoInput};
use latent_choir::listen::stream::{self, StreamHeader, StreamOptions};
use latent_choir::listen::{Heard, Tokenizer, plot, runtime, transcription};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Audio files (WAV, FLAC, MP3, Ogg); none or `-` reads standard input, where several files
    /// may be separated by the ASCII FS byte (0x1C).
    inputs: Vec<String>,
    /// Write the stream here (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Token frames per second (at most 86.13, Basic Pitch's frame rate).
    #[arg(long, default_value_t = 10.0)]
    frame_rate: f64,
    /// A keyframe (every token written) at least every N frames; 0: only the first.
    #[arg(long, default_value_t = 10)]
    keyframe_every: usize,
    /// Between keyframes, write only the tokens that changed.
    #[arg(long)]
    delta: bool,
    /// Collapse runs of identical frames into one line with a count ("n").
    #[arg(long)]
    rle: bool,
    /// The transcription as a Standard MIDI File (with several inputs: NAME-1.mid, NAME-2.mid…).
    #[arg(long)]
    midi: Option<PathBuf>,
    /// Leave Basic Pitch's pitch bends out of the MIDI file.
    #[arg(long)]
    no_pitch_bends: bool,
    /// A JSON report: per input the notes, key and token statistics, and the speed.
    #[arg(long)]
    json_report: Option<PathBuf>,
    /// A PNG of the token layers and the transcription.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Another ONNX audio encoder for the semantic tokens (conventions: README.md, "Listen").
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// Seeds the random projection of an --encoder model's features (nothing else is random).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// ONNX Runtime threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

pub fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    let inputs = read_inputs(&args.inputs)?;
    let basic_pitch = runtime::basic_pitch_path().ok_or("neither XDG_DATA_HOME nor HOME is set")?;
    let mut tokenizer = Tokenizer::new(
        &basic_pitch,
        args.encoder.as_deref().map(|path| (path, args.seed)),
        args.frame_rate,
        args.threads,
    )
    .map_err(|e| e.to_string())?;
    let options = StreamOptions {
        keyframe_every: args.keyframe_every,
        delta: args.delta,
        rle: args.rle,
    };
    let semantic_encoder = match &args.encoder {
        None => json!({
            "name": "basic-pitch-icassp2022",
            "file": runtime::BASIC_PITCH_FILE,
            "sha256": sha256_file(&basic_pitch)?,
            "runtime": format!("onnxruntime {}", runtime::ONNX_RUNTIME_VERSION),
            "features": "note mean, onset max, contour mean per semitone (3 × 88), PCA to 16",
        }),
        Some(path) => json!({
            "name": path.file_stem().map(|s| s.to_string_lossy().into_owned()),
            "file": path.file_name().map(|s| s.to_string_lossy().into_owned()),
            "sha256": sha256_file(path)?,
            "runtime": format!("onnxruntime {}", runtime::ONNX_RUNTIME_VERSION),
            "sample_rate": tokenizer.custom_sample_rate(),
            "features": format!("frame means, Gaussian random projection to 16 (seed {})", args.seed),
        }),
    };

    let mut out: Vec<u8> = Vec::new();
    let mut reports = Vec::new();
    let several = inputs.len() > 1;
    let mut audio_seconds = 0.0;
    for (index, input) in inputs.iter().enumerate() {
        let began = Instant::now();
        let heard = tokenizer
            .listen(&input.samples, input.sample_rate)
            .map_err(|e| format!("{}: {e}", input.name))?;
        let seconds = began.elapsed().as_secs_f64();
        audio_seconds += heard.seconds;
        let header = StreamHeader {
            frame_rate: args.frame_rate,
            semantic_encoder: semantic_encoder.clone(),
            codebooks_id: tokenizer.codebooks().id.clone(),
            codebooks_sha256: tokenizer.codebooks().sha256.clone(),
            input: json!({
                "name": input.name,
                "duration_s": (input.samples.len() as f64 / f64::from(input.sample_rate.max(1)) * 1000.0).round() / 1000.0,
                "sha256": input.sha256,
                "sample_rate": input.sample_rate,
                "channels": input.channels,
                "raw_pcm": input.raw_pcm,
            }),
        };
        stream::write(&mut out, &header, &heard, &options, seconds).map_err(|e| e.to_string())?;
        let numbered = |path: &Path| numbered(path, several.then_some(index + 1));
        if let Some(path) = &args.midi {
            write_file(
                &numbered(path),
                &transcription::midi_bytes(&heard.notes, !args.no_pitch_bends),
            )?;
        }
        if let Some(path) = &args.plot {
            write_file(&numbered(path), &plot::png_bytes(&heard)?)?;
        }
        reports.push(report(input, &heard, seconds));
    }
    match &args.out {
        Some(path) => write_file(path, &out)?,
        None => std::io::stdout()
            .write_all(&out)
            .map_err(|e| format!("standard output: {e}"))?,
    }
    if let Some(path) = &args.json_report {
        let total = started.elapsed().as_secs_f64();
        let report = json!({
            "tool": format!("latent-choir {}", env!("CARGO_PKG_VERSION")),
            "codebooks": tokenizer.codebooks().id,
            "frame_rate": args.frame_rate,
            "inputs": reports,
            "audio_s": (audio_seconds * 1000.0).round() / 1000.0,
            "run_time_s": (total * 1000.0).round() / 1000.0,
            "real_time_factor": (audio_seconds / total.max(1e-9) * 10.0).round() / 10.0,
        });
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        write_file(path, text.as_bytes())?;
    }
    Ok(())
}

fn read_inputs(names: &[String]) -> Result<Vec<MonoInput>, String> {
    let mut warn = |message: String| eprintln!("warning: {message}");
    let mut inputs = Vec::new();
    if names.is_empty() || names == ["-"] {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("standard input: {e}"))?;
        let files = input::split_piped(&bytes);
        if files.is_empty() {
            return Err("standard input: the input holds no audio".into());
        }
        for (i, file) in files.into_iter().enumerate() {
            let name = format!("stdin#{}", i + 1);
            inputs.push(input::decode(&name, file.to_vec(), &mut warn).map_err(|e| e.to_string())?);
        }
    } else {
        for name in names {
            let bytes = std::fs::read(name).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!("{name}: no such file"),
                _ => format!("{name}: cannot read: {e}"),
            })?;
            inputs.push(input::decode(name, bytes, &mut warn).map_err(|e| e.to_string())?);
        }
    }
    Ok(inputs)
}

fn report(input: &MonoInput, heard: &Heard, seconds: f64) -> serde_json::Value {
    json!({
        "name": input.name,
        "duration_s": (heard.seconds * 1000.0).round() / 1000.0,
        "frames": heard.frames.len(),
        "key": heard.key.as_ref().map(stream::key_json),
        "notes": heard.notes.iter().map(|n| json!({
            "start": (n.start * 1000.0).round() / 1000.0,
            "end": (n.end * 1000.0).round() / 1000.0,
            "pitch": n.pitch,
            "velocity": ((127.0 * n.amplitude).round() as i32).clamp(1, 127),
        })).collect::<Vec<_>>(),
        "run_time_s": (seconds * 1000.0).round() / 1000.0,
        "real_time_factor": (heard.seconds / seconds.max(1e-9) * 10.0).round() / 10.0,
    })
}

/// `song.mid` → `song-2.mid` when there are several inputs.
fn numbered(path: &Path, index: Option<usize>) -> PathBuf {
    let Some(index) = index else {
        return path.to_path_buf();
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{index}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{index}"),
    };
    path.with_file_name(name)
}

pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let pending = PendingFile::new(path).map_err(|e| e.to_string())?;
    std::fs::write(pending.temp(), bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    pending.commit().map(|_| ()).map_err(|e| e.to_string())
}

fn sha256_file(path: &Path) -> Result<String, String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
