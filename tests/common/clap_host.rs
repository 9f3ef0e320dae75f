//! A small CLAP host on `clack-host`: loads the freshly built plugin, activates it, runs blocks
//! with a transport, input audio, sidechain and MIDI, and collects output audio and notes.

use std::cell::RefCell;
use std::ffi::CStr;
use std::path::Path;

use clack_extensions::audio_ports::{AudioPortInfoBuffer, PluginAudioPorts};
use clack_extensions::note_ports::{
    NoteDialect, NoteDialects, NotePortInfoBuffer, PluginNotePorts,
};
use clack_extensions::params::{ParamInfoBuffer, PluginParams};
use clack_extensions::preset_discovery::prelude::{Location, PluginPresetLoad};
use clack_extensions::preset_discovery::{HostPresetLoad, HostPresetLoadImpl};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::state::PluginState;
use clack_host::events::event_types::{
    MidiEvent, NoteOffEvent, NoteOnEvent, ParamValueEvent, TransportEvent, TransportFlags,
};
use clack_host::events::{EventFlags, EventHeader, Match};
use clack_host::extensions::{
    Extension, ExtensionImplementation, HostExtensionSide, RawExtension, RawExtensionImplementation,
};
use clack_host::prelude::*;
use clack_host::utils::{BeatTime, SecondsTime};
use clap_sys::ext::note_ports::{CLAP_EXT_NOTE_PORTS, clap_host_note_ports};
use clap_sys::host::clap_host;
use std::sync::atomic::{AtomicU32, Ordering};

pub const PLUGIN_ID: &str = "org.latent-choir.latent-choir";
pub const CHANNELS: usize = 2;

pub struct TestHost;
/// The dialects the host declares through its own `clap.note-ports` (`None`: it has none, as
/// Carla).
pub struct TestHostShared {
    dialects: Option<NoteDialects>,
}

impl SharedHandler<'_> for TestHostShared {
    fn request_restart(&self) {}
    fn request_process(&self) {}
    fn request_callback(&self) {}
}

/// The host's main-thread side: records what the plugin reports about preset loads.
#[derive(Default)]
pub struct TestHostMainThread {
    preset_loads: RefCell<Vec<PresetLoadReport>>,
}

/// The host's `clap.note-ports`, written here because clack-extensions 0.2.0's hands the plugin
/// a pointer to a pointer to its table (`RawExtensionImplementation::new(&&…)`), which crashes
/// the first plugin that calls it. It answers the dialects of the plugin made last (the tests
/// make their plugins one at a time), kept in [`HOST_DIALECTS`].
#[derive(Clone, Copy)]
pub struct HostNotePortsExt(RawExtension<HostExtensionSide, clap_host_note_ports>);

/// What [`HostNotePortsExt`] answers.
static HOST_DIALECTS: AtomicU32 = AtomicU32::new(0);

// SAFETY: `clap_host_note_ports` is the extension for this identifier.
unsafe impl Extension for HostNotePortsExt {
    const IDENTIFIERS: &'static [&'static CStr] = &[CLAP_EXT_NOTE_PORTS];
    type ExtensionSide = HostExtensionSide;

    unsafe fn from_raw(raw: RawExtension<Self::ExtensionSide>) -> Self {
        // SAFETY: the caller's guarantee that the pointer is this extension's.
        Self(unsafe { raw.cast() })
    }
}

// SAFETY: the implementation is a `clap_host_note_ports`.
unsafe impl ExtensionImplementation<TestHost> for HostNotePortsExt {
    const IMPLEMENTATION: RawExtensionImplementation =
        RawExtensionImplementation::new(&clap_host_note_ports {
            supported_dialects: Some(host_supported_dialects),
            rescan: Some(host_rescan_note_ports),
        });
}

unsafe extern "C" fn host_supported_dialects(_host: *const clap_host) -> u32 {
    HOST_DIALECTS.load(Ordering::SeqCst)
}

unsafe extern "C" fn host_rescan_note_ports(_host: *const clap_host, _flags: u32) {}

/// What a host reads from a plugin's note output: both dialects (Bitwig, Reaper), MIDI only,
/// or no `clap.note-ports` of its own at all (Carla).
pub const CLAP_AND_MIDI: Option<NoteDialects> = Some(NoteDialects::CLAP.union(NoteDialects::MIDI));
pub const MIDI_ONLY: Option<NoteDialects> = Some(NoteDialects::MIDI);
pub const NO_NOTE_PORTS_EXTENSION: Option<NoteDialects> = None;

