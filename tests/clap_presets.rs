//! The factory presets as a CLAP host meets them: listed by the plugin's preset discovery factory
//! (one `.lcpreset` file each, in a folder the provider fills itself) and loaded through
//! `clap.preset-load`, in the freshly built library through `clack-host`. What the host reads
//! afterwards (parameter texts, saved state) is compared with the presets' recipes in
//! `params::presets`. Each test runs in its own child process (`common::isolate`); those that
//! create the provider point `XDG_DATA_HOME` and `HOME` at a scratch folder, so the real home is
//! never written.

mod common;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use clack_extensions::preset_discovery::prelude::*;
use clack_host::prelude::{HostError, HostInfo};
use common::clap_host::{Block, HostedPlugin, PLUGIN_ID, PresetLoadReport};
use common::isolate::{isolated, isolated_with_env};
use common::params::{param_id as clap_id, preset_texts};
use common::signal::assert_clean;
use common::temp::TempDir;
use latent_choir::params::presets::{self, FACTORY, Preset};

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

/// One declared location: its name, flags, and its path (`None`: inside the plugin).
type Declared = (String, u32, Option<PathBuf>);

#[derive(Default)]
struct Indexer {
    filetypes: Vec<String>,
    locations: Vec<Declared>,
}

impl IndexerImpl for Indexer {
    fn declare_filetype(&mut self, file_type: FileType) -> Result<(), HostError> {
        self.filetypes.push(text(file_type.file_extension));
        Ok(())
    }

