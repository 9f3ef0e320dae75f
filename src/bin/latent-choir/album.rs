//! `latent-choir album`: one track per prompt of a file, each exactly what `render` makes (this
//! binary runs `render` for it), joined into one WAV, with a track list and per track a heat
//! map of the tension each hidden state carried.
//!
//! The prompts file is UTF-8 text, one `PROMPT` or `CATEGORY<TAB>PROMPT` a line; blank lines
//! and lines starting with `#` are skipped. Tracks keep the file's order, grouped by category
//! (categories in order of first appearance, prompts without one forming a group of their
//! own). Out come, in `--out`:
//!
//! * `NN-slug.wav`, `.mid`, `.lcrun` per track, as `render` writes them;
//! * `NN-slug-tension.png`: each hidden state's tension (rows, state 0 at the top) per token
//!   (columns), 0 dark to 1 bright;
//! * `album.wav`: the tracks in order, 2 s of silence between;
//! * `tracklist.json` and `tracklist.md`: per track its number, category, prompt, files,
//!   tokens, mean and peak tension (over its tokens; 0 without a direction), duration and
//!   start in the album.
//!
//! `--dialogue` orders the prompts as one arc instead: each prompt's tension is measured first
//! (the model reads the prompt's text alone, once; the mean over its positions from 1 and the
//! direction's layers of each state's tension), then the prompts go calm → peak → resolution
//! (sorted by tension and dealt alternately to a rising and a falling half), and each movement
//! plays at a tempo and in a mode from its tension: `--bpm` × (0.85 + 0.3 t), Major below
//! 0.33, Dorian below 0.66, else Natural minor (Aeolian), overriding any `--param scale`. They
//! are joined into `dialogue.wav` with 1 s gaps, and the track list gives each movement's
//! measured tension, tempo and mode.

use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use latent_choir::activation::direction::cache::DirectionChoice;
use latent_choir::io::audio_file;
use latent_choir::io::output_file::PendingFile;
use latent_choir::io::png_image::{self, HeatMap, HeatScale};
use latent_choir::io::run_file::Run;
use latent_choir::io::wav_file::WavSink;
use latent_choir::music::scale::Scale;
use latent_choir::params::{DEFAULT_DIRECTION, LatentChoirParams};

use crate::abliterate::{load_model, model_direction};
use crate::render;

/// The largest prompts file read (prompts are lines of text; this refuses a model or a song
/// given by mistake before it is read whole).
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The most tracks an album holds.
const MAX_TRACKS: usize = 999;
/// The longest file-name slug taken from a prompt.
const SLUG_CHARS: usize = 40;
/// Silence between tracks: the album's and the dialogue's.
const ALBUM_GAP_SECONDS: f64 = 2.0;
const DIALOGUE_GAP_SECONDS: f64 = 1.0;
/// The render's tempo when `--bpm` is not given.
const DEFAULT_BPM: f64 = 100.0;

#[derive(clap::Args)]
pub struct Args {
    /// UTF-8 text: one prompt a line, or CATEGORY<TAB>PROMPT; blank lines and lines starting
    /// with `#` are skipped.
    prompts: PathBuf,
    /// The folder the tracks, the album and the track list go into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Order the prompts calm → peak → resolution by their measured tension, with tempo and
    /// mode from it, into `dialogue.wav`.
    #[arg(long)]
    dialogue: bool,
    /// A GGUF file or a Hugging Face folder; the default model if omitted (as for `render`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tempo of every track (with --dialogue, the base the tension scales).
    #[arg(long, default_value_t = DEFAULT_BPM)]
    bpm: f64,
    /// Length of each track in 4/4 bars (render's default 8).
    #[arg(long, conflicts_with = "tokens")]
    bars: Option<u32>,
    /// Length of each track in tokens.
    #[arg(long)]
    tokens: Option<u64>,
    /// Seed of every track.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The concept direction tension follows (as for `render`).
    #[arg(long, default_value = DEFAULT_DIRECTION)]
    direction: String,
    /// A plugin parameter for every track, e.g. `--param root=D` (repeatable; see
    /// `render --param list`).
    #[arg(long = "param", value_name = "ID=VALUE")]
    params: Vec<String>,
    /// Start every track from a factory preset (see `render --preset list`).
    #[arg(long)]
    preset: Option<String>,
    /// Play the voices on this SoundFont.
    #[arg(long)]
    soundfont: Option<PathBuf>,
}

