//! The plugin's CLAP entry point, in place of nice-plug's `nice_export_clap!`.
//!
//! nice-plug 0.4.2 exports the plugin factory only and its CLAP wrapper has no `clap.preset-load`,
//! so hosts (Bitwig, Reaper, clap-validator) could neither list the factory presets
//! ([`crate::params::presets`]) nor load one. This module exports the same plugin factory the
//! macro would (same descriptor, same logger set-up) plus a preset discovery factory whose one
//! provider declares the factory presets inside the plugin, and gives every instance the
//! preset-load extension by handing the host a [`Instance`], a `clap_plugin` of our own in front
//! of nice-plug's [`Wrapper`].

use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use clap_sys::entry::clap_plugin_entry;
use clap_sys::ext::preset_load::{
    CLAP_EXT_PRESET_LOAD, CLAP_EXT_PRESET_LOAD_COMPAT, clap_host_preset_load,
    clap_plugin_preset_load,
};
use clap_sys::ext::state::{CLAP_EXT_STATE, clap_plugin_state};
use clap_sys::factory::plugin_factory::{CLAP_PLUGIN_FACTORY_ID, clap_plugin_factory};
use clap_sys::factory::preset_discovery::{
    CLAP_PRESET_DISCOVERY_FACTORY_ID, CLAP_PRESET_DISCOVERY_FACTORY_ID_COMPAT,
    CLAP_PRESET_DISCOVERY_IS_FACTORY_CONTENT, CLAP_PRESET_DISCOVERY_LOCATION_PLUGIN,
    clap_preset_discovery_factory, clap_preset_discovery_indexer, clap_preset_discovery_location,
    clap_preset_discovery_location_kind, clap_preset_discovery_metadata_receiver,
    clap_preset_discovery_provider, clap_preset_discovery_provider_descriptor,
};
use clap_sys::host::clap_host;
use clap_sys::plugin::{clap_plugin, clap_plugin_descriptor};
use clap_sys::stream::clap_istream;
use clap_sys::universal_plugin_id::clap_universal_plugin_id;
use clap_sys::version::CLAP_VERSION;
use nice_plug::wrapper::clap::{PluginDescriptor, Wrapper};

use crate::LatentChoir;
use crate::params::presets::{self, Preset};

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
            ..inner
        },
        inner,
        host,
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
/// functions) except for `get_extension` and `destroy`. That is sound because every function of
/// nice-plug's wrapper, and every extension function it hands out, finds the wrapper through
/// `(*plugin).plugin_data` only and never compares the plugin pointer with its own (nice-plug
/// 0.4.2 reads its `clap_plugin` field only to return it from the macro's `create_plugin`), so
/// those functions work the same when the host passes this struct's address.
#[repr(C)]
struct Instance {
    /// First, so that the host's `*const clap_plugin` is also a pointer to the `Instance`.
    plugin: clap_plugin,
    /// nice-plug's own `clap_plugin`, for the two functions replaced above.
    inner: clap_plugin,
    host: *const clap_host,
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

/// `clap.preset-load`'s `from_location`: a factory preset by its key, loaded through nice-plug's
/// own state loading so that only parameters change (prompt, model, seed and run stay).
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
    if location_kind != CLAP_PRESET_DISCOVERY_LOCATION_PLUGIN || !location.is_null() {
        return Err(String::from(
            "only the factory presets inside the plugin can be loaded",
        ));
    }
    if load_key.is_null() {
        return Err(String::from("no load key"));
    }
    // SAFETY: non-null and NUL-terminated (the contract).
    let key = unsafe { CStr::from_ptr(load_key) }.to_string_lossy();
    let preset = presets::FACTORY
        .iter()
        .find(|preset| preset.key == key)
        .ok_or_else(|| format!("no factory preset with the key {key:?}"))?;
    let bytes = clap_state_bytes(preset)?;

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
        Err(format!("the plugin refused the state of {:?}", preset.name))
    }
}

/// `preset`'s parameters in the byte format nice-plug's CLAP `clap.state` saves and loads: the
/// JSON's length as a little-endian u64, then the JSON.
fn clap_state_bytes(preset: &Preset) -> Result<Vec<u8>, String> {
    let state = preset
        .state()
        .map_err(|err| format!("{}: {err}", preset.name))?;
    let json = serde_json::to_vec(&state).map_err(|err| format!("{}: {err}", preset.name))?;
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&json);
    Ok(bytes)
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

/// Declares the one location: inside the plugin, factory content.
unsafe extern "C" fn provider_init(provider: *const clap_preset_discovery_provider) -> bool {
    if provider.is_null() {
        return false;
    }
    // SAFETY: `provider` is the first field of a live `Provider` (see `provider_create`).
    let indexer = unsafe { (*(provider as *const Provider)).indexer };
    // SAFETY: the indexer the host created us with lives as long as the provider.
    let Some(declare_location) = (unsafe { (*indexer).declare_location }) else {
        return false;
    };
    let location = clap_preset_discovery_location {
        flags: CLAP_PRESET_DISCOVERY_IS_FACTORY_CONTENT,
        name: c"Latent Choir factory presets".as_ptr(),
        kind: CLAP_PRESET_DISCOVERY_LOCATION_PLUGIN,
        location: std::ptr::null(),
    };
    // SAFETY: the host's own function; `location` outlives the call.
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

/// Every factory preset, in order, for the plugin location; nothing for any other.
unsafe extern "C" fn provider_get_metadata(
    _provider: *const clap_preset_discovery_provider,
    location_kind: clap_preset_discovery_location_kind,
    location: *const c_char,
    receiver: *const clap_preset_discovery_metadata_receiver,
) -> bool {
    if receiver.is_null()
        || location_kind != CLAP_PRESET_DISCOVERY_LOCATION_PLUGIN
        || !location.is_null()
    {
        return false;
    }
    // SAFETY: non-null; the host's receiver, valid for this call.
    let receiver_ref = unsafe { &*receiver };
    let Some(begin_preset) = receiver_ref.begin_preset else {
        return false;
    };
    let plugin_id = clap_universal_plugin_id {
        abi: c"clap".as_ptr(),
        id: descriptor().clap_id().as_ptr(),
    };
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