    fn declare_location(&mut self, info: LocationInfo) -> Result<(), HostError> {
        let path = match info.location {
            Location::Plugin => None,
            Location::File { path } => Some(PathBuf::from(text(Some(path)))),
        };
        self.locations.push((
            info.name.to_string_lossy().into_owned(),
            info.flags.bits(),
            path,
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

/// Where the tests point `XDG_DATA_HOME`: a scratch folder of their own (`HOME` too, in case).
struct ScratchHome(TempDir);

impl ScratchHome {
    fn new(name: &str) -> Self {
        Self(TempDir::new(name))
    }

    fn env(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("XDG_DATA_HOME", self.0.join("data")),
            ("HOME", self.0.join("home")),
        ]
    }

    /// Runs `body` isolated, with the environment pointing here.
    fn run(&self, name: &str, body: impl FnOnce()) {
        let env = self.env();
        let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        isolated_with_env(name, &env, body);
    }
}

/// The factory folder the child's environment names, checked to be a scratch folder.
fn factory_folder() -> PathBuf {
    let data = PathBuf::from(std::env::var_os("XDG_DATA_HOME").expect("XDG_DATA_HOME is set"));
    assert!(
        data.starts_with(std::env::temp_dir()),
        "tests never write to the real home: {}",
        data.display()
    );
    data.join("latent-choir/presets/factory")
}

/// The plugin's one provider, created and initialised.
fn provider(entry: &clack_host::prelude::PluginEntry) -> Provider<Indexer> {
    let factory: PresetDiscoveryFactory = entry.get_factory().expect("a preset discovery factory");
    let providers: Vec<_> = factory.provider_descriptors().collect();
    assert_eq!(providers.len(), 1, "one provider");
    let provider_id = providers[0]
        .id()
        .expect("the provider has an id")
        .to_owned();
    assert!(providers[0].name().is_some(), "the provider has a name");
    let host = HostInfo::new("latent-choir tests", "Latent Choir", "", "0.1.0").expect("host");
    let provider = Provider::instantiate(Indexer::default(), entry, &provider_id, &host)
        .expect("create and init the provider");
    assert_eq!(
        provider.descriptor().id(),
        Some(provider_id.as_c_str()),
        "the provider is the one the factory described"
    );
    provider
}

fn file_location(path: &Path) -> CString {
    CString::new(path.to_string_lossy().into_owned()).expect("path")
}

/// What the provider declares for the file at `path`.
fn metadata_of(provider: &mut Provider<Indexer>, path: &Path) -> Receiver {
    let mut receiver = Receiver::default();
    let path = file_location(path);
    provider.get_metadata(Location::File { path: &path }, &mut receiver);
    receiver
}

fn factory_file(preset: &Preset) -> PathBuf {
    factory_folder().join(format!("{}.lcpreset", preset.key))
}

/// On a machine that has never run the plugin, the one provider creates the factory folder,
/// declares the `.lcpreset` file type and that folder as its one location (factory content), and
/// every factory preset is a file there declaring exactly one preset, without a load key: its
/// name, this plugin, the factory flag, the creator and the description. Nothing else is in the
/// folder, and a second provider leaves the files as they are.
#[test]
fn discovery_finds_every_factory_preset_as_its_own_file() {
    let home = ScratchHome::new("clap-presets-discovery");
    home.run(
        "discovery_finds_every_factory_preset_as_its_own_file",
        || {
            let folder = factory_folder();
            assert!(!folder.exists(), "the folder starts out missing");
            let entry = common::clap_host::load_entry(&common::paths::plugin_library());
            let mut provider = provider(&entry);
            assert_eq!(provider.indexer().filetypes, ["lcpreset"]);
            let locations = provider.indexer().locations.clone();
            assert_eq!(locations.len(), 1, "one location: {locations:?}");
            let (name, flags, path) = &locations[0];
            assert!(!name.is_empty());
            assert_eq!(*flags, Flags::IS_FACTORY_CONTENT.bits());
            assert_eq!(
                path.as_deref(),
                Some(folder.as_path()),
                "the factory folder"
            );

            // Exactly one file per factory preset, as a host crawling the folder finds them.
            let mut files: Vec<String> = std::fs::read_dir(&folder)
                .expect("the provider created the folder")
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let mut expected: Vec<String> = FACTORY
                .iter()
                .map(|preset| format!("{}.lcpreset", preset.key))
                .collect();
            expected.sort();
            assert_eq!(files, expected);

            for preset in FACTORY {
                let receiver = metadata_of(&mut provider, &factory_file(preset));
                assert!(receiver.errors.is_empty(), "errors: {:?}", receiver.errors);
                assert_eq!(receiver.presets.len(), 1, "{}: one preset", preset.key);
                let found = &receiver.presets[0];
                assert_eq!(found.name, preset.name);
                assert_eq!(
                    found.key, "",
                    "{}: a one-preset file has no load key",
                    preset.key
                );
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
            assert!(FACTORY.len() >= 8, "at least the eight first presets");

            // The files are human-readable JSON.
            let text = std::fs::read_to_string(factory_file(preset("dark-drone"))).expect("read");
            assert!(
                text.contains("\"format\": \"latent-choir-preset\""),
                "{text}"
            );
            assert!(text.contains("\"name\": \"Dark Drone\""), "{text}");

            // A second provider (another host scan) finds everything current and rewrites nothing.
            let modified = |preset: &Preset| {
                std::fs::metadata(factory_file(preset))
                    .and_then(|m| m.modified())
                    .expect("mtime")
            };
            let before: Vec<_> = FACTORY.iter().map(modified).collect();
            drop(provider);
            let again = self::provider(&entry);
            assert_eq!(again.indexer().locations, locations);
            assert_eq!(FACTORY.iter().map(modified).collect::<Vec<_>>(), before);

            // A file rewritten by hand or left by an older version is put right.
            std::fs::write(factory_file(preset("choir")), b"{}").expect("write");
            std::fs::remove_file(factory_file(preset("chamber"))).expect("remove");
            drop(again);
            let mut again = self::provider(&entry);
            for key in ["choir", "chamber"] {
                let receiver = metadata_of(&mut again, &factory_file(preset(key)));
                assert_eq!(receiver.presets.len(), 1, "{key} is back");
            }

            // The presets inside the plugin (the fallback location, and what hosts may have
            // stored) are still listed by key.
            let mut inside = Receiver::default();
            again.get_metadata(Location::Plugin, &mut inside);
            let keys: Vec<_> = inside.presets.iter().map(|p| p.key.as_str()).collect();
            let factory_keys: Vec<_> = FACTORY.iter().map(|p| p.key).collect();
            assert_eq!(keys, factory_keys);
        },
    );
}

/// Files that are not Latent Choir presets (garbage, other JSON, a cut or newer file, an empty
/// one, a folder, a missing path) are reported through `on_error` and declare nothing; loading
/// one is refused, reported, changes nothing, and the plugin keeps running.
#[test]
fn corrupt_preset_files_are_refused_without_crash() {
    let home = ScratchHome::new("clap-presets-corrupt");
    home.run("corrupt_preset_files_are_refused_without_crash", || {
        let entry = common::clap_host::load_entry(&common::paths::plugin_library());
        let mut provider = provider(&entry);
        let good = std::fs::read(factory_file(preset("dark-drone"))).expect("a factory file");
        let scratch = TempDir::new("clap-presets-corrupt-files");
        let text = String::from_utf8(good.clone()).expect("utf-8");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("garbage", b"\x00\xff not json at all".to_vec()),
            ("empty", Vec::new()),
            ("foreign", br#"{"format":"something-else","version":1}"#.to_vec()),
            ("cut", good[..good.len() / 2].to_vec()),
            (
                "newer",
                text.replacen("\"version\": 1", "\"version\": 99", 1)
                    .into_bytes(),
            ),
            (
                "no-state",
                text.replacen("\"state\"", "\"stat\"", 1).into_bytes(),
            ),
            ("huge", vec![b' '; 2 << 20]),
        ];
        let mut paths: Vec<PathBuf> = cases
            .iter()
            .map(|(name, bytes)| {
                let path = scratch.join(&format!("{name}.lcpreset"));
                std::fs::write(&path, bytes).expect("write");
                path
            })
            .collect();
        let folder = scratch.join("folder.lcpreset");
        std::fs::create_dir(&folder).expect("mkdir");
        paths.push(folder);
        paths.push(scratch.join("missing.lcpreset"));

        let mut plugin = plugin_with_a_session();
        assert_eq!(plugin.load_preset("dark-drone"), Some(true));
        plugin.take_preset_load_reports();
        let before = plugin.save_state();
        for path in &paths {
            let receiver = metadata_of(&mut provider, path);
            assert!(receiver.presets.is_empty(), "{}: nothing declared", path.display());
            assert_eq!(receiver.errors.len(), 1, "{}: one error", path.display());
            assert!(!receiver.errors[0].is_empty());

            assert_eq!(plugin.load_preset_file(path), Some(false), "{}", path.display());
            let reports = plugin.take_preset_load_reports();
            assert!(
                matches!(
                    reports.as_slice(),
                    [PresetLoadReport::Error { plugin_location: false, path: reported, message, .. }]
                        if *reported == path.to_string_lossy() && !message.is_empty()
                ),
                "{}: {reports:?}",
                path.display()
            );
            assert_eq!(plugin.save_state(), before, "{}: nothing changed", path.display());
        }
        run_a_block(&mut plugin);
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

/// How a test loads a factory preset, and what the host then hears of it.
trait LoadPreset {
    fn load(&self, plugin: &mut HostedPlugin, preset: &Preset) -> Option<bool>;
    fn report(&self, preset: &Preset) -> PresetLoadReport;
}

/// From its file in the factory folder, as hosts load what discovery found.
struct FromFile;

impl LoadPreset for FromFile {
    fn load(&self, plugin: &mut HostedPlugin, preset: &Preset) -> Option<bool> {
        plugin.load_preset_file(&factory_file(preset))
    }

    fn report(&self, preset: &Preset) -> PresetLoadReport {
        PresetLoadReport::Loaded {
            plugin_location: false,
            path: factory_file(preset).to_string_lossy().into_owned(),
            key: String::new(),
        }
    }
}

/// From inside the plugin by key, as the fallback location declares them (and hosts may have
/// stored from an earlier version).
struct ByKey;

impl LoadPreset for ByKey {
    fn load(&self, plugin: &mut HostedPlugin, preset: &Preset) -> Option<bool> {
        plugin.load_preset(preset.key)
    }

    fn report(&self, preset: &Preset) -> PresetLoadReport {
        PresetLoadReport::Loaded {
            plugin_location: true,
            path: String::new(),
            key: preset.key.to_owned(),
        }
    }
}

/// Each factory preset, loaded over another one through `clap.preset-load` on an active
/// instance, sets every parameter to its recipe (and those it does not name back to their
/// defaults), tells the host it loaded, and leaves the prompt and seed alone.
fn every_factory_preset_loads(how: &dyn LoadPreset) {
    let mut plugin = plugin_with_a_session();
    for preset in FACTORY {
        // Start from a preset that moves many parameters, so leftovers would show.
        let other = self::preset(if preset.key == "dark-drone" {
            "minimal-piano"
        } else {
            "dark-drone"
        });
        assert_eq!(
            how.load(&mut plugin, other),
            Some(true),
            "load {}",
            other.key
        );
        assert_eq!(
            how.load(&mut plugin, preset),
            Some(true),
            "load {}",
            preset.key
        );
        run_a_block(&mut plugin);
        assert_eq!(
            plugin.take_preset_load_reports(),
            [how.report(other), how.report(preset)],
            "the host hears of each load"
        );

        let expected = preset_texts(preset, true);
        assert_eq!(
            host_texts(&mut plugin, &expected),
            expected,
            "{}: the parameters the host reads",
            preset.name
        );
        assert_session_kept(&plugin.save_state(), preset.name);
    }

    // The recipes' own words, as a user would check them.
    assert_eq!(how.load(&mut plugin, preset("dark-drone")), Some(true));
    assert_eq!(plugin.param_text(clap_id("scale")), "Phrygian");
    assert_eq!(plugin.param_text(clap_id("root")), "D");
    assert_eq!(how.load(&mut plugin, preset("minimal-piano")), Some(true));
    assert_eq!(plugin.param_text(clap_id("voice_1")), "Off");
    assert_eq!(
        plugin.param_text(clap_id("root")),
        preset_texts(preset("choir"), true)["root"],
        "a parameter the preset does not name is back at its default"
    );
}

/// Every factory preset loads from the file discovery found it in (kind FILE, no load key).
#[test]
fn every_factory_preset_loads_from_its_file() {
    let home = ScratchHome::new("clap-presets-load-files");
    home.run("every_factory_preset_loads_from_its_file", || {
        let entry = common::clap_host::load_entry(&common::paths::plugin_library());
        drop(provider(&entry));
        every_factory_preset_loads(&FromFile);
    });
}

/// Every factory preset loads from inside the plugin by its key (kind PLUGIN).
#[test]
fn every_factory_preset_loads_by_key() {
    isolated("every_factory_preset_loads_by_key", || {
        every_factory_preset_loads(&ByKey)
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
        let expected = preset_texts(preset("dark-drone"), true);
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

/// An unknown key, an empty key and a file that is not there are refused, reported to the host through
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
                Some(&key)
            ),
            Some(false),
            "a file location that is no preset file"
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
