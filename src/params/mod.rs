//! Every host-visible parameter. The `#[id]` strings are stable: hosts store automation and
//! project state under them, so they must never change once released.

use std::sync::{Arc, RwLock};

use nice_plug::plugin::ParamValue;
use nice_plug::prelude::*;

use crate::loudness::{CurveMode, CurveSettings};
use crate::music::SLOTS;
use crate::music::harmony::HarmonicRhythm;
use crate::music::scale::{Root, Scale};
use crate::music::tension::TensionMapping;
use crate::music::voices::{BassMode, MappingParams};
use crate::synth::{DEFAULT_PROGRAMS, Source};

pub mod format;
pub mod presets;
pub mod session;
pub mod text;

pub use session::{DEFAULT_DIRECTION, DEFAULT_PROMPT, DEFAULT_SEED, SessionSettings, TextSource};

/// Loudest output gain the user can dial in, in dB.
const MAX_OUTPUT_DB: f32 = 12.0;
/// Quietest non-silent input-thru level, in dB; below it the slider reads "-inf".
const MIN_THRU_DB: f32 = -60.0;

/// Every host parameter, in the groups the host and the editor show, and the session settings
/// the project keeps. The plugin wraps it with the saved run ([`crate::plugin::PluginParams`]).
#[derive(Params)]
pub struct LatentChoirParams {
    /// The prompt the model answers (or continues), kept with the project.
    #[persist = "prompt"]
    pub prompt: RwLock<String>,
    /// Model file or folder; empty means the embedded default model.
    #[persist = "model"]
    pub model: RwLock<String>,
    /// Seed of every random choice the model makes: same seed, same audio, same tokens.
    #[persist = "seed"]
    pub seed: RwLock<u64>,
    /// SoundFont (`.sf2`) the voices can play instead of the built-in synth; empty means none.
    #[persist = "soundfont"]
    pub soundfont: RwLock<String>,
    /// Continue the prompt as raw text instead of answering it through the chat template.
    #[persist = "raw_prompt"]
    pub raw_prompt: RwLock<bool>,
    /// The concept direction tension follows: `none`, a shipped set (`refusal`, `doubt`,
    /// `grief`) or a direction file. Fixed per run, like the model and seed.
    #[persist = "direction"]
    pub direction: RwLock<String>,
    /// Who writes the text: the local model, or an OpenAI-compatible server the local model
    /// reads (the API key only by its environment variable's name). Fixed per run.
    #[persist = "text_source"]
    pub text_source: RwLock<TextSource>,
    /// The editor window's logical size, `[width, height]`: nice-plug-egui cannot persist its
    /// own editor state, so the editor reads this when it opens and writes it when resized.
    #[persist = "editor_size"]
    pub editor_size: RwLock<[f32; 2]>,

    #[nested(group = "Model & Timing")]
    pub generation: GenerationParams,
    #[nested(group = "Temperature from Loudness")]
    pub temperature: TemperatureParams,
    #[nested(group = "Melody")]
    pub melody: MelodyParams,
    #[nested(array, group = "Voice")]
    pub voices: [VoiceParams; 3],
    #[nested(group = "Drone")]
    pub drone: DroneParams,
    #[nested(group = "Sound")]
    pub sound: SoundParams,
    #[nested(group = "MIDI")]
    pub midi: MidiParams,
    #[nested(group = "Listen")]
    pub listen: ListenParams,
    #[nested(group = "Phrasing")]
    pub phrasing: PhrasingParams,
    #[nested(group = "Harmony")]
    pub harmony: HarmonyParams,
    #[nested(group = "Feel")]
    pub feel: FeelParams,
    #[nested(group = "Tension")]
    pub tension: TensionParams,
}

/// When tokens come and how far the model may run ahead.
#[derive(Params)]
pub struct GenerationParams {
    /// Play: tokens advance on the grid while on; off releases every note and the model waits.
    #[id = "generate"]
    pub generate: BoolParam,
    /// Tokens per beat while the host transport plays.
    #[id = "tokens_per_beat"]
    pub tokens_per_beat: FloatParam,
    /// Tokens per second in Free Run (and in hosts without a transport).
    #[id = "tokens_per_second"]
    pub tokens_per_second: FloatParam,
    /// Follow the host's transport (stop is silence, seek and loop play the run's tokens where
    /// they belong) or run free at Tokens per Second whatever the host does.
    #[id = "timing"]
    pub timing: EnumParam<Timing>,
    /// What the later passes of a loop play: the same tokens again, or new text.
    #[id = "loop_passes"]
    pub loop_passes: EnumParam<LoopChoice>,
    /// How many tokens the model may run ahead of what is heard. More hides slow steps; fewer
    /// lets the loudness steer sooner.
    #[id = "lookahead"]
    pub lookahead: IntParam,
    /// What plays while Generate is on: the model's thoughts as it writes, or its frozen weights
    /// composed as a piece (Weight Style) on the same voices and MIDI out, on the host's grid,
    /// looping.
    #[id = "source"]
    pub source: EnumParam<SourceChoice>,
    /// The piece Model Weights plays.
    #[id = "weight_style"]
    pub weight_style: EnumParam<WeightStyleChoice>,
}