/// What the plugin told the host through `clap_host_preset_load`.
#[derive(Debug, Clone, PartialEq)]
pub enum PresetLoadReport {
    Loaded {
        plugin_location: bool,
        /// The file's path for a file location, else empty.
        path: String,
        key: String,
    },
    Error {
        plugin_location: bool,
        path: String,
        key: String,
        message: String,
    },
}

/// A location as the reports keep it: whether it is the plugin, and a file's path.
fn location_parts(location: Location) -> (bool, String) {
    match location {
        Location::Plugin => (true, String::new()),
        Location::File { path } => (false, text(Some(path))),
    }
}

impl MainThreadHandler<'_> for TestHostMainThread {}

impl HostPresetLoadImpl for TestHostMainThread {
    fn on_error(&self, location: Location, key: Option<&CStr>, _: i32, message: Option<&CStr>) {
        let (plugin_location, path) = location_parts(location);
        self.preset_loads
            .borrow_mut()
            .push(PresetLoadReport::Error {
                plugin_location,
                path,
                key: text(key),
                message: text(message),
            });
    }

    fn loaded(&self, location: Location, key: Option<&CStr>) {
        let (plugin_location, path) = location_parts(location);
        self.preset_loads
            .borrow_mut()
            .push(PresetLoadReport::Loaded {
                plugin_location,
                path,
                key: text(key),
            });
    }
}

fn text(s: Option<&CStr>) -> String {
    s.map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl HostHandlers for TestHost {
    type Shared<'a> = TestHostShared;
    type MainThread<'a> = TestHostMainThread;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, shared: &Self::Shared<'_>) {
        builder.register::<HostPresetLoad>();
        if shared.dialects.is_some() {
            builder.register::<HostNotePortsExt>();
        }
    }
}

/// The host's transport for one block.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub playing: bool,
    pub tempo: f64,
    pub beats: f64,
    pub seconds: f64,
}

/// An event the host sends into a block.
#[derive(Debug, Clone, Copy)]
pub enum InEvent {
    NoteOn {
        time: u32,
        channel: u8,
        key: u8,
        velocity: f64,
    },
    NoteOff {
        time: u32,
        channel: u8,
        key: u8,
    },
    Midi {
        time: u32,
        data: [u8; 3],
    },
    Param {
        time: u32,
        id: u32,
        value: f64,
    },
}

/// A note event the plugin sent out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutNote {
    On { time: u32, channel: u8, key: u8 },
    Off { time: u32, channel: u8, key: u8 },
}

pub struct Block<'a> {
    pub main: [&'a [f32]; CHANNELS],
    pub sidechain: [&'a [f32]; CHANNELS],
    pub events: &'a [InEvent],
    pub transport: Option<Transport>,
}

impl<'a> Block<'a> {
    /// A block of silence on every input, with no transport.
    pub fn silent(silence: &'a [f32], events: &'a [InEvent]) -> Self {
        Self {
            main: [silence, silence],
            sidechain: [silence, silence],
            events,
            transport: None,
        }
    }
}

pub struct BlockOutput {
    pub audio: [Vec<f32>; CHANNELS],
    /// Note ons and offs in either dialect.
    pub notes: Vec<OutNote>,
    /// How many of `notes` came as CLAP note events and how many as MIDI bytes.
    pub dialects: DialectCount,
    /// MIDI control changes sent: (time, channel, controller, value).
    pub controls: Vec<(u32, u8, u8, u8)>,
}

/// Note events by dialect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DialectCount {
    /// `CLAP_EVENT_NOTE_ON/OFF`.
    pub clap: usize,
    /// `CLAP_EVENT_MIDI` note on/off messages.
    pub midi: usize,
}

impl std::ops::AddAssign for DialectCount {
    fn add_assign(&mut self, other: Self) {
        self.clap += other.clap;
        self.midi += other.midi;
    }
}

/// What the factory says about the plugin.
#[derive(Debug)]
pub struct Descriptor {
    pub id: String,
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub features: Vec<String>,
}

pub struct HostedPlugin {
    instance: PluginInstance<TestHost>,
    processor: Option<StartedPluginAudioProcessor<TestHost>>,
    input_ports: AudioPorts,
    output_ports: AudioPorts,
    scratch: Scratch,
    // Keeps the library loaded for as long as the instance lives; dropped last.
    _entry: PluginEntry,
}

