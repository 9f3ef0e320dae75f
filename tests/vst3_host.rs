//! The plugin's VST3 build as a DAW meets it: a bundle on disk, scanned and loaded by a real VST3
//! host (`vst3-host`, in-process), asked to describe itself, fed audio, saved and restored.
//!
//! The bundle is assembled from this run's cdylib, never from an earlier `cargo xtask bundle`, so
//! a stale build cannot make these tests pass. Every test runs in its own child process (see
//! `common::isolate`): with `assert_process_allocs`, an allocation inside `process()` aborts, and
//! the parent turns that abort into a readable failure.
//!
//! The bundle layout and loader here are the Linux ones.
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::path::PathBuf;

use common::isolate::isolated;
use common::params::param_id as vst3_param_id;
use common::signal::{assert_clean, sine};
use common::vst3_bundle::{BLOCK_SIZE, Bundle, PLUGIN_NAME, SAMPLE_RATE};
use vst3_host::{BusAudioBuffers, Plugin, Vst3Host};

/// VST3 `BusTypes`: `kMain` and `kAux`.
const MAIN_BUS: i32 = 0;
const AUX_BUS: i32 = 1;

/// A processing plugin plus buffers shaped like its buses, allocated once and reused for every
/// block the way a host's audio callback would.
struct Session {
    plugin: Plugin,
    buffers: BusAudioBuffers,
}

impl Session {
    fn start(bundle: &Bundle) -> Self {
        let mut plugin = bundle.load();
        plugin.start_processing().expect("start processing");
        let buffers = plugin
            .create_bus_audio_buffers(BLOCK_SIZE)
            .expect("buffers for the plugin's buses");
        Self { plugin, buffers }
    }

    /// Run one block with `main` on the main (track) input and `sidechain` on the aux input;
    /// returns the main output's channels.
    fn process(&mut self, main: &[Vec<f32>], sidechain: &[Vec<f32>]) -> &[Vec<f32>] {
        for (bus, signal) in self.buffers.inputs.iter_mut().zip([main, sidechain]) {
            for (channel, samples) in bus.channels.iter_mut().zip(signal) {
                channel.copy_from_slice(samples);
            }
        }
        self.plugin
            .process_bus_audio(&mut self.buffers)
            .expect("process a block");
        &self.buffers.outputs[0].channels
    }
}

/// Block number `block` of a stereo sine that runs on seamlessly from block to block. The two
/// channels get different pitches so a swapped or duplicated channel shows up.
fn stereo_sine(left_hz: f64, right_hz: f64, amplitude: f32, block: usize) -> Vec<Vec<f32>> {
    let start = block * BLOCK_SIZE;
    [left_hz, right_hz]
        .map(|hz| sine(hz, SAMPLE_RATE, start + BLOCK_SIZE, amplitude).split_off(start))
        .into()
}

/// The track the plugin sits on.
fn track(block: usize) -> Vec<Vec<f32>> {
    stereo_sine(440.0, 660.0, 0.5, block)
}

/// A loud, different signal on the sidechain, so any leak of it into the output is visible.
fn sidechain(block: usize) -> Vec<Vec<f32>> {
    stereo_sine(1000.0, 1500.0, 0.9, block)
}

/// Sample-by-sample comparison that names the first offending sample, since a bare `assert_eq!`
/// on two 512-sample vectors is unreadable.
fn assert_close(actual: &[Vec<f32>], expected: &[Vec<f32>], tolerance: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: channel count");
    for (c, (actual, expected)) in actual.iter().zip(expected).enumerate() {
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= tolerance,
                "{what}: channel {c} sample {i} is {a}, expected {e} (tolerance {tolerance})"
            );
        }
    }
}

fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// The bytes the plugin's `IComponent::getState` wrote, read back out of a Steinberg
/// `.vstpreset`: `vst3-host`'s own `save_state` wraps them in a private envelope, while the
/// preset file is the documented interchange format every VST3 host reads.
fn component_state(plugin: &Plugin, bundle: &Bundle) -> Vec<u8> {
    let file = bundle.scratch_file("state.vstpreset");
    plugin.save_vstpreset(&file).expect("save a .vstpreset");
    let preset = fs::read(&file).expect("read the .vstpreset back");
    vstpreset_chunk(&preset, b"Comp").expect("the .vstpreset has no readable Comp chunk")
}

