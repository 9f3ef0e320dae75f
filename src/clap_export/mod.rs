//! The plugin's CLAP entry point, in place of nice-plug's `nice_export_clap!`.
//!
//! nice-plug 0.4.2 exports the plugin factory only and its CLAP wrapper has no `clap.preset-load`,
//! so hosts (Bitwig, Reaper, clap-validator) could neither list the factory presets
//! ([`crate::params::presets`]) nor load one. This module exports the same plugin factory the
//! macro would (same descriptor, same logger set-up) plus a preset discovery factory whose one
//! provider declares the factory presets, and gives every instance the preset-load extension by
//! handing the host a [`Instance`], a `clap_plugin` of our own in front of nice-plug's
//! [`Wrapper`].
//!
//! The factory presets reach hosts as files, one `.lcpreset` each ([`crate::io::preset_file`]),
//! in a folder the provider itself keeps current: a file holding one preset needs no load key,
//! and clap-validator 0.4.1 deadlocks on any preset declared with a load key (its metadata
//! receiver locks its result mutex twice), so presets inside the plugin could not pass it. Only
//! when that folder cannot be written does the provider fall back to declaring the presets
//! inside the plugin, by key.

use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use clap_sys::entry::clap_plugin_entry;
use clap_sys::ext::note_ports::{CLAP_EXT_NOTE_PORTS, clap_note_port_info, clap_plugin_note_ports};
use clap_sys::ext::preset_load::{
    CLAP_EXT_PRESET_LOAD, CLAP_EXT_PRESET_LOAD_COMPAT, clap_host_preset_load,
    clap_plugin_preset_load,
};
use clap_sys::ext::state::{CLAP_EXT_STATE, clap_plugin_state};
use clap_sys::factory::plugin_factory::{CLAP_PLUGIN_FACTORY_ID, clap_plugin_factory};
use clap_sys::factory::preset_discovery::{
    CLAP_PRESET_DISCOVERY_FACTORY_ID, CLAP_PRESET_DISCOVERY_FACTORY_ID_COMPAT,
    CLAP_PRESET_DISCOVERY_IS_FACTORY_CONTENT, CLAP_PRESET_DISCOVERY_IS_USER_CONTENT,
    CLAP_PRESET_DISCOVERY_LOCATION_FILE, CLAP_PRESET_DISCOVERY_LOCATION_PLUGIN,
    clap_preset_discovery_factory, clap_preset_discovery_filetype, clap_preset_discovery_indexer,
    clap_preset_discovery_location, clap_preset_discovery_location_kind,
    clap_preset_discovery_metadata_receiver, clap_preset_discovery_provider,
    clap_preset_discovery_provider_descriptor,
};
use clap_sys::host::clap_host;
use clap_sys::plugin::{clap_plugin, clap_plugin_descriptor};
use clap_sys::process::{clap_process, clap_process_status};
use clap_sys::stream::clap_istream;
use clap_sys::universal_plugin_id::clap_universal_plugin_id;
use clap_sys::version::CLAP_VERSION;
use nice_plug::prelude::PluginState;
use nice_plug::wrapper::clap::{PluginDescriptor, Wrapper};

use crate::LatentChoir;
use crate::io::preset_file::{self, PresetFile};
use crate::params::presets;

mod notes;

/// The CLAP entry point.
#[unsafe(no_mangle)]
#[used]
pub static clap_entry: clap_plugin_entry = clap_plugin_entry {
    clap_version: CLAP_VERSION,
    init: Some(entry_init),
    deinit: Some(entry_deinit),
    get_factory: Some(get_factory),
};

/// Module load: set up nice-plug's logger, as the macro does.
unsafe extern "C" fn entry_init(_plugin_path: *const c_char) -> bool {
    nice_plug::wrapper::setup_logger::<LatentChoir>();
    true
}

unsafe extern "C" fn entry_deinit() {}

