//! A VST3 host written against the raw interfaces, for call orders `vst3-host` never makes (it
//! always sets a plugin up before switching it on): `setActive(true)` before `setupProcessing`,
//! `process` before anything, a setup while active, deactivation mid-note. The plugin comes from
//! this crate's own `GetPluginFactory`, linked into the test.

use std::ffi::c_void;
use std::sync::Mutex;

use nice_plug::wrapper::vst3::vst3::Steinberg::Vst::Event_::EventTypes_;
use nice_plug::wrapper::vst3::vst3::Steinberg::Vst::{
    AudioBusBuffers, AudioBusBuffers__type0, Event, IAudioProcessor, IAudioProcessorTrait,
    IComponent, IComponentTrait, IEditController, IEditControllerTrait, IEventList,
    IEventListTrait, ParameterInfo, ProcessData, ProcessModes_, ProcessSetup, String128,
    SymbolicSampleSizes_,
};
use nice_plug::wrapper::vst3::vst3::Steinberg::{
    FIDString, IBStream, IBStream_::IStreamSeekMode_, IBStreamTrait, IPluginBaseTrait,
    IPluginFactory, IPluginFactoryTrait, PClassInfo, int32, int64, kInvalidArgument, kResultFalse,
    kResultOk, tresult,
};
use nice_plug::wrapper::vst3::vst3::{Class, ComPtr, ComWrapper, Interface};

pub const CHANNELS: usize = 2;

/// A note event the plugin sent: (sample offset, on, channel, pitch).
pub type RawNote = (i32, bool, i16, i16);

pub struct RawPlugin {
    component: ComPtr<IComponent>,
    processor: ComPtr<IAudioProcessor>,
    controller: ComPtr<IEditController>,
    events: ComWrapper<EventList>,
}

impl RawPlugin {
    /// A new instance from the factory, initialised and nothing else.
    pub fn new() -> Self {
        let factory = latent_choir::vst3_export::GetPluginFactory() as *mut IPluginFactory;
        // SAFETY: the factory entry point returns an owned `IPluginFactory` reference.
        let factory = unsafe { ComPtr::from_raw(factory) }.expect("a plugin factory");
        // SAFETY: plain data the factory fills in.
        let mut info: PClassInfo = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        assert_eq!(unsafe { factory.getClassInfo(0, &mut info) }, kResultOk);
        let mut object: *mut c_void = std::ptr::null_mut();
        let iid = <IComponent as Interface>::IID;
        // SAFETY: the class id the factory gave, an interface id, a slot for the object.
        let result = unsafe {
            factory.createInstance(info.cid.as_ptr(), iid.as_ptr() as FIDString, &mut object)
        };
        assert_eq!(result, kResultOk, "createInstance");
        // SAFETY: an owned `IComponent` reference from `createInstance`.
        let component =
            unsafe { ComPtr::from_raw(object as *mut IComponent) }.expect("a component");
        // SAFETY: no host context.
        assert_eq!(
            unsafe { component.initialize(std::ptr::null_mut()) },
            kResultOk
        );
        let processor = component
            .cast::<IAudioProcessor>()
            .expect("IAudioProcessor");
        let controller = component
            .cast::<IEditController>()
            .expect("IEditController");
        Self {
            component,
            processor,
            controller,
            events: ComWrapper::new(EventList::default()),
        }
    }

    pub fn set_active(&self, on: bool) -> tresult {
        // SAFETY: a plain call.
        unsafe { self.component.setActive(u8::from(on)) }
    }

    pub fn setup(&self, sample_rate: f64, max_block: i32) -> tresult {
        let mut setup = ProcessSetup {
            processMode: ProcessModes_::kRealtime as i32,
            symbolicSampleSize: SymbolicSampleSizes_::kSample32 as i32,
            maxSamplesPerBlock: max_block,
            sampleRate: sample_rate,
        };
        // SAFETY: a setup that lives for the call.
        unsafe { self.processor.setupProcessing(&mut setup) }
    }

    pub fn set_processing(&self, on: bool) -> tresult {
        // SAFETY: a plain call.
        unsafe { self.processor.setProcessing(u8::from(on)) }
    }

    /// Sets a parameter through the edit controller (it takes effect while not processing).
    pub fn set_param(&self, id: u32, normalized: f64) -> tresult {
        // SAFETY: a plain call.
        unsafe { self.controller.setParamNormalized(id, normalized) }
    }

    /// (id, title, step count, default normalised value) of every parameter.
    pub fn parameters(&self) -> Vec<(u32, String, i32, f64)> {
        // SAFETY: plain calls; `info` is plain data the plugin fills in.
        unsafe {
            (0..self.controller.getParameterCount())
                .map(|index| {
                    let mut info: ParameterInfo = std::mem::zeroed();
                    assert_eq!(
                        self.controller.getParameterInfo(index, &mut info),
                        kResultOk
                    );
                    (
                        info.id,
                        from_utf16(&info.title),
                        info.stepCount,
                        info.defaultNormalizedValue,
                    )
                })
                .collect()
        }
    }

