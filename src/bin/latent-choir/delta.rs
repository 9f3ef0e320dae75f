//! `latent-choir delta`: two models of the same shape (a model and an edited copy of it, such
//! as `abliterate` writes) read the same tokens, and the piece plays where their hidden states
//! part along a concept direction, so which layers lost the direction is heard.
//!
//! The tokens: the prompt's text as it is (no chat template, no special tokens), then
//! `--tokens` tokens model A generates greedily (the argmax of its logits; stopping early at an
//! end token). Both models then read that whole sequence in one pass (B teacher-forced on A's
//! tokens), and every hidden state at every position is projected on r̂, the direction fitted
//! for A (the same r̂ for both). Position 0 (the attention sink, left out of direction fits) is
//! left out of every mean, plot and pulse.
//!
//! The piece walks the hidden states in order, one beat each at 96 BPM:
//!
//! * a held two-note chord: model A (voice 1, left) at a pitch from A's mean projection, model
//!   B (voice 3, right) above or below it by an interval that widens and grows more dissonant
//!   with |B − A| (unison, fifth, minor seventh, major seventh, minor ninth, octave + tritone).
//!   Projections are measured in the state's own scale (the larger of A's and B's RMS
//!   projection over the tokens), because they grow with depth; the chord is louder as
//!   |B − A| grows;
//! * over it, up to 8 high pulses (voice 2) that step through the tokens, each as loud as its
//!   tokens' |B − A|: a state where the models agree has quiet pulses, one that lost the
//!   direction a bright rattle.
//!
//! `--plot` draws (B − A) per state (rows, state 0 at the top) and token (columns) in the
//! state's scale, blue where B projects lower, red where higher; `--json` holds per state the
//! mean projections of A and B, their difference and their RMS over the tokens.

use std::path::{Path, PathBuf};

use latent_choir::activation::direction::ConceptDirection;
use latent_choir::activation::direction::cache::DirectionChoice;
use latent_choir::io::midi_file::MidiRecorder;
use latent_choir::io::output_file::PendingFile;
use latent_choir::io::png_image::{self, HeatMap, HeatScale};
use latent_choir::io::wav_file::WavSink;
use latent_choir::llm::loader::LoadedModel;
use latent_choir::music::scale::{Root, Scale};
use latent_choir::music::{NO_TOKEN, NoteMessage};
use latent_choir::params::DEFAULT_DIRECTION;
use latent_choir::synth::{Choir, VoiceId};

use crate::abliterate::{load_model, model_direction};

/// The walk's tempo: one hidden state per beat.
const BPM: f64 = 96.0;
const SAMPLE_RATE: u32 = 48_000;
/// Rendered after the last beat, for the release and the reverb.
const TAIL_SECONDS: f64 = 2.0;
/// The synth's render calls, in frames.
const BLOCK: usize = 512;
/// Most high pulses within one state's beat.
const MAX_PULSES: usize = 8;
/// The longest generation asked for.
const MAX_TOKENS: usize = 4096;
/// Model A's chord note: this pitch ± an octave, in D Dorian.
const CENTRE: f32 = 62.0;
const SCALE: Scale = Scale::Dorian;
const ROOT: Root = Root::D;
/// B's interval from A by |B − A| in the state's scale: below each bound, that many semitones.
const INTERVALS: [(f32, u8); 6] = [
    (0.05, 0),
    (0.15, 7),
    (0.3, 10),
    (0.5, 11),
    (0.8, 13),
    (f32::INFINITY, 18),
];