unsafe extern "C" fn get_factory(factory_id: *const c_char) -> *const c_void {
    if factory_id.is_null() {
        return std::ptr::null();
    }
    // SAFETY: non-null, and the host passes a NUL-terminated id.
    let id = unsafe { CStr::from_ptr(factory_id) };
    if id == CLAP_PLUGIN_FACTORY_ID {
        &PLUGIN_FACTORY as *const clap_plugin_factory as *const c_void
    } else if id == CLAP_PRESET_DISCOVERY_FACTORY_ID
        || id == CLAP_PRESET_DISCOVERY_FACTORY_ID_COMPAT
    {
        &PRESET_FACTORY as *const clap_preset_discovery_factory as *const c_void
    } else {
        std::ptr::null()
    }
}

// ---------------------------------------------------------------------------------------------
// The plugin factory
// ---------------------------------------------------------------------------------------------

static PLUGIN_FACTORY: clap_plugin_factory = clap_plugin_factory {
    get_plugin_count: Some(get_plugin_count),
    get_plugin_descriptor: Some(get_plugin_descriptor),
    create_plugin: Some(create_plugin),
};

/// Built on first use, as the macro does: it reads the plugin's constants into C strings.
fn descriptor() -> &'static PluginDescriptor {
    static DESCRIPTOR: OnceLock<PluginDescriptor> = OnceLock::new();
    DESCRIPTOR.get_or_init(PluginDescriptor::for_plugin::<LatentChoir>)
}

unsafe extern "C" fn get_plugin_count(_factory: *const clap_plugin_factory) -> u32 {
    1
}

unsafe extern "C" fn get_plugin_descriptor(
    _factory: *const clap_plugin_factory,
    index: u32,
) -> *const clap_plugin_descriptor {
    if index == 0 {
        descriptor().clap_plugin_descriptor()
    } else {
        std::ptr::null()
    }
}

unsafe extern "C" fn create_plugin(
    _factory: *const clap_plugin_factory,
    host: *const clap_host,
    plugin_id: *const c_char,
) -> *const clap_plugin {
    if host.is_null() || plugin_id.is_null() {
        return std::ptr::null();
    }
    // SAFETY: non-null, and the host passes a NUL-terminated id.
    if unsafe { CStr::from_ptr(plugin_id) } != descriptor().clap_id() {
        return std::ptr::null();
    }
    // SAFETY: `host` is the host's live `clap_host`, as the macro passes it.
    let wrapper = unsafe { Wrapper::<LatentChoir>::new(host) };
    let inner = *wrapper.clap_plugin.borrow();
    // The wrapper's reference goes to `plugin_data` (which already points at it); its own
    // `destroy` takes it back with `Arc::from_raw`.
    let _ = Arc::into_raw(wrapper);
    let instance = Box::new(Instance {
        plugin: clap_plugin {
            get_extension: Some(instance_get_extension),
            destroy: Some(instance_destroy),
            activate: Some(instance_activate),
            process: Some(instance_process),
            ..inner
        },
        inner,
        host,
        dialect: notes::Dialect::default(),
    });
    // The host holds this pointer until it calls `destroy`, which frees the box.
    &Box::leak(instance).plugin
}

// ---------------------------------------------------------------------------------------------
// One instance: nice-plug's wrapper with preset-load in front
// ---------------------------------------------------------------------------------------------

/// What the host holds for one plugin instance.
///
/// `plugin` is nice-plug's own `clap_plugin` (same descriptor, same `plugin_data`, same
/// functions) except for `get_extension` and `destroy`, and `activate` and `process`, which
/// choose and apply the note output's dialect ([`notes`]) around nice-plug's own. That is sound because every function of
/// nice-plug's wrapper, and every extension function it hands out, finds the wrapper through
/// `(*plugin).plugin_data` only and never compares the plugin pointer with its own (nice-plug
/// 0.4.2 reads its `clap_plugin` field only to return it from the macro's `create_plugin`), so
/// those functions work the same when the host passes this struct's address.
#[repr(C)]
struct Instance {
    /// First, so that the host's `*const clap_plugin` is also a pointer to the `Instance`.
    plugin: clap_plugin,
    /// nice-plug's own `clap_plugin`, for the functions replaced above.
    inner: clap_plugin,
    host: *const clap_host,
    /// The dialect the notes go out in.
    dialect: notes::Dialect,
}

