//! The factory presets as a CLAP host meets them: listed by the plugin's preset discovery factory
//! and loaded through `clap.preset-load`, in the freshly built library through `clack-host`.
//! What the host reads afterwards (parameter texts, saved state) is compared with the presets'
//! recipes in `params::presets`. Each test runs in its own child process (`common::isolate`).

mod common;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};

use clack_extensions::preset_discovery::prelude::*;
use clack_host::prelude::{HostError, HostInfo};
use common::clap_host::{Block, HostedPlugin, PLUGIN_ID, PresetLoadReport};
use common::isolate::isolated;
use common::signal::assert_clean;
use latent_choir::params::LatentChoirParams;
use latent_choir::params::presets::{self, FACTORY, Preset};

/// nice-plug's CLAP (and VST3) id for a parameter's string id: a 31-based string hash with the
/// top bit cleared. Derived here independently, as hosts store automation under these numbers.
fn clap_id(string_id: &str) -> u32 {
    let hash = string_id.bytes().fold(0u32, |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(u32::from(byte))
    });
    hash & !(1 << 31)
}

/// Every parameter's text (with unit) once `preset` is applied, by string id: what the host
/// should read after loading it.
fn expected_texts(preset: &Preset) -> BTreeMap<String, String> {
    let params = LatentChoirParams::default();
    preset.apply(&params).expect("the preset applies");
    nice_plug::prelude::Params::param_map(&params)
        .into_iter()
        .map(|(id, ptr, _)| {
            // SAFETY: `ptr` points into `params`, alive for this whole call.
            let text =
                unsafe { ptr.normalized_value_to_string(ptr.unmodulated_normalized_value(), true) };
            (id, text)
        })
        .collect()
}

/// Every parameter's text as the host reads it through `clap.params`, by string id.
fn host_texts(
    plugin: &mut HostedPlugin,
    ids: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    ids.keys()
        .map(|id| (id.clone(), plugin.param_text(clap_id(id))))
        .collect()
}

fn preset(key: &str) -> &'static Preset {
    presets::find(key).unwrap_or_else(|| panic!("no factory preset {key:?}"))
}

/// One block of silence, as clap-validator runs after each load; the output must stay clean.
fn run_a_block(plugin: &mut HostedPlugin) {
    let silence = vec![0.0f32; 512];
    let out = plugin.process(&Block::silent(&silence, &[]));
    assert_clean(&out.audio);
}

// --- discovery --------------------------------------------------------------------------------

#[derive(Default)]
struct Indexer {
    locations: Vec<(String, u32, bool)>,
}

impl IndexerImpl for Indexer {
    fn declare_filetype(&mut self, _: FileType) -> Result<(), HostError> {
        Ok(())
    }

    fn declare_location(&mut self, info: LocationInfo) -> Result<(), HostError> {
        self.locations.push((
            info.name.to_string_lossy().into_owned(),
            info.flags.bits(),
            info.location == Location::Plugin,
        ));
        Ok(())
    }

    fn declare_soundpack(&mut self, _: Soundpack) -> Result<(), HostError> {
        Ok(())
    }
}

/// One preset as the provider described it.
#[derive(Debug, Default)]
struct Found {
    name: String,
    key: String,
    plugin_ids: Vec<(String, String)>,
    flags: u32,
    creators: Vec<String>,
    description: String,
}

#[derive(Default)]
struct Receiver {
    presets: Vec<Found>,
    errors: Vec<String>,
}

