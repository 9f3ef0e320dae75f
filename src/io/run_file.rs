//! Run files (`.lcrun`): everything needed to hear a render again without the model, in a form a
//! person can open. A run file is a zip archive that `numpy.load` reads as an `.npz`:
//!
//! * `manifest.json` — [`Manifest`]: format and version, prompt, model identity, seed, tempo,
//!   sample rate, every parameter by id, and each token's text (and, for a run the plugin played
//!   on a host's transport, each token's grid step). `numpy.load(f)["manifest.json"]` gives its
//!   bytes.
//! * NumPy arrays, one per name below, `n` tokens in the order they were played and `S` hidden
//!   states (layers + 1):
//!
//! | array | dtype | shape | what |
//! |---|---|---|---|
//! | `token_ids` | int64 | [n] | vocabulary id |
//! | `index` | int64 | [n] | token index in the run |
//! | `temperature` | float32 | [n] | temperature the token was sampled at |
//! | `coords` | float32 | [S, n, 16] | PCA coordinates PC1..PC16 in [-1, 1] (runs from before 16 have 4) |
//! | `norm` | float32 | [S, n] | L2 norm of each hidden state |
//! | `entropy` | float32 | [S, n] | attention entropy of the block, normalised to [0, 1] |
//! | `sparsity` | float32 | [S, n] | MLP sparsity of the block |
//! | `loudness_lufs` | float32 | [n] | momentary loudness when the token was played |
//! | `loudness_smoothed` | float32 | [n] | after the smoother |
//! | `loudness_velocity` | float32 | [n] | its rate of change, LU/s |
//! | `curve_temperature` | float32 | [n] | the temperature the curve read then |
//! | `notes` | int64 | [m, 6] | a render's notes, one row per note-on (see [`NoteTrace`]) |
//! | `projection` | float32 | [S, n] | dot(h, r̂) with the concept direction (runs with one) |
//! | `layer_tension` | float32 | [S, n] | each projection as tension, 0…1 (runs with a direction) |
//! | `tension` | float32 | [n] | the token's tension, 0…1 (runs with a direction) |
//! | `phrase` | float32 | [S, n, 3] | each state's Markov–LSTM choice: degree, velocity, duration |
//! | `partials` | int8 | [S, n, 32] | each state's highest-variance dimensions as z-scores × 127/4 (the Spectral instruments; absent before them: silent) |
//!
//! The manifest's `direction` names the concept direction (absent: none, and no tension
//! arrays). Run files from before directions and phrases load with none and rests.
//!
//! `notes` (absent from runs the plugin recorded) traces each note to what made it: its
//! sample position, slot (1–3 the voices, 4 the bass, 5 the Tension voice), MIDI note,
//! velocity, the index (into the arrays above) of the token whose step played it, and the
//! hidden state it followed (−1 where none did: the held drone follows the key, the Tension
//! voice the direction over many layers).
//!
//! Together they rebuild every [`TokenFrame`] bit for bit. A file of another format version,
//! or a damaged or truncated one, is refused with a message saying so.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Array3};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::loudness::CurvePoint;
use crate::music::frame::{FRAME_COMPONENTS, MAX_HIDDEN_STATES, SPECTRAL_PARTIALS, TokenFrame};
use crate::music::markov_lstm::PhraseStep;

/// What the manifest's `format` field says.
pub const FORMAT: &str = "latent-choir-run";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";

/// A parameter's value as a run file keeps it: the normalised value sets it back exactly; the
/// plain value and text are for people.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordedParam {
    pub normalized: f32,
    pub plain: f32,
    pub text: String,
}

/// The model a run was made with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelRecord {
    /// Readable name (file or folder name).
    pub name: String,
    /// The weights' sha256 ([`crate::activation::identify`]): the same model, wherever it lives.
    pub sha256: String,
    /// Where it was loaded from.
    pub path: String,
}

