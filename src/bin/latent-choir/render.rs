//! `latent-choir render`: the plugin run offline. The real worker generates on its thread and
//! feeds the real queue, a simulated transport plays the grid, and the same mapping and synth
//! make the notes and the sound; out come a WAV, a MIDI file and a run file.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use latent_choir::activation::identify;
use latent_choir::io::WriteError;
use latent_choir::io::audio_file::{self, StereoAudio};
use latent_choir::io::midi_file::MidiRecorder;
use latent_choir::io::output_file::PendingFile;
use latent_choir::io::run_file::{self, Manifest, ModelRecord, NoteTrace, PlayedToken, Run};
use latent_choir::io::wav_file::WavSink;
use latent_choir::llm::discovery;
use latent_choir::music::BassMode;
use latent_choir::music::DRONE_SLOT;
use latent_choir::music::scale::key_name;
use latent_choir::offline::OfflineError;
use latent_choir::offline::recording::Recorder;
pub use latent_choir::offline::replay::track_names;
use latent_choir::offline::replay::{self, MIDI_TEMPO_TRACK, Surroundings};
use latent_choir::offline::timeline::{self as offline, OfflineEars, OfflineReport, Timeline};
use latent_choir::params::text as param_text;
use latent_choir::params::{
    DEFAULT_DIRECTION, LatentChoirParams, ScaleChoice, SessionSettings, TextSource, presets,
};
use latent_choir::playback::ear::ear;
use latent_choir::playback::player::FrameSource;
use latent_choir::plugin::listener::{ListenState, Listener};
use latent_choir::synth::SoundFontPlayer;
use latent_choir::weights::analysis::model_key_of;
use latent_choir::worker::control::ModelControl;
use latent_choir::worker::feed::OFFLINE_WAIT;
use latent_choir::worker::link::GateSettings;
use latent_choir::worker::thread::Command;

/// Beats per bar (the render's time signature is 4/4).
const BEATS_PER_BAR: f64 = 4.0;
/// The longest piece a render makes, in tokens.
const MAX_TOKENS: u64 = 100_000;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// What the model answers (as a chat message, as in the plugin).
    #[arg(long)]
    prompt: String,
    /// A second prompt played on the same grid with the same settings: two full renders
    /// (`X-a.*` and `X-b.*`: WAV, MIDI, run file) and `X.wav` with A on the left and B on the
    /// right, so the tenser answer is heard bringing in the organ and the chromatic notes.
    #[arg(long)]
    contrast: Option<String>,
    /// A GGUF file or a Hugging Face folder; the default model if omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Audio the piece is played against: metered for the temperature (as the plugin meters
    /// its track) and mixed into the output at the Input Thru level.
    #[arg(long)]
    song: Option<PathBuf>,
    /// Tempo of the simulated transport.
    #[arg(long, default_value_t = 100.0)]
    bpm: f64,
    /// Tokens per beat (the plugin's Tokens per Beat parameter).
    #[arg(long)]
    tokens_per_beat: Option<f32>,
    /// Length in 4/4 bars (default 8).
    #[arg(long, conflicts_with = "tokens")]
    bars: Option<u32>,
    /// Length in tokens (grid steps).
    #[arg(long)]
    tokens: Option<u64>,
    /// Seed of every random choice the model makes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The concept direction tension follows: none, refusal, doubt, grief (fitted for the
    /// model on first use, then cached) or a file from `fit-direction`.
    #[arg(long, default_value = DEFAULT_DIRECTION)]
    direction: String,
    /// Output sample rate (default: the song's, else 48000).
    #[arg(long)]
    sample_rate: Option<u32>,
    /// Play the voices on this SoundFont (GM programs) instead of the built-in synth.
    #[arg(long)]
    soundfont: Option<PathBuf>,
    /// Start from a factory preset (by name or key, e.g. `--preset "Dark Drone"`); `--param`
    /// then changes it. `--preset list` lists them.
    #[arg(long)]
    preset: Option<String>,
    /// Set a plugin parameter by its id, e.g. `--param scale=Dorian --param root=D`
    /// (repeatable; `--param list` lists the ids and values).
    #[arg(long = "param", value_name = "ID=VALUE")]
    params: Vec<String>,
    /// The WAV (stereo, 32-bit float).
    #[arg(long, default_value = "render.wav")]
    out: PathBuf,
    /// The Standard MIDI File (default: next to --out, `.mid`).
    #[arg(long)]
    midi: Option<PathBuf>,
    /// The run file, for `replay` and NumPy (default: next to --out, `.lcrun`).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Continue the prompt as raw text instead of answering it as a chat message.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    text: TextArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    /// The local model writes the text.
    Local,
    /// An OpenAI-compatible server writes it (`--url`); the local model reads it.
    Openai,
}