/// One chunk of a `.vstpreset`. Layout: "VST3", version (i32), class id (32 ASCII bytes), and the
/// chunk list's offset (i64); the list is "List", an entry count (i32), then per entry a
/// 4-byte id, offset (i64) and size (i64). All little-endian.
fn vstpreset_chunk(preset: &[u8], id: &[u8; 4]) -> Option<Vec<u8>> {
    let field = |at: usize, len: usize| preset.get(at..at.checked_add(len)?);
    let int = |at: usize, len: usize| -> Option<usize> {
        let mut bytes = [0u8; 8];
        bytes[..len].copy_from_slice(field(at, len)?);
        usize::try_from(i64::from_le_bytes(bytes)).ok()
    };
    let list = int(40, 8)?;
    if field(list, 4)? != b"List" {
        return None;
    }
    (0..int(list + 4, 4)?)
        .map(|entry| list + 8 + entry * 20)
        .take_while(|&entry| entry < preset.len())
        .find(|&entry| field(entry, 4) == Some(id))
        .and_then(|entry| field(int(entry + 4, 8)?, int(entry + 12, 8)?))
        .map(<[u8]>::to_vec)
}

/// Hand raw bytes to the plugin's `IComponent::setState`. `vst3-host` passes a blob without its
/// own envelope header through unchanged (its documented path for raw component streams).
fn set_component_state(plugin: &mut Plugin, bytes: &[u8]) -> vst3_host::Result<()> {
    plugin.load_state(bytes)
}

#[test]
fn factory_describes_an_instrument_with_stable_parameter_ids() {
    isolated(
        "factory_describes_an_instrument_with_stable_parameter_ids",
        || {
            let bundle = Bundle::fresh("describe");

            // A DAW finds plugins by scanning folders, so the bundle layout is under test too.
            let host = Vst3Host::builder()
                .add_scan_path(&bundle.root)
                .build()
                .expect("configure the VST3 host");
            assert_eq!(host.scan_plugin_paths(), vec![bundle.path.clone()]);

            let details = vst3_host::get_detailed_plugin_info(&bundle.path)
                .expect("read the factory and bus layout");
            let class = details
                .classes
                .iter()
                .find(|class| class.name == PLUGIN_NAME)
                .unwrap_or_else(|| panic!("no class named {PLUGIN_NAME}: {:?}", details.classes));
            assert_eq!(class.category, "Audio Module Class");

            // The subcategories come with the summary of the factory's first audio class; make
            // sure that is our class before reading them.
            assert_eq!(details.info.uid, class.class_id);
            let subcategories: Vec<&str> = details.info.category.split('|').collect();
            assert!(
                subcategories.contains(&"Instrument"),
                "a DAW files the plugin by its subcategories, got {subcategories:?}"
            );
            assert!(
                !subcategories.contains(&"Fx"),
                "an instrument must not also be listed as an effect: {subcategories:?}"
            );

            let shape = |buses: &[vst3_host::BusInfo]| -> Vec<(i32, i32)> {
                buses
                    .iter()
                    .map(|bus| (bus.bus_type, bus.channel_count))
                    .collect()
            };
            assert_eq!(
                shape(&details.buses.audio_inputs),
                [(MAIN_BUS, 2), (AUX_BUS, 2)],
                "default layout: stereo track input plus a stereo sidechain"
            );
            assert_eq!(shape(&details.buses.audio_outputs), [(MAIN_BUS, 2)]);
            assert!(!details.buses.event_inputs.is_empty(), "no MIDI input bus");
            assert!(
                !details.buses.event_outputs.is_empty(),
                "no MIDI output bus"
            );

            // Saved automation and projects refer to parameters by these ids.
            let plugin = bundle.load();
            let parameters = plugin.get_parameters().expect("list parameters");
            for (string_id, title) in [
                ("gain", "Output Gain"),
                ("thru", "Input Thru"),
                ("midi_thru", "MIDI Thru"),
            ] {
                let id = vst3_param_id(string_id);
                let parameter = parameters
                    .iter()
                    .find(|parameter| parameter.id == id)
                    .unwrap_or_else(|| panic!("no parameter with id {id} ({string_id:?})"));
                assert_eq!(parameter.name, title, "parameter {string_id:?}");
            }
        },
    );
}