#[derive(clap::Args)]
pub struct Args {
    /// Model A, which generates: a GGUF file or a Hugging Face folder; the default model if
    /// omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Model B, teacher-forced on A's tokens: the same architecture and shape, reading text
    /// the same way (an edited copy of A, e.g. from `latent-choir abliterate`).
    #[arg(long)]
    model_b: PathBuf,
    /// The text both read first (as is, without a chat template).
    #[arg(long)]
    prompt: String,
    /// The concept direction, fitted for model A: refusal, doubt, grief or a file from
    /// `fit-direction`.
    #[arg(long, default_value = DEFAULT_DIRECTION)]
    direction: String,
    /// Tokens model A generates after the prompt (greedily).
    #[arg(long, default_value_t = 32)]
    tokens: usize,
    /// The WAV (stereo, 32-bit float, 48 kHz).
    #[arg(long, default_value = "delta.wav")]
    out: PathBuf,
    /// A Standard MIDI File of the same notes (A, pulses, B on tracks 1–3).
    #[arg(long)]
    midi: Option<PathBuf>,
    /// A PNG heat map of B − A, hidden states × tokens.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Per state: the mean projections of A and B and their difference, as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), String> {
    if !(1..=MAX_TOKENS).contains(&args.tokens) {
        return Err(format!(
            "--tokens must be 1 to {MAX_TOKENS}, not {}",
            args.tokens
        ));
    }
    let choice = DirectionChoice::parse(&args.direction);
    if choice == DirectionChoice::Off {
        return Err("--direction: delta needs a direction to compare along (refusal, doubt, grief or a file from `fit-direction`)".to_owned());
    }
    let outputs = Outputs::reserve(&args)?;
    let mut a = load_model(args.model.as_deref())?;
    let mut b = load_model(Some(&args.model_b))?;
    check_same_shape(&a, &b)?;
    let direction = model_direction(&mut a, &choice)?;
    let (ids, prompt_tokens) = sequence(&mut a, &b, &args.prompt, args.tokens)?;
    let proj_a = projections(&mut a, &ids, &direction)?;
    let proj_b = projections(&mut b, &ids, &direction)?;
    let texts = ids
        .iter()
        .map(|&id| a.tokenizer.token_text(id).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let states = compare(&proj_a, &proj_b);

    let piece = Piece::compose(&states, &proj_a, &proj_b);
    let peak = piece.render(outputs.wav.temp(), outputs.midi.as_ref().map(|m| m.temp()))?;
    if let Some(plot) = &outputs.plot {
        let png = plot_png(&states, &proj_a, &proj_b)?;
        write(plot, &png)?;
    }
    if let Some(json) = &outputs.json {
        let report = Report {
            prompt: &args.prompt,
            model_a: &a.path,
            model_b: &b.path,
            direction: &direction,
            tokens: &texts,
            generated: ids.len() - prompt_tokens,
            states: &states,
        };
        write(json, &report.to_bytes()?)?;
    }
    summarise(&states, &direction, ids.len());
    eprintln!(
        "{} states × {} tokens, {:.1} s, peak {peak:.2}",
        states.len(),
        ids.len() - 1,
        piece.total_samples as f64 / f64::from(SAMPLE_RATE)
    );
    for path in outputs.commit()? {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The output files, reserved before the models load so a bad path fails first.
struct Outputs {
    wav: PendingFile,
    midi: Option<PendingFile>,
    plot: Option<PendingFile>,
    json: Option<PendingFile>,
}

impl Outputs {
    fn reserve(args: &Args) -> Result<Self, String> {
        let paths: Vec<&Path> = [
            Some(args.out.as_path()),
            args.midi.as_deref(),
            args.plot.as_deref(),
            args.json.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (i, path) in paths.iter().enumerate() {
            if paths[..i].contains(path) {
                return Err(format!("{} is given for two outputs", path.display()));
            }
        }
        let reserve = |path: &Path| PendingFile::new(path).map_err(|e| e.to_string());
        Ok(Self {
            wav: reserve(&args.out)?,
            midi: args.midi.as_deref().map(reserve).transpose()?,
            plot: args.plot.as_deref().map(reserve).transpose()?,
            json: args.json.as_deref().map(reserve).transpose()?,
        })
    }

    fn commit(self) -> Result<Vec<PathBuf>, String> {
        [Some(self.wav), self.midi, self.plot, self.json]
            .into_iter()
            .flatten()
            .map(|file| file.commit().map_err(|e| e.to_string()))
            .collect()
    }
}

fn write(file: &PendingFile, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(file.temp(), bytes)
        .map_err(|e| format!("cannot write {}: {e}", file.target().display()))
}

/// Refuses two models that cannot be compared state by state.
fn check_same_shape(a: &LoadedModel, b: &LoadedModel) -> Result<(), String> {
    let (ia, ib) = (a.model.info(), b.model.info());
    let shape = |i: &latent_choir::llm::ModelInfo| {
        (i.architecture.clone(), i.n_layers, i.width, i.vocab_size)
    };
    if shape(ia) == shape(ib) {
        return Ok(());
    }
    let describe = |i: &latent_choir::llm::ModelInfo, path: &Path| {
        format!(
            "{} is {} with {} layers, width {}, {} tokens",
            path.display(),
            i.architecture,
            i.n_layers,
            i.width,
            i.vocab_size
        )
    };
    Err(format!(
        "the models differ ({}; {}): delta compares a model with an edited copy of it \
         (e.g. from `latent-choir abliterate`), which has the same architecture and shape",
        describe(ia, &a.path),
        describe(ib, &b.path)
    ))
}

/// The prompt's ids (as both tokenizers read it) and the tokens A generates greedily after
/// them; and how many of the ids are the prompt's.
fn sequence(
    a: &mut LoadedModel,
    b: &LoadedModel,
    prompt: &str,
    tokens: usize,
) -> Result<(Vec<u32>, usize), String> {
    let mut ids = a
        .tokenizer
        .encode(prompt, false)
        .map_err(|e| e.to_string())?;
    if ids.is_empty() {
        return Err("the prompt is empty (no tokens to read)".to_owned());
    }
    let ids_b = b
        .tokenizer
        .encode(prompt, false)
        .map_err(|e| e.to_string())?;
    if ids_b != ids {
        return Err(format!(
            "the models read the prompt differently ({} tokens for A, {} for B): they need the same tokenizer",
            ids.len(),
            ids_b.len()
        ));
    }
    let context = a.model.info().context_length;
    if ids.len() + tokens > context {
        return Err(format!(
            "the prompt ({} tokens) and --tokens {tokens} do not fit the model's context of {context} tokens",
            ids.len()
        ));
    }
    let prompt_tokens = ids.len();
    a.model.reset();
    let mut step = a.model.forward(&ids).map_err(|e| e.to_string())?;
    for generated in 1..=tokens {
        let next = argmax(&step.logits).ok_or("model A gave no usable logits (all NaN)")?;
        ids.push(next);
        if a.tokenizer.is_eos(next) || generated == tokens {
            break;
        }
        step = a.model.forward(&[next]).map_err(|e| e.to_string())?;
    }
    a.model.reset();
    Ok((ids, prompt_tokens))
}

/// The index of the largest finite logit (the first of equals).
fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if v.is_finite() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as u32)
}

/// dot(h, r̂) per hidden state (outer) and position, position 0 left out.
fn projections(
    loaded: &mut LoadedModel,
    ids: &[u32],
    direction: &ConceptDirection,
) -> Result<Vec<Vec<f32>>, String> {
    let info = loaded.model.info().clone();
    let vocab = info.vocab_size;
    if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(format!(
            "{}: token {id} is beyond its vocabulary of {vocab}",
            loaded.path.display()
        ));
    }
    loaded.model.reset();
    let step = loaded.model.forward(ids).map_err(|e| e.to_string())?;
    loaded.model.reset();
    let (states, width, n) = (info.n_layers + 1, info.width, step.n_new);
    if step.hidden.len() != states * n * width || n != ids.len() {
        return Err(format!(
            "{}: the model returned {} hidden values for {} tokens",
            loaded.path.display(),
            step.hidden.len(),
            ids.len()
        ));
    }
    Ok((0..states)
        .map(|state| {
            (1..n)
                .map(|pos| direction.project(step.hidden_state(state, pos, width)))
                .collect()
        })
        .collect())
}

/// One hidden state's comparison, over the tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
struct StateDelta {
    mean_a: f32,
    mean_b: f32,
    rms_a: f32,
    rms_b: f32,
}

impl StateDelta {
    fn delta(&self) -> f32 {
        self.mean_b - self.mean_a
    }

