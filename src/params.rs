//! Every host-visible parameter. The `#[id]` strings are stable: hosts store automation and
//! project state under them, so they must never change once released.

use nice_plug::plugin::ParamValue;
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
    fn in_range_values_are_untouched() {
        for stored in [0.0, 0.123_456_79, 1.0, 3.9] {
            let mut state = state_with("gain", ParamValue::F32(stored));
            clamp_state(&mut state);
            assert_eq!(f32_of(&state, "gain").to_bits(), stored.to_bits());
        }
    }
}