#[test]
fn passes_the_track_through_and_never_outputs_non_finite_samples() {
    isolated(
        "passes_the_track_through_and_never_outputs_non_finite_samples",
        || {
            let bundle = Bundle::fresh("process");
            let mut session = Session::start(&bundle);

            // The host must have picked the first layout; the second has no track input, and
            // this test would then only be measuring silence.
            let layout = session.plugin.audio_bus_layout().expect("bus layout");
            let channels = |buses: &[vst3_host::AudioBusConfig]| -> Vec<(usize, bool)> {
                buses
                    .iter()
                    .map(|bus| (bus.channel_count, bus.active))
                    .collect()
            };
            assert_eq!(channels(&layout.inputs), [(2, true), (2, true)]);
            assert_eq!(channels(&layout.outputs), [(2, true)]);

            // Default Output Gain and Input Thru are both 0 dB: the track comes out as it went
            // in, and the sidechain only feeds the meter.
            const CLEAN_BLOCKS: usize = 8;
            for block in 0..CLEAN_BLOCKS {
                let input = track(block);
                let output = session.process(&input, &sidechain(block));
                assert_close(output, &input, 1e-4, &format!("block {block}"));
                assert_clean(output);
            }
            let block = CLEAN_BLOCKS;

            // A misbehaving upstream plugin can hand over NaN and infinities, on either bus.
            let poison = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
            let poisoned_frames = [0, 1, 100, 255, BLOCK_SIZE - 1];
            let mut input = track(block);
            let mut side = sidechain(block);
            for (n, &frame) in poisoned_frames.iter().enumerate() {
                input[n % 2][frame] = poison[n % poison.len()];
                side[(n + 1) % 2][frame] = poison[(n + 1) % poison.len()];
            }
            let output = session.process(&input, &side);
            assert_clean(output);
            for (c, (output, input)) in output.iter().zip(&input).enumerate() {
                for (i, (out, inp)) in output.iter().zip(input).enumerate() {
                    assert!(
                        !inp.is_finite() || (out - inp).abs() <= 1e-4,
                        "a bad sample must not disturb its neighbours: \
                         channel {c} sample {i} is {out}, expected {inp}"
                    );
                }
            }

            // Nothing of the bad block may linger (a NaN stuck in a smoother would).
            let input = track(block + 1);
            let output = session.process(&input, &sidechain(block + 1));
            assert_close(output, &input, 1e-4, "the block after the bad one");
        },
    );
}

