//! Projects saved by earlier versions load as they were saved: the parameter ids and persisted
//! field keys are the contract with every saved project, whatever shape `params/` takes.
//!
//! The fixture is a state saved by the CLAP build of commit 82c39e7 (flat parameters, before
//! they were grouped), with every parameter but Generate moved away from its default and the
//! session fields set; beside it, each parameter's value as that build reported it to the host.
//! `write_fixture` made it (`LATENT_CHOIR_OLD_CLAP=/path/to/old.clap cargo test --test
//! state_compat -- --ignored write_fixture`).

mod common;

use std::collections::BTreeMap;

use common::clap_host::{Block, HostedPlugin, InEvent, load_entry};
use common::paths::fixture;
use common::state;
use latent_choir::params::presets;

const STATE: &str = "state/flat-params-82c39e7.state";
const VALUES: &str = "state/flat-params-82c39e7.values.json";

/// The state's JSON document (after its 8-byte length prefix).
fn document(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(&bytes[8..]).expect("state JSON")
}

#[test]
#[ignore = "writes the fixture from an older build: set LATENT_CHOIR_OLD_CLAP"]
fn write_fixture() {
    let library = std::env::var("LATENT_CHOIR_OLD_CLAP").expect("LATENT_CHOIR_OLD_CLAP");
    let mut plugin = HostedPlugin::from_entry(load_entry(std::path::Path::new(&library)));
    plugin.activate(48_000.0, 256);
    let events: Vec<InEvent> = plugin
        .params()
        .into_iter()
        .filter(|(_, name, ..)| name != "Generate")
        .map(|(id, _, min, max, default)| {
            let stepped = [min, max, default].iter().all(|v| v.fract() == 0.0);
            let mut value = min + 0.37 * (max - min);
            if stepped {
                value = value.round();
                if value == default {
                    value = if default == max { min } else { max };
                }
            }
            InEvent::Param { time: 0, id, value }
        })
        .collect();
    let silence = vec![0.0; 256];
    plugin.process(&Block::silent(&silence, &events));
    plugin.deactivate();
    let mut saved = plugin.save_state();
    for (key, value) in [
        (
            "prompt",
            serde_json::json!("A saved prompt, kept with the project"),
        ),
        ("seed", serde_json::json!(424_242)),
        ("raw_prompt", serde_json::json!(true)),
        ("soundfont", serde_json::json!("/nowhere/font.sf2")),
        ("editor_size", serde_json::json!([880.0, 610.0])),
    ] {
        saved = state::with_field(&saved, key, &value);
    }
    assert!(plugin.load_state(&saved));
    let saved = plugin.save_state();
    let values: BTreeMap<String, f64> = plugin
        .params()
        .into_iter()
        .map(|(id, name, ..)| (format!("{id} {name}"), plugin.param_value(id)))
        .collect();
    std::fs::create_dir_all(fixture("state")).expect("fixture folder");
    std::fs::write(fixture(STATE), saved).expect("write the state");
    let json = serde_json::to_string_pretty(&values).expect("encode");
    std::fs::write(fixture(VALUES), json).expect("write the values");
}

#[test]
fn a_project_saved_before_the_parameter_groups_loads_every_value() {
    let saved = std::fs::read(fixture(STATE)).expect("the saved state fixture");
    let before: BTreeMap<String, f64> =
        serde_json::from_str(&std::fs::read_to_string(fixture(VALUES)).expect("values fixture"))
            .expect("values JSON");
    let mut plugin = HostedPlugin::new();
    assert!(plugin.load_state(&saved), "the old state is accepted");
    let now: BTreeMap<u32, (String, f64)> = plugin
        .params()
        .into_iter()
        .map(|(id, name, ..)| (id, (name.clone(), plugin.param_value(id))))
        .collect();
    // Parameters added since load at their defaults; every old one is still there.
    let old_ids: Vec<u32> = before
        .keys()
        .map(|key| {
            key.split_once(' ')
                .expect("`id name`")
                .0
                .parse()
                .expect("numeric id")
        })
        .collect();
    let mut added: Vec<&str> = now
        .iter()
        .filter(|(id, _)| !old_ids.contains(id))
        .map(|(_, (name, _))| name.as_str())
        .collect();
    added.sort();
    assert_eq!(
        added,
        [
            "Accent",
            "Avoid Crossing",
            "Bass",
            "Cadences",
            "Comma Breath",
            "Dissonance",
            "Dynamics",
            "Follow Key",
            "Harmony",
            "Humanise",
            "Listen",
            "Listen Every",
            "Paragraph Shift",
            "Source",
            "Spectral in Scale",
            "Swing",
            "Tension CC",
            "Tension High",
            "Tension Level",
            "Tension Low",
            "Tension MIDI Channel",
            "Tension Program",
            "Tension Voice",
            "Voice 1 Melody",
            "Voice 2 Melody",
            "Voice 3 Melody",
            "Weight Style",
            "Word Ties"
        ],
        "parameters added since"
    );
    // A parameter the project did not know loads as the original piece played (the Classic
    // preset's value), not at today's default: the project sounds as it did.
    let classic = presets::find("Seed-000 Classic")
        .expect("the Classic preset")
        .state()
        .expect("its state");
    let mut reference = HostedPlugin::new();
    assert!(reference.load_state(&state::encode(&classic)));
    let mut defaults = HostedPlugin::new();
    let mut differs_from_default = 0;
    for (id, (name, value)) in now.iter().filter(|(id, _)| !old_ids.contains(id)) {
        assert_eq!(
            *value,
            reference.param_value(*id),
            "{name} loads at its Classic value"
        );
        differs_from_default += usize::from(*value != defaults.param_value(*id));
    }
    assert!(
        differs_from_default >= 5,
        "the new defaults are not what old projects get"
    );
    for (key, value) in &before {
        let (id, name) = key.split_once(' ').expect("`id name`");
        let id: u32 = id.parse().expect("numeric id");
        let (now_name, now_value) = now
            .get(&id)
            .unwrap_or_else(|| panic!("parameter {name} (id {id}) is gone"));
        assert_eq!(now_name, name, "id {id} keeps its name");
        // The state keeps a choice as its index; the host reads it back through the wrapper's
        // f32 normalisation, whose rounding moves in the 7th digit when a choice is appended
        // (Scale gained Model's Key): the same index either way.
        assert!(
            (now_value - value).abs() < 1e-6,
            "{name} loads as it was saved: {now_value} vs {value}"
        );
    }

    // Saved again, the project carries the same values and fields.
    let (old, new) = (document(&saved), document(&plugin.save_state()));
    let old_params = old["params"].as_object().expect("params");
    for (id, value) in old_params {
        assert_eq!(
            &new["params"][id], value,
            "parameter {id} saved again as it was"
        );
    }
    for key in ["prompt", "seed", "raw_prompt", "soundfont", "editor_size"] {
        assert_eq!(old["fields"][key], new["fields"][key], "field {key}");
    }
}