/// The JSON half of a run file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub prompt: String,
    pub model: ModelRecord,
    pub seed: u64,
    pub bpm: f64,
    pub tokens_per_beat: f64,
    pub sample_rate: u32,
    /// Frames per processing block of the render.
    pub block_size: usize,
    /// Grid steps in the piece (tokens asked for; fewer were played if the model ended early).
    pub steps: u64,
    /// Length of the piece (tokens advancing), in samples; the release tail follows.
    pub piece_samples: u64,
    /// Length of the release tail after the last step, in samples.
    pub tail_samples: u64,
    /// The song that was the main input, if any.
    pub song: Option<String>,
    /// The SoundFont the voices played, if any.
    pub soundfont: Option<String>,
    /// Every plugin parameter by id.
    pub params: BTreeMap<String, RecordedParam>,
    /// Hidden states per token (layers + 1).
    pub hidden_states: usize,
    /// Each token's text, in play order.
    pub tokens: Vec<String>,
    /// The grid step (at `tokens_per_beat` steps per beat, from the host's beat 0) each token
    /// was first played on: a plugin run on the host's transport, so a reopened project plays
    /// every token where it was. Absent for renders and free-running runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_steps: Option<Vec<i64>>,
    /// What the model heard of the track (Listen): each line and the token it came before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heard: Vec<HeardLine>,
    /// The concept direction the tension followed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The model's own key ("C# Major"), when the Scale was Model's Key: replay plays it
    /// without the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_key: Option<String>,
    /// The server that wrote the text when a remote backend did, and every piece it wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteRecord>,
}

/// The server that wrote a run's text (the local model read it; its states are the frames).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RemoteRecord {
    /// The API's base URL, without any query.
    pub url: String,
    pub model: String,
    /// The server chose some pieces (those without `chosen`: it sent no alternatives), so the
    /// same seed gives the same text again only if the server honours seeds. Every other piece
    /// was chosen here from `top` with the run's seed.
    pub server_chose: bool,
    pub pieces: Vec<RemotePiece>,
}

/// One piece the server wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RemotePiece {
    pub run: u32,
    /// The generated token (index in the run) that was next when it arrived: its text is read
    /// by this token and the ones after it.
    pub before_token: u32,
    pub text: String,
    /// The temperature it was chosen at (from the loudness).
    pub temperature: f32,
    /// The model ended its answer here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ended: bool,
    /// Index into `top` of the piece; absent when the server chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<u32>,
    /// The alternatives and their log-probabilities at temperature 1, most likely first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<(String, f32)>,
}

/// A line the model read of what it heard, in its context right before a generated token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeardLine {
    pub run: u32,
    /// The generated token (index in the run) it came right before.
    pub before_token: u32,
    pub text: String,
    /// Tokens it took in the model's context.
    pub tokens: u32,
}

/// One played token: its frame and the loudness curve when it was played.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayedToken {
    pub frame: TokenFrame,
    pub point: CurvePoint,
}

/// A whole run file in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub manifest: Manifest,
    pub tokens: Vec<PlayedToken>,
    /// The notes a render played, traced to their tokens (empty for a plugin's run).
    pub notes: Vec<NoteTrace>,
}

/// One note-on of a render and what made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteTrace {
    /// Sample position of the note-on.
    pub sample: u64,
    /// 1–3 the voices, 4 the bass, 5 the Tension voice.
    pub slot: u8,
    pub note: u8,
    pub velocity: u8,
    /// Position in the run's tokens of the token whose step played it.
    pub token: Option<u32>,
    /// The hidden state (0 = embeddings) whose coordinates chose it.
    pub layer: Option<u32>,
}

/// Columns of `notes.npy`.
const NOTE_COLUMNS: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("{path}: cannot read: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: not a readable run file (damaged or truncated?): {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "{path}: run file format version {found}, this build reads version {VERSION}; render it again with this build"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("cannot encode the run: {0}")]
    Encode(String),
}

