//! Parameters by their stable ids, outside a host: `latent-choir render --param scale=Dorian`
//! sets one from text, and run files record every value so a replay can set them all back.
//!
//! Text goes through each parameter's own string → value conversion (what a host's text entry
//! uses), with two additions for the command line: choice names match in any case
//! (`scale=dorian`), and switches take `on/off/true/false/yes/no/1/0` and nothing else.
//! Numbers outside a parameter's range are refused rather than clamped.

use std::collections::BTreeMap;

use nice_plug::prelude::{ParamPtr, Params};

use crate::io::run_file::RecordedParam;
use crate::params::LatentChoirParams;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamTextError {
    #[error("`{0}` is not ID=VALUE (for example scale=Dorian)")]
    Syntax(String),
    #[error("no parameter has the id `{id}`; the ids are: {known}")]
    UnknownId { id: String, known: String },
    #[error("`{value}` is not a value of `{id}` ({name}); it takes {expected}")]
    BadValue {
        id: String,
        name: String,
        value: String,
        expected: String,
    },
}

/// Every parameter of `params` by id, in id order.
fn by_id(params: &LatentChoirParams) -> BTreeMap<String, ParamPtr> {
    params
        .param_map()
        .into_iter()
        .map(|(id, ptr, _)| (id, ptr))
        .collect()
}

/// Every parameter's id, in id order.
pub fn ids(params: &LatentChoirParams) -> Vec<String> {
    by_id(params).into_keys().collect()
}

