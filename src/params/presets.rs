//! Factory presets: full parameter sets to start from, loadable from the editor, through CLAP
//! preset discovery, as VST3 presets and by `latent-choir render --preset NAME`.
//!
//! A preset is written as the parameters it moves away from the defaults, in the text a user
//! would type (`mode_1=Contour`), so it reads like a recipe and survives new parameters: one
//! added later keeps its default in every preset. [`state`] turns it into a complete parameter
//! set, every parameter's value and no persisted field, so loading it changes the sound and
//! leaves the prompt, model, seed and recorded run alone.

use nice_plug::params::InternalParamMut;
use nice_plug::plugin::ParamValue;
use nice_plug::prelude::{Param, ParamPtr, Params, PluginState};

use super::LatentChoirParams;
use super::text::{self, ParamTextError};

/// One factory preset.
#[derive(Debug)]
pub struct Preset {
    /// Shown in hosts and the editor.
    pub name: &'static str,
    /// Stable key: file names, CLAP load keys and `--preset` accept it.
    pub key: &'static str,
    pub description: &'static str,
    /// `(id, value text)` pairs applied over the defaults, in order.
    pub values: &'static [(&'static str, &'static str)],
}

/// The factory presets, the default first.
pub const FACTORY: &[Preset] = &[
    Preset {
        name: "Choir",
        key: "choir",
        description: "The defaults: three separate lines over a moving bass, phrased by the text",
        values: &[],
    },
    Preset {
        name: "Seed-000 Classic",
        key: CLASSIC_KEY,
        description: "The original piece: pitch follows PC1 on the first, middle and last layer \
                      (flute, clarinet, strings) over a held drone, nothing added",
        values: CLASSIC,
    },
    Preset {
        name: "Chamber",
        key: "chamber",
        description: "Two contour lines and a chord-tone voice, chords every half bar",
        values: &[
            ("mode_1", "Contour"),
            ("mode_2", "Contour"),
            ("mode_3", "Chord Tones"),
            ("program_1", "74"),
            ("program_2", "41"),
            ("program_3", "43"),
            ("reverb", "0.3"),
            ("harmony", "Every Half Bar"),
            ("humanise", "30 %"),
        ],
    },
    Preset {
        name: "Ambient Pad",
        key: "ambient-pad",
        description: "Slow, tied chord tones in Lydian under a long reverb",
        values: &[
            ("tokens_per_beat", "0.5"),
            ("scale", "Lydian"),
            ("mode_1", "Chord Tones"),
            ("mode_2", "Chord Tones"),
            ("mode_3", "Chord Tones"),
            ("staccato", "1.0"),
            ("ornaments", "0"),
            ("reverb", "0.8"),
            ("program_1", "89"),
            ("program_2", "92"),
            ("program_3", "90"),
            ("bass", "Held Drone"),
            ("dynamics", "40 %"),
            ("humanise", "0 %"),
            ("accent", "0 %"),
            ("comma_breath", "30 %"),
        ],
    },
    Preset {
        name: "Arpeggiator",
        key: "arpeggiator",
        description: "Four tokens a beat broken over the chord across two octaves, accented",
        values: &[
            ("tokens_per_beat", "4"),
            ("mode_1", "Chord Tones"),
            ("low_1", "60"),
            ("high_1", "84"),
            ("voice_2", "Off"),
            ("voice_3", "Off"),
            ("legato", "0.5"),
            ("staccato", "0.2"),
            ("ornaments", "0"),
            ("accent", "70 %"),
            ("program_1", "82"),
            ("swing", "25 %"),
            ("word_ties", "Off"),
        ],
    },
    Preset {
        name: "Minimal Piano",
        key: "minimal-piano",
        description: "One contour line on the middle layer, pentatonic, over the bass",
        values: &[
            ("voice_1", "Off"),
            ("voice_3", "Off"),
            ("scale", "Pentatonic Major"),
            ("program_2", "1"),
            ("drone_program", "1"),
            ("ornaments", "0.2"),
            ("reverb", "0.35"),
            ("humanise", "35 %"),
            ("dynamics", "80 %"),
        ],
    },
    Preset {
        name: "Dark Drone",
        key: "dark-drone",
        description: "Phrygian on D, a low held drone, slow low voices",
        values: &[
            ("scale", "Phrygian"),
            ("root", "D"),
            ("tokens_per_beat", "1"),
            ("drone_octave", "1"),
            ("low_1", "55"),
            ("high_1", "69"),
            ("low_2", "43"),
            ("high_2", "57"),
            ("low_3", "31"),
            ("high_3", "45"),
            ("reverb", "0.6"),
            ("program_1", "43"),
            ("program_2", "44"),
            ("program_3", "49"),
            ("bass", "Held Drone"),
            ("harmony", "Off"),
            ("dynamics", "50 %"),
        ],
    },
    Preset {
        name: "Tension Organ",
        key: "tension-organ",
        description: "The concept direction heard: an organ and chromatic neighbours come in as \
                      the states lean toward it; the middle voice sings its Markov-LSTM phrase",
        values: &[
            ("tension_voice", "On"),
            ("dissonance", "50 %"),
            ("mode_2", "Markov-LSTM"),
            ("reverb", "0.45"),
        ],
    },
    Preset {
        name: "MIDI-only Generator",
        key: "midi-only-generator",
        description: "The built-in synth muted: notes for other tracks, the track passes through",
        values: &[("synth_mute", "On"), ("reverb", "0"), ("humanise", "0 %")],
    },
];