/// The host's buffers, kept across blocks like a DAW's.
struct Scratch {
    main: [Vec<f32>; CHANNELS],
    side: [Vec<f32>; CHANNELS],
    out: [Vec<f32>; CHANNELS],
    in_events: EventBuffer,
    out_events: EventBuffer,
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            main: Default::default(),
            side: Default::default(),
            out: Default::default(),
            in_events: EventBuffer::with_capacity(64),
            out_events: EventBuffer::with_capacity(256),
        }
    }
}

pub fn load_entry(library: &Path) -> PluginEntry {
    // SAFETY: the library is this crate's own freshly built plugin.
    unsafe { PluginEntry::load(library) }.expect("load the plugin's CLAP entry")
}

pub fn descriptors(entry: &PluginEntry) -> Vec<Descriptor> {
    let factory = entry.get_plugin_factory().expect("a plugin factory");
    factory
        .plugin_descriptors()
        .map(|d| Descriptor {
            id: text(d.id()),
            name: text(d.name()),
            vendor: text(d.vendor()),
            version: text(d.version()),
            features: d
                .features()
                .map(|f| f.to_string_lossy().into_owned())
                .collect(),
        })
        .collect()
}

impl HostedPlugin {
    /// Instantiate the plugin from the freshly built library.
    pub fn new() -> Self {
        Self::from_entry(load_entry(&super::paths::plugin_library()))
    }

    pub fn from_entry(entry: PluginEntry) -> Self {
        Self::from_entry_with_dialects(entry, CLAP_AND_MIDI)
    }

    /// Instantiate the plugin in a host that declares `dialects` (see [`CLAP_AND_MIDI`],
    /// [`MIDI_ONLY`], [`NO_NOTE_PORTS_EXTENSION`]).
    pub fn with_note_dialects(dialects: Option<NoteDialects>) -> Self {
        Self::from_entry_with_dialects(load_entry(&super::paths::plugin_library()), dialects)
    }

    fn from_entry_with_dialects(entry: PluginEntry, dialects: Option<NoteDialects>) -> Self {
        HOST_DIALECTS.store(dialects.map_or(0, |d| d.bits()), Ordering::SeqCst);
        let host_info =
            HostInfo::new("latent-choir tests", "Latent Choir", "", "0.1.0").expect("host info");
        let id = std::ffi::CString::new(PLUGIN_ID).expect("plugin id");
        let instance = PluginInstance::<TestHost>::new(
            |_| TestHostShared { dialects },
            |_| TestHostMainThread::default(),
            &entry,
            &id,
            &host_info,
        )
        .expect("instantiate the plugin");
        Self {
            instance,
            processor: None,
            input_ports: AudioPorts::with_capacity(2 * CHANNELS, 2),
            output_ports: AudioPorts::with_capacity(CHANNELS, 1),
            scratch: Scratch::default(),
            _entry: entry,
        }
    }

    pub fn activate(&mut self, sample_rate: f64, max_block: u32) {
        let config = PluginAudioConfiguration {
            sample_rate,
            min_frames_count: 1,
            max_frames_count: max_block,
        };
        let stopped = self
            .instance
            .activate(|_, _| (), config)
            .expect("activate the plugin");
        self.processor = Some(stopped.start_processing().expect("start processing"));
    }

    /// Offline bounce or real time, for the next activation (CLAP's render extension).
    pub fn set_offline(&mut self, offline: bool) {
        let handle = self.instance.plugin_handle();
        let render: PluginRender = handle.get_extension().expect("the render extension");
        let mode = if offline {
            RenderMode::Offline
        } else {
            RenderMode::Realtime
        };
        render
            .set(&handle, mode)
            .expect("the plugin takes the render mode");
    }

    pub fn deactivate(&mut self) {
        if let Some(started) = self.processor.take() {
            self.instance.deactivate(started.stop_processing());
        }
    }