    /// What projections at this state are measured in: the larger RMS (never 0), because
    /// they grow with depth.
    fn scale(&self) -> f32 {
        self.rms_a.max(self.rms_b).max(1e-6)
    }

    /// |B − A| in the state's scale (0…2).
    fn relative(&self) -> f32 {
        self.delta().abs() / self.scale()
    }
}

fn compare(a: &[Vec<f32>], b: &[Vec<f32>]) -> Vec<StateDelta> {
    let n = |v: &[f32]| v.len().max(1) as f64;
    let mean = |v: &[f32]| (v.iter().map(|&x| f64::from(x)).sum::<f64>() / n(v)) as f32;
    let rms =
        |v: &[f32]| (v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n(v)).sqrt() as f32;
    a.iter()
        .zip(b)
        .map(|(a, b)| StateDelta {
            mean_a: mean(a),
            mean_b: mean(b),
            rms_a: rms(a),
            rms_b: rms(b),
        })
        .collect()
}

/// One note of the piece: on at `start` for `length` samples.
#[derive(Debug, Clone, Copy)]
struct Note {
    start: u64,
    length: u64,
    voice: VoiceId,
    note: u8,
    velocity: u8,
    token: u32,
}

struct Piece {
    notes: Vec<Note>,
    total_samples: u64,
}

impl Piece {
    /// The walk through the states (see the module docs).
    fn compose(states: &[StateDelta], a: &[Vec<f32>], b: &[Vec<f32>]) -> Self {
        let beat = (f64::from(SAMPLE_RATE) * 60.0 / BPM).round() as u64;
        let mut notes = Vec::new();
        for (s, state) in states.iter().enumerate() {
            let start = s as u64 * beat;
            let x = state.mean_a / state.scale();
            let note_a = SCALE.nearest_in_range(CENTRE + 12.0 * x, ROOT, 48, 76);
            let relative = state.relative();
            let interval = INTERVALS
                .iter()
                .find(|(bound, _)| relative < *bound)
                .map_or(0, |&(_, semitones)| semitones);
            let note_b = if state.delta() < 0.0 {
                note_a.saturating_sub(interval)
            } else {
                note_a.saturating_add(interval).min(127)
            };
            let loudness = velocity(relative, 48.0, 72.0);
            let held = beat * 19 / 20;
            for (voice, note) in [(VoiceId::Voice1, note_a), (VoiceId::Voice3, note_b)] {
                notes.push(Note {
                    start,
                    length: held,
                    voice,
                    note,
                    velocity: loudness,
                    token: NO_TOKEN,
                });
            }
            // Every state has a projection per position from 1 on, and there is at least one.
            let positions = a[s].len();
            let pulses = positions.min(MAX_PULSES);
            let high = note_a.saturating_add(24).min(108);
            for p in 0..pulses {
                let range = p * positions / pulses..(p + 1) * positions / pulses;
                let apart: f32 = range
                    .clone()
                    .map(|i| (b[s][i] - a[s][i]).abs() / state.scale())
                    .sum::<f32>()
                    / range.len().max(1) as f32;
                notes.push(Note {
                    start: start + beat * p as u64 / pulses as u64,
                    length: beat / pulses as u64 * 2 / 5,
                    voice: VoiceId::Voice2,
                    note: high,
                    velocity: velocity(apart, 20.0, 90.0),
                    // Position 0 is left out, so token i of the projections is position i + 1.
                    token: (range.start + 1) as u32,
                });
            }
        }
        let total_samples =
            states.len() as u64 * beat + (TAIL_SECONDS * f64::from(SAMPLE_RATE)) as u64;
        Self {
            notes,
            total_samples,
        }
    }