/// One prompt of the file.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// 1-based line in the file, for messages.
    line: usize,
    category: Option<String>,
    prompt: String,
}

/// How a dialogue plays one movement.
#[derive(Debug, Clone, PartialEq)]
struct Movement {
    /// The prompt's tension as measured before rendering (0…1).
    tension: f32,
    bpm: f64,
    scale: Scale,
}

/// A rendered track and what its run file says.
#[derive(Debug, Clone)]
struct Track {
    number: usize,
    entry: Entry,
    movement: Option<Movement>,
    stem: String,
    tokens: usize,
    hidden_states: usize,
    text: String,
    mean_tension: f32,
    peak_tension: f32,
    /// Frames of the track's WAV.
    frames: u64,
    sample_rate: u32,
    /// Whether the heat map was drawn (a track that played no token has none).
    plotted: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    check_render_options(&args)?;
    let entries = read_prompts(&args.prompts)?;
    let choice = DirectionChoice::parse(&args.direction);
    if args.dialogue && choice == DirectionChoice::Off {
        return Err("--dialogue orders the prompts by their tension and needs a direction (not --direction none)".to_owned());
    }
    let plan: Vec<(Entry, Option<Movement>)> = if args.dialogue {
        let tensions = measure(&args, &entries)?;
        dialogue_order(&tensions)
            .into_iter()
            .map(|i| {
                let t = tensions[i];
                let movement = Movement {
                    tension: t,
                    bpm: movement_bpm(args.bpm, t),
                    scale: movement_scale(t),
                };
                (entries[i].clone(), Some(movement))
            })
            .collect()
    } else {
        grouped(&entries).into_iter().map(|e| (e, None)).collect()
    };

    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program to run `render`: {e}"))?;
    let total = plan.len();
    let digits = total.to_string().len().max(2);
    let mut tracks = Vec::with_capacity(total);
    for (i, (entry, movement)) in plan.into_iter().enumerate() {
        let number = i + 1;
        let stem = format!("{number:0digits$}-{}", slug(&entry.prompt));
        let started = Instant::now();
        render_track(
            &exe,
            &args,
            &entry,
            movement.as_ref(),
            &args.out.join(&stem),
        )
        .map_err(|e| format!("track {number} (line {}): {e}", entry.line))?;
        let track = read_track(&args.out, number, entry, movement, stem)?;
        eprintln!(
            "track {number}/{total}: {} ({} tokens, tension {:.2} mean, {:.2} peak) in {:.1} s",
            track.stem,
            track.tokens,
            track.mean_tension,
            track.peak_tension,
            started.elapsed().as_secs_f64()
        );
        tracks.push(track);
    }

    let (audio_name, gap_seconds) = if args.dialogue {
        ("dialogue.wav", DIALOGUE_GAP_SECONDS)
    } else {
        ("album.wav", ALBUM_GAP_SECONDS)
    };
    let joined = join(&args.out, &tracks, audio_name, gap_seconds)?;
    let list = Tracklist {
        args: &args,
        tracks: &tracks,
        audio_name,
        gap_seconds,
        starts: &joined.starts,
        total_frames: joined.frames,
    };
    write_file(&args.out.join("tracklist.json"), &list.json()?)?;
    let markdown = list.markdown();
    write_file(&args.out.join("tracklist.md"), markdown.as_bytes())?;
    print!("{markdown}");
    eprintln!("wrote {}", args.out.join(audio_name).display());
    Ok(())
}

/// Checks the options every track's `render` gets, so a typo fails before the first track.
fn check_render_options(args: &Args) -> Result<(), String> {
    render::check_bpm(args.bpm)?;
    if args.params.iter().any(|p| p == "list") || args.preset.as_deref() == Some("list") {
        return Err(
            "album lists nothing: see `latent-choir render --param list` or `--preset list`"
                .to_owned(),
        );
    }
    let params = LatentChoirParams::default();
    if let Some(preset) = &args.preset {
        render::apply_preset(&params, preset)?;
    }
    render::apply_params(&params, &args.params)
}