    /// Run one block; all slices in `block` must have the same length.
    pub fn process(&mut self, block: &Block) -> BlockOutput {
        self.run(block);
        let scratch = &self.scratch;
        BlockOutput {
            audio: scratch.out.clone(),
            notes: scratch.out_events.iter().filter_map(out_note).collect(),
            dialects: scratch
                .out_events
                .iter()
                .filter(|event| out_note(event).is_some())
                .fold(DialectCount::default(), |mut count, event| {
                    if event.as_event::<MidiEvent>().is_some() {
                        count.midi += 1;
                    } else {
                        count.clap += 1;
                    }
                    count
                }),
            controls: scratch.out_events.iter().filter_map(out_control).collect(),
        }
    }

    /// Run one block like [`HostedPlugin::process`] and return how long the plugin's
    /// `process()` call alone took (the host's copies and event building are outside the
    /// timing, and reuse buffers, so nothing allocates per block) and how many notes it sent.
    pub fn process_timed(&mut self, block: &Block) -> (std::time::Duration, usize) {
        let elapsed = self.run(block);
        let notes = self.scratch.out_events.iter().filter_map(out_note).count();
        (elapsed, notes)
    }

    /// Copies `block` into the reused buffers, runs the plugin and times its call.
    fn run(&mut self, block: &Block) -> std::time::Duration {
        let frames = block.main[0].len();
        let scratch = &mut self.scratch;
        for (dst, src) in scratch.main.iter_mut().zip(block.main) {
            dst.clear();
            dst.extend_from_slice(src);
        }
        for (dst, src) in scratch.side.iter_mut().zip(block.sidechain) {
            dst.clear();
            dst.extend_from_slice(src);
        }
        for out in &mut scratch.out {
            out.clear();
            out.resize(frames, 0.0);
        }
        scratch.in_events.clear();
        for event in block.events {
            push_event(&mut scratch.in_events, event);
        }
        scratch.out_events.clear();

        let inputs = self.input_ports.with_input_buffers([
            AudioPortBuffer {
                latency: 0,
                channels: AudioPortBufferType::f32_input_only(
                    scratch.main.iter_mut().map(input_channel),
                ),
            },
            AudioPortBuffer {
                latency: 0,
                channels: AudioPortBufferType::f32_input_only(
                    scratch.side.iter_mut().map(input_channel),
                ),
            },
        ]);
        let mut outputs = self.output_ports.with_output_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_output_only(
                scratch.out.iter_mut().map(|c| c.as_mut_slice()),
            ),
        }]);
        let transport = block.transport.map(transport_event);
        let in_events = InputEvents::from_buffer(&scratch.in_events);
        let mut out_events = OutputEvents::from_buffer(&mut scratch.out_events);
        let processor = self
            .processor
            .as_mut()
            .expect("process() needs an active plugin");
        let began = std::time::Instant::now();
        let result = processor.process(
            &inputs,
            &mut outputs,
            &in_events,
            &mut out_events,
            None,
            transport.as_ref(),
        );
        let elapsed = began.elapsed();
        result.expect("the plugin processes the block");
        elapsed
    }

    pub fn save_state(&mut self) -> Vec<u8> {
        let handle = self.instance.plugin_handle();
        let state: PluginState = handle.get_extension().expect("the state extension");
        let mut bytes = Vec::new();
        state.save(&handle, &mut bytes).expect("save state");
        bytes
    }

    /// Whether the plugin accepted the state.
    pub fn load_state(&mut self, mut bytes: &[u8]) -> bool {
        let handle = self.instance.plugin_handle();
        let state: PluginState = handle.get_extension().expect("the state extension");
        state.load(&handle, &mut bytes).is_ok()
    }

    /// Loads the factory preset `key` from inside the plugin through `clap.preset-load`; `None`
    /// if the plugin does not offer the extension, else whether it accepted.
    pub fn load_preset(&mut self, key: &str) -> Option<bool> {
        let key = std::ffi::CString::new(key).expect("key");
        self.load_preset_from(Location::Plugin, Some(&key))
    }

    /// Loads the preset file at `path` (a one-preset file: no load key).
    pub fn load_preset_file(&mut self, path: &std::path::Path) -> Option<bool> {
        let path = std::ffi::CString::new(path.to_string_lossy().into_owned()).expect("path");
        self.load_preset_from(Location::File { path: &path }, None)
    }

    pub fn load_preset_from(&mut self, location: Location, key: Option<&CStr>) -> Option<bool> {
        let handle = self.instance.plugin_handle();
        let preset_load: PluginPresetLoad = handle.get_extension()?;
        Some(
            preset_load
                .load_from_location(&handle, location, key)
                .is_ok(),
        )
    }

    /// What the plugin reported through the host's preset-load extension, oldest first; clears it.
    pub fn take_preset_load_reports(&mut self) -> Vec<PresetLoadReport> {
        self.instance
            .access_handler(|host| std::mem::take(&mut *host.preset_loads.borrow_mut()))
    }

    /// The parameter's value as the plugin shows it (`clap.params` `value_to_text`).
    pub fn param_text(&mut self, id: u32) -> String {
        let value = self.param_value(id);
        let handle = self.instance.plugin_handle();
        let params: PluginParams = handle.get_extension().expect("the params extension");
        let mut buffer = [0u8; 256];
        let text = params
            .value_to_text(&handle, ClapId::new(id), value, &mut buffer)
            .expect("value to text");
        String::from_utf8_lossy(text).into_owned()
    }

    /// `value` of parameter `id` as the plugin writes it (`value_to_text`).
    pub fn value_text(&mut self, id: u32, value: f64) -> String {
        let handle = self.instance.plugin_handle();
        let params: PluginParams = handle.get_extension().expect("the params extension");
        let mut buffer = [0u8; 256];
        let text = params
            .value_to_text(&handle, ClapId::new(id), value, &mut buffer)
            .expect("value to text");
        String::from_utf8_lossy(text).into_owned()
    }

    /// The value `text` stands for, as the plugin reads it (`text_to_value`).
    pub fn text_value(&mut self, id: u32, text: &str) -> Option<f64> {
        let handle = self.instance.plugin_handle();
        let params: PluginParams = handle.get_extension().expect("the params extension");
        let text = std::ffi::CString::new(text).ok()?;
        params.text_to_value(&handle, ClapId::new(id), &text)
    }

    /// Whether parameter `id` is stepped (integers, choices, switches).
    pub fn param_is_stepped(&mut self, id: u32) -> bool {
        let handle = self.instance.plugin_handle();
        let params: PluginParams = handle.get_extension().expect("the params extension");
        (0..params.count(&handle))
            .filter_map(|i| {
                let mut buffer = ParamInfoBuffer::new();
                let info = params.get_info(&handle, i, &mut buffer)?;
                (info.id.get() == id).then(|| {
                    info.flags
                        .contains(clack_extensions::params::ParamInfoFlags::IS_STEPPED)
                })
            })
            .next()
            .expect("the parameter exists")
    }

    /// (CLAP id, name, min, max, default) of every parameter.
    pub fn params(&mut self) -> Vec<(u32, String, f64, f64, f64)> {
        let handle = self.instance.plugin_handle();
        let params: PluginParams = handle.get_extension().expect("the params extension");
        (0..params.count(&handle))
            .map(|i| {
                let mut buffer = ParamInfoBuffer::new();
                let info = params
                    .get_info(&handle, i, &mut buffer)
                    .expect("param info");
                (
                    info.id.get(),
                    String::from_utf8_lossy(info.name).into_owned(),
                    info.min_value,
                    info.max_value,
                    info.default_value,
                )
            })
            .collect()
    }

    pub fn param_id(&mut self, name: &str) -> u32 {
        self.params()
            .into_iter()
            .find(|p| p.1 == name)
            .unwrap_or_else(|| panic!("no parameter named {name:?}"))
            .0
    }

    pub fn param_value(&mut self, id: u32) -> f64 {
        let handle = self.instance.plugin_handle();
        let params: PluginParams = handle.get_extension().expect("the params extension");
        params
            .get_value(&handle, ClapId::new(id))
            .expect("param value")
    }

    /// (input port channel counts, output port channel counts)
    pub fn audio_ports(&mut self) -> (Vec<u32>, Vec<u32>) {
        let handle = self.instance.plugin_handle();
        let ports: PluginAudioPorts = handle.get_extension().expect("the audio-ports extension");
        let list = |is_input| {
            (0..ports.count(&handle, is_input))
                .map(|i| {
                    let mut buffer = AudioPortInfoBuffer::default();
                    ports
                        .get(&handle, i, is_input, &mut buffer)
                        .expect("port info")
                        .channel_count
                })
                .collect()
        };
        (list(true), list(false))
    }

    /// The note port's (supported dialects, preferred dialect).
    pub fn note_port_dialects(&mut self, is_input: bool) -> (NoteDialects, Option<NoteDialect>) {
        let handle = self.instance.plugin_handle();
        let ports: PluginNotePorts = handle.get_extension().expect("the note-ports extension");
        let mut buffer = NotePortInfoBuffer::default();
        let info = ports
            .get(&handle, 0, is_input, &mut buffer)
            .expect("note port 0");
        (info.supported_dialects, info.preferred_dialect)
    }

    /// (note input ports, note output ports)
    pub fn note_ports(&mut self) -> (u32, u32) {
        let handle = self.instance.plugin_handle();
        let ports: PluginNotePorts = handle.get_extension().expect("the note-ports extension");
        let mut buffer = NotePortInfoBuffer::default();
        let _ = ports.get(&handle, 0, true, &mut buffer);
        (ports.count(&handle, true), ports.count(&handle, false))
    }
}