/// Who writes the text (as the plugin's Text Source).
#[derive(clap::Args, Clone)]
struct TextArgs {
    #[arg(long, value_enum, default_value = "local")]
    backend: BackendArg,
    /// The server's API base, e.g. `http://127.0.0.1:8080/v1` (llama.cpp, vLLM, LM Studio,
    /// Ollama, `latent-choir serve`).
    #[arg(long, required_if_eq("backend", "openai"))]
    url: Option<String>,
    /// The model to ask the server for (default: the first it lists).
    #[arg(long)]
    remote_model: Option<String>,
    /// The environment variable holding the API key (the key itself is never taken as an
    /// argument, nor written anywhere).
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// When the server fails for good, the local model writes on instead of the render failing.
    #[arg(long)]
    fallback: bool,
    /// Seconds one piece may take before the server counts as stalled.
    #[arg(long, default_value_t = 20.0)]
    remote_timeout: f32,
}

impl TextArgs {
    fn source(&self) -> TextSource {
        TextSource {
            remote: self.backend == BackendArg::Openai,
            url: self.url.clone().unwrap_or_default(),
            model: self.remote_model.clone().unwrap_or_default(),
            key_variable: self.api_key_env.clone().unwrap_or_default(),
            fallback: self.fallback,
            timeout_seconds: self.remote_timeout,
        }
    }
}

