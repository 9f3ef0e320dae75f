//! Every host-visible parameter. The `#[id]` strings are stable: hosts store automation and
//! project state under them, so they must never change once released.

use nice_plug::prelude::*;

/// Loudest output gain the user can dial in, in dB.
const MAX_OUTPUT_DB: f32 = 12.0;
/// Quietest non-silent input-thru level, in dB; below it the slider reads "-inf".
const MIN_THRU_DB: f32 = -60.0;

#[derive(Params)]
pub struct LatentChoirParams {
    /// Level of everything the plugin outputs, applied last. Smoothed so automation never clicks.
    #[id = "gain"]
    pub gain: FloatParam,

    /// How much of the track's own audio (the main input) passes through to the output. The
    /// plugin usually sits on the track whose loudness steers the model, so the default keeps
    /// that track audible.
    #[id = "thru"]
    pub thru: FloatParam,

    /// Pass incoming MIDI notes through to MIDI out, so the plugin can sit in a note-effect chain
    /// without swallowing what comes before it.
    #[id = "midi_thru"]
    pub midi_thru: BoolParam,
}

impl Default for LatentChoirParams {
    fn default() -> Self {
        Self {
            gain: gain_param("Output Gain", MAX_OUTPUT_DB),
            thru: gain_param("Input Thru", 0.0),
            midi_thru: BoolParam::new("MIDI Thru", true),
        }
    }
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
    .with_value_to_string(formatters::v2s_f32_gain_to_db(1))
    .with_string_to_value(formatters::s2v_f32_gain_to_db())
}