/// # Safety
/// `plugin` must be non-null and one this module's `create_plugin` returned, not yet destroyed.
unsafe fn instance<'a>(plugin: *const clap_plugin) -> &'a Instance {
    // SAFETY: `plugin` is the first field of a live, `repr(C)` `Instance` (see the contract).
    unsafe { &*(plugin as *const Instance) }
}

static PRESET_LOAD: clap_plugin_preset_load = clap_plugin_preset_load {
    from_location: Some(preset_load_from_location),
};

/// `clap.note-ports` in place of nice-plug's: the same ports, the output's preferred dialect
/// the one the host gets ([`notes`]).
static NOTE_PORTS: clap_plugin_note_ports = clap_plugin_note_ports {
    count: Some(note_ports_count),
    get: Some(note_ports_get),
};

unsafe extern "C" fn note_ports_count(_plugin: *const clap_plugin, _is_input: bool) -> u32 {
    // `MIDI_INPUT` and `MIDI_OUTPUT` are both on: one port each way.
    1
}

unsafe extern "C" fn note_ports_get(
    plugin: *const clap_plugin,
    index: u32,
    is_input: bool,
    info: *mut clap_note_port_info,
) -> bool {
    if plugin.is_null() || info.is_null() {
        return false;
    }
    // SAFETY: the host's pointer to our instance (see `Instance`).
    let instance = unsafe { instance(plugin) };
    // SAFETY: `get` is a main-thread call; `host` is the instance's live host.
    let output = unsafe { instance.dialect.choose(instance.host) };
    // SAFETY: non-null; the host passes a `clap_note_port_info` to fill.
    notes::port_info(index, is_input, output, unsafe { &mut *info })
}

/// Chooses the notes' dialect (the host may have changed since it was last asked), then
/// nice-plug's `activate`.
unsafe extern "C" fn instance_activate(
    plugin: *const clap_plugin,
    sample_rate: f64,
    min_frames: u32,
    max_frames: u32,
) -> bool {
    if plugin.is_null() {
        return false;
    }
    // SAFETY: the host's pointer to our instance (see `Instance`).
    let instance = unsafe { instance(plugin) };
    // SAFETY: `activate` is a main-thread call; `host` is the instance's live host.
    unsafe { instance.dialect.choose(instance.host) };
    match instance.inner.activate {
        // SAFETY: nice-plug's own function, with the host's arguments.
        Some(activate) => unsafe { activate(plugin, sample_rate, min_frames, max_frames) },
        None => false,
    }
}

/// nice-plug's `process`, its note output in the chosen dialect.
unsafe extern "C" fn instance_process(
    plugin: *const clap_plugin,
    process: *const clap_process,
) -> clap_process_status {
    if plugin.is_null() {
        return clap_sys::process::CLAP_PROCESS_ERROR;
    }
    // SAFETY: the host's pointer to our instance (see `Instance`).
    let instance = unsafe { instance(plugin) };
    // SAFETY: the host's arguments, nice-plug's function.
    unsafe {
        notes::process(
            instance.inner.process,
            plugin,
            process,
            instance.dialect.get(),
        )
    }
}

unsafe extern "C" fn instance_get_extension(
    plugin: *const clap_plugin,
    id: *const c_char,
) -> *const c_void {
    if plugin.is_null() || id.is_null() {
        return std::ptr::null();
    }
    // SAFETY: non-null; the host passes a NUL-terminated id.
    let name = unsafe { CStr::from_ptr(id) };
    if name == CLAP_EXT_PRESET_LOAD || name == CLAP_EXT_PRESET_LOAD_COMPAT {
        return &PRESET_LOAD as *const clap_plugin_preset_load as *const c_void;
    }
    if name == CLAP_EXT_NOTE_PORTS {
        return &NOTE_PORTS as *const clap_plugin_note_ports as *const c_void;
    }
    // SAFETY: the host's pointer to our instance (see `Instance`).
    let inner = unsafe { instance(plugin) }.inner;
    match inner.get_extension {
        // SAFETY: nice-plug's own function, with the host's arguments.
        Some(get_extension) => unsafe { get_extension(plugin, id) },
        None => std::ptr::null(),
    }
}