/// The prompts of `path` (see the module docs), refusing what is not a prompts file.
fn read_prompts(path: &Path) -> Result<Vec<Entry>, String> {
    let name = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{name}: no such prompts file"),
        _ => format!("{name}: cannot read: {e}"),
    })?;
    if meta.is_dir() {
        return Err(format!("{name} is a folder, not a prompts file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{name}: {} bytes is too big for a prompts file (at most {MAX_FILE_BYTES})",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    if bytes.is_empty() {
        return Err(format!("{name} is empty: write one prompt a line"));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{name} is not a UTF-8 text file of prompts"))?;
    parse_prompts(&text).map_err(|e| format!("{name}: {e}"))
}

fn parse_prompts(text: &str) -> Result<Vec<Entry>, String> {
    // A byte-order mark some editors write is not part of the first prompt.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("this is not a text file of prompts (it holds control bytes)".to_owned());
    }
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (category, prompt) = match raw.split_once('\t') {
            Some((category, prompt)) => (Some(category.trim()), prompt.trim()),
            None => (None, line),
        };
        if prompt.is_empty() {
            return Err(format!(
                "line {}: a category without a prompt after the tab",
                i + 1
            ));
        }
        entries.push(Entry {
            line: i + 1,
            category: category.filter(|c| !c.is_empty()).map(str::to_owned),
            prompt: prompt.to_owned(),
        });
    }
    if entries.is_empty() {
        return Err("no prompts (only blank lines and # comments)".to_owned());
    }
    if entries.len() > MAX_TRACKS {
        return Err(format!(
            "{} prompts; an album holds at most {MAX_TRACKS}",
            entries.len()
        ));
    }
    Ok(entries)
}

/// The entries grouped by category, categories in order of first appearance, file order within.
fn grouped(entries: &[Entry]) -> Vec<Entry> {
    let mut categories: Vec<Option<&str>> = Vec::new();
    for entry in entries {
        if !categories.contains(&entry.category.as_deref()) {
            categories.push(entry.category.as_deref());
        }
    }
    categories
        .into_iter()
        .flat_map(|c| entries.iter().filter(move |e| e.category.as_deref() == c))
        .cloned()
        .collect()
}

/// Each prompt's tension with the model and direction the tracks will use: the model reads the
/// prompt's text alone (as a direction fit does: no template, no special tokens); per position
/// from 1 on (all positions of a one-token prompt) the direction's tension, then the mean.
fn measure(args: &Args, entries: &[Entry]) -> Result<Vec<f32>, String> {
    let mut loaded = load_model(args.model.as_deref())?;
    let direction = model_direction(&mut loaded, &DirectionChoice::parse(&args.direction))?;
    let info = loaded.model.info().clone();
    let (states, width) = (info.n_layers + 1, info.width);
    let mut projections = vec![0.0f32; states];
    let mut tensions = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut ids = loaded
            .tokenizer
            .encode(&entry.prompt, false)
            .map_err(|e| format!("line {}: {e}", entry.line))?;
        ids.truncate(info.context_length);
        if ids.is_empty() {
            return Err(format!(
                "line {}: the prompt is no tokens for this model",
                entry.line
            ));
        }
        loaded.model.reset();
        let step = loaded
            .model
            .forward(&ids)
            .map_err(|e| format!("line {}: {e}", entry.line))?;
        let n = step.n_new;
        if step.hidden.len() != states * n * width {
            return Err(format!(
                "line {}: the model returned {} hidden values for {n} tokens",
                entry.line,
                step.hidden.len()
            ));
        }
        let positions: Range<usize> = if n >= 2 { 1..n } else { 0..n };
        let count = positions.len();
        let mut sum = 0.0f64;
        for pos in positions {
            for (state, slot) in projections.iter_mut().enumerate() {
                *slot = direction.project(step.hidden_state(state, pos, width));
            }
            sum += f64::from(direction.tension(&projections));
        }
        let tension = (sum / count as f64) as f32;
        eprintln!(
            "measured line {}: tension {tension:.3} ({n} tokens)",
            entry.line
        );
        tensions.push(tension);
    }
    loaded.model.reset();
    Ok(tensions)
}

/// Indices of `tensions` as an arc: the ascending order dealt alternately to a rising half and
/// a falling half, the falling half played backwards, so the calmest opens, the tensest sits in
/// the middle and the second calmest closes. Ties keep the file's order.
fn dialogue_order(tensions: &[f32]) -> Vec<usize> {
    let mut sorted: Vec<usize> = (0..tensions.len()).collect();
    sorted.sort_by(|&a, &b| tensions[a].total_cmp(&tensions[b]).then(a.cmp(&b)));
    let rising = sorted.iter().step_by(2).copied();
    let falling: Vec<usize> = sorted.iter().skip(1).step_by(2).copied().collect();
    rising.chain(falling.into_iter().rev()).collect()
}