/// How the track's loudness sets the sampling temperature.
#[derive(Params)]
pub struct TemperatureParams {
    /// What sets the temperature: loudness velocity, loudness level, or nothing (fixed).
    #[id = "temp_mode"]
    pub mode: EnumParam<TemperatureMode>,
    /// Which input is metered.
    #[id = "meter_source"]
    pub meter_source: EnumParam<MeterSource>,
    #[id = "temp_min"]
    pub min: FloatParam,
    #[id = "temp_max"]
    pub max: FloatParam,
    #[id = "sensitivity"]
    pub sensitivity: FloatParam,
    /// Loudness smoothing time constant.
    #[id = "smoothing"]
    pub smoothing: FloatParam,
    /// Temperature when the mode is Off, and of the first tokens before anything was heard.
    #[id = "temp_fixed"]
    pub fixed: FloatParam,
}

/// The key and the articulation every voice shares.
#[derive(Params)]
pub struct MelodyParams {
    #[id = "scale"]
    pub scale: EnumParam<ScaleChoice>,
    #[id = "root"]
    pub root: EnumParam<RootChoice>,
    /// How often MLP sparsity turns into a grace or passing note.
    #[id = "ornaments"]
    pub ornaments: FloatParam,
    /// Note length at focused attention (1 = tied into the next token).
    #[id = "legato"]
    pub legato: FloatParam,
    /// Note length at diffuse attention.
    #[id = "staccato"]
    pub staccato: FloatParam,
}

/// The bass: a drone on the key's root, or a line on the chords' roots.
#[derive(Params)]
pub struct DroneParams {
    #[id = "drone"]
    pub enabled: BoolParam,
    /// Held Drone: the key's root, held. Moving: the chord's root, and its fifth in the second
    /// half of a bar-long chord.
    #[id = "bass"]
    pub bass: EnumParam<BassChoice>,
    #[id = "drone_octave"]
    pub octave: IntParam,
    #[id = "drone_level"]
    pub level: FloatParam,
    #[id = "drone_channel"]
    pub channel: IntParam,
    #[id = "drone_program"]
    pub program: IntParam,
}

/// What plays the notes and how loud everything comes out.
#[derive(Params)]
pub struct SoundParams {
    /// Which engine plays the voices: the built-in synth or the loaded SoundFont (the built-in
    /// synth stands in while no font is loaded).
    #[id = "instruments"]
    pub instruments: EnumParam<Instruments>,
    /// With the Spectral instruments, every partial moves to the nearest tone of the scale
    /// (partials on one tone merge); off, they keep their even spacing above the note.
    #[id = "spectral_scale"]
    pub spectral_scale: BoolParam,
    #[id = "reverb"]
    pub reverb: FloatParam,
    /// Silence the built-in synth (MIDI out keeps playing): for use as a MIDI generator.
    #[id = "synth_mute"]
    pub synth_mute: BoolParam,
    /// Level of everything the plugin outputs, applied last. Smoothed so automation never clicks.
    #[id = "gain"]
    pub gain: FloatParam,
    /// How much of the track's own audio (the main input) passes through to the output. The
    /// plugin usually sits on the track whose loudness steers the model, so the default keeps
    /// that track audible.
    #[id = "thru"]
    pub thru: FloatParam,
}

/// MIDI that passes through.
#[derive(Params)]
pub struct MidiParams {
    /// Pass incoming MIDI notes through to MIDI out, so the plugin can sit in a note-effect chain
    /// without swallowing what comes before it.
    #[id = "midi_thru"]
    pub thru: BoolParam,
}