pub fn run(args: Args) -> Result<(), String> {
    if let Some(contrast) = args.contrast.clone() {
        return render_contrast(args, contrast);
    }
    let params = LatentChoirParams::default();
    if let Some(name) = &args.preset {
        if name == "list" {
            for preset in presets::FACTORY {
                println!(
                    "{:<22} {:<22} {}",
                    preset.key, preset.name, preset.description
                );
            }
            return Ok(());
        }
        apply_preset(&params, name)?;
    }
    if list_params(&params, &args.params) {
        return Ok(());
    }
    // A font given is a font played, unless the parameters say otherwise.
    if args.soundfont.is_some() {
        param_text::set(&params, "instruments", "SoundFont").map_err(|e| e.to_string())?;
    }
    apply_params(&params, &args.params)?;
    if let Some(per_beat) = args.tokens_per_beat {
        param_text::set(&params, "tokens_per_beat", &per_beat.to_string())
            .map_err(|e| format!("--tokens-per-beat: {e}"))?;
    }
    check_bpm(args.bpm)?;
    let tokens_per_beat = f64::from(params.generation.tokens_per_beat.value());
    let tokens = match (args.tokens, args.bars) {
        (Some(tokens), _) => tokens,
        (None, bars) => {
            let bars = f64::from(bars.unwrap_or(8));
            (bars * BEATS_PER_BAR * tokens_per_beat).ceil() as u64
        }
    };
    if !(1..=MAX_TOKENS).contains(&tokens) {
        return Err(format!(
            "the piece must be 1 to {MAX_TOKENS} tokens long, not {tokens}"
        ));
    }

    let model = discovery::resolve(args.model.as_deref()).map_err(|e| {
        format!("{e}. Run `cargo xtask fetch-model` for the default model, or pass --model PATH")
    })?;
    let identity = identify(&model).map_err(|e| format!("{}: {e}", model.display()))?;
    let song = read_song(args.song.as_deref())?;
    let sample_rate = sample_rate(args.sample_rate, song.as_ref())?;
    let soundfont = load_soundfont(args.soundfont.as_deref(), sample_rate)?;
    let outputs = Outputs::reserve(&args.out, args.midi.as_deref(), args.run.as_deref())?;

    // Model's Key: read from the model's norms here, so the first note is already in it.
    let model_key = if params.melody.scale.value() == ScaleChoice::ModelKey {
        let key = model_key_of(&model).map_err(|e| format!("the model's key: {e}"))?;
        key.scale_and_root()
    } else {
        None
    };
    let timeline = Timeline {
        model_key,
        ..Timeline::for_tokens(sample_rate, args.bpm, tokens_per_beat, tokens)
    };
    let gate = Arc::new(GateSettings::new(
        params.generation.lookahead.value().max(1) as u32,
        params.temperature.fixed.value(),
    ));
    let control = ModelControl::new(gate, Arc::default(), Arc::default());
    let mut source = control
        .spawn()
        .map_err(|e| format!("cannot start the model thread: {e}"))?
        .ok_or("the model thread runs already")?;
    source.set_offline(Some(OFFLINE_WAIT));
    let session = SessionSettings {
        prompt: args.prompt.clone(),
        raw: args.raw,
        seed: args.seed,
        model: model.display().to_string(),
        direction: args.direction.clone(),
        text_source: args.text.source(),
    };
    control
        .send(Command::SetMaxTokens(Some(tokens as usize)))
        .and_then(|()| control.generate(&session))
        .map_err(|e| e.to_string())?;
    wait_for_first_run(&control)?;

    let started = Instant::now();
    let mut recorder = Recorder::new(source);
    // Listen: the same ear and listener thread as the plugin's, hearing the metered song.
    let heard_state = Arc::new(ListenState::default());
    let (ear, tap) = ear(f64::from(sample_rate));
    let mut ear = ear;
    let listener = Listener::spawn(tap, Arc::clone(control.feed()), Arc::clone(&heard_state))
        .map_err(|e| format!("cannot start the listener thread: {e}"))?;
    let key = || heard_state.followed_key();
    let (report, mut midi) = play(
        &timeline,
        &params,
        soundfont,
        song.as_ref(),
        &mut recorder,
        &outputs,
        Some(OfflineEars {
            ear: &mut ear,
            key: &key,
        }),
    )?;
    drop(listener);
    // The piece is complete; the worker may already have finished.
    let _ = control.stop();
    // A run that failed part way (a text server that stayed down) is not a render.
    if let Some(failure) = control.status().failure() {
        return Err(failure);
    }
    let text = control.status().text();
    let heard = recorder
        .played
        .first()
        .map(|t| control.status().heard(t.frame.run))
        .unwrap_or_default();
    let remote = recorder
        .played
        .first()
        .and_then(|t| control.status().remote(t.frame.run));
    drop(control);

    let hidden_states = recorder
        .played
        .first()
        .map_or(0, |t| t.frame.hidden_states());
    if hidden_states > 0 {
        midi.set_names(track_names(&params, Some(hidden_states)));
    }
    let run = Run {
        manifest: Manifest {
            format: run_file::FORMAT.to_owned(),
            version: run_file::VERSION,
            prompt: args.prompt.clone(),
            model: ModelRecord {
                name: identity.name,
                sha256: identity.sha256,
                path: model.display().to_string(),
            },
            seed: args.seed,
            bpm: args.bpm,
            tokens_per_beat,
            sample_rate,
            block_size: timeline.block,
            steps: tokens,
            piece_samples: timeline.piece_samples,
            tail_samples: timeline.tail_samples,
            song: args.song.as_ref().map(|p| absolute(p)),
            soundfont: args.soundfont.as_ref().map(|p| absolute(p)),
            params: param_text::values(&params),
            hidden_states,
            tokens: token_texts(&recorder.played),
            grid_steps: None,
            heard,
            direction: recorder
                .played
                .iter()
                .any(|t| t.frame.has_direction)
                .then(|| session.direction_choice().text()),
            model_key: model_key.map(|(scale, root)| key_name(scale, root)),
            remote,
        },
        notes: trace_notes(&midi, &recorder.played, &params, hidden_states),
        tokens: recorder.played,
    };
    let written = outputs.commit(midi, Some(&run))?;
    println!("{}", text.trim());
    summarize(&report, &timeline, started.elapsed(), &written);
    Ok(())
}