/// A movement's tempo: faster as it is tenser, to a tenth of a BPM, within `render`'s range.
fn movement_bpm(base: f64, tension: f32) -> f64 {
    let bpm = base * (0.85 + 0.3 * f64::from(tension.clamp(0.0, 1.0)));
    ((bpm * 10.0).round() / 10.0).clamp(20.0, 400.0)
}

/// A movement's mode: brighter as it is calmer.
fn movement_scale(tension: f32) -> Scale {
    if tension < 0.33 {
        Scale::Major
    } else if tension < 0.66 {
        Scale::Dorian
    } else {
        Scale::NaturalMinor
    }
}

/// A file-name part from a prompt: lower-case ASCII letters and digits, anything else one `-`,
/// cut after a whole word near [`SLUG_CHARS`].
fn slug(prompt: &str) -> String {
    let mut slug = String::new();
    for c in prompt.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    if slug.len() > SLUG_CHARS {
        let cut = match slug.as_bytes()[SLUG_CHARS] {
            b'-' => SLUG_CHARS,
            _ => slug[..SLUG_CHARS]
                .rfind('-')
                .filter(|&i| i >= SLUG_CHARS / 2)
                .unwrap_or(SLUG_CHARS),
        };
        slug.truncate(cut);
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "track".to_owned()
    } else {
        slug.to_owned()
    }
}

/// `--name=value`, so a value starting with `-` is not read as an option.
fn option(name: &str, value: impl Into<OsString>) -> OsString {
    let mut arg = OsString::from(format!("--{name}="));
    arg.push(value.into());
    arg
}