/// Phrasing from the text: punctuation and line breaks shape the music.
#[derive(Params)]
pub struct PhrasingParams {
    /// A comma (or semicolon, colon, dash) shortens the step's notes by this much; 100 % rests.
    #[id = "comma_breath"]
    pub comma_breath: FloatParam,
    /// A sentence end moves every voice to the nearest tonic-triad tone, held, and the next
    /// step rests.
    #[id = "cadences"]
    pub cadences: BoolParam,
    /// Semitones the voices move at every new paragraph, up and back down in turn.
    #[id = "paragraph_shift"]
    pub paragraph_shift: IntParam,
    /// A token that continues a word ties into it.
    #[id = "word_ties"]
    pub word_ties: BoolParam,
    /// Strong beats louder, off-beats softer (the downbeat up to +24 velocity).
    #[id = "accent"]
    pub accent: FloatParam,
}

/// Chords the voices and the bass follow.
#[derive(Params)]
pub struct HarmonyParams {
    /// How often the chord changes; each is chosen from the deepest layer over the span
    /// before it. Off keeps the tonic triad throughout.
    #[id = "harmony"]
    pub rhythm: EnumParam<HarmonyChoice>,
    /// A voice that would cross below the voice under it moves by an octave instead.
    #[id = "avoid_crossing"]
    pub avoid_crossing: BoolParam,
}

/// How the notes are played: loud and soft, late and early.
#[derive(Params)]
pub struct FeelParams {
    /// Widens the velocity range and lets the norms' phrase-level swell move it.
    #[id = "dynamics"]
    pub dynamics: FloatParam,
    /// Every second step late, up to a triplet feel at 100 %.
    #[id = "swing"]
    pub swing: FloatParam,
    /// Each note a little late and a little louder or softer, by a hash of its token.
    #[id = "humanise"]
    pub humanise: FloatParam,
}