impl Run {
    /// The frames to replay, in play order.
    pub fn frames(&self) -> impl Iterator<Item = TokenFrame> + '_ {
        self.tokens.iter().map(|t| t.frame)
    }

    /// Writes the run to `writer` (a zip archive; see the [module docs](self)).
    pub fn write_to<W: Write + Seek>(&self, writer: W) -> Result<(), RunFileError> {
        self.encode(writer).map_err(RunFileError::Encode)
    }

    fn encode<W: Write + Seek>(&self, writer: W) -> Result<(), String> {
        let n = self.tokens.len();
        let states = self.manifest.hidden_states.min(MAX_HIDDEN_STATES);
        let per_token = |f: &dyn Fn(&PlayedToken) -> f32| -> Array1<f32> {
            self.tokens.iter().map(f).collect()
        };
        let per_state = |f: &dyn Fn(&TokenFrame, usize) -> f32| -> Array2<f32> {
            Array2::from_shape_fn((states, n), |(s, t)| f(&self.tokens[t].frame, s))
        };
        let coords = Array3::from_shape_fn((states, n, FRAME_COMPONENTS), |(s, t, c)| {
            self.tokens[t].frame.coords[s][c]
        });
        let partials = Array3::from_shape_fn((states, n, SPECTRAL_PARTIALS), |(s, t, i)| {
            self.tokens[t].frame.partials[s][i]
        });
        let ids: Array1<i64> = self
            .tokens
            .iter()
            .map(|t| i64::from(t.frame.token_id))
            .collect();
        let index: Array1<i64> = self
            .tokens
            .iter()
            .map(|t| i64::from(t.frame.index))
            .collect();

        let mut zip = zip::ZipWriter::new(writer);
        // Stored, with a fixed date: the same run gives the same bytes.
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::default());
        let fail = |e: &dyn std::fmt::Display| e.to_string();
        let manifest = serde_json::to_vec_pretty(&self.manifest).map_err(|e| fail(&e))?;
        zip.start_file(MANIFEST, options).map_err(|e| fail(&e))?;
        zip.write_all(&manifest).map_err(|e| fail(&e))?;

        let mut add = |name: &str, write: &dyn Fn(&mut dyn Write) -> Result<(), String>| {
            zip.start_file(format!("{name}.npy"), options)
                .map_err(|e| fail(&e))?;
            write(&mut zip)
        };
        let npy = |e: ndarray_npy::WriteNpyError| e.to_string();
        add("token_ids", &|w| ids.write_npy(w).map_err(npy))?;
        add("index", &|w| index.write_npy(w).map_err(npy))?;
        add("temperature", &|w| {
            per_token(&|t| t.frame.temperature)
                .write_npy(w)
                .map_err(npy)
        })?;
        add("coords", &|w| coords.write_npy(w).map_err(npy))?;
        add("partials", &|w| partials.write_npy(w).map_err(npy))?;
        add("norm", &|w| {
            per_state(&|f, s| f.norm[s]).write_npy(w).map_err(npy)
        })?;
        add("entropy", &|w| {
            per_state(&|f, s| f.entropy[s]).write_npy(w).map_err(npy)
        })?;
        add("sparsity", &|w| {
            per_state(&|f, s| f.sparsity[s]).write_npy(w).map_err(npy)
        })?;
        add("loudness_lufs", &|w| {
            per_token(&|t| t.point.lufs).write_npy(w).map_err(npy)
        })?;
        add("loudness_smoothed", &|w| {
            per_token(&|t| t.point.smoothed).write_npy(w).map_err(npy)
        })?;
        add("loudness_velocity", &|w| {
            per_token(&|t| t.point.velocity).write_npy(w).map_err(npy)
        })?;
        add("curve_temperature", &|w| {
            per_token(&|t| t.point.temperature)
                .write_npy(w)
                .map_err(npy)
        })?;
        add("phrase", &|w| {
            Array3::from_shape_fn((states, n, 3), |(s, t, c)| {
                let step = self.tokens[t].frame.phrase[s];
                [f32::from(step.degree), step.velocity, step.duration][c]
            })
            .write_npy(w)
            .map_err(npy)
        })?;
        if self.manifest.direction.is_some() {
            add("projection", &|w| {
                per_state(&|f, s| f.projection[s]).write_npy(w).map_err(npy)
            })?;
            add("layer_tension", &|w| {
                per_state(&|f, s| f.layer_tension[s])
                    .write_npy(w)
                    .map_err(npy)
            })?;
            add("tension", &|w| {
                per_token(&|t| t.frame.tension).write_npy(w).map_err(npy)
            })?;
        }
        if !self.notes.is_empty() {
            let optional = |v: Option<u32>| v.map_or(-1, i64::from);
            let notes = Array2::from_shape_fn((self.notes.len(), NOTE_COLUMNS), |(i, c)| {
                let note = &self.notes[i];
                match c {
                    0 => i64::try_from(note.sample).unwrap_or(i64::MAX),
                    1 => i64::from(note.slot),
                    2 => i64::from(note.note),
                    3 => i64::from(note.velocity),
                    4 => optional(note.token),
                    _ => optional(note.layer),
                }
            });
            add("notes", &|w| notes.write_npy(w).map_err(npy))?;
        }
        zip.finish().map_err(|e| fail(&e))?;
        Ok(())
    }

    /// Writes the run to `path` (directly; callers that must not leave a partial file behind
    /// write to a temporary name and rename).
    pub fn write(&self, path: &Path) -> Result<(), RunFileError> {
        let error = |message: String| RunFileError::Write {
            path: path.to_owned(),
            message,
        };
        let file = File::create(path).map_err(|e| error(e.to_string()))?;
        let mut writer = BufWriter::new(file);
        self.encode(&mut writer).map_err(error)?;
        writer.flush().map_err(|e| error(e.to_string()))?;
        Ok(())
    }

    /// Reads and checks a run file.
    pub fn read(path: &Path) -> Result<Self, RunFileError> {
        let file = File::open(path).map_err(|e| RunFileError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::read_from(BufReader::new(file), path)
    }

    /// Reads a run file from `reader`; `path` names it in messages.
    pub fn read_from<R: Read + Seek>(reader: R, path: &Path) -> Result<Self, RunFileError> {
        let corrupt = |message: String| RunFileError::Corrupt {
            path: path.to_owned(),
            message,
        };
        let mut zip = zip::ZipArchive::new(reader).map_err(|e| corrupt(e.to_string()))?;
        let manifest: serde_json::Value = {
            let mut entry = zip
                .by_name(MANIFEST)
                .map_err(|e| corrupt(format!("{MANIFEST}: {e}")))?;
            let mut text = Vec::new();
            entry
                .read_to_end(&mut text)
                .map_err(|e| corrupt(format!("{MANIFEST}: {e}")))?;
            serde_json::from_slice(&text).map_err(|e| corrupt(format!("{MANIFEST}: {e}")))?
        };
        if manifest.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(corrupt(format!(
                "{MANIFEST} does not say format \"{FORMAT}\""
            )));
        }
        let version = manifest.get("version").and_then(|v| v.as_u64());
        if version != Some(u64::from(VERSION)) {
            return Err(RunFileError::Version {
                path: path.to_owned(),
                found: version.map_or(0, |v| v.min(u64::from(u32::MAX)) as u32),
            });
        }
        let manifest: Manifest =
            serde_json::from_value(manifest).map_err(|e| corrupt(format!("{MANIFEST}: {e}")))?;

        let n = manifest.tokens.len();
        let states = manifest.hidden_states;
        if states > MAX_HIDDEN_STATES {
            return Err(corrupt(format!(
                "{states} hidden states; a frame holds at most {MAX_HIDDEN_STATES}"
            )));
        }
        let mut array1 = |name: &str| -> Result<Array1<f32>, RunFileError> {
            let array: Array1<f32> = read_array(&mut zip, name).map_err(&corrupt)?;
            check_shape(name, array.shape(), &[n]).map_err(&corrupt)?;
            Ok(array)
        };
        let temperature = array1("temperature")?;
        let lufs = array1("loudness_lufs")?;
        let smoothed = array1("loudness_smoothed")?;
        let velocity = array1("loudness_velocity")?;
        let curve_temperature = array1("curve_temperature")?;
        let mut int1 = |name: &str| -> Result<Array1<i64>, RunFileError> {
            let array: Array1<i64> = read_array(&mut zip, name).map_err(&corrupt)?;
            check_shape(name, array.shape(), &[n]).map_err(&corrupt)?;
            Ok(array)
        };
        let ids = int1("token_ids")?;
        let index = int1("index")?;
        let mut array2 = |name: &str| -> Result<Array2<f32>, RunFileError> {
            let array: Array2<f32> = read_array(&mut zip, name).map_err(&corrupt)?;
            check_shape(name, array.shape(), &[states, n]).map_err(&corrupt)?;
            Ok(array)
        };
        let norm = array2("norm")?;
        let entropy = array2("entropy")?;
        let sparsity = array2("sparsity")?;
        let tension = match manifest.direction {
            Some(_) => {
                let projection = array2("projection")?;
                let layer_tension = array2("layer_tension")?;
                let tension: Array1<f32> = read_array(&mut zip, "tension").map_err(&corrupt)?;
                check_shape("tension", tension.shape(), &[n]).map_err(&corrupt)?;
                Some((projection, layer_tension, tension))
            }
            None => None,
        };
        let coords: Array3<f32> = read_array(&mut zip, "coords").map_err(&corrupt)?;
        // Runs from before the frame carried 16 components have 4.
        let components = coords.shape().get(2).copied().unwrap_or(0);
        let expected = if components == 4 { 4 } else { FRAME_COMPONENTS };
        check_shape("coords", coords.shape(), &[states, n, expected]).map_err(&corrupt)?;
        let partials: Option<Array3<i8>> = match zip.index_for_name("partials.npy") {
            Some(_) => {
                let array: Array3<i8> = read_array(&mut zip, "partials").map_err(&corrupt)?;
                check_shape("partials", array.shape(), &[states, n, SPECTRAL_PARTIALS])
                    .map_err(&corrupt)?;
                Some(array)
            }
            None => None,
        };

        let phrase: Option<Array3<f32>> = match zip.index_for_name("phrase.npy") {
            Some(_) => {
                let array: Array3<f32> = read_array(&mut zip, "phrase").map_err(&corrupt)?;
                check_shape("phrase", array.shape(), &[states, n, 3]).map_err(&corrupt)?;
                Some(array)
            }
            None => None,
        };
        let u32_of = |name: &str, v: i64| {
            u32::try_from(v).map_err(|_| corrupt(format!("{name}: {v} is out of range")))
        };
        let mut tokens = Vec::with_capacity(n);
        for t in 0..n {
            let mut frame = TokenFrame::new(
                u32_of("index", index[t])?,
                u32_of("token_ids", ids[t])?,
                &manifest.tokens[t],
                states,
                temperature[t],
            );
            // The render's frames all belong to its one run.
            frame.run = 1;
            for s in 0..states {
                let mut c = [0.0; FRAME_COMPONENTS];
                for (k, value) in c.iter_mut().enumerate().take(expected) {
                    *value = coords[[s, t, k]];
                }
                if let Some(partials) = &partials {
                    for (i, value) in frame.partials[s].iter_mut().enumerate() {
                        *value = partials[[s, t, i]];
                    }
                }
                frame.set_state(s, c, norm[[s, t]], entropy[[s, t]], sparsity[[s, t]]);
                if let Some(phrase) = &phrase {
                    frame.phrase[s] = PhraseStep {
                        degree: phrase[[s, t, 0]].clamp(0.0, 255.0) as u8,
                        velocity: phrase[[s, t, 1]],
                        duration: phrase[[s, t, 2]],
                    };
                }
                if let Some((projection, layer_tension, _)) = &tension {
                    frame.projection[s] = projection[[s, t]];
                    frame.layer_tension[s] = layer_tension[[s, t]];
                }
            }
            if let Some((_, _, tension)) = &tension {
                frame.has_direction = true;
                frame.tension = tension[t];
            }
            tokens.push(PlayedToken {
                frame,
                point: CurvePoint {
                    lufs: lufs[t],
                    smoothed: smoothed[t],
                    velocity: velocity[t],
                    temperature: curve_temperature[t],
                },
            });
        }
        let notes = match zip.index_for_name("notes.npy") {
            Some(_) => read_notes(&mut zip).map_err(&corrupt)?,
            None => Vec::new(),
        };
        Ok(Self {
            manifest,
            tokens,
            notes,
        })
    }
}