fn text(s: Option<&CStr>) -> String {
    s.map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl MetadataReceiverImpl for Receiver {
    fn on_error(&mut self, _: i32, message: Option<&CStr>) {
        self.errors.push(text(message));
    }

    fn begin_preset(&mut self, name: Option<&CStr>, key: Option<&CStr>) -> Result<(), HostError> {
        self.presets.push(Found {
            name: text(name),
            key: text(key),
            ..Found::default()
        });
        Ok(())
    }

    fn add_plugin_id(&mut self, id: UniversalPluginId) {
        if let Some(preset) = self.presets.last_mut() {
            preset.plugin_ids.push((
                id.abi.to_string_lossy().into_owned(),
                id.id.to_string_lossy().into_owned(),
            ));
        }
    }

    fn set_soundpack_id(&mut self, _: &CStr) {}

    fn set_flags(&mut self, flags: Flags) {
        if let Some(preset) = self.presets.last_mut() {
            preset.flags = flags.bits();
        }
    }

    fn add_creator(&mut self, creator: &CStr) {
        if let Some(preset) = self.presets.last_mut() {
            preset.creators.push(creator.to_string_lossy().into_owned());
        }
    }

    fn set_description(&mut self, description: &CStr) {
        if let Some(preset) = self.presets.last_mut() {
            preset.description = description.to_string_lossy().into_owned();
        }
    }

    fn set_timestamps(&mut self, _: Option<Timestamp>, _: Option<Timestamp>) {}

    fn add_feature(&mut self, _: &CStr) {}

    fn add_extra_info(&mut self, _: &CStr, _: &CStr) {}
}

/// The preset discovery factory has one provider; it declares one location, inside the plugin,
/// holding every factory preset under its name and key, for this plugin, as factory content.
#[test]
fn discovery_lists_every_factory_preset() {
    isolated("discovery_lists_every_factory_preset", || {
        let entry = common::clap_host::load_entry(&common::paths::plugin_library());
        let factory: PresetDiscoveryFactory =
            entry.get_factory().expect("a preset discovery factory");
        let providers: Vec<_> = factory.provider_descriptors().collect();
        assert_eq!(providers.len(), 1, "one provider");
        let provider_id = providers[0]
            .id()
            .expect("the provider has an id")
            .to_owned();
        assert!(providers[0].name().is_some(), "the provider has a name");

        let host = HostInfo::new("latent-choir tests", "Latent Choir", "", "0.1.0").expect("host");
        let mut provider = Provider::instantiate(Indexer::default(), &entry, &provider_id, &host)
            .expect("create and init the provider");
        assert_eq!(
            provider.descriptor().id(),
            Some(provider_id.as_c_str()),
            "the provider is the one the factory described"
        );
        let locations = provider.indexer().locations.clone();
        assert_eq!(locations.len(), 1, "one location: {locations:?}");
        let (_, flags, inside_plugin) = &locations[0];
        assert!(*inside_plugin, "the presets are inside the plugin");
        assert_eq!(*flags, Flags::IS_FACTORY_CONTENT.bits());

        let mut receiver = Receiver::default();
        provider.get_metadata(Location::Plugin, &mut receiver);
        assert!(receiver.errors.is_empty(), "errors: {:?}", receiver.errors);
        assert!(
            receiver.presets.len() >= 8,
            "at least the eight first presets"
        );
        assert_eq!(receiver.presets.len(), FACTORY.len());
        for (found, preset) in receiver.presets.iter().zip(FACTORY) {
            assert_eq!(found.name, preset.name);
            assert_eq!(found.key, preset.key);
            assert_eq!(
                found.plugin_ids,
                [("clap".to_owned(), PLUGIN_ID.to_owned())],
                "{} names this plugin",
                preset.name
            );
            assert_eq!(found.flags, Flags::IS_FACTORY_CONTENT.bits());
            assert_eq!(found.creators, ["Latent Choir"]);
            assert_eq!(found.description, preset.description);
        }
        let keys: Vec<_> = receiver.presets.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"dark-drone") && keys.contains(&"minimal-piano"));

        // A file location is not ours: nothing is listed there.
        let mut elsewhere = Receiver::default();
        provider.get_metadata(
            Location::File {
                path: c"/tmp/latent-choir-presets",
            },
            &mut elsewhere,
        );
        assert!(elsewhere.presets.is_empty());
    });
}

// --- loading ----------------------------------------------------------------------------------

const PROMPT: &str = "A preset must leave this prompt alone.";
const SEED: u64 = 4242;

/// An activated plugin with a prompt and seed of its own, as a project would have.
fn plugin_with_a_session() -> HostedPlugin {
    let mut plugin = HostedPlugin::new();
    plugin.activate(48_000.0, 512);
    let state = plugin.save_state();
    let state = common::state::with_field(&state, "prompt", &serde_json::json!(PROMPT));
    let state = common::state::with_field(&state, "seed", &serde_json::json!(SEED));
    assert!(plugin.load_state(&state), "the plugin takes the session");
    plugin
}

fn assert_session_kept(state: &[u8], what: &str) {
    assert_eq!(
        common::state::field(state, "prompt"),
        Some(serde_json::json!(PROMPT)),
        "{what}: the prompt"
    );
    assert_eq!(
        common::state::field(state, "seed"),
        Some(serde_json::json!(SEED)),
        "{what}: the seed"
    );
}