unsafe extern "C" fn instance_destroy(plugin: *const clap_plugin) {
    if plugin.is_null() {
        return;
    }
    // SAFETY: the host's pointer to our instance (see `Instance`).
    let inner = unsafe { instance(plugin) }.inner;
    if let Some(destroy) = inner.destroy {
        // SAFETY: nice-plug's own destructor; it reads `plugin_data` (the same in ours) and
        // drops the wrapper. Our struct is still alive during the call.
        unsafe { destroy(plugin) };
    }
    // SAFETY: the box `create_plugin` leaked; the host gives up the pointer with this call.
    drop(unsafe { Box::from_raw(plugin as *mut Instance) });
}

/// `clap.preset-load`'s `from_location`: a `.lcpreset` file (kind FILE, the path), or a factory
/// preset inside the plugin by its key (kind PLUGIN, as the fallback location declares them and
/// hosts may have stored), loaded through nice-plug's own state loading so that only parameters
/// change (prompt, model, seed and run stay).
unsafe extern "C" fn preset_load_from_location(
    plugin: *const clap_plugin,
    location_kind: clap_preset_discovery_location_kind,
    location: *const c_char,
    load_key: *const c_char,
) -> bool {
    if plugin.is_null() {
        return false;
    }
    // SAFETY: the host's pointer to our instance (see `Instance`).
    let instance = unsafe { instance(plugin) };
    // Our own code never panics here by design; a panic would abort the host, so make sure.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the host's arguments, with the host's guarantees.
        unsafe { load_preset(instance, plugin, location_kind, location, load_key) }
    }))
    .unwrap_or_else(|_| Err(String::from("loading the preset failed")));
    // SAFETY: the host pointer `create_plugin` got, valid while the instance lives.
    let host_ext = unsafe { host_preset_load(instance.host) };
    match outcome {
        Ok(()) => {
            if let Some(loaded) = host_ext.and_then(|ext| ext.loaded) {
                // SAFETY: the host's own callback, on the main thread it called us from.
                unsafe { loaded(instance.host, location_kind, location, load_key) };
            }
            true
        }
        Err(message) => {
            nice_plug::nice_log!("CLAP preset load: {message}");
            if let Some(on_error) = host_ext.and_then(|ext| ext.on_error) {
                let message = CString::new(message).unwrap_or_default();
                // SAFETY: as above; `message` outlives the call.
                unsafe {
                    on_error(
                        instance.host,
                        location_kind,
                        location,
                        load_key,
                        0,
                        message.as_ptr(),
                    )
                };
            }
            false
        }
    }
}

/// The host's preset-load extension, if it has one.
///
/// # Safety
/// `host` must be null or a live `clap_host`.
unsafe fn host_preset_load(host: *const clap_host) -> Option<clap_host_preset_load> {
    if host.is_null() {
        return None;
    }
    // SAFETY: non-null and live (the contract).
    let get_extension = unsafe { (*host).get_extension }?;
    [CLAP_EXT_PRESET_LOAD, CLAP_EXT_PRESET_LOAD_COMPAT]
        .into_iter()
        // SAFETY: the host's own function with a NUL-terminated id.
        .map(|id| unsafe { get_extension(host, id.as_ptr()) })
        .find(|ext| !ext.is_null())
        // SAFETY: the host returned a `clap_host_preset_load` for this id.
        .map(|ext| unsafe { *(ext as *const clap_host_preset_load) })
}