fn read_notes<R: Read + Seek>(zip: &mut zip::ZipArchive<R>) -> Result<Vec<NoteTrace>, String> {
    let array: Array2<i64> = read_array(zip, "notes")?;
    if array.ncols() != NOTE_COLUMNS {
        return Err(format!(
            "notes.npy has {} columns, not {NOTE_COLUMNS}",
            array.ncols()
        ));
    }
    let small = |v: i64| u8::try_from(v).map_err(|_| format!("notes.npy: {v} is out of range"));
    let optional = |v: i64| match v {
        -1 => Ok(None),
        v => u32::try_from(v)
            .map(Some)
            .map_err(|_| format!("notes.npy: {v} is out of range")),
    };
    array
        .rows()
        .into_iter()
        .map(|row| {
            Ok(NoteTrace {
                sample: u64::try_from(row[0])
                    .map_err(|_| format!("notes.npy: {} is out of range", row[0]))?,
                slot: small(row[1])?,
                note: small(row[2])?,
                velocity: small(row[3])?,
                token: optional(row[4])?,
                layer: optional(row[5])?,
            })
        })
        .collect()
}

fn read_array<R: Read + Seek, A: ReadNpyExt>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
) -> Result<A, String> {
    let file = format!("{name}.npy");
    let entry = zip.by_name(&file).map_err(|e| format!("{file}: {e}"))?;
    A::read_npy(entry).map_err(|e| format!("{file}: {e}"))
}