/// Sets parameter `id` from `text` (see the [module docs](self)).
pub fn set(params: &LatentChoirParams, id: &str, text: &str) -> Result<(), ParamTextError> {
    let map = by_id(params);
    let Some(ptr) = map.get(id) else {
        return Err(ParamTextError::UnknownId {
            id: id.to_owned(),
            known: map.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    let normalized = parse(ptr, text).ok_or_else(|| ParamTextError::BadValue {
        id: id.to_owned(),
        // SAFETY: `ptr` points into `params`, borrowed for this whole call.
        name: unsafe { ptr.name() }.to_owned(),
        value: text.to_owned(),
        expected: expected(ptr),
    })?;
    set_normalized(ptr, normalized);
    Ok(())
}

/// Sets parameters from `ID=VALUE` arguments, in order.
pub fn set_all<S: AsRef<str>>(
    params: &LatentChoirParams,
    assignments: &[S],
) -> Result<(), ParamTextError> {
    for assignment in assignments {
        let assignment = assignment.as_ref();
        let (id, value) = assignment
            .split_once('=')
            .ok_or_else(|| ParamTextError::Syntax(assignment.to_owned()))?;
        set(params, id.trim(), value)?;
    }
    Ok(())
}

/// Every parameter's current value, by id.
pub fn values(params: &LatentChoirParams) -> BTreeMap<String, RecordedParam> {
    by_id(params)
        .into_iter()
        .map(|(id, ptr)| {
            // SAFETY: the pointers point into `params`, borrowed for this whole call.
            let value = unsafe {
                let normalized = ptr.unmodulated_normalized_value();
                RecordedParam {
                    normalized,
                    plain: ptr.unmodulated_plain_value(),
                    text: ptr.normalized_value_to_string(normalized, true),
                }
            };
            (id, value)
        })
        .collect()
}

/// Sets recorded values back (a replay), exactly: every parameter ends with the plain value
/// recorded. Ids this build does not know, or values that are not normalised numbers, are
/// refused.
pub fn restore(
    params: &LatentChoirParams,
    values: &BTreeMap<String, RecordedParam>,
) -> Result<(), ParamTextError> {
    let map = by_id(params);
    for (id, value) in values {
        let Some(ptr) = map.get(id) else {
            return Err(ParamTextError::UnknownId {
                id: id.clone(),
                known: map.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        if !(0.0..=1.0).contains(&value.normalized) {
            return Err(ParamTextError::BadValue {
                id: id.clone(),
                // SAFETY: `ptr` points into `params`, borrowed for this whole call.
                name: unsafe { ptr.name() }.to_owned(),
                value: value.normalized.to_string(),
                expected: "a normalised value in [0, 1]".to_owned(),
            });
        }
        // A value set from text went through its normalised value, and setting that again
        // gives the same plain value. A default never did, and its normalised value need not
        // round-trip to it exactly (1.0 could come back as 0.99999994): leave it alone.
        // SAFETY: as above.
        if unsafe { ptr.unmodulated_plain_value() }.to_bits() != value.plain.to_bits() {
            set_normalized(ptr, value.normalized);
        }
    }
    Ok(())
}

/// Moves every smoother to its parameter's value for `sample_rate`, as a host does when the
/// plugin is activated: gains start where they are set rather than gliding from the default.
pub fn settle_smoothers(params: &LatentChoirParams, sample_rate: f32) {
    for ptr in by_id(params).values() {
        // SAFETY: the pointers point into `params`, borrowed for this whole call.
        unsafe { ptr._internal_update_smoother(sample_rate, true) };
    }
}

fn set_normalized(ptr: &ParamPtr, normalized: f32) {
    // SAFETY: the pointer points into the caller's `params`, which outlives this call; outside
    // a host nothing else reads or writes the parameter meanwhile.
    unsafe {
        ptr._internal_set_normalized_value(normalized);
    }
}

/// The normalised value `text` stands for, if it is one of the parameter's values.
fn parse(ptr: &ParamPtr, text: &str) -> Option<f32> {
    let text = text.trim();
    match ptr {
        ParamPtr::BoolParam(_) => {
            let on = match text.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" | "1" => true,
                "off" | "false" | "no" | "0" => false,
                _ => return None,
            };
            Some(if on { 1.0 } else { 0.0 })
        }
        ParamPtr::EnumParam(_) => {
            // SAFETY: as in `set`.
            let exact = unsafe { ptr.string_to_normalized_value(text) };
            exact.or_else(|| {
                choices(ptr)
                    .into_iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(text))
                    .map(|(_, normalized)| normalized)
            })
        }
        _ => {
            // SAFETY: as in `set`.
            let normalized = unsafe { ptr.string_to_normalized_value(text) }?;
            if !normalized.is_finite() {
                return None;
            }
            // A plain number must lie inside the range (the conversion would clamp it).
            if let Ok(number) = text.parse::<f32>() {
                // SAFETY: as in `set`.
                let (low, high) = unsafe { (ptr.preview_plain(0.0), ptr.preview_plain(1.0)) };
                let tolerance = (high - low).abs() * 1e-6;
                if !number.is_finite()
                    || number < low.min(high) - tolerance
                    || number > low.max(high) + tolerance
                {
                    return None;
                }
            }
            Some(normalized)
        }
    }
}

/// The names of a choice parameter's values with their normalised values.
fn choices(ptr: &ParamPtr) -> Vec<(String, f32)> {
    // SAFETY: as in `set`.
    let steps = unsafe { ptr.step_count() }.unwrap_or(0);
    (0..=steps)
        .map(|i| {
            let normalized = if steps == 0 {
                0.0
            } else {
                i as f32 / steps as f32
            };
            // SAFETY: as in `set`.
            let name = unsafe { ptr.normalized_value_to_string(normalized, false) };
            (name, normalized)
        })
        .collect()
}

/// What a parameter accepts, for error messages.
fn expected(ptr: &ParamPtr) -> String {
    match ptr {
        ParamPtr::BoolParam(_) => "on or off".to_owned(),
        ParamPtr::EnumParam(_) => {
            let names: Vec<String> = choices(ptr).into_iter().map(|(n, _)| n).collect();
            format!("one of: {}", names.join(", "))
        }
        _ => {
            // SAFETY: as in `set`.
            let (low, high) = unsafe {
                (
                    ptr.normalized_value_to_string(0.0, true),
                    ptr.normalized_value_to_string(1.0, true),
                )
            };
            format!("a number from {low} to {high}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::scale::{Root, Scale};

    #[test]
    fn choices_match_in_any_case_and_numbers_stay_in_range() {
        let params = LatentChoirParams::default();
        set_all(
            &params,
            &["scale=dorian", "root=D", "voice_2=off", "layer_1=3"],
        )
        .unwrap();
        let mapping = params.mapping();
        assert_eq!(mapping.scale, Scale::Dorian);
        assert_eq!(mapping.root, Root::D);
        assert!(!mapping.voices[1].enabled);
        assert_eq!(mapping.voices[0].layer, 3);
        set(&params, "scale", "Natural Minor").unwrap();
        assert_eq!(params.mapping().scale, Scale::NaturalMinor);
        set(&params, "gain", "-6 dB").unwrap();
        assert!((params.sound.gain.value() - 0.501).abs() < 1e-3);

        for (id, value) in [
            ("scale", "klezmer"),
            ("layer_1", "99"),
            ("drone", "maybe"),
            ("reverb", "nan"),
            ("temp_min", "abc"),
        ] {
            assert!(
                matches!(
                    set(&params, id, value),
                    Err(ParamTextError::BadValue { .. })
                ),
                "{id}={value}"
            );
        }
        let unknown = set(&params, "tempo", "1").unwrap_err().to_string();
        assert!(
            unknown.contains("scale") && unknown.contains("voice_1"),
            "{unknown}"
        );
        assert!(matches!(
            set_all(&params, &["scale"]),
            Err(ParamTextError::Syntax(_))
        ));
    }

    #[test]
    fn recorded_values_restore_exactly() {
        let params = LatentChoirParams::default();
        set_all(&params, &["scale=Lydian", "ornaments=0.37", "gain=-3.5 dB"]).unwrap();
        let recorded = values(&params);
        let fresh = LatentChoirParams::default();
        restore(&fresh, &recorded).unwrap();
        assert_eq!(values(&fresh), recorded);
        assert_eq!(fresh.mapping(), params.mapping());
        // Untouched defaults keep their exact values.
        assert_eq!(fresh.sound.thru.value().to_bits(), 1.0_f32.to_bits());
    }
}
