//! The factory presets as VST3 hosts meet them: `.vstpreset` files in the preset folder, read by
//! a real VST3 host library (`vst3-host`, which checks the class id) and by our own reader, their
//! component state handed to a fresh instance's `setState` and its controller's
//! `setComponentState`. What the controller then reports is compared with the presets' recipes.
//! Each test runs in its own child process (`common::isolate`).
#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::isolate::isolated;
use common::params::{param_id as vst3_param_id, preset_texts};
use common::signal::assert_clean;
use common::vst3_bundle::{BLOCK_SIZE, Bundle};
use latent_choir::io::vst3_preset;
use latent_choir::params::presets::FACTORY;
use latent_choir::vst3_export::{preset_folder, write_factory_presets};
use vst3_host::Plugin;

/// What the edit controller reports for each parameter: its value, as text.
fn controller_texts(plugin: &Plugin, ids: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    ids.keys()
        .map(|id| {
            let vst3_id = vst3_param_id(id);
            let value = plugin.get_parameter(vst3_id).expect("getParamNormalized");
            let text = plugin
                .format_parameter(vst3_id, value)
                .expect("getParamStringByValue");
            (id.clone(), text)
        })
        .collect()
}

/// The component state `getState` writes, read out of the `.vstpreset` the host library saves
/// (so our reader also reads a file another writer made).
fn component_state(plugin: &Plugin, bundle: &Bundle) -> Vec<u8> {
    let file = bundle.scratch_file("saved.vstpreset");
    plugin.save_vstpreset(&file).expect("save a .vstpreset");
    let bytes = fs::read(&file).expect("read it back");
    let preset = vst3_preset::read(&bytes).expect("our reader reads the host's file");
    preset.component_state().expect("a Comp chunk").to_vec()
}

const PROMPT: &str = "A preset must leave this prompt alone.";

/// The prompt field (JSON text inside the state's JSON) of a component state.
fn prompt_of(state: &[u8]) -> Option<String> {
    let document: serde_json::Value = serde_json::from_slice(state).ok()?;
    let text = document["fields"]["prompt"].as_str()?;
    serde_json::from_str(text).ok()
}

/// A fresh instance with a prompt of its own, as a project would have.
fn plugin_with_a_prompt(bundle: &Bundle) -> Plugin {
    let mut plugin = bundle.load();
    let state = component_state(&plugin, bundle);
    let mut document: serde_json::Value = serde_json::from_slice(&state).expect("state JSON");
    document["fields"]["prompt"] = serde_json::Value::String(serde_json::json!(PROMPT).to_string());
    let state = serde_json::to_vec(&document).expect("encode");
    plugin.load_state(&state).expect("setState with a prompt");
    assert_eq!(
        prompt_of(&component_state(&plugin, bundle)).as_deref(),
        Some(PROMPT)
    );
    plugin
}

/// One block of silence: the instance still processes, cleanly.
fn run_a_block(plugin: &mut Plugin) {
    plugin.start_processing().expect("start processing");
    let mut buffers = plugin
        .create_bus_audio_buffers(BLOCK_SIZE)
        .expect("buffers for the plugin's buses");
    plugin
        .process_bus_audio(&mut buffers)
        .expect("process a block");
    assert_clean(&buffers.outputs[0].channels);
}