/// The settings that reproduce the original piece (and every project saved before a
/// parameter existed): Trajectory everywhere, the original ranges, a held drone, no phrasing,
/// harmony or feel.
const CLASSIC: &[(&str, &str)] = &[
    ("mode_1", "Trajectory"),
    ("mode_2", "Trajectory"),
    ("mode_3", "Trajectory"),
    ("low_1", "72"),
    ("high_1", "96"),
    ("low_2", "55"),
    ("high_2", "79"),
    ("low_3", "48"),
    ("high_3", "72"),
    ("comma_breath", "0 %"),
    ("cadences", "Off"),
    ("paragraph_shift", "0"),
    ("word_ties", "Off"),
    ("accent", "0 %"),
    ("harmony", "Off"),
    ("avoid_crossing", "Off"),
    ("bass", "Held Drone"),
    ("dynamics", "0 %"),
    ("swing", "0 %"),
    ("humanise", "0 %"),
    ("tension_voice", "Off"),
    ("dissonance", "0 %"),
];

/// Key of the preset that plays as the original piece did (and as projects and runs saved
/// before a parameter existed did).
pub const CLASSIC_KEY: &str = "seed-000-classic";

/// The preset named `name`: its name or key, in any case.
pub fn find(name: &str) -> Option<&'static Preset> {
    let name = name.trim();
    FACTORY
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name) || p.key.eq_ignore_ascii_case(name))
}