#[test]
fn state_round_trips_and_garbage_state_is_refused() {
    isolated("state_round_trips_and_garbage_state_is_refused", || {
        let bundle = Bundle::fresh("state");
        let gain = vst3_param_id("gain");
        let edited_gain = 0.25;

        let mut original = Session::start(&bundle);
        let default_state = component_state(&original.plugin, &bundle);

        original
            .plugin
            .set_parameter(gain, edited_gain)
            .expect("set Output Gain");
        // The change reaches the plugin with the next block and then glides for 20 ms; run past
        // that so the output below is steady.
        for block in 0..4 {
            original.process(&track(block), &sidechain(block));
        }
        let reported = original
            .plugin
            .get_parameter(gain)
            .expect("read Output Gain");
        assert!(
            (reported - edited_gain).abs() < 1e-6,
            "Output Gain reads {reported} after being set to {edited_gain}"
        );
        let edited_state = component_state(&original.plugin, &bundle);
        assert_ne!(
            edited_state, default_state,
            "the saved state ignores a changed parameter"
        );

        // A fresh instance starts from the defaults, then takes on the edited state exactly.
        let mut restored = Session::start(&bundle);
        assert_eq!(component_state(&restored.plugin, &bundle), default_state);
        set_component_state(&mut restored.plugin, &edited_state).expect("setState");
        assert_eq!(component_state(&restored.plugin, &bundle), edited_state);
        let reported = restored
            .plugin
            .get_parameter(gain)
            .expect("read Output Gain");
        assert!(
            (reported - edited_gain).abs() < 1e-5,
            "restored Output Gain reads {reported}, saved as {edited_gain}"
        );

        // Both instances must now sound the same, and different from the dry track.
        let input = track(4);
        let reference = original.process(&input, &sidechain(4)).to_vec();
        assert_clean(&reference);
        let output = restored.process(&input, &sidechain(4)).to_vec();
        assert!(
            max_difference(&reference, &input) > 0.01,
            "the edited gain should be audible"
        );
        assert_close(&output, &reference, 1e-6, "restored instance vs original");

        // And back: the original instance returns to the defaults from the first state.
        set_component_state(&mut original.plugin, &default_state).expect("setState");
        assert_eq!(component_state(&original.plugin, &bundle), default_state);

        // Corrupt or foreign project data must be refused, not half-applied, and must leave the
        // plugin running with the settings it had.
        let truncated = &edited_state[..edited_state.len() / 2];
        let garbage: [(&str, &[u8]); 3] = [
            ("binary junk", b"\x00\xffnot a plugin state\x7f\x80\x00"),
            ("an empty stream", b""),
            ("a truncated state", truncated),
        ];
        for (what, bytes) in garbage {
            assert!(
                set_component_state(&mut restored.plugin, bytes).is_err(),
                "setState accepted {what}"
            );
            assert_eq!(
                component_state(&restored.plugin, &bundle),
                edited_state,
                "setState with {what} changed the state"
            );
            // Close to a finite reference means finite too.
            let output = restored.process(&input, &sidechain(4));
            assert_close(
                output,
                &reference,
                1e-6,
                &format!("after setState with {what}"),
            );
        }
    });
}