/// # Safety
/// `plugin` is the instance's pointer; `location` and `load_key` are null or NUL-terminated.
unsafe fn load_preset(
    instance: &Instance,
    plugin: *const clap_plugin,
    location_kind: clap_preset_discovery_location_kind,
    location: *const c_char,
    load_key: *const c_char,
) -> Result<(), String> {
    let state = match (location_kind, location.is_null()) {
        (CLAP_PRESET_DISCOVERY_LOCATION_FILE, false) => {
            // SAFETY: non-null and NUL-terminated (the contract).
            let path = path_of(unsafe { CStr::from_ptr(location) });
            let file =
                preset_file::read(&path).map_err(|err| format!("{}: {err}", path.display()))?;
            let mut state = file.state;
            // A preset sets parameters only: fields a hand-made file might carry (prompt,
            // model, seed, run) would overwrite the session's.
            state.fields.clear();
            state
        }
        (CLAP_PRESET_DISCOVERY_LOCATION_PLUGIN, true) => {
            if load_key.is_null() {
                return Err(String::from("no load key"));
            }
            // SAFETY: non-null and NUL-terminated (the contract).
            let key = unsafe { CStr::from_ptr(load_key) }.to_string_lossy();
            let preset = presets::FACTORY
                .iter()
                .find(|preset| preset.key == key)
                .ok_or_else(|| format!("no factory preset with the key {key:?}"))?;
            preset
                .state()
                .map_err(|err| format!("{}: {err}", preset.name))?
        }
        _ => {
            return Err(String::from(
                "only .lcpreset files and the factory presets inside the plugin can be loaded",
            ));
        }
    };
    let bytes = clap_state_bytes(&state)?;

    let get_extension = instance
        .inner
        .get_extension
        .ok_or("the plugin has no extensions")?;
    // SAFETY: nice-plug's own function with our instance pointer and a NUL-terminated id.
    let state =
        unsafe { get_extension(plugin, CLAP_EXT_STATE.as_ptr()) } as *const clap_plugin_state;
    if state.is_null() {
        return Err(String::from("the plugin has no state extension"));
    }
    // SAFETY: nice-plug returned its `clap_plugin_state`, which lives as long as the wrapper.
    let load = unsafe { (*state).load }.ok_or("the plugin cannot load state")?;
    let mut reader = Reader {
        bytes: &bytes,
        at: 0,
    };
    let stream = clap_istream {
        ctx: &mut reader as *mut Reader as *mut c_void,
        read: Some(read_bytes),
    };
    // SAFETY: nice-plug's own `load`, on the main thread, with a stream that outlives the call.
    if unsafe { load(plugin, &stream) } {
        Ok(())
    } else {
        Err(String::from("the plugin refused the preset's state"))
    }
}

/// `state` in the byte format nice-plug's CLAP `clap.state` saves and loads: the JSON's length
/// as a little-endian u64, then the JSON.
fn clap_state_bytes(state: &PluginState) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(state).map_err(|err| err.to_string())?;
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&json);
    Ok(bytes)
}

/// A CLAP location's path: its bytes as they are on Unix, where paths need not be UTF-8.
fn path_of(location: &CStr) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(location.to_bytes()))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(location.to_string_lossy().into_owned())
    }
}

/// An in-memory `clap_istream`'s context.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

unsafe extern "C" fn read_bytes(
    stream: *const clap_istream,
    buffer: *mut c_void,
    size: u64,
) -> i64 {
    if stream.is_null() || buffer.is_null() {
        return -1;
    }
    // SAFETY: our own stream, whose context is a live `Reader` for the duration of the load.
    let reader = unsafe { &mut *((*stream).ctx as *mut Reader) };
    let rest = reader.bytes.get(reader.at..).unwrap_or_default();
    let count = rest.len().min(usize::try_from(size).unwrap_or(usize::MAX));
    // SAFETY: the caller's buffer holds `size` bytes, `count <= size`, and ours does not overlap.
    unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), buffer as *mut u8, count) };
    reader.at += count;
    count as i64
}

// ---------------------------------------------------------------------------------------------
// Preset discovery
// ---------------------------------------------------------------------------------------------

static PRESET_FACTORY: clap_preset_discovery_factory = clap_preset_discovery_factory {
    count: Some(provider_count),
    get_descriptor: Some(provider_descriptor),
    create: Some(provider_create),
};

/// The one provider: the factory presets built into the plugin.
static PROVIDER: clap_preset_discovery_provider_descriptor =
    clap_preset_discovery_provider_descriptor {
        clap_version: CLAP_VERSION,
        id: c"org.latent-choir.latent-choir.factory-presets".as_ptr(),
        name: c"Latent Choir factory presets".as_ptr(),
        vendor: c"Latent Choir".as_ptr(),
    };

/// The creator each preset names.
const CREATOR: &CStr = c"Latent Choir";