    /// Plays the notes on the built-in synth into a WAV at `wav` and, if asked, a MIDI file;
    /// returns the peak sample.
    fn render(&self, wav: &Path, midi: Option<&Path>) -> Result<f32, String> {
        // (sample, on?, note): offs before ons at the same sample, so a repeated note restarts.
        let mut events: Vec<(u64, bool, &Note)> = self
            .notes
            .iter()
            .flat_map(|n| [(n.start, true, n), (n.start + n.length, false, n)])
            .collect();
        events.sort_by_key(|&(sample, on, n)| (sample, on, n.voice.index(), n.note));
        let mut choir = Choir::new(SAMPLE_RATE as f32, BLOCK);
        let mut recorder = MidiRecorder::new(
            f64::from(SAMPLE_RATE),
            BPM,
            [
                "model A".to_owned(),
                "token pulses".to_owned(),
                "model B".to_owned(),
                "(unused)".to_owned(),
                "(unused)".to_owned(),
            ],
        );
        let mut sink = WavSink::create(wav, SAMPLE_RATE).map_err(|e| e.to_string())?;
        let (mut left, mut right) = (vec![0.0f32; BLOCK], vec![0.0f32; BLOCK]);
        let mut peak = 0.0f32;
        let mut next = 0;
        let mut position = 0u64;
        while position < self.total_samples {
            while let Some(&(sample, on, note)) = events.get(next)
                && sample <= position
            {
                if on {
                    choir.note_on(note.voice, note.note, note.velocity);
                } else {
                    choir.note_off(note.voice, note.note);
                }
                let slot = note.voice.index() as u8;
                recorder.record(
                    sample,
                    &NoteMessage {
                        offset: 0,
                        slot,
                        channel: slot,
                        note: note.note,
                        velocity: if on { note.velocity } else { 0 },
                        token: note.token,
                    },
                );
                next += 1;
            }
            let until = events
                .get(next)
                .map_or(self.total_samples, |&(sample, _, _)| sample)
                .min(self.total_samples)
                .min(position + BLOCK as u64);
            let n = (until - position) as usize;
            left[..n].fill(0.0);
            right[..n].fill(0.0);
            choir.render(&mut left[..n], &mut right[..n]);
            for &v in left[..n].iter().chain(&right[..n]) {
                if !v.is_finite() {
                    return Err("the synth produced a non-finite sample".to_owned());
                }
                peak = peak.max(v.abs());
            }
            sink.write(&left[..n], &right[..n])
                .map_err(|e| e.to_string())?;
            position = until;
        }
        sink.finish().map_err(|e| e.to_string())?;
        if let Some(path) = midi {
            recorder.end_at(self.total_samples);
            std::fs::write(path, recorder.to_bytes("Latent Choir delta"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(peak)
    }
}

/// `floor` plus up to `range` as `amount` (0…1, clamped) grows, as a MIDI velocity.
fn velocity(amount: f32, floor: f32, range: f32) -> u8 {
    let amount = if amount.is_finite() {
        amount.clamp(0.0, 1.0)
    } else {
        0.0
    };
    (floor + range * amount).round().clamp(1.0, 127.0) as u8
}

/// B − A per state and token, in the state's scale.
fn plot_png(states: &[StateDelta], a: &[Vec<f32>], b: &[Vec<f32>]) -> Result<Vec<u8>, String> {
    let columns = a.first().map_or(0, Vec::len);
    let values: Vec<f32> = states
        .iter()
        .enumerate()
        .flat_map(|(s, state)| (0..columns).map(move |i| (b[s][i] - a[s][i]) / state.scale()))
        .collect();
    png_image::heat_map_png(&HeatMap {
        values: &values,
        rows: states.len(),
        columns,
        scale: HeatScale::Diverging { limit: 1.0 },
        title: "latent-choir delta: B - A along the direction",
        description: "rows: hidden states, 0 (embeddings) at the top; columns: tokens from position 1; \
                      blue: B projects lower, red: higher, in each state's RMS projection",
    })
}

/// What `--json` writes.
struct Report<'a> {
    prompt: &'a str,
    model_a: &'a Path,
    model_b: &'a Path,
    direction: &'a ConceptDirection,
    tokens: &'a [String],
    generated: usize,
    states: &'a [StateDelta],
}

impl Report<'_> {
    fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let states: Vec<serde_json::Value> = self
            .states
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({
                    "state": i,
                    "mean_a": s.mean_a,
                    "mean_b": s.mean_b,
                    "delta": s.delta(),
                    "rms_a": s.rms_a,
                    "rms_b": s.rms_b,
                })
            })
            .collect();
        let json = serde_json::json!({
            "format": "latent-choir-delta",
            "version": 1,
            "prompt": self.prompt,
            "model_a": self.model_a.display().to_string(),
            "model_b": self.model_b.display().to_string(),
            "direction": self.direction.name(),
            "direction_layers": self.direction.metadata().layers,
            "tokens": self.tokens,
            "generated": self.generated,
            "positions": "means over positions 1.. (position 0, the attention sink, left out)",
            "bpm": BPM,
            "states": states,
        });
        let mut bytes = serde_json::to_vec_pretty(&json).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// The states in a table: where B kept and where it lost the direction.
fn summarise(states: &[StateDelta], direction: &ConceptDirection, tokens: usize) {
    println!(
        "direction {} over {} tokens (position 0 left out)",
        direction.name(),
        tokens - 1
    );
    println!("state     mean A     mean B    B − A   |B − A|/scale");
    for (i, s) in states.iter().enumerate() {
        println!(
            "{i:>5} {:>10.4} {:>10.4} {:>8.4} {:>8.3}",
            s.mean_a,
            s.mean_b,
            s.delta(),
            s.relative()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_the_largest_finite() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, f32::NAN]), Some(1));
        assert_eq!(argmax(&[f32::NAN]), None);
    }
}