impl Drop for HostedPlugin {
    fn drop(&mut self) {
        self.deactivate();
    }
}

fn input_channel(channel: &mut Vec<f32>) -> InputChannel<'_, f32> {
    InputChannel::variable(channel.as_mut_slice())
}

fn push_event(buffer: &mut EventBuffer, event: &InEvent) {
    match *event {
        InEvent::NoteOn {
            time,
            channel,
            key,
            velocity,
        } => buffer.push(&NoteOnEvent::new(
            time,
            Pckn::new(0u16, channel as u16, key as u16, Match::All),
            velocity,
        )),
        InEvent::NoteOff { time, channel, key } => buffer.push(&NoteOffEvent::new(
            time,
            Pckn::new(0u16, channel as u16, key as u16, Match::All),
            0.0,
        )),
        InEvent::Midi { time, data } => buffer.push(&MidiEvent::new(time, 0, data)),
        InEvent::Param { time, id, value } => buffer.push(&ParamValueEvent::new(
            time,
            ClapId::new(id),
            Pckn::match_all(),
            value,
        )),
    }
}

fn out_note(event: &UnknownEvent) -> Option<OutNote> {
    let time = event.header().time();
    if let Some(on) = event.as_event::<NoteOnEvent>() {
        let (channel, key) = note_address(on.pckn());
        return Some(OutNote::On { time, channel, key });
    }
    if let Some(off) = event.as_event::<NoteOffEvent>() {
        let (channel, key) = note_address(off.pckn());
        return Some(OutNote::Off { time, channel, key });
    }
    let midi = event.as_event::<MidiEvent>()?.data();
    match (midi[0] & 0xf0, midi[2]) {
        (0x90, velocity) if velocity > 0 => Some(OutNote::On {
            time,
            channel: midi[0] & 0x0f,
            key: midi[1],
        }),
        (0x80, _) | (0x90, _) => Some(OutNote::Off {
            time,
            channel: midi[0] & 0x0f,
            key: midi[1],
        }),
        _ => None,
    }
}