/// Every factory preset is written where hosts look, as a file with our class id, its name in
/// the metadata and a component state that a fresh instance takes: loaded by the host library
/// from the file, and again by handing its Comp chunk to `setState`/`setComponentState`, the
/// controller then reports the preset's values, and the prompt stays.
#[test]
fn factory_preset_files_load_in_a_vst3_host() {
    isolated("factory_preset_files_load_in_a_vst3_host", || {
        let bundle = Bundle::fresh("factory-presets");
        let root = bundle.root.join("presets");
        let files = write_factory_presets(&root).expect("write the presets");
        assert!(files.len() >= 8, "at least the eight first presets");
        assert_eq!(files.len(), FACTORY.len());
        let folder = preset_folder(&root);
        assert!(
            folder.ends_with("Latent Choir/Latent Choir"),
            "{}",
            folder.display()
        );

        let defaults = preset_texts(&FACTORY[0], false);
        for (path, preset) in files.iter().zip(FACTORY) {
            assert_eq!(path.parent(), Some(folder.as_path()));
            assert_eq!(
                path.file_name().and_then(|n| n.to_str()),
                Some(format!("{}.vstpreset", preset.name).as_str())
            );
            let bytes = fs::read(path).expect("read the preset file");
            let file = vst3_preset::read(&bytes).expect("a .vstpreset");
            assert_eq!(file.class_id, "4C6174656E7443686F69724C4C4D3031");
            let info = String::from_utf8_lossy(file.chunk(vst3_preset::META_INFO).expect("Info"))
                .into_owned();
            assert!(
                info.contains(&format!("id=\"Name\" value=\"{}\"", preset.name)),
                "{info}"
            );
            assert!(info.contains("id=\"PlugInName\" value=\"Latent Choir\""));
            let expected = preset_texts(preset, false);

            // As a DAW's preset browser loads it: the host library parses the file itself.
            let mut plugin = plugin_with_a_prompt(&bundle);
            plugin
                .load_vstpreset(path)
                .unwrap_or_else(|e| panic!("{}: {e}", preset.name));
            assert_eq!(
                controller_texts(&plugin, &expected),
                expected,
                "{} loaded from its file",
                preset.name
            );
            assert_eq!(
                prompt_of(&component_state(&plugin, &bundle)).as_deref(),
                Some(PROMPT),
                "{}: the prompt stays",
                preset.name
            );

            // As the SDK's `PresetFile::loadPreset` does: the Comp chunk to both halves.
            let mut fresh = bundle.load();
            // A fresh instance reads the defaults, so a preset that moves anything shows.
            assert_eq!(controller_texts(&fresh, &defaults), defaults);
            fresh
                .load_state(file.component_state().expect("a Comp chunk"))
                .unwrap_or_else(|e| panic!("{}: setState: {e}", preset.name));
            assert_eq!(
                controller_texts(&fresh, &expected),
                expected,
                "{} from its Comp chunk",
                preset.name
            );
            run_a_block(&mut fresh);
        }

        // The recipes' own words.
        let texts = |key: &str| {
            let preset = FACTORY.iter().find(|p| p.key == key).expect("preset");
            let mut plugin = bundle.load();
            plugin
                .load_vstpreset(folder.join(format!("{}.vstpreset", preset.name)))
                .expect("load");
            controller_texts(&plugin, &preset_texts(preset, false))
        };
        let dark = texts("dark-drone");
        assert_eq!(dark["scale"], "Phrygian");
        assert_eq!(dark["root"], "D");
        let piano = texts("minimal-piano");
        assert_eq!(piano["voice_1"], "Off");
        assert_eq!(
            piano["root"], defaults["root"],
            "a parameter it does not name"
        );
    });
}

/// A damaged preset is refused, by the host library's reader or by the plugin's `setState`,
/// without a crash and without changing the instance.
#[test]
fn corrupt_presets_are_refused() {
    isolated("corrupt_presets_are_refused", || {
        let bundle = Bundle::fresh("corrupt-presets");
        let files = write_factory_presets(&bundle.root.join("presets")).expect("write");
        let dark = files
            .iter()
            .find(|p| p.ends_with("Dark Drone.vstpreset"))
            .expect("Dark Drone's file");
        let bytes = fs::read(dark).expect("read");
        let comp = vst3_preset::read(&bytes)
            .expect("reads")
            .component_state()
            .expect("Comp")
            .to_vec();

        let mut plugin = plugin_with_a_prompt(&bundle);
        let before = component_state(&plugin, &bundle);
        let truncated_comp = &comp[..comp.len() / 2];
        let junk: &[u8] = b"\x00\xffnot a plugin state\x7f";
        for (what, state) in [("a truncated Comp chunk", truncated_comp), ("junk", junk)] {
            assert!(
                plugin.load_state(state).is_err(),
                "setState accepted {what}"
            );
            assert_eq!(
                component_state(&plugin, &bundle),
                before,
                "{what} changed the state"
            );
        }

        // A file cut short, or with its chunk list pointing past the end.
        let cut = bundle.scratch_file("cut.vstpreset");
        fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        assert!(plugin.load_vstpreset(&cut).is_err(), "a file cut short");
        let mut far = bytes.clone();
        far[40..48].copy_from_slice(&(bytes.len() as i64 + 100).to_le_bytes());
        fs::write(&cut, &far).expect("write");
        assert!(plugin.load_vstpreset(&cut).is_err(), "a list past the end");
        assert_eq!(component_state(&plugin, &bundle), before);
        run_a_block(&mut plugin);
    });
}