unsafe extern "C" fn provider_count(_factory: *const clap_preset_discovery_factory) -> u32 {
    1
}

unsafe extern "C" fn provider_descriptor(
    _factory: *const clap_preset_discovery_factory,
    index: u32,
) -> *const clap_preset_discovery_provider_descriptor {
    if index == 0 {
        &PROVIDER
    } else {
        std::ptr::null()
    }
}

/// A provider as the host holds it: the raw struct first, then the indexer it reports to.
#[repr(C)]
struct Provider {
    raw: clap_preset_discovery_provider,
    indexer: *const clap_preset_discovery_indexer,
}

unsafe extern "C" fn provider_create(
    _factory: *const clap_preset_discovery_factory,
    indexer: *const clap_preset_discovery_indexer,
    provider_id: *const c_char,
) -> *const clap_preset_discovery_provider {
    if indexer.is_null() || provider_id.is_null() {
        return std::ptr::null();
    }
    // SAFETY: both ids are non-null and NUL-terminated.
    if unsafe { CStr::from_ptr(provider_id) != CStr::from_ptr(PROVIDER.id) } {
        return std::ptr::null();
    }
    let provider = Box::new(Provider {
        raw: clap_preset_discovery_provider {
            desc: &PROVIDER,
            provider_data: std::ptr::null_mut(),
            init: Some(provider_init),
            destroy: Some(provider_destroy),
            get_metadata: Some(provider_get_metadata),
            get_extension: Some(provider_get_extension),
        },
        indexer,
    });
    // Freed by `provider_destroy`.
    &Box::leak(provider).raw
}

/// The file type of the preset files, as `io::preset_file::EXTENSION` (a unit test keeps them
/// in step).
const FILE_EXTENSION: &CStr = c"lcpreset";

/// The factory presets as the files the factory folder holds.
fn factory_files() -> Result<Vec<PresetFile>, String> {
    presets::FACTORY
        .iter()
        .map(|preset| {
            Ok(PresetFile {
                name: preset.name.to_owned(),
                key: preset.key.to_owned(),
                description: preset.description.to_owned(),
                creator: CREATOR.to_string_lossy().into_owned(),
                factory: true,
                state: preset
                    .state()
                    .map_err(|err| format!("{}: {err}", preset.name))?,
            })
        })
        .collect()
}

/// Makes sure the factory folder (`io::preset_file::factory_dir`) holds this build's factory
/// presets and returns its path for the host. Done on every provider `init`, so a fresh machine,
/// a deleted folder or a plugin update needs no step from the user; it costs a few small reads
/// when nothing changed. The lock keeps two providers of one process from writing the same
/// temporary file; other processes write their own (see `output_file::PendingFile`).
fn factory_folder() -> Result<CString, String> {
    static SYNC: Mutex<()> = Mutex::new(());
    let dir = preset_file::factory_dir()
        .ok_or("neither XDG_DATA_HOME nor HOME names an absolute folder")?;
    let files = factory_files()?;
    let _guard = SYNC.lock().unwrap_or_else(PoisonError::into_inner);
    preset_file::sync_folder(&dir, &files).map_err(|err| err.to_string())?;
    let path = dir
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", dir.display()))?;
    CString::new(path).map_err(|_| format!("{} holds a NUL", dir.display()))
}

/// Declares the `.lcpreset` file type and one location, factory content: the factory folder, or
/// if that cannot be written (a read-only home), the presets inside the plugin.
unsafe extern "C" fn provider_init(provider: *const clap_preset_discovery_provider) -> bool {
    if provider.is_null() {
        return false;
    }
    // SAFETY: `provider` is the first field of a live `Provider` (see `provider_create`).
    let indexer = unsafe { (*(provider as *const Provider)).indexer };
    // Nothing here panics by design; a panic would abort the host, so make sure.
    catch_unwind(|| {
        // SAFETY: the indexer the host created us with lives as long as the provider.
        unsafe { declare_locations(indexer) }
    })
    .unwrap_or(false)
}