/// Each note-on the render played with the token (its position among `played`) and the
/// hidden state that made it: a voice's layer, the deepest state for a moving bass (it picks
/// the chords), none for the held drone (it follows the key).
fn trace_notes(
    midi: &MidiRecorder,
    played: &[PlayedToken],
    params: &LatentChoirParams,
    hidden_states: usize,
) -> Vec<NoteTrace> {
    let position: HashMap<u32, u32> = played
        .iter()
        .enumerate()
        .map(|(i, t)| (t.frame.index, i as u32))
        .collect();
    let mapping = params.mapping();
    let last = hidden_states.saturating_sub(1) as u32;
    midi.note_ons_traced()
        .iter()
        .map(|&(sample, slot, note, velocity, token)| {
            // The Tension voice follows the direction over many layers, not one.
            let layer = match mapping.voices.get(usize::from(slot)) {
                Some(voice) => Some((voice.layer as u32).min(last)),
                None if slot == DRONE_SLOT => (mapping.bass == BassMode::Moving).then_some(last),
                None => None,
            };
            NoteTrace {
                sample,
                slot: slot + 1,
                note,
                velocity,
                token: position.get(&token).copied(),
                layer,
            }
        })
        .collect()
}

/// Where the three files go, reserved up front so an unwritable path fails before the model
/// runs, and written under temporary names until everything is done.
pub struct Outputs {
    wav: PendingFile,
    midi: PendingFile,
    run: Option<PendingFile>,
}

impl Outputs {
    pub fn reserve(wav: &Path, midi: Option<&Path>, run: Option<&Path>) -> Result<Self, String> {
        let midi = midi.map_or_else(|| wav.with_extension("mid"), Path::to_owned);
        let run = run.map_or_else(|| wav.with_extension("lcrun"), Path::to_owned);
        Self::reserve_some(wav, &midi, Some(&run))
    }

    /// As [`Outputs::reserve`], with no run file when `run` is `None`.
    pub fn reserve_some(wav: &Path, midi: &Path, run: Option<&Path>) -> Result<Self, String> {
        let paths: Vec<&Path> = [Some(wav), Some(midi), run].into_iter().flatten().collect();
        for (i, a) in paths.iter().enumerate() {
            if paths[..i].contains(a) {
                return Err(format!("{} is given for two outputs", a.display()));
            }
        }
        let reserve = |path| PendingFile::new(path).map_err(|e| e.to_string());
        Ok(Self {
            wav: reserve(wav)?,
            midi: reserve(midi)?,
            run: run.map(reserve).transpose()?,
        })
    }

    /// Writes MIDI and run and moves all files into place; returns their paths.
    pub fn commit(self, midi: MidiRecorder, run: Option<&Run>) -> Result<Vec<PathBuf>, String> {
        std::fs::write(self.midi.temp(), midi.to_bytes(MIDI_TEMPO_TRACK))
            .map_err(|e| format!("cannot write {}: {e}", self.midi.target().display()))?;
        if let (Some(file), Some(run)) = (&self.run, run) {
            run.write(file.temp()).map_err(|e| e.to_string())?;
        }
        let mut written = vec![self.wav.commit(), self.midi.commit()];
        if let Some(file) = self.run {
            written.push(file.commit());
        }
        written
            .into_iter()
            .map(|w| w.map_err(|e| e.to_string()))
            .collect()
    }
}

/// Plays the timeline from `source` into the WAV (under its temporary name) and a MIDI
/// recording.
pub fn play(
    timeline: &Timeline,
    params: &LatentChoirParams,
    soundfont: Option<SoundFontPlayer>,
    song: Option<&StereoAudio>,
    source: &mut impl FrameSource,
    outputs: &Outputs,
    ears: Option<OfflineEars<'_>>,
) -> Result<(OfflineReport, MidiRecorder), String> {
    into_wav(timeline, soundfont, song, outputs, ears, |surroundings| {
        replay::play(timeline, params, surroundings, source)
    })
}