fn check_shape(name: &str, found: &[usize], expected: &[usize]) -> Result<(), String> {
    if found == expected {
        Ok(())
    } else {
        Err(format!(
            "{name}.npy has shape {found:?}, the manifest says {expected:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Run {
        let tokens = (0..5u32)
            .map(|i| {
                let mut frame = TokenFrame::new(i, 100 + i, &format!(" tok{i}"), 3, 0.5 + i as f32);
                frame.run = 1;
                for s in 0..3 {
                    let x = (i * 3 + s as u32) as f32 / 17.0 - 0.4;
                    frame.set_state(
                        s,
                        crate::music::frame::components(&[x, -x, x / 2.0, 0.1]),
                        10.0 + x,
                        x.abs(),
                        0.25,
                    );
                }
                PlayedToken {
                    frame,
                    point: CurvePoint {
                        lufs: -20.0 - i as f32,
                        smoothed: -21.0,
                        velocity: 0.5,
                        temperature: 0.9,
                    },
                }
            })
            .collect::<Vec<_>>();
        Run {
            manifest: Manifest {
                format: FORMAT.to_owned(),
                version: VERSION,
                prompt: "Hello".to_owned(),
                model: ModelRecord {
                    name: "m".to_owned(),
                    sha256: "00".to_owned(),
                    path: "/m".to_owned(),
                },
                seed: 3,
                bpm: 100.0,
                tokens_per_beat: 2.0,
                sample_rate: 48_000,
                block_size: 512,
                steps: 5,
                piece_samples: 1000,
                tail_samples: 10,
                song: None,
                soundfont: None,
                params: BTreeMap::new(),
                hidden_states: 3,
                tokens: tokens.iter().map(|t| t.frame.text().to_owned()).collect(),
                grid_steps: None,
                heard: Vec::new(),
                direction: None,
                model_key: None,
                remote: Some(RemoteRecord {
                    url: "http://127.0.0.1:8080/v1".to_owned(),
                    model: "big".to_owned(),
                    server_chose: false,
                    pieces: vec![RemotePiece {
                        run: 1,
                        before_token: 0,
                        text: " tok".to_owned(),
                        temperature: 0.75,
                        ended: false,
                        chosen: Some(1),
                        top: vec![(" to".to_owned(), -0.5), (" tok".to_owned(), -1.25)],
                    }],
                }),
            },
            tokens,
            notes: vec![
                NoteTrace {
                    sample: 0,
                    slot: 1,
                    note: 72,
                    velocity: 90,
                    token: Some(0),
                    layer: Some(0),
                },
                NoteTrace {
                    sample: 14_400,
                    slot: 4,
                    note: 36,
                    velocity: 64,
                    token: Some(1),
                    layer: None,
                },
            ],
        }
    }

    fn bytes(run: &Run) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        run.write_to(&mut out).unwrap();
        out.into_inner()
    }

    #[test]
    fn frames_round_trip_bit_for_bit_and_the_bytes_are_stable() {
        let run = run();
        let data = bytes(&run);
        assert_eq!(data, bytes(&run));
        let back = Run::read_from(std::io::Cursor::new(&data), Path::new("x")).unwrap();
        assert_eq!(back, run);
    }

    #[test]
    fn truncated_and_other_versions_are_refused() {
        let data = bytes(&run());
        for cut in [0, 10, data.len() / 2, data.len() - 1] {
            let error = Run::read_from(std::io::Cursor::new(&data[..cut]), Path::new("x"));
            assert!(
                matches!(error, Err(RunFileError::Corrupt { .. })),
                "cut at {cut}"
            );
        }
        let mut other = run();
        other.manifest.version = VERSION + 1;
        let error = Run::read_from(std::io::Cursor::new(bytes(&other)), Path::new("x"));
        assert!(matches!(error, Err(RunFileError::Version { found, .. }) if found == VERSION + 1));
    }
}