/// # Safety
/// `indexer` is the host's live indexer.
unsafe fn declare_locations(indexer: *const clap_preset_discovery_indexer) -> bool {
    // SAFETY: live (the contract).
    let indexer_ref = unsafe { &*indexer };
    let Some(declare_location) = indexer_ref.declare_location else {
        return false;
    };
    if let Some(declare_filetype) = indexer_ref.declare_filetype {
        let filetype = clap_preset_discovery_filetype {
            name: c"Latent Choir preset".as_ptr(),
            description: c"One Latent Choir preset: its parameters as JSON".as_ptr(),
            file_extension: FILE_EXTENSION.as_ptr(),
        };
        // SAFETY: the host's own function; `filetype` outlives the call.
        if !unsafe { declare_filetype(indexer, &filetype) } {
            nice_plug::nice_log!("CLAP preset discovery: the host refused the .lcpreset file type");
        }
    }
    let folder = factory_folder()
        .inspect_err(|message| {
            nice_plug::nice_log!(
                "CLAP preset discovery: no factory preset folder ({message}), declaring the \
                 presets inside the plugin instead"
            )
        })
        .ok();
    let location = clap_preset_discovery_location {
        flags: CLAP_PRESET_DISCOVERY_IS_FACTORY_CONTENT,
        name: c"Latent Choir factory presets".as_ptr(),
        kind: if folder.is_some() {
            CLAP_PRESET_DISCOVERY_LOCATION_FILE
        } else {
            CLAP_PRESET_DISCOVERY_LOCATION_PLUGIN
        },
        location: folder
            .as_ref()
            .map_or(std::ptr::null(), |folder| folder.as_ptr()),
    };
    // SAFETY: the host's own function; `location` and the path outlive the call.
    unsafe { declare_location(indexer, &location) }
}

unsafe extern "C" fn provider_destroy(provider: *const clap_preset_discovery_provider) {
    if !provider.is_null() {
        // SAFETY: the box `provider_create` leaked; the host gives it up with this call.
        drop(unsafe { Box::from_raw(provider as *mut Provider) });
    }
}

unsafe extern "C" fn provider_get_extension(
    _provider: *const clap_preset_discovery_provider,
    _extension_id: *const c_char,
) -> *const c_void {
    std::ptr::null()
}

/// A `.lcpreset` file's one preset (kind FILE), or every factory preset inside the plugin (kind
/// PLUGIN, the fallback location); false for anything else.
unsafe extern "C" fn provider_get_metadata(
    _provider: *const clap_preset_discovery_provider,
    location_kind: clap_preset_discovery_location_kind,
    location: *const c_char,
    receiver: *const clap_preset_discovery_metadata_receiver,
) -> bool {
    if receiver.is_null() {
        return false;
    }
    // Nothing here panics by design; a panic would abort the host, so make sure.
    catch_unwind(|| match (location_kind, location.is_null()) {
        // SAFETY: the host's receiver, and a non-null, NUL-terminated path.
        (CLAP_PRESET_DISCOVERY_LOCATION_FILE, false) => unsafe {
            declare_file(receiver, CStr::from_ptr(location))
        },
        // SAFETY: the host's receiver.
        (CLAP_PRESET_DISCOVERY_LOCATION_PLUGIN, true) => unsafe { declare_inside(receiver) },
        _ => false,
    })
    .unwrap_or(false)
}

/// The plugin's universal id, which every preset names.
fn plugin_id() -> clap_universal_plugin_id {
    clap_universal_plugin_id {
        abi: c"clap".as_ptr(),
        id: descriptor().clap_id().as_ptr(),
    }
}