/// The whole path as a VST3 host sees it: with Generate on, the model's tokens come out as
/// note events on the voices' channels, in the scale, and Generate off releases every note.
#[test]
fn generated_notes_go_out_as_vst3_note_events() {
    isolated("generated_notes_go_out_as_vst3_note_events", || {
        use latent_choir::music::scale::{Root, Scale};
        use vst3_host::PluginEventData;

        let cache = std::env::temp_dir().join(format!("latent-choir-vst3-{}", std::process::id()));
        // SAFETY: set before the plugin (and any thread reading the environment) starts.
        unsafe { std::env::set_var("XDG_CACHE_HOME", &cache) };
        let bundle = Bundle::fresh("notes");
        let mut session = Session::start(&bundle);
        let state = component_state(&session.plugin, &bundle);
        let mut document: serde_json::Value =
            serde_json::from_slice(&state).expect("the component state is JSON");
        let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
        document["fields"]["model"] =
            serde_json::Value::String(serde_json::json!(model.to_string_lossy()).to_string());
        let state = serde_json::to_vec(&document).expect("encode");
        set_component_state(&mut session.plugin, &state).expect("setState with a model");
        session
            .plugin
            .set_parameter(vst3_param_id("generate"), 1.0)
            .expect("Generate on");
        session
            .plugin
            .set_parameter(vst3_param_id("tokens_per_second"), 1.0)
            .expect("the fastest free-running rate");

        let mut sounding: Vec<(i16, i16)> = Vec::new();
        let mut ons = 0;
        let collect = |plugin: &Plugin, sounding: &mut Vec<(i16, i16)>, ons: &mut usize| {
            for event in plugin.take_output_events() {
                match event.data {
                    PluginEventData::NoteOn {
                        channel,
                        pitch,
                        velocity,
                        ..
                    } => {
                        assert!((0..4).contains(&channel), "channel {channel}");
                        assert!(velocity > 0.0 && velocity <= 1.0, "velocity {velocity}");
                        assert!(
                            Scale::Major.contains(pitch as u8, Root::C),
                            "{pitch} is not in C major"
                        );
                        assert!((0..BLOCK_SIZE as i32).contains(&event.sample_offset));
                        sounding.push((channel, pitch));
                        *ons += 1;
                    }
                    PluginEventData::NoteOff { channel, pitch, .. } => {
                        let i = sounding.iter().position(|s| *s == (channel, pitch));
                        assert!(i.is_some(), "note-off without note-on: {channel} {pitch}");
                        sounding.remove(i.unwrap_or(0));
                    }
                    _ => {}
                }
            }
        };
        let silence = vec![vec![0.0_f32; BLOCK_SIZE]; 2];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut peak = 0.0_f32;
        while ons < 16 {
            assert!(
                std::time::Instant::now() < deadline,
                "{ons} notes after 120 s"
            );
            let out = session.process(&silence, &silence).to_vec();
            assert_clean(&out);
            peak = out.iter().flatten().fold(peak, |p, x| p.max(x.abs()));
            collect(&session.plugin, &mut sounding, &mut ons);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        session
            .plugin
            .set_parameter(vst3_param_id("generate"), 0.0)
            .expect("Generate off");
        for _ in 0..4 {
            session.process(&silence, &silence);
            collect(&session.plugin, &mut sounding, &mut ons);
        }
        assert!(peak > 1e-3, "the synth is heard (peak {peak})");
        assert!(sounding.is_empty(), "stuck notes: {sounding:?}");
        let _ = fs::remove_dir_all(&cache);
    });
}

/// VST3's `ParameterInfo::kIsList` flag. Hosts (Ardour among them) offer a parameter as a menu
/// of named options only with it; without it a choice is a bare number or an on/off switch.
const K_IS_LIST: u32 = 1 << 3;

/// Every choice parameter reaches the host as a list of its options' names with the right step
/// count, and nothing else is declared a list.
#[test]
fn choice_parameters_are_lists_of_named_options() {
    isolated("choice_parameters_are_lists_of_named_options", || {
        use latent_choir::params::{
            Instruments, LatentChoirParams, LoopChoice, MeterSource, RootChoice, ScaleChoice,
            TemperatureMode, Timing,
        };
        use nice_plug::params::internals::ParamPtr;
        use nice_plug::prelude::{Enum, Params};

        let bundle = Bundle::fresh("lists");
        let plugin = bundle.load();
        let parameters = plugin.get_parameters().expect("list parameters");
        let parameter = |string_id: &str| {
            let id = vst3_param_id(string_id);
            parameters
                .iter()
                .find(|parameter| parameter.id == id)
                .unwrap_or_else(|| panic!("no parameter with id {id} ({string_id:?})"))
        };
        let normalized = |step: usize, steps: i32| step as f64 / f64::from(steps);

        let choices: [(&str, &str, &[&str]); 7] = [
            ("scale", "Scale", ScaleChoice::variants()),
            ("root", "Root", RootChoice::variants()),
            ("instruments", "Instruments", Instruments::variants()),
            ("meter_source", "Metered Input", MeterSource::variants()),
            ("temp_mode", "Temperature Mode", TemperatureMode::variants()),
            ("timing", "Timing", Timing::variants()),
            ("loop_passes", "Loop Passes", LoopChoice::variants()),
        ];
        for (string_id, title, options) in choices {
            let choice = parameter(string_id);
            assert_eq!(choice.name, title, "parameter {string_id:?}");
            assert_ne!(choice.flags & K_IS_LIST, 0, "{title} is not a list");
            assert_eq!(
                choice.step_count as usize + 1,
                options.len(),
                "{title}: a list of n options has n - 1 steps"
            );
            for (step, option) in options.iter().enumerate() {
                let text = plugin
                    .format_parameter(choice.id, normalized(step, choice.step_count))
                    .unwrap_or_else(|e| panic!("{title} step {step} as text: {e}"));
                assert_eq!(text, *option, "{title} step {step}");
            }
        }

        // Spelled out, in case the enums themselves were renamed by mistake.
        for (string_id, step, expected) in [("scale", 3, "Dorian"), ("root", 6, "F#")] {
            let choice = parameter(string_id);
            let text = plugin
                .format_parameter(choice.id, normalized(step, choice.step_count))
                .expect("value as text");
            assert_eq!(text, expected, "{string_id} step {step}");
        }

        // A continuous parameter and a switch are not lists.
        let gain = parameter("gain");
        assert_eq!(gain.step_count, 0, "Output Gain is continuous");
        assert_eq!(gain.flags & K_IS_LIST, 0, "Output Gain is declared a list");
        let midi_thru = parameter("midi_thru");
        assert_eq!(midi_thru.step_count, 1, "MIDI Thru is a switch");
        assert_eq!(
            midi_thru.flags & K_IS_LIST,
            0,
            "MIDI Thru is declared a list"
        );

        // And across the whole set: exactly the enum parameters are lists, including any added
        // after this test was written.
        let params = LatentChoirParams::default();
        for (string_id, ptr, _) in params.param_map() {
            let is_enum = matches!(ptr, ParamPtr::EnumParam(_));
            let reported = parameter(&string_id);
            assert_eq!(
                reported.flags & K_IS_LIST != 0,
                is_enum,
                "{string_id:?} ({}): kIsList must be set exactly on choice parameters",
                reported.name
            );
        }
    });
}

/// Host call orders the VST3 specification does not forbid, through a raw host
/// (`common::vst3_raw`): switched on before any `setupProcessing` (Carla's scanner does this),
/// the plugin runs at defaults and then takes the setup when it comes; processing works before
/// any parameter change reaches it; a state load while active keeps it working; switched off
/// mid-note and on again, the first block releases every note.
#[test]
fn activate_before_setup_then_process_and_deactivate_mid_note() {
    isolated(
        "activate_before_setup_then_process_and_deactivate_mid_note",
        || {
            use common::vst3_raw::RawPlugin;
            use nice_plug::wrapper::vst3::vst3::Steinberg::kResultOk;

            let cache =
                std::env::temp_dir().join(format!("latent-choir-vst3-raw-{}", std::process::id()));
            // SAFETY: set before the plugin (and any thread reading the environment) starts.
            unsafe { std::env::set_var("XDG_CACHE_HOME", &cache) };
            let plugin = RawPlugin::new();

            // Before anything: process outputs silence rather than failing.
            let (result, out, notes) = plugin.process(256);
            assert_eq!(result, kResultOk, "process before setup and activation");
            assert!(out.iter().flatten().all(|x| *x == 0.0), "silence");
            assert!(notes.is_empty());

            let mut document: serde_json::Value =
                serde_json::from_slice(&plugin.get_state()).expect("the state is JSON");
            let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
            document["fields"]["model"] =
                serde_json::Value::String(serde_json::json!(model.to_string_lossy()).to_string());
            let state = serde_json::to_vec(&document).expect("encode");
            assert_eq!(plugin.set_state(&state), kResultOk, "setState with a model");
            assert_eq!(plugin.set_param(vst3_param_id("generate"), 1.0), kResultOk);
            assert_eq!(
                plugin.set_param(vst3_param_id("tokens_per_second"), 1.0),
                kResultOk
            );

            // Carla's order: on, then set up.
            assert_eq!(plugin.set_active(true), kResultOk, "setActive before setup");
            let (result, out, _) = plugin.process(512);
            assert_eq!(result, kResultOk, "process at the default setup");
            assert_clean(&out);
            assert_eq!(plugin.setup(SAMPLE_RATE, BLOCK_SIZE as i32), kResultOk);
            assert_eq!(plugin.set_processing(true), kResultOk);
            // A block bigger than the setup allows is silence, not a crash.
            let (result, out, notes) = plugin.process(BLOCK_SIZE * 2);
            assert_eq!(result, kResultOk);
            assert!(out.iter().flatten().all(|x| *x == 0.0) && notes.is_empty());

            let mut sounding: Vec<(i16, i16)> = Vec::new();
            let mut ons = 0;
            // Checks and applies one block's notes; returns how many were struck.
            let collect = |notes: &[(i32, bool, i16, i16)], sounding: &mut Vec<(i16, i16)>| {
                let mut struck = 0;
                for &(offset, on, channel, pitch) in notes {
                    assert!((0..BLOCK_SIZE as i32).contains(&offset), "offset {offset}");
                    if on {
                        assert!((0..4).contains(&channel), "channel {channel}");
                        sounding.push((channel, pitch));
                        struck += 1;
                    } else {
                        let i = sounding.iter().position(|s| *s == (channel, pitch));
                        assert!(i.is_some(), "note-off without note-on: {channel} {pitch}");
                        sounding.remove(i.unwrap_or(0));
                    }
                }
                struck
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            let mut peak = 0.0_f32;
            let mut reloaded = false;
            while sounding.is_empty() || ons < 8 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{ons} notes after 120 s"
                );
                let (result, out, notes) = plugin.process(BLOCK_SIZE);
                assert_eq!(result, kResultOk);
                assert_clean(&out);
                peak = out.iter().flatten().fold(peak, |p, x| p.max(x.abs()));
                ons += collect(&notes, &mut sounding);
                if ons >= 4 && !reloaded {
                    // The project reloaded while the plugin plays.
                    assert_eq!(plugin.set_state(&plugin.get_state()), kResultOk);
                    reloaded = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            assert!(peak > 1e-3, "the synth is heard (peak {peak})");

            // Off mid-note, on again: the first block releases what was sounding.
            assert_eq!(plugin.set_processing(false), kResultOk);
            assert_eq!(plugin.set_active(false), kResultOk);
            assert_eq!(plugin.set_active(true), kResultOk);
            assert_eq!(plugin.set_processing(true), kResultOk);
            let (result, _, notes) = plugin.process(BLOCK_SIZE);
            assert_eq!(result, kResultOk);
            let released: Vec<_> = notes.iter().filter(|n| !n.1).collect();
            assert!(
                released.iter().all(|n| n.0 == 0),
                "releases at the block's start: {released:?}"
            );
            collect(&notes, &mut sounding);
            // Notes struck in this block may still sound; every one before the switch is off.
            let struck: Vec<(i16, i16)> =
                notes.iter().filter(|n| n.1).map(|n| (n.2, n.3)).collect();
            sounding.retain(|s| !struck.contains(s));
            assert!(
                sounding.is_empty(),
                "stuck notes after deactivation: {sounding:?}"
            );
            drop(plugin);
            let _ = fs::remove_dir_all(&cache);
        },
    );
}

/// Every parameter's VST3 text (`getParamStringByValue`, no unit) parses back
/// (`getParamValueByString`) to a value that shows the same text, at both ends, the default,
/// every step and points between; the ends, the default and every step come back exactly.
#[test]
fn every_parameter_string_round_trips() {
    isolated("every_parameter_string_round_trips", || {
        let plugin = common::vst3_raw::RawPlugin::new();
        let parameters = plugin.parameters();
        assert!(parameters.len() > 50, "{} parameters", parameters.len());
        let mut failures = Vec::new();
        for (id, title, steps, default) in parameters {
            // (normalised value, whether it must come back exactly)
            let mut values = vec![(0.0, true), (1.0, true), (default, true)];
            if steps > 0 {
                values.extend((0..=steps).map(|i| (f64::from(i) / f64::from(steps), true)));
            } else {
                values.extend(
                    [0.1, 0.123, 0.25, 0.377, 0.5, 0.618, 0.75, 0.9, 0.999].map(|v| (v, false)),
                );
            }
            for (value, exact) in values {
                let Some(text) = plugin.param_text(id, value) else {
                    failures.push(format!("{title}: no text for {value}"));
                    continue;
                };
                let Some(back) = plugin.param_value(id, &text) else {
                    failures.push(format!("{title}: {text:?} (from {value}) does not parse"));
                    continue;
                };
                let again = plugin.param_text(id, back).unwrap_or_default();
                if again != text {
                    failures.push(format!("{title}: {value} → {text:?} → {back} → {again:?}"));
                }
                let tolerance = if exact { 1e-6 } else { 1e-4 };
                // A stepped float snaps a point between to its step.
                let snapped =
                    !exact && ["Tokens per Beat", "Tokens per Second"].contains(&title.as_str());
                if (back - value).abs() > tolerance && !snapped {
                    failures.push(format!("{title}: {value} → {text:?} → {back}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        let per_beat = vst3_param_id("tokens_per_beat");
        assert_eq!(
            plugin.param_text(per_beat, 0.5 / 3.75).as_deref(),
            Some("3/4")
        );
        assert_eq!(
            plugin.param_text(per_beat, 1.5 / 3.75).as_deref(),
            Some("1 3/4")
        );
    });
}