/// The concept direction's tension (the Direction itself is a session setting): the Tension
/// voice, the pull toward chromatic neighbours, and the controller it sends.
#[derive(Params)]
pub struct TensionParams {
    /// An organ whose level, register and dissonance follow the tension; rests while calm.
    #[id = "tension_voice"]
    pub enabled: BoolParam,
    /// How far tension pulls the melodic voices to chromatic neighbour tones.
    #[id = "dissonance"]
    pub dissonance: FloatParam,
    /// Lowest note of the Tension voice (where it enters); it rises toward Tension High.
    #[id = "tension_low"]
    pub low: IntParam,
    #[id = "tension_high"]
    pub high: IntParam,
    #[id = "tension_level"]
    pub level: FloatParam,
    /// MIDI channel of the Tension voice and of the tension controller, 1–16.
    #[id = "tension_channel"]
    pub channel: IntParam,
    /// General MIDI program (0-based) on the SoundFont: 19 is Church Organ.
    #[id = "tension_program"]
    pub program: IntParam,
    /// Controller number the tension goes out on at every step (1: modulation wheel).
    #[id = "tension_cc"]
    pub cc: IntParam,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HarmonyChoice {
    Off,
    #[name = "Every Bar"]
    Bar,
    #[name = "Every Half Bar"]
    HalfBar,
}

impl HarmonyChoice {
    pub fn rhythm(self) -> HarmonicRhythm {
        match self {
            Self::Off => HarmonicRhythm::Off,
            Self::Bar => HarmonicRhythm::Bar,
            Self::HalfBar => HarmonicRhythm::HalfBar,
        }
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BassChoice {
    #[name = "Held Drone"]
    Drone,
    Moving,
}

impl BassChoice {
    pub fn mode(self) -> BassMode {
        match self {
            Self::Drone => BassMode::Drone,
            Self::Moving => BassMode::Moving,
        }
    }
}

/// The model hears the track: what it reads of the input, and how often.
#[derive(Params)]
pub struct ListenParams {
    /// Tokenize what the temperature meter hears (Meter Source: the track or the sidechain) on
    /// a background thread and put a line of it into the model's context at every boundary.
    #[id = "listen"]
    pub enabled: BoolParam,
    /// Bars between two things heard: each line describes the bars since the last one.
    #[id = "listen_every"]
    pub every: IntParam,
    /// Scale and root follow the key heard in the input (at bar lines), not Melody's.
    #[id = "follow_key"]
    pub follow_key: BoolParam,
}

/// One melodic voice: which layer it follows, where it sings, how loud, on which channel.
#[derive(Params)]
pub struct VoiceParams {
    #[id = "voice"]
    pub enabled: BoolParam,
    /// Hidden state followed: 0 = embeddings, n = output of block n (clamped to the model).
    #[id = "layer"]
    pub layer: IntParam,
    #[id = "low"]
    pub low: IntParam,
    #[id = "high"]
    pub high: IntParam,
    #[id = "level"]
    pub level: FloatParam,
    #[id = "pan"]
    pub pan: FloatParam,
    /// MIDI channel, 1–16.
    #[id = "channel"]
    pub channel: IntParam,
    /// General MIDI program (0-based) the voice plays on the SoundFont.
    #[id = "program"]
    pub program: IntParam,
    /// How the layer's state becomes pitch: where it is (Trajectory), how far it moved
    /// (Contour), which tone of the tonic chord (Chord Tones), or the layer's own
    /// Markov–LSTM phrase (Markov-LSTM).
    #[id = "mode"]
    pub mode: EnumParam<MelodyModeChoice>,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelodyModeChoice {
    Trajectory,
    Contour,
    #[name = "Chord Tones"]
    ChordTones,
    #[name = "Markov-LSTM"]
    MarkovLstm,
}

impl MelodyModeChoice {
    pub fn mode(self) -> crate::music::voices::MelodyMode {
        use crate::music::voices::MelodyMode;
        match self {
            Self::Trajectory => MelodyMode::Trajectory,
            Self::Contour => MelodyMode::Contour,
            Self::ChordTones => MelodyMode::ChordTones,
            Self::MarkovLstm => MelodyMode::MarkovLstm,
        }
    }
}

/// A voice's defaults: layer, range, pan, melody mode.
struct VoiceDefaults {
    layer: i32,
    low: i32,
    high: i32,
    pan: f32,
    mode: MelodyModeChoice,
}

impl VoiceParams {
    fn new(index: usize, defaults: VoiceDefaults) -> Self {
        let VoiceDefaults {
            layer,
            low,
            high,
            pan,
            mode,
        } = defaults;
        let n = index + 1;
        Self {
            enabled: BoolParam::new(format!("Voice {n}"), true),
            layer: IntParam::new(
                format!("Voice {n} Layer"),
                layer,
                IntRange::Linear { min: 0, max: 64 },
            ),
            low: IntParam::new(
                format!("Voice {n} Lowest Note"),
                low,
                IntRange::Linear { min: 0, max: 127 },
            ),
            high: IntParam::new(
                format!("Voice {n} Highest Note"),
                high,
                IntRange::Linear { min: 0, max: 127 },
            ),
            level: gain_param(&format!("Voice {n} Level"), 6.0),
            pan: number_param(
                format!("Voice {n} Pan"),
                pan,
                FloatRange::Linear {
                    min: -1.0,
                    max: 1.0,
                },
            ),
            channel: IntParam::new(
                format!("Voice {n} MIDI Channel"),
                n as i32,
                IntRange::Linear { min: 1, max: 16 },
            ),
            program: program_param(&format!("Voice {n} Program"), DEFAULT_PROGRAMS[index]),
            mode: EnumParam::new(format!("Voice {n} Melody"), mode),
        }
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleChoice {
    Major,
    #[name = "Natural Minor"]
    NaturalMinor,
    #[name = "Harmonic Minor"]
    HarmonicMinor,
    Dorian,
    Phrygian,
    Lydian,
    Mixolydian,
    #[name = "Pentatonic Major"]
    PentatonicMajor,
    #[name = "Pentatonic Minor"]
    PentatonicMinor,
    Chromatic,
    /// The key read from the loaded model's norms (`weights::key`): its root replaces Root.
    /// Until a model has been read it plays as Major on Root.
    #[name = "Model's Key"]
    ModelKey,
}

impl ScaleChoice {
    /// The scale; [`ScaleChoice::ModelKey`] is Major until the model's key overrides it.
    pub fn scale(self) -> Scale {
        match self {
            Self::Major => Scale::Major,
            Self::NaturalMinor => Scale::NaturalMinor,
            Self::HarmonicMinor => Scale::HarmonicMinor,
            Self::Dorian => Scale::Dorian,
            Self::Phrygian => Scale::Phrygian,
            Self::Lydian => Scale::Lydian,
            Self::Mixolydian => Scale::Mixolydian,
            Self::PentatonicMajor => Scale::PentatonicMajor,
            Self::PentatonicMinor => Scale::PentatonicMinor,
            Self::Chromatic => Scale::Chromatic,
            Self::ModelKey => Scale::Major,
        }
    }
}

/// What the voices play.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    /// Tokens as the model writes them, through the maps (the plugin's own music).
    #[name = "Tokens"]
    Thoughts,
    /// The loaded model's frozen weights as a piece (`weights::style`).
    #[name = "Model Weights"]
    Weights,
}

/// The piece Model Weights plays.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightStyleChoice {
    Opera,
    House,
    Acid,
    #[name = "DNA"]
    Dna,
}

impl WeightStyleChoice {
    pub fn style(self) -> crate::weights::style::Style {
        use crate::weights::style::Style;
        match self {
            Self::Opera => Style::Opera,
            Self::House => Style::House,
            Self::Acid => Style::Acid,
            Self::Dna => Style::Dna,
        }
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootChoice {
    C,
    #[name = "C#"]
    CSharp,
    D,
    #[name = "D#"]
    DSharp,
    E,
    F,
    #[name = "F#"]
    FSharp,
    G,
    #[name = "G#"]
    GSharp,
    A,
    #[name = "A#"]
    ASharp,
    B,
}

impl RootChoice {
    pub fn root(self) -> Root {
        Root::from_pitch_class(self as u8)
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    #[name = "Follow Transport"]
    FollowTransport,
    #[name = "Free Run"]
    FreeRun,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopChoice {
    #[name = "Replay"]
    Replay,
    #[name = "Generate Anew"]
    Anew,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemperatureMode {
    Velocity,
    Level,
    Off,
}

impl TemperatureMode {
    pub fn curve_mode(self) -> CurveMode {
        match self {
            Self::Velocity => CurveMode::Velocity,
            Self::Level => CurveMode::Level,
            Self::Off => CurveMode::Off,
        }
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instruments {
    #[name = "Built-in Synth"]
    BuiltIn,
    SoundFont,
    /// The three voices as oscillator banks driven by their layer's hidden state (the drone
    /// and the Tension voice stay on the built-in synth).
    Spectral,
}

impl Instruments {
    pub fn source(self) -> Source {
        match self {
            Self::BuiltIn => Source::BuiltIn,
            Self::SoundFont => Source::SoundFont,
            Self::Spectral => Source::Spectral,
        }
    }
}

/// A General MIDI program number, shown 1-based as GM lists print them.
fn program_param(name: &str, default: u8) -> IntParam {
    IntParam::new(
        name,
        i32::from(default),
        IntRange::Linear { min: 0, max: 127 },
    )
    .with_value_to_string(Arc::new(|v| format!("{}", v + 1)))
    .with_string_to_value(Arc::new(|s| {
        s.trim().parse::<i32>().ok().map(|v| (v - 1).clamp(0, 127))
    }))
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterSource {
    #[name = "Track"]
    Main,
    Sidechain,
}

/// Logical size of a fresh instance's editor window.
pub const DEFAULT_EDITOR_SIZE: [f32; 2] = [1000.0, 720.0];

impl Default for LatentChoirParams {
    fn default() -> Self {
        Self {
            prompt: RwLock::new(DEFAULT_PROMPT.to_owned()),
            model: RwLock::new(String::new()),
            seed: RwLock::new(DEFAULT_SEED),
            soundfont: RwLock::new(String::new()),
            raw_prompt: RwLock::new(false),
            direction: RwLock::new(DEFAULT_DIRECTION.to_owned()),
            text_source: RwLock::new(TextSource::default()),
            editor_size: RwLock::new(DEFAULT_EDITOR_SIZE),
            generation: GenerationParams::default(),
            temperature: TemperatureParams::default(),
            melody: MelodyParams::default(),
            // Three lines in registers that do not overlap by more than a second: chord tones
            // on top, two contour lines under them, and the bass (Drone) below.
            voices: [
                VoiceParams::new(
                    0,
                    VoiceDefaults {
                        layer: 0,
                        low: 72,
                        high: 88,
                        pan: -0.4,
                        mode: MelodyModeChoice::ChordTones,
                    },
                ),
                VoiceParams::new(
                    1,
                    VoiceDefaults {
                        layer: 15,
                        low: 60,
                        high: 74,
                        pan: 0.4,
                        mode: MelodyModeChoice::Contour,
                    },
                ),
                VoiceParams::new(
                    2,
                    VoiceDefaults {
                        layer: 30,
                        low: 48,
                        high: 62,
                        pan: 0.0,
                        mode: MelodyModeChoice::Contour,
                    },
                ),
            ],
            drone: DroneParams::default(),
            sound: SoundParams::default(),
            midi: MidiParams {
                thru: BoolParam::new("MIDI Thru", true),
            },
            phrasing: PhrasingParams {
                comma_breath: percent_param("Comma Breath", 0.6),
                cadences: BoolParam::new("Cadences", true),
                paragraph_shift: IntParam::new(
                    "Paragraph Shift",
                    0,
                    IntRange::Linear { min: 0, max: 24 },
                )
                .with_unit(" st"),
                word_ties: BoolParam::new("Word Ties", true),
                accent: percent_param("Accent", 0.4),
            },
            harmony: HarmonyParams {
                rhythm: EnumParam::new("Harmony", HarmonyChoice::Bar),
                avoid_crossing: BoolParam::new("Avoid Crossing", true),
            },
            feel: FeelParams {
                dynamics: percent_param("Dynamics", 0.7),
                swing: percent_param("Swing", 0.0),
                humanise: percent_param("Humanise", 0.2),
            },
            tension: TensionParams {
                enabled: BoolParam::new("Tension Voice", false),
                dissonance: percent_param("Dissonance", 0.0),
                low: IntParam::new("Tension Low", 48, IntRange::Linear { min: 0, max: 127 }),
                high: IntParam::new("Tension High", 67, IntRange::Linear { min: 0, max: 127 }),
                level: gain_param("Tension Level", 6.0),
                channel: IntParam::new(
                    "Tension MIDI Channel",
                    5,
                    IntRange::Linear { min: 1, max: 16 },
                ),
                program: program_param("Tension Program", DEFAULT_PROGRAMS[4]),
                cc: IntParam::new("Tension CC", 1, IntRange::Linear { min: 0, max: 119 }),
            },
            listen: ListenParams {
                enabled: BoolParam::new("Listen", false),
                every: IntParam::new("Listen Every", 2, IntRange::Linear { min: 1, max: 16 })
                    .with_unit(" bars"),
                follow_key: BoolParam::new("Follow Key", false),
            },
        }
    }
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            generate: BoolParam::new("Generate", false),
            tokens_per_beat: FloatParam::new(
                "Tokens per Beat",
                2.0,
                FloatRange::Linear {
                    min: 0.25,
                    max: 4.0,
                },
            )
            .with_step_size(0.25)
            // A grid of quarter beats, shown as musicians write it: 1/4, 3/4, 1 3/4.
            .with_value_to_string(format::v2s_fraction(4))
            .with_string_to_value(format::s2v_fraction()),
            tokens_per_second: FloatParam::new(
                "Tokens per Second",
                4.0,
                FloatRange::Skewed {
                    min: 0.5,
                    max: 16.0,
                    factor: FloatRange::skew_factor(-1.0),
                },
            )
            .with_unit(" tok/s")
            .with_step_size(0.1)
            .with_value_to_string(format::v2s_decimal(1))
            .with_string_to_value(format::s2v_decimal()),
            timing: EnumParam::new("Timing", Timing::FollowTransport),
            loop_passes: EnumParam::new("Loop Passes", LoopChoice::Replay),
            lookahead: IntParam::new("Lookahead", 4, IntRange::Linear { min: 1, max: 16 })
                .with_unit(" tokens"),
            source: EnumParam::new("Source", SourceChoice::Thoughts),
            weight_style: EnumParam::new("Weight Style", WeightStyleChoice::Opera),
        }
    }
}

impl Default for TemperatureParams {
    fn default() -> Self {
        Self {
            mode: EnumParam::new("Temperature Mode", TemperatureMode::Velocity),
            meter_source: EnumParam::new("Metered Input", MeterSource::Main),
            min: number_param("T Min", 0.4, FloatRange::Linear { min: 0.0, max: 2.0 }),
            max: number_param("T Max", 1.3, FloatRange::Linear { min: 0.0, max: 2.5 }),
            sensitivity: number_param(
                "Sensitivity",
                1.0,
                FloatRange::Linear { min: 0.0, max: 4.0 },
            ),
            smoothing: number_param(
                "Smoothing",
                0.4,
                FloatRange::Skewed {
                    min: 0.05,
                    max: 5.0,
                    factor: FloatRange::skew_factor(-1.0),
                },
            )
            .with_unit(" s"),
            fixed: number_param(
                "Fixed Temperature",
                0.8,
                FloatRange::Linear { min: 0.0, max: 2.0 },
            ),
        }
    }
}

impl Default for MelodyParams {
    fn default() -> Self {
        Self {
            scale: EnumParam::new("Scale", ScaleChoice::Major),
            root: EnumParam::new("Root", RootChoice::C),
            ornaments: number_param("Ornaments", 0.5, FloatRange::Linear { min: 0.0, max: 1.0 }),
            legato: number_param(
                "Legato Length",
                1.0,
                FloatRange::Linear { min: 0.1, max: 1.0 },
            ),
            staccato: number_param(
                "Staccato Length",
                0.3,
                FloatRange::Linear { min: 0.1, max: 1.0 },
            ),
        }
    }
}

impl Default for DroneParams {
    fn default() -> Self {
        Self {
            enabled: BoolParam::new("Drone", true),
            bass: EnumParam::new("Bass", BassChoice::Moving),
            octave: IntParam::new("Drone Octave", 2, IntRange::Linear { min: 0, max: 5 }),
            level: gain_param("Drone Level", 6.0),
            channel: IntParam::new(
                "Drone MIDI Channel",
                4,
                IntRange::Linear { min: 1, max: 16 },
            ),
            program: program_param("Drone Program", DEFAULT_PROGRAMS[3]),
        }
    }
}

impl Default for SoundParams {
    fn default() -> Self {
        Self {
            instruments: EnumParam::new("Instruments", Instruments::BuiltIn),
            spectral_scale: BoolParam::new("Spectral in Scale", true),
            reverb: number_param("Reverb", 0.2, FloatRange::Linear { min: 0.0, max: 1.0 }),
            synth_mute: BoolParam::new("Mute Synth", false),
            gain: gain_param("Output Gain", MAX_OUTPUT_DB),
            thru: gain_param("Input Thru", 0.0),
        }
    }
}

impl LatentChoirParams {
    /// The mapping parameters as they are now (read on the audio thread every block).
    pub fn mapping(&self) -> MappingParams {
        let mut mapping = MappingParams::default();
        for (voice, params) in mapping.voices.iter_mut().zip(&self.voices) {
            voice.enabled = params.enabled.value();
            voice.layer = params.layer.value().max(0) as usize;
            voice.low = params.low.value().clamp(0, 127) as u8;
            voice.high = params.high.value().clamp(0, 127) as u8;
            voice.mode = params.mode.value().mode();
        }
        mapping.scale = self.melody.scale.value().scale();
        mapping.root = self.melody.root.value().root();
        mapping.drone_enabled = self.drone.enabled.value();
        mapping.drone_octave = self.drone.octave.value();
        mapping.ornament_amount = self.melody.ornaments.value();
        mapping.legato_length = self.melody.legato.value();
        mapping.staccato_length = self.melody.staccato.value();
        mapping.phrasing = crate::music::phrasing::PhrasingParams {
            comma_breath: self.phrasing.comma_breath.value(),
            cadence: self.phrasing.cadences.value(),
            paragraph_shift: self.phrasing.paragraph_shift.value().clamp(0, 24) as u8,
            word_ties: self.phrasing.word_ties.value(),
        };
        mapping.accent = self.phrasing.accent.value();
        mapping.harmony = self.harmony.rhythm.value().rhythm();
        mapping.avoid_crossing = self.harmony.avoid_crossing.value();
        mapping.bass = self.drone.bass.value().mode();
        mapping.dynamics = self.feel.dynamics.value();
        mapping.swing = self.feel.swing.value();
        mapping.humanise = self.feel.humanise.value();
        mapping.tension = TensionMapping {
            enabled: self.tension.enabled.value(),
            low: self.tension.low.value().clamp(0, 127) as u8,
            high: self.tension.high.value().clamp(0, 127) as u8,
            dissonance: self.tension.dissonance.value(),
            controller: self.tension.cc.value().clamp(0, 119) as u8,
        };
        mapping
    }

    /// MIDI channels (0-based) of voices 1–3, the drone and the Tension voice.
    pub fn channels(&self) -> [u8; SLOTS] {
        let channel = |p: &IntParam| (p.value().clamp(1, 16) - 1) as u8;
        [
            channel(&self.voices[0].channel),
            channel(&self.voices[1].channel),
            channel(&self.voices[2].channel),
            channel(&self.drone.channel),
            channel(&self.tension.channel),
        ]
    }

    pub fn curve(&self) -> CurveSettings {
        CurveSettings {
            mode: self.temperature.mode.value().curve_mode(),
            t_min: self.temperature.min.value(),
            t_max: self.temperature.max.value(),
            sensitivity: self.temperature.sensitivity.value(),
            smoothing: self.temperature.smoothing.value(),
            fixed: self.temperature.fixed.value(),
        }
    }
}

/// An amount from 0 to 100 %.
fn percent_param(name: &str, default: f32) -> FloatParam {
    FloatParam::new(name, default, FloatRange::Linear { min: 0.0, max: 1.0 })
        .with_unit(" %")
        .with_value_to_string(format::v2s_percent(2))
        .with_string_to_value(format::s2v_percent())
}

/// A linear gain parameter shown in dB, 0 dB by default, from silence up to `max_db`.
fn gain_param(name: &str, max_db: f32) -> FloatParam {
    FloatParam::new(
        name,
        1.0,
        FloatRange::Skewed {
            min: 0.0,
            max: util::db_to_gain(max_db),
            factor: FloatRange::gain_skew_factor(MIN_THRU_DB, max_db),
        },
    )
    .with_smoother(SmoothingStyle::Linear(20.0))
    .with_unit(" dB")
    .with_value_to_string(format::v2s_gain_db(2))
    .with_string_to_value(format::s2v_gain_db())
}

/// Bring a saved state's values back inside their parameters' ranges before nice-plug applies
/// them. nice-plug sets stored plain values as they are, so a hand-edited or corrupt project
/// could otherwise set the output gain to +590 dB or a NaN. Values already in range are left
/// untouched, so save → load → save stays byte-identical.
pub fn clamp_state(state: &mut PluginState) {
    let params = LatentChoirParams::default();
    let by_id: std::collections::HashMap<String, ParamPtr> = params
        .param_map()
        .into_iter()
        .map(|(id, ptr, _)| (id, ptr))
        .collect();
    for (id, value) in state.params.iter_mut() {
        let Some(ptr) = by_id.get(id) else { continue };
        // SAFETY: the pointers point into `params`, which outlives this loop.
        let (min, max, default) = unsafe {
            (
                ptr.preview_plain(0.0),
                ptr.preview_plain(1.0),
                ptr.default_plain_value(),
            )
        };
        match value {
            ParamValue::F32(v) if v.is_nan() => *v = default,
            ParamValue::F32(v) => *v = v.clamp(min.min(max), max.max(min)),
            ParamValue::I32(v) => {
                *v = (*v).clamp(min.min(max).round() as i32, max.max(min).round() as i32)
            }
            ParamValue::Bool(_) | ParamValue::String(_) => {}
        }
    }
}

/// A plain number shown with up to four decimals (see [`format`]): hosts and run files read
/// `-0.4`, not the `-0.39999998` its normalised value converts back to, and `0.125` as typed.
fn number_param(name: impl Into<String>, default: f32, range: FloatRange) -> FloatParam {
    FloatParam::new(name, default, range)
        .with_value_to_string(format::v2s_decimal(4))
        .with_string_to_value(format::s2v_decimal())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(id: &str, value: ParamValue) -> PluginState {
        PluginState {
            version: String::new(),
            params: [(id.to_owned(), value)].into_iter().collect(),
            fields: Default::default(),
        }
    }

    fn f32_of(state: &PluginState, id: &str) -> f32 {
        match state.params[id] {
            ParamValue::F32(v) => v,
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn out_of_range_and_nan_values_are_brought_back() {
        let max_gain = util::db_to_gain(MAX_OUTPUT_DB);
        for (stored, expected) in [(1e30, max_gain), (-1.0, 0.0), (f32::NAN, 1.0)] {
            let mut state = state_with("gain", ParamValue::F32(stored));
            clamp_state(&mut state);
            assert_eq!(f32_of(&state, "gain"), expected, "stored {stored}");
        }
    }

    #[test]
    fn editor_size_and_prompt_mode_are_saved_with_the_project() {
        let params = LatentChoirParams::default();
        *params.editor_size.write().unwrap() = [1234.0, 567.0];
        *params.raw_prompt.write().unwrap() = true;
        let saved = params.serialize_fields();
        let restored = LatentChoirParams::default();
        assert_eq!(*restored.editor_size.read().unwrap(), DEFAULT_EDITOR_SIZE);
        restored.deserialize_fields(&saved);
        assert_eq!(*restored.editor_size.read().unwrap(), [1234.0, 567.0]);
        assert!(*restored.raw_prompt.read().unwrap());
    }

    #[test]
    fn in_range_values_are_untouched() {
        for stored in [0.0, 0.123_456_79, 1.0, 3.9] {
            let mut state = state_with("gain", ParamValue::F32(stored));
            clamp_state(&mut state);
            assert_eq!(f32_of(&state, "gain").to_bits(), stored.to_bits());
        }
    }
}