/// One preset file: exactly one preset, without a load key (a file holds one). A file that is
/// not a readable preset goes to the receiver's `on_error` and gives false.
///
/// # Safety
/// `receiver` is the host's live receiver.
unsafe fn declare_file(
    receiver: *const clap_preset_discovery_metadata_receiver,
    location: &CStr,
) -> bool {
    // SAFETY: live for this call (the contract).
    let receiver_ref = unsafe { &*receiver };
    let path = path_of(location);
    let file = match preset_file::read(&path) {
        Ok(file) => file,
        Err(err) => {
            if let Some(on_error) = receiver_ref.on_error {
                let message =
                    CString::new(format!("{}: {err}", path.display())).unwrap_or_default();
                // SAFETY: the host's function; `message` outlives the call.
                unsafe { on_error(receiver, 0, message.as_ptr()) };
            }
            return false;
        }
    };
    // The reader refuses texts holding a NUL, so these cannot fail; refuse the file if they do.
    let (Ok(name), Ok(description), Ok(creator)) = (
        CString::new(file.name),
        CString::new(file.description),
        CString::new(file.creator),
    ) else {
        return false;
    };
    let Some(begin_preset) = receiver_ref.begin_preset else {
        return false;
    };
    // SAFETY (this and the calls below): the host's functions with its receiver and
    // NUL-terminated strings that outlive each call.
    if !unsafe { begin_preset(receiver, name.as_ptr(), std::ptr::null()) } {
        // The host wants nothing from this file.
        return true;
    }
    let plugin_id = plugin_id();
    if let Some(add_plugin_id) = receiver_ref.add_plugin_id {
        unsafe { add_plugin_id(receiver, &plugin_id) };
    }
    if let Some(set_flags) = receiver_ref.set_flags {
        let flags = if file.factory {
            CLAP_PRESET_DISCOVERY_IS_FACTORY_CONTENT
        } else {
            CLAP_PRESET_DISCOVERY_IS_USER_CONTENT
        };
        unsafe { set_flags(receiver, flags) };
    }
    if let Some(add_creator) = receiver_ref.add_creator
        && !creator.is_empty()
    {
        unsafe { add_creator(receiver, creator.as_ptr()) };
    }
    if let Some(set_description) = receiver_ref.set_description
        && !description.is_empty()
    {
        unsafe { set_description(receiver, description.as_ptr()) };
    }
    true
}

/// Every factory preset inside the plugin, in order, by key: the fallback location.
///
/// # Safety
/// `receiver` is the host's live receiver.
unsafe fn declare_inside(receiver: *const clap_preset_discovery_metadata_receiver) -> bool {
    // SAFETY: live for this call (the contract).
    let receiver_ref = unsafe { &*receiver };
    let Some(begin_preset) = receiver_ref.begin_preset else {
        return false;
    };
    let plugin_id = plugin_id();
    for preset in presets::FACTORY {
        // Names, keys and descriptions are ours and hold no NUL; skip one that would.
        let (Ok(name), Ok(key), Ok(description)) = (
            CString::new(preset.name),
            CString::new(preset.key),
            CString::new(preset.description),
        ) else {
            continue;
        };
        // SAFETY (this and the calls below): the host's functions with its receiver and
        // NUL-terminated strings that outlive each call.
        if !unsafe { begin_preset(receiver, name.as_ptr(), key.as_ptr()) } {
            // The host wants no more presets from this location.
            break;
        }
        if let Some(add_plugin_id) = receiver_ref.add_plugin_id {
            unsafe { add_plugin_id(receiver, &plugin_id) };
        }
        if let Some(set_flags) = receiver_ref.set_flags {
            unsafe { set_flags(receiver, CLAP_PRESET_DISCOVERY_IS_FACTORY_CONTENT) };
        }
        if let Some(add_creator) = receiver_ref.add_creator {
            unsafe { add_creator(receiver, CREATOR.as_ptr()) };
        }
        if let Some(set_description) = receiver_ref.set_description {
            unsafe { set_description(receiver, description.as_ptr()) };
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_file_type_is_the_preset_files_extension() {
        assert_eq!(FILE_EXTENSION.to_str(), Ok(preset_file::EXTENSION));
    }

    #[test]
    fn every_factory_preset_becomes_a_file() {
        let files = factory_files().expect("every preset has a state");
        assert_eq!(files.len(), presets::FACTORY.len());
        for (file, preset) in files.iter().zip(presets::FACTORY) {
            assert_eq!(file.key, preset.key);
            assert!(preset_file::file_name(&file.key).is_some(), "{}", file.key);
            let back =
                preset_file::parse(&preset_file::to_bytes(file).expect("writes")).expect("reads");
            assert_eq!(back.name, preset.name);
            assert!(back.factory);
        }
    }
}