/// Every preset's name, for messages.
pub fn names() -> String {
    FACTORY
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Preset {
    /// Sets `params` to this preset: every parameter back to its default, then the preset's
    /// values. Persisted fields (prompt, model, seed, …) are left alone.
    pub fn apply(&self, params: &LatentChoirParams) -> Result<(), ParamTextError> {
        for (_, ptr, _) in params.param_map() {
            // SAFETY: the pointers point into `params`, borrowed for this whole call. Plain
            // values, so a default is set exactly (its normalised value need not round-trip).
            unsafe {
                match ptr {
                    ParamPtr::FloatParam(p) => {
                        (*p)._internal_set_plain_value((*p).default_plain_value())
                    }
                    ParamPtr::IntParam(p) => {
                        (*p)._internal_set_plain_value((*p).default_plain_value())
                    }
                    ParamPtr::BoolParam(p) => {
                        (*p)._internal_set_plain_value((*p).default_plain_value())
                    }
                    ParamPtr::EnumParam(p) => {
                        (*p)._internal_set_plain_value((*p).default_plain_value())
                    }
                };
            }
        }
        for (id, value) in self.values {
            text::set(params, id, value)?;
        }
        Ok(())
    }

    /// The preset as a plugin state: every parameter's value and no fields, so that loading it
    /// (from the editor, a CLAP preset or a VST3 preset file) changes the parameters only.
    pub fn state(&self) -> Result<PluginState, ParamTextError> {
        let params = LatentChoirParams::default();
        self.apply(&params)?;
        Ok(params_state(&params))
    }
}

/// Every parameter of `params` as nice-plug saves it (plain values, enums by index).
fn params_state(params: &LatentChoirParams) -> PluginState {
    let values = params
        .param_map()
        .into_iter()
        .map(|(id, ptr, _)| {
            // SAFETY: the pointers point into `params`, borrowed for this whole call.
            let value = unsafe {
                match ptr {
                    ParamPtr::FloatParam(p) => ParamValue::F32((*p).unmodulated_plain_value()),
                    ParamPtr::IntParam(p) => ParamValue::I32((*p).unmodulated_plain_value()),
                    ParamPtr::BoolParam(p) => ParamValue::Bool((*p).unmodulated_plain_value()),
                    ParamPtr::EnumParam(p) => match (*p).unmodulated_plain_id() {
                        Some(id) => ParamValue::String(id.to_owned()),
                        None => ParamValue::I32((*p).unmodulated_plain_value()),
                    },
                }
            };
            (id, value)
        })
        .collect();
    PluginState {
        version: String::from(env!("CARGO_PKG_VERSION")),
        params: values,
        fields: Default::default(),
    }
}

/// A project saved before a parameter existed sounded as that parameter's Classic value does
/// (every parameter added since the original piece is off there): a state that lacks a
/// parameter gets that value, not the newer default, so old projects keep their sound.
pub fn fill_missing_with_classic(state: &mut PluginState) {
    if state.params.is_empty() {
        return;
    }
    let Some(classic) = find(CLASSIC_KEY).and_then(|p| p.state().ok()) else {
        return;
    };
    for (id, value) in classic.params {
        state.params.entry(id).or_insert(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_factory_preset_applies_and_keys_are_unique() {
        assert!(FACTORY.len() >= 8);
        let mut keys: Vec<_> = FACTORY.iter().map(|p| p.key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), FACTORY.len(), "keys are unique");
        for preset in FACTORY {
            let state = preset
                .state()
                .unwrap_or_else(|e| panic!("{}: {e}", preset.name));
            assert!(state.fields.is_empty(), "{} touches no field", preset.name);
            assert_eq!(
                state.params.len(),
                LatentChoirParams::default().param_map().len(),
                "{} sets every parameter",
                preset.name
            );
        }
    }

    #[test]
    fn presets_are_found_by_name_or_key_in_any_case() {
        assert_eq!(find("Dark Drone").map(|p| p.key), Some("dark-drone"));
        assert_eq!(find("  DARK-drone ").map(|p| p.key), Some("dark-drone"));
        assert!(find("nothing").is_none());
    }

    #[test]
    fn a_preset_resets_what_it_does_not_set() {
        let params = LatentChoirParams::default();
        text::set(&params, "reverb", "0.9").expect("set");
        text::set(&params, "voice_1", "Off").expect("set");
        let minimal = find("minimal-piano").expect("preset");
        minimal.apply(&params).expect("apply");
        assert!(!params.voices[0].enabled.value(), "the preset's own value");
        assert!(params.voices[1].enabled.value());
        let defaults = LatentChoirParams::default();
        assert_eq!(params.melody.legato.value(), defaults.melody.legato.value());
        assert!((params.sound.reverb.value() - 0.35).abs() < 1e-6);
    }

    #[test]
    fn a_state_missing_parameters_takes_their_classic_values() {
        let mut state = PluginState {
            version: "0.1.0".into(),
            params: [("reverb".to_owned(), ParamValue::F32(0.5))].into(),
            fields: Default::default(),
        };
        fill_missing_with_classic(&mut state);
        assert!(
            matches!(state.params["reverb"], ParamValue::F32(v) if v == 0.5),
            "kept"
        );
        assert!(
            matches!(state.params["mode_2"], ParamValue::I32(0)),
            "missing: Classic's Trajectory"
        );
        let mut empty = PluginState {
            version: String::new(),
            params: Default::default(),
            fields: Default::default(),
        };
        fill_missing_with_classic(&mut empty);
        assert!(
            empty.params.is_empty(),
            "a state with no parameters is left alone"
        );
    }
}