    /// `getParamStringByValue`.
    pub fn param_text(&self, id: u32, normalized: f64) -> Option<String> {
        let mut text: String128 = [0; 128];
        // SAFETY: a `String128` for the plugin to fill.
        let result = unsafe {
            self.controller
                .getParamStringByValue(id, normalized, &mut text)
        };
        (result == kResultOk).then(|| from_utf16(&text))
    }

    /// `getParamValueByString`.
    pub fn param_value(&self, id: u32, text: &str) -> Option<f64> {
        let mut wide: Vec<u16> = text.encode_utf16().collect();
        wide.push(0);
        let mut value = 0.0;
        // SAFETY: a NUL-terminated UTF-16 string and a value slot, both live for the call.
        let result = unsafe {
            self.controller
                .getParamValueByString(id, wide.as_mut_ptr(), &mut value)
        };
        (result == kResultOk).then_some(value)
    }

    pub fn get_state(&self) -> Vec<u8> {
        let stream = ComWrapper::new(Stream::default());
        let ptr = stream.to_com_ptr::<IBStream>().expect("IBStream");
        // SAFETY: a live stream for the call.
        assert_eq!(unsafe { self.component.getState(ptr.as_ptr()) }, kResultOk);
        stream.bytes.lock().expect("stream").0.clone()
    }

    pub fn set_state(&self, bytes: &[u8]) -> tresult {
        let stream = ComWrapper::new(Stream::default());
        stream.bytes.lock().expect("stream").0 = bytes.to_vec();
        let ptr = stream.to_com_ptr::<IBStream>().expect("IBStream");
        // SAFETY: a live stream for the call.
        unsafe { self.component.setState(ptr.as_ptr()) }
    }

    /// One block of `frames` samples of silence on the main and aux inputs; returns the
    /// process result, the main output and the notes sent.
    pub fn process(&self, frames: usize) -> (tresult, [Vec<f32>; CHANNELS], Vec<RawNote>) {
        let mut inputs = [
            [vec![0.0_f32; frames], vec![0.0_f32; frames]],
            [vec![0.0_f32; frames], vec![0.0_f32; frames]],
        ];
        let mut outputs = [vec![1.0_f32; frames], vec![1.0_f32; frames]];
        let mut input_pointers: Vec<[*mut f32; CHANNELS]> = inputs
            .iter_mut()
            .map(|bus| [bus[0].as_mut_ptr(), bus[1].as_mut_ptr()])
            .collect();
        let mut output_pointers = [outputs[0].as_mut_ptr(), outputs[1].as_mut_ptr()];
        let bus = |pointers: *mut *mut f32| AudioBusBuffers {
            numChannels: CHANNELS as i32,
            silenceFlags: 0,
            __field0: AudioBusBuffers__type0 {
                channelBuffers32: pointers,
            },
        };
        let mut input_buses: Vec<AudioBusBuffers> = input_pointers
            .iter_mut()
            .map(|pointers| bus(pointers.as_mut_ptr()))
            .collect();
        let mut output_bus = [bus(output_pointers.as_mut_ptr())];
        self.events.events.lock().expect("events").clear();
        let events = self.events.to_com_ptr::<IEventList>().expect("IEventList");
        let mut data = ProcessData {
            processMode: ProcessModes_::kRealtime as i32,
            symbolicSampleSize: SymbolicSampleSizes_::kSample32 as i32,
            numSamples: frames as i32,
            numInputs: input_buses.len() as i32,
            numOutputs: 1,
            inputs: input_buses.as_mut_ptr(),
            outputs: output_bus.as_mut_ptr(),
            inputParameterChanges: std::ptr::null_mut(),
            outputParameterChanges: std::ptr::null_mut(),
            inputEvents: std::ptr::null_mut(),
            outputEvents: events.as_ptr(),
            processContext: std::ptr::null_mut(),
        };
        // SAFETY: every pointer in `data` lives for the call.
        let result = unsafe { self.processor.process(&mut data) };
        let notes = self
            .events
            .events
            .lock()
            .expect("events")
            .iter()
            .filter_map(|event| {
                // SAFETY: the union member the event type names.
                unsafe {
                    match i64::from(event.r#type) {
                        t if t == EventTypes_::kNoteOnEvent as i64 => Some((
                            event.sampleOffset,
                            true,
                            event.__field0.noteOn.channel,
                            event.__field0.noteOn.pitch,
                        )),
                        t if t == EventTypes_::kNoteOffEvent as i64 => Some((
                            event.sampleOffset,
                            false,
                            event.__field0.noteOff.channel,
                            event.__field0.noteOff.pitch,
                        )),
                        _ => None,
                    }
                }
            })
            .collect();
        (result, outputs, notes)
    }
}