/// Each factory preset, loaded over another one through `clap.preset-load` on an active
/// instance, sets every parameter to its recipe (and those it does not name back to their
/// defaults), tells the host it loaded, and leaves the prompt and seed alone.
#[test]
fn every_factory_preset_loads_through_preset_load() {
    isolated("every_factory_preset_loads_through_preset_load", || {
        let mut plugin = plugin_with_a_session();
        for preset in FACTORY {
            // Start from a preset that moves many parameters, so leftovers would show.
            let other = if preset.key == "dark-drone" {
                "minimal-piano"
            } else {
                "dark-drone"
            };
            assert_eq!(plugin.load_preset(other), Some(true), "load {other}");
            assert_eq!(
                plugin.load_preset(preset.key),
                Some(true),
                "load {}",
                preset.key
            );
            run_a_block(&mut plugin);
            assert_eq!(
                plugin.take_preset_load_reports(),
                [other, preset.key].map(|key| PresetLoadReport::Loaded {
                    plugin_location: true,
                    key: key.to_owned(),
                }),
                "the host hears of each load"
            );

            let expected = expected_texts(preset);
            assert_eq!(
                host_texts(&mut plugin, &expected),
                expected,
                "{}: the parameters the host reads",
                preset.name
            );
            assert_session_kept(&plugin.save_state(), preset.name);
        }

        // The recipes' own words, as a user would check them.
        assert_eq!(plugin.load_preset("dark-drone"), Some(true));
        assert_eq!(plugin.param_text(clap_id("scale")), "Phrygian");
        assert_eq!(plugin.param_text(clap_id("root")), "D");
        assert_eq!(plugin.load_preset("minimal-piano"), Some(true));
        assert_eq!(plugin.param_text(clap_id("voice_1")), "Off");
        assert_eq!(
            plugin.param_text(clap_id("root")),
            expected_texts(preset("choir"))["root"],
            "a parameter the preset does not name is back at its default"
        );
    });
}

/// A project saved after a preset was loaded opens in a fresh instance with the preset's values
/// and the session's prompt and seed.
#[test]
fn state_saved_after_a_preset_restores_it() {
    isolated("state_saved_after_a_preset_restores_it", || {
        let mut plugin = plugin_with_a_session();
        assert_eq!(plugin.load_preset("dark-drone"), Some(true));
        let saved = plugin.save_state();
        drop(plugin);

        let mut fresh = HostedPlugin::new();
        fresh.activate(48_000.0, 512);
        let expected = expected_texts(preset("dark-drone"));
        assert_ne!(
            host_texts(&mut fresh, &expected),
            expected,
            "a fresh instance does not already sound like Dark Drone"
        );
        assert!(
            fresh.load_state(&saved),
            "the fresh instance takes the state"
        );
        assert_eq!(host_texts(&mut fresh, &expected), expected);
        assert_eq!(fresh.param_text(clap_id("scale")), "Phrygian");
        assert_session_kept(&fresh.save_state(), "restored");
        run_a_block(&mut fresh);
    });
}

/// An unknown key, an empty key and a file location are refused, reported to the host through
/// `on_error`, and change nothing; the plugin keeps running.
#[test]
fn unknown_presets_are_refused_without_harm() {
    isolated("unknown_presets_are_refused_without_harm", || {
        let mut plugin = plugin_with_a_session();
        assert_eq!(plugin.load_preset("dark-drone"), Some(true));
        plugin.take_preset_load_reports();
        let before = plugin.save_state();

        assert_eq!(plugin.load_preset("no-such-preset"), Some(false));
        assert_eq!(plugin.load_preset(""), Some(false));
        // Keys are exact: the preset's display name is not its key.
        assert_eq!(plugin.load_preset("Dark Drone"), Some(false));
        let key = CString::new("choir").expect("key");
        assert_eq!(
            plugin.load_preset_from(
                Location::File {
                    path: c"/tmp/choir.vstpreset"
                },
                &key
            ),
            Some(false),
            "a file location"
        );

        let reports = plugin.take_preset_load_reports();
        assert_eq!(reports.len(), 4, "every refusal is reported: {reports:?}");
        for report in &reports {
            assert!(
                matches!(report, PresetLoadReport::Error { message, .. } if !message.is_empty()),
                "{report:?}"
            );
        }
        assert_eq!(plugin.save_state(), before, "nothing changed");
        run_a_block(&mut plugin);
    });
}
