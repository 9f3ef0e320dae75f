//! A run heard again without the model: its frames through the offline engine, into a MIDI
//! recording and an audio sink. `latent-choir replay` and the plugin's "Export MIDI" both come
//! through here, so the plugin's export is byte for byte what the command line makes of the
//! exported run file.

use crate::io::audio_file::StereoAudio;
use crate::io::midi_file::MidiRecorder;
use crate::io::run_file::Run;
use crate::music::SLOTS;
use crate::music::scale::parse_key;

use crate::params::text as param_text;
use crate::params::{LatentChoirParams, presets};
use crate::playback::player::FrameSource;
use crate::playback::sonifier::Sonifier;
use crate::synth::SoundFontPlayer;

use super::OfflineError;
use super::recording::Playback;
use super::timeline::{self as offline, AudioSink, OfflineEars, OfflineReport, Sinks, Timeline};

/// The parameters a run was made with (its manifest's values over the defaults).
pub fn recorded_params(run: &Run) -> Result<LatentChoirParams, OfflineError> {
    let params = LatentChoirParams::default();
    // A run recorded before a parameter existed played as the Classic preset has it.
    if let Some(classic) = presets::find(presets::CLASSIC_KEY) {
        classic.apply(&params)?;
    }
    param_text::restore(&params, &run.manifest.params)?;
    Ok(params)
}

/// The run's own timeline: its steps at `bpm` and the parameters' tokens per beat, at the
/// recorded sample rate, with the model's key it recorded.
pub fn timeline(run: &Run, params: &LatentChoirParams, bpm: f64, sample_rate: u32) -> Timeline {
    let tokens_per_beat = f64::from(params.generation.tokens_per_beat.value());
    Timeline {
        model_key: run.manifest.model_key.as_deref().and_then(parse_key),
        ..Timeline::for_tokens(sample_rate, bpm, tokens_per_beat, run.manifest.steps)
    }
}

/// What a replay plays against and where its sound goes.
pub struct Surroundings<'a> {
    /// The listener's ear (`render` with Listen on); `None` hears nothing.
    pub ears: Option<OfflineEars<'a>>,
    pub soundfont: Option<SoundFontPlayer>,
    pub song: Option<&'a StereoAudio>,
    pub audio: &'a mut AudioSink<'a>,
    pub progress: &'a mut dyn FnMut(u64),
}

/// Plays `run`'s frames over `timeline` with `params`; the MIDI tracks are named for the
/// layers the voices followed.
pub fn replay(
    run: &Run,
    params: &LatentChoirParams,
    timeline: &Timeline,
    surroundings: Surroundings<'_>,
) -> Result<(OfflineReport, MidiRecorder), OfflineError> {
    let mut source = Playback::new(run.frames().collect());
    let (report, mut midi) = play(timeline, params, surroundings, &mut source)?;
    if run.manifest.hidden_states > 0 {
        midi.set_names(track_names(params, Some(run.manifest.hidden_states)));
    }
    Ok((report, midi))
}

/// Plays the timeline from any frame source (the render's live queue, a run's frames).
pub fn play(
    timeline: &Timeline,
    params: &LatentChoirParams,
    surroundings: Surroundings<'_>,
    source: &mut impl FrameSource,
) -> Result<(OfflineReport, MidiRecorder), OfflineError> {
    let Surroundings {
        ears,
        soundfont,
        song,
        audio,
        progress,
    } = surroundings;
    param_text::settle_smoothers(params, timeline.sample_rate as f32);
    let mut sonifier = Sonifier::new(timeline.sample_rate as f32, timeline.block);
    if let Some(font) = soundfont {
        sonifier
            .choir_mut()
            .replace_soundfont(Some(font))
            .map_err(|_| OfflineError::SoundFontRate)?;
    }
    let mut midi = MidiRecorder::new(
        f64::from(timeline.sample_rate),
        timeline.bpm,
        track_names(params, None),
    );
    let report = offline::run(
        timeline,
        params,
        &mut sonifier,
        song,
        source,
        Sinks {
            ears,
            midi: &mut midi,
            audio,
            progress,
        },
    )?;
    Ok((report, midi))
}

/// The MIDI tracks' names: each voice with the hidden state it followed (its Layer parameter,
/// clamped to the model's `hidden_states` when known).
pub fn track_names(params: &LatentChoirParams, hidden_states: Option<usize>) -> [String; SLOTS] {
    let voice = |i: usize| {
        let layer = params.voices[i].layer.value().max(0) as usize;
        let layer = hidden_states.map_or(layer, |n| layer.min(n.saturating_sub(1)));
        format!("Voice {} (layer {layer})", i + 1)
    };
    [
        voice(0),
        voice(1),
        voice(2),
        "Drone".to_owned(),
        "Tension".to_owned(),
    ]
}

/// The Standard MIDI File `latent-choir replay RUN --midi` writes for `run` with its recorded
/// settings and no song: the notes do not depend on the sound, so nothing is rendered to
/// disk.
pub fn midi_bytes(run: &Run) -> Result<Vec<u8>, OfflineError> {
    let params = recorded_params(run)?;
    let timeline = timeline(run, &params, run.manifest.bpm, run.manifest.sample_rate);
    let (_, midi) = replay(
        run,
        &params,
        &timeline,
        Surroundings {
            ears: None,
            soundfont: None,
            song: None,
            audio: &mut |_, _| Ok(()),
            progress: &mut |_| {},
        },
    )?;
    Ok(midi.to_bytes(MIDI_TEMPO_TRACK))
}

/// The name of every MIDI file's tempo track.
pub const MIDI_TEMPO_TRACK: &str = "Latent Choir";