/// A NUL-terminated UTF-16 string as a `String`.
fn from_utf16(text: &[u16]) -> String {
    let end = text.iter().position(|c| *c == 0).unwrap_or(text.len());
    String::from_utf16_lossy(&text[..end])
}

impl Drop for RawPlugin {
    fn drop(&mut self) {
        self.set_processing(false);
        self.set_active(false);
        // SAFETY: a plain call.
        unsafe { self.component.terminate() };
    }
}

/// The host's output event list: room for 4096 events, reserved up front so that adding one
/// inside `process` never allocates.
struct EventList {
    events: Mutex<Vec<Event>>,
}

impl Default for EventList {
    fn default() -> Self {
        Self {
            events: Mutex::new(Vec::with_capacity(4096)),
        }
    }
}

impl Class for EventList {
    type Interfaces = (IEventList,);
}

impl IEventListTrait for EventList {
    unsafe fn getEventCount(&self) -> int32 {
        self.events.lock().map_or(0, |events| events.len() as int32)
    }

    unsafe fn getEvent(&self, index: int32, event: *mut Event) -> tresult {
        let events = self.events.lock().expect("events");
        match (
            usize::try_from(index).ok().and_then(|i| events.get(i)),
            event.is_null(),
        ) {
            (Some(found), false) => {
                // SAFETY: non-null, the caller's event to fill.
                unsafe { *event = *found };
                kResultOk
            }
            _ => kInvalidArgument,
        }
    }

    unsafe fn addEvent(&self, event: *mut Event) -> tresult {
        if event.is_null() {
            return kInvalidArgument;
        }
        let mut events = self.events.lock().expect("events");
        if events.len() == events.capacity() {
            return kResultFalse;
        }
        // SAFETY: non-null, the plugin's event.
        events.push(unsafe { *event });
        kResultOk
    }
}

/// An in-memory `IBStream`: the bytes and the position.
#[derive(Default)]
struct Stream {
    bytes: Mutex<(Vec<u8>, usize)>,
}

impl Class for Stream {
    type Interfaces = (IBStream,);
}

impl IBStreamTrait for Stream {
    unsafe fn read(&self, buffer: *mut c_void, count: int32, read: *mut int32) -> tresult {
        let mut stream = self.bytes.lock().expect("stream");
        let (bytes, at) = &mut *stream;
        let n = (count.max(0) as usize).min(bytes.len().saturating_sub(*at));
        // SAFETY: the caller's buffer holds `count >= n` bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes[*at..].as_ptr(), buffer as *mut u8, n) };
        *at += n;
        if !read.is_null() {
            // SAFETY: non-null, the caller's count.
            unsafe { *read = n as int32 };
        }
        kResultOk
    }

    unsafe fn write(&self, buffer: *mut c_void, count: int32, written: *mut int32) -> tresult {
        let mut stream = self.bytes.lock().expect("stream");
        let (bytes, at) = &mut *stream;
        let n = count.max(0) as usize;
        // SAFETY: the caller's buffer holds `count` bytes.
        let data = unsafe { std::slice::from_raw_parts(buffer as *const u8, n) };
        if bytes.len() < *at + n {
            bytes.resize(*at + n, 0);
        }
        bytes[*at..*at + n].copy_from_slice(data);
        *at += n;
        if !written.is_null() {
            // SAFETY: non-null, the caller's count.
            unsafe { *written = n as int32 };
        }
        kResultOk
    }

    unsafe fn seek(&self, pos: int64, mode: int32, result: *mut int64) -> tresult {
        let mut stream = self.bytes.lock().expect("stream");
        let (bytes, at) = &mut *stream;
        let base = match i64::from(mode) {
            m if m == IStreamSeekMode_::kIBSeekSet as i64 => 0,
            m if m == IStreamSeekMode_::kIBSeekCur as i64 => *at as int64,
            m if m == IStreamSeekMode_::kIBSeekEnd as i64 => bytes.len() as int64,
            _ => return kInvalidArgument,
        };
        let target = base + pos;
        if target < 0 {
            return kInvalidArgument;
        }
        *at = target as usize;
        if !result.is_null() {
            // SAFETY: non-null, the caller's position.
            unsafe { *result = target };
        }
        kResultOk
    }

    unsafe fn tell(&self, pos: *mut int64) -> tresult {
        if pos.is_null() {
            return kInvalidArgument;
        }
        let stream = self.bytes.lock().expect("stream");
        // SAFETY: non-null, the caller's position.
        unsafe { *pos = stream.1 as int64 };
        kResultOk
    }
}