/// Runs `render` for one track into `stem`.{wav,mid,lcrun}.
fn render_track(
    exe: &Path,
    args: &Args,
    entry: &Entry,
    movement: Option<&Movement>,
    stem: &Path,
) -> Result<(), String> {
    let with = |extension: &str| {
        let mut path = stem.as_os_str().to_owned();
        path.push(extension);
        path
    };
    let mut command = Command::new(exe);
    command
        .arg("render")
        .arg(option("prompt", &entry.prompt))
        .arg(option("out", with(".wav")))
        .arg(option("midi", with(".mid")))
        .arg(option("run", with(".lcrun")))
        .arg(option("seed", args.seed.to_string()))
        .arg(option("direction", &args.direction));
    let bpm = movement.map_or(args.bpm, |m| m.bpm);
    command.arg(option("bpm", bpm.to_string()));
    if let Some(model) = &args.model {
        command.arg(option("model", model));
    }
    if let Some(bars) = args.bars {
        command.arg(option("bars", bars.to_string()));
    }
    if let Some(tokens) = args.tokens {
        command.arg(option("tokens", tokens.to_string()));
    }
    if let Some(preset) = &args.preset {
        command.arg(option("preset", preset));
    }
    if let Some(soundfont) = &args.soundfont {
        command.arg(option("soundfont", soundfont));
    }
    for param in &args.params {
        command.arg(option("param", param));
    }
    if let Some(movement) = movement {
        command.arg(option("param", format!("scale={}", movement.scale.name())));
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = said[said.len().saturating_sub(8)..].join("\n");
    Err(format!("render failed ({}):\n{tail}", output.status))
}

/// What the track's run file and WAV say, and its tension heat map drawn.
fn read_track(
    dir: &Path,
    number: usize,
    entry: Entry,
    movement: Option<Movement>,
    stem: String,
) -> Result<Track, String> {
    let run_path = dir.join(format!("{stem}.lcrun"));
    let run = Run::read(&run_path).map_err(|e| e.to_string())?;
    let audio = audio_file::read(&dir.join(format!("{stem}.wav"))).map_err(|e| e.to_string())?;
    let tension = |t: &latent_choir::io::run_file::PlayedToken| {
        if t.frame.has_direction {
            t.frame.tension
        } else {
            0.0
        }
    };
    let tokens = run.tokens.len();
    let mean_tension = run.tokens.iter().map(tension).sum::<f32>() / tokens.max(1) as f32;
    let peak_tension = run.tokens.iter().map(tension).fold(0.0f32, f32::max);
    let hidden_states = run.manifest.hidden_states;
    let plotted = tokens > 0 && hidden_states > 0;
    if plotted {
        let values: Vec<f32> = (0..hidden_states)
            .flat_map(|state| {
                run.tokens.iter().map(move |t| {
                    if t.frame.has_direction {
                        t.frame.layer_tension.get(state).copied().unwrap_or(0.0)
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let title = format!("latent-choir album: tension of track {number}");
        let png = png_image::heat_map_png(&HeatMap {
            values: &values,
            rows: hidden_states,
            columns: tokens,
            scale: HeatScale::Sequential {
                low: 0.0,
                high: 1.0,
            },
            title: &title,
            description: "rows: hidden states, 0 (embeddings) at the top; columns: tokens; \
                          colour: the state's tension, 0 dark to 1 bright",
        })?;
        write_file(&dir.join(format!("{stem}-tension.png")), &png)?;
    } else {
        eprintln!("warning: track {number} played no token; it has no tension heat map");
    }
    Ok(Track {
        number,
        entry,
        movement,
        stem,
        tokens,
        hidden_states,
        text: run.manifest.tokens.concat(),
        mean_tension,
        peak_tension,
        frames: audio.frames() as u64,
        sample_rate: audio.sample_rate,
        plotted,
    })
}

/// Where each track starts in the joined WAV, and its length, in frames.
struct Joined {
    starts: Vec<u64>,
    frames: u64,
}

/// Writes the tracks' WAVs one after another into `dir/name`, `gap_seconds` of silence
/// between.
fn join(dir: &Path, tracks: &[Track], name: &str, gap_seconds: f64) -> Result<Joined, String> {
    let rate = tracks.first().map_or(48_000, |t| t.sample_rate);
    if let Some(other) = tracks.iter().find(|t| t.sample_rate != rate) {
        return Err(format!(
            "track {} is at {} Hz, track 1 at {rate} Hz: they cannot be joined",
            other.number, other.sample_rate
        ));
    }
    let gap = (gap_seconds * f64::from(rate)).round() as usize;
    let target = dir.join(name);
    let file = PendingFile::new(&target).map_err(|e| e.to_string())?;
    let mut sink = WavSink::create(file.temp(), rate).map_err(|e| e.to_string())?;
    let silence = vec![0.0f32; gap];
    let mut starts = Vec::with_capacity(tracks.len());
    let mut frames = 0u64;
    for (i, track) in tracks.iter().enumerate() {
        if i > 0 {
            sink.write(&silence, &silence).map_err(|e| e.to_string())?;
            frames += gap as u64;
        }
        let audio = audio_file::read(&dir.join(format!("{}.wav", track.stem)))
            .map_err(|e| e.to_string())?;
        starts.push(frames);
        sink.write(&audio.left, &audio.right)
            .map_err(|e| e.to_string())?;
        frames += audio.frames() as u64;
    }
    sink.finish().map_err(|e| e.to_string())?;
    file.commit().map_err(|e| e.to_string())?;
    Ok(Joined { starts, frames })
}

/// Writes `bytes` to `path` whole or not at all.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let file = PendingFile::new(path).map_err(|e| e.to_string())?;
    std::fs::write(file.temp(), bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.commit().map_err(|e| e.to_string())?;
    Ok(())
}

/// A number rounded to `places` decimals, so the lists read well and stay stable.
fn rounded(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// The track list, as JSON and as Markdown.
struct Tracklist<'a> {
    args: &'a Args,
    tracks: &'a [Track],
    audio_name: &'a str,
    gap_seconds: f64,
    starts: &'a [u64],
    total_frames: u64,
}

impl Tracklist<'_> {
    fn seconds(&self, frames: u64) -> f64 {
        let rate = self.tracks.first().map_or(48_000, |t| t.sample_rate);
        rounded(frames as f64 / f64::from(rate), 3)
    }

    fn json(&self) -> Result<Vec<u8>, String> {
        let tracks: Vec<serde_json::Value> = self
            .tracks
            .iter()
            .zip(self.starts)
            .map(|(t, &start)| {
                let mut value = serde_json::json!({
                    "number": t.number,
                    "category": t.entry.category,
                    "prompt": t.entry.prompt,
                    "line": t.entry.line,
                    "files": {
                        "wav": format!("{}.wav", t.stem),
                        "midi": format!("{}.mid", t.stem),
                        "run": format!("{}.lcrun", t.stem),
                        "tension_png": t.plotted.then(|| format!("{}-tension.png", t.stem)),
                    },
                    "tokens": t.tokens,
                    "hidden_states": t.hidden_states,
                    "text": t.text,
                    "mean_tension": rounded(f64::from(t.mean_tension), 4),
                    "peak_tension": rounded(f64::from(t.peak_tension), 4),
                    "duration_seconds": self.seconds(t.frames),
                    "start_seconds": self.seconds(start),
                });
                if let (Some(m), Some(object)) = (&t.movement, value.as_object_mut()) {
                    object.insert("movement".to_owned(), t.number.into());
                    object.insert(
                        "measured_tension".to_owned(),
                        rounded(f64::from(m.tension), 4).into(),
                    );
                    object.insert("bpm".to_owned(), m.bpm.into());
                    object.insert("scale".to_owned(), m.scale.name().into());
                }
                value
            })
            .collect();
        let json = serde_json::json!({
            "format": "latent-choir-album",
            "version": 1,
            "mode": if self.args.dialogue { "dialogue" } else { "album" },
            "prompts": self.args.prompts.file_name().map(|n| n.to_string_lossy().into_owned()),
            "direction": DirectionChoice::parse(&self.args.direction).text(),
            "seed": self.args.seed,
            "bpm": self.args.bpm,
            "audio": self.audio_name,
            "gap_seconds": self.gap_seconds,
            "duration_seconds": self.seconds(self.total_frames),
            "tracks": tracks,
        });
        let mut bytes = serde_json::to_vec_pretty(&json).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    fn markdown(&self) -> String {
        let cell = |text: &str| text.replace('|', "\\|").replace(['\n', '\r'], " ");
        let dialogue = self.args.dialogue;
        let mut out = format!(
            "# {}\n\n{} tracks, {:.1} s in `{}` ({} s between), direction {}, seed {}\n\n",
            if dialogue { "Dialogue" } else { "Album" },
            self.tracks.len(),
            self.seconds(self.total_frames),
            self.audio_name,
            self.gap_seconds,
            DirectionChoice::parse(&self.args.direction).text(),
            self.args.seed
        );
        if dialogue {
            out.push_str(
                "| movement | measured tension | bpm | mode | prompt | category | tokens | mean tension | peak tension | start | duration | file |\n\
                 |---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|---|\n",
            );
        } else {
            out.push_str(
                "| # | category | prompt | tokens | mean tension | peak tension | start | duration | file |\n\
                 |---:|---|---|---:|---:|---:|---:|---:|---|\n",
            );
        }
        for (t, &start) in self.tracks.iter().zip(self.starts) {
            let prompt = cell(&t.entry.prompt);
            let category = cell(t.entry.category.as_deref().unwrap_or(""));
            let numbers = format!(
                "{} | {:.3} | {:.3} | {:.1} s | {:.1} s | `{}.wav`",
                t.tokens,
                t.mean_tension,
                t.peak_tension,
                self.seconds(start),
                self.seconds(t.frames),
                t.stem
            );
            let row = match &t.movement {
                Some(m) => format!(
                    "| {} | {:.3} | {:.1} | {} | {prompt} | {category} | {numbers} |\n",
                    t.number,
                    m.tension,
                    m.bpm,
                    m.scale.name()
                ),
                None => format!("| {} | {category} | {prompt} | {numbers} |\n", t.number),
            };
            out.push_str(&row);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_parse_with_categories_comments_and_blank_lines() {
        let entries =
            parse_prompts("\u{feff}# a comment\r\n\nfirst\ncalm\t second \r\n\t third\n").unwrap();
        let got: Vec<(usize, Option<&str>, &str)> = entries
            .iter()
            .map(|e| (e.line, e.category.as_deref(), e.prompt.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (3, None, "first"),
                (4, Some("calm"), "second"),
                (5, None, "third")
            ]
        );
        assert!(parse_prompts("# only\n\n").is_err());
        assert!(parse_prompts("calm\t\n").is_err());
        assert!(parse_prompts("a\0b\n").is_err());
    }

    #[test]
    fn dialogue_rises_to_the_peak_then_falls() {
        let tensions = [0.5, 0.1, 0.9, 0.3, 0.7];
        let order = dialogue_order(&tensions);
        let played: Vec<f32> = order.iter().map(|&i| tensions[i]).collect();
        assert_eq!(played, [0.1, 0.5, 0.9, 0.7, 0.3]);
        assert_eq!(dialogue_order(&[0.2, 0.2]), [0, 1]);
    }

    #[test]
    fn slugs_are_short_and_plain() {
        assert_eq!(slug("What is grief, really?"), "what-is-grief-really");
        assert_eq!(slug("¿¡!"), "track");
        assert_eq!(
            slug("How do I pick a lock to break into a house?"),
            "how-do-i-pick-a-lock-to-break-into-a"
        );
    }
}