/// Runs `play` with the WAV (under its temporary name) as its audio sink and a progress bar
/// on the terminal.
pub fn into_wav<T>(
    timeline: &Timeline,
    soundfont: Option<SoundFontPlayer>,
    song: Option<&StereoAudio>,
    outputs: &Outputs,
    ears: Option<OfflineEars<'_>>,
    play: impl FnOnce(Surroundings<'_>) -> Result<T, OfflineError>,
) -> Result<T, String> {
    // A failed write names the file the user asked for, not its temporary name.
    let target = outputs.wav.target();
    let say = |error: OfflineError| match error {
        OfflineError::Write(write) => WriteError::new(target, write.message).to_string(),
        other => other.to_string(),
    };
    let mut wav =
        WavSink::create(outputs.wav.temp(), timeline.sample_rate).map_err(|e| say(e.into()))?;
    let bar = progress_bar(timeline.total_samples());
    let played = play(Surroundings {
        ears,
        soundfont,
        song,
        audio: &mut |l, r| wav.write(l, r),
        progress: &mut |done| {
            if let Some(bar) = &bar {
                bar.set_position(done);
            }
        },
    })
    .map_err(say)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    wav.finish().map_err(|e| say(e.into()))?;
    Ok(played)
}

/// `--param list`: prints every parameter id with its value (after `params`' own settings)
/// instead of rendering.
pub fn list_params(params: &LatentChoirParams, assignments: &[String]) -> bool {
    if !assignments.iter().any(|a| a == "list") {
        return false;
    }
    for (id, value) in param_text::values(params) {
        println!("{id} = {}", value.text);
    }
    true
}

/// `--preset NAME`: every parameter as the factory preset has it.
pub fn apply_preset(params: &LatentChoirParams, name: &str) -> Result<(), String> {
    let preset = presets::find(name).ok_or_else(|| {
        format!(
            "--preset: no factory preset is called `{name}`; they are: {}",
            presets::names()
        )
    })?;
    preset
        .apply(params)
        .map_err(|e| format!("--preset {}: {e}", preset.name))
}

/// `--param ID=VALUE` assignments, in order.
pub fn apply_params(params: &LatentChoirParams, assignments: &[String]) -> Result<(), String> {
    param_text::set_all(params, assignments).map_err(|e| format!("--param {e}"))
}

pub fn check_bpm(bpm: f64) -> Result<(), String> {
    if bpm.is_finite() && (20.0..=400.0).contains(&bpm) {
        Ok(())
    } else {
        Err(format!("--bpm must be 20 to 400, not {bpm}"))
    }
}

pub fn read_song(path: Option<&Path>) -> Result<Option<StereoAudio>, String> {
    path.map(|p| audio_file::read(p).map_err(|e| e.to_string()))
        .transpose()
}

/// The render's rate: as asked, else the song's, else 48 kHz; a song at another rate is refused
/// (this build does not resample).
pub fn sample_rate(asked: Option<u32>, song: Option<&StereoAudio>) -> Result<u32, String> {
    let rate = asked.or(song.map(|s| s.sample_rate)).unwrap_or(48_000);
    if !(8_000..=192_000).contains(&rate) {
        return Err(format!("--sample-rate must be 8000 to 192000, not {rate}"));
    }
    if let Some(song) = song
        && song.sample_rate != rate
    {
        return Err(format!(
            "the song is at {} Hz, the render at {rate} Hz; resample the song or leave out --sample-rate",
            song.sample_rate
        ));
    }
    Ok(rate)
}

pub fn load_soundfont(
    path: Option<&Path>,
    sample_rate: u32,
) -> Result<Option<SoundFontPlayer>, String> {
    path.map(|p| {
        SoundFontPlayer::load(p, sample_rate as f32, offline::BLOCK)
            .map_err(|e| format!("--soundfont {}: {e}", p.display()))
    })
    .transpose()
}

/// Waits until the model has loaded, has its map and has run the prompt, saying what it does
/// (a map fit in steps of 10%).
fn wait_for_first_run(control: &ModelControl) -> Result<(), String> {
    let status = control.status();
    let mut said = String::new();
    let mut fit_tenths = None;
    loop {
        if let Some(failure) = status.failure() {
            return Err(failure);
        }
        // The prompt has run (a short run on a fast model may already have ended).
        if control.feed().run.load(Ordering::Acquire) != 0 {
            return Ok(());
        }
        let (done, total) = (
            status.fit_done.load(Ordering::Relaxed),
            status.fit_total.load(Ordering::Relaxed),
        );
        let message = status.message();
        if let Some(tenths) = (done * 10).checked_div(total)
            && done < total
        {
            if fit_tenths != Some(tenths) {
                eprintln!("fitting the activation map: {}%", tenths * 10);
                fit_tenths = Some(tenths);
            }
        } else if message != said && !message.is_empty() && !message.starts_with("Fitting") {
            eprintln!("{message}");
        }
        said = message;
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn token_texts(played: &[PlayedToken]) -> Vec<String> {
    played.iter().map(|t| t.frame.text().to_owned()).collect()
}

fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} rendering [{bar:40}] {percent}% ({elapsed} / {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

pub fn summarize(
    report: &OfflineReport,
    timeline: &Timeline,
    elapsed: Duration,
    written: &[PathBuf],
) {
    let seconds = timeline.total_samples() as f64 / f64::from(timeline.sample_rate);
    eprintln!(
        "{} steps, {:.1} s of audio in {:.1} s ({:.1}× real time), peak {:.2}",
        report.steps,
        seconds,
        elapsed.as_secs_f64(),
        seconds / elapsed.as_secs_f64().max(1e-9),
        report.peak
    );
    if report.underruns > 0 {
        eprintln!(
            "warning: {} steps had no token ready (the model ended or was too slow)",
            report.underruns
        );
    }
    if report.dropped > 0 {
        eprintln!("warning: {} notes did not fit a block", report.dropped);
    }
    for path in written {
        eprintln!("wrote {}", path.display());
    }
}

/// `--contrast`: both prompts rendered alike, then side by side in one stereo file.
fn render_contrast(args: Args, contrast: String) -> Result<(), String> {
    let stem = args.out.with_extension("");
    let side = |suffix: &str, prompt: &str| {
        let path = |ext: &str| PathBuf::from(format!("{}-{suffix}.{ext}", stem.display()));
        Args {
            prompt: prompt.to_owned(),
            contrast: None,
            out: path("wav"),
            midi: Some(path("mid")),
            run: Some(path("lcrun")),
            ..args.clone()
        }
    };
    let (a, b) = (side("a", &args.prompt), side("b", &contrast));
    run(a.clone())?;
    run(b.clone())?;
    let left = mono(&a.out)?;
    let right = mono(&b.out)?;
    let rate = hound::WavReader::open(&a.out)
        .map_err(|e| format!("{}: {e}", a.out.display()))?
        .spec()
        .sample_rate;
    let mut writer =
        latent_choir::io::wav_file::WavSink::create(&args.out, rate).map_err(|e| e.to_string())?;
    let len = left.len().max(right.len());
    let at = |v: &[f32], i: usize| v.get(i).copied().unwrap_or(0.0);
    let l: Vec<f32> = (0..len).map(|i| at(&left, i)).collect();
    let r: Vec<f32> = (0..len).map(|i| at(&right, i)).collect();
    writer.write(&l, &r).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    for (name, side) in [("A", &a), ("B", &b)] {
        if let Some(run) = &side.run {
            let run = Run::read(run).map_err(|e| e.to_string())?;
            let tension: Vec<f32> = run.tokens.iter().map(|t| t.frame.tension).collect();
            let mean = tension.iter().sum::<f32>() / tension.len().max(1) as f32;
            let peak = tension.iter().copied().fold(0.0f32, f32::max);
            println!(
                "{name} tension mean {mean:.3}, peak {peak:.3}: {}",
                side.prompt
            );
        }
    }
    println!("contrast     {} (A left, B right)", args.out.display());
    Ok(())
}

/// A rendered WAV (stereo float) folded to mono.
fn mono(path: &Path) -> Result<Vec<f32>, String> {
    let mut reader =
        hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let channels = usize::from(reader.spec().channels.max(1));
    let samples: Vec<f32> = reader
        .samples::<f32>()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(samples
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect())
}