fn out_control(event: &UnknownEvent) -> Option<(u32, u8, u8, u8)> {
    let midi = event.as_event::<MidiEvent>()?.data();
    (midi[0] & 0xf0 == 0xb0).then(|| (event.header().time(), midi[0] & 0x0f, midi[1], midi[2]))
}

fn note_address(pckn: Pckn) -> (u8, u8) {
    (pckn.raw_channel() as u8, pckn.raw_key() as u8)
}

fn transport_event(t: Transport) -> TransportEvent {
    let mut flags = TransportFlags::HAS_TEMPO
        | TransportFlags::HAS_BEATS_TIMELINE
        | TransportFlags::HAS_SECONDS_TIMELINE
        | TransportFlags::HAS_TIME_SIGNATURE;
    if t.playing {
        flags |= TransportFlags::IS_PLAYING;
    }
    let bar = (t.beats / 4.0).floor();
    TransportEvent {
        header: EventHeader::new_core(0, EventFlags::empty()),
        flags,
        song_pos_beats: BeatTime::from_float(t.beats),
        song_pos_seconds: SecondsTime::from_float(t.seconds),
        tempo: t.tempo,
        tempo_inc: 0.0,
        loop_start_beats: BeatTime::from_float(0.0),
        loop_end_beats: BeatTime::from_float(0.0),
        loop_start_seconds: SecondsTime::from_float(0.0),
        loop_end_seconds: SecondsTime::from_float(0.0),
        bar_start: BeatTime::from_float(bar * 4.0),
        bar_number: bar as i32,
        time_signature_numerator: 4,
        time_signature_denominator: 4,
    }
}
