//! Latent Choir: hear a language model think. This file is the plugin shell that hosts see; the
//! parts live in their own modules (ARCHITECTURE.md maps them).

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use nice_plug::prelude::*;

pub mod activation;
pub mod editor;
pub mod io;
pub mod listen;
pub mod llm;
pub mod loudness;
pub mod music;
pub mod offline;
pub mod params;
pub mod playback;
pub mod plugin;
pub mod project;
pub mod remote;
pub mod rng;
pub mod spectral;
pub mod status;
pub mod synth;
pub mod weights;
pub mod worker;

use playback::history::{HISTORY_CAPACITY, HistoryReader, HistoryWriter};
use playback::score_loader::ScoreLoader;
use playback::soundfont_loader::FontLoader;
use plugin::audio::AudioPath;
use plugin::listener::{ListenState, Listener};
use plugin::{PluginParams, threads};
use project::collector::CollectorThread;
use project::export::ExportStatus;
use status::AudioStatus;
use worker::control::ModelControl;
use worker::link::GateSettings;

pub struct LatentChoir {
    params: Arc<PluginParams>,
    status: Arc<AudioStatus>,
    /// The one owner of the model worker, shared with the editor.
    control: Arc<ModelControl>,
    /// Played frames for the editor: the writer goes to the source when the worker starts.
    history: Option<HistoryWriter>,
    history_reader: Arc<Mutex<HistoryReader>>,
    audio: AudioPath,
    /// The housekeeping thread (see [`plugin::threads`]).
    collector: Option<CollectorThread>,
    fonts: Arc<Mutex<Option<FontLoader>>>,
    /// The Model Weights composer (see [`playback::score_loader`]).
    scores: Arc<Mutex<Option<ScoreLoader>>>,
    exports: Arc<ExportStatus>,
    /// What Listen heard, shared with the editor; the thread that listens.
    heard: Arc<ListenState>,
    listener: Option<Listener>,
}

impl Default for LatentChoir {
    fn default() -> Self {
        let (history, history_reader) = playback::history::history(HISTORY_CAPACITY);
        let gate = Arc::new(GateSettings::new(4, 0.8));
        Self {
            params: Arc::new(PluginParams::default()),
            status: Arc::new(AudioStatus::default()),
            control: Arc::new(ModelControl::new(gate, Arc::default(), Arc::default())),
            history: Some(history),
            history_reader: Arc::new(Mutex::new(history_reader)),
            audio: AudioPath::default(),
            collector: None,
            fonts: Arc::new(Mutex::new(None)),
            scores: Arc::new(Mutex::new(None)),
            exports: Arc::new(ExportStatus::default()),
            heard: Arc::default(),
            listener: None,
        }
    }
}

const STEREO: NonZeroU32 = new_nonzero_u32(2);
const PORT_NAMES: PortNames = PortNames {
    layout: None,
    main_input: Some("Track"),
    main_output: Some("Output"),
    aux_inputs: &["Sidechain"],
    aux_outputs: &[],
};

impl Plugin for LatentChoir {
    const NAME: &'static str = "Latent Choir";
    const VENDOR: &'static str = "Latent Choir";
    const URL: &'static str = "";
    const EMAIL: &'static str = "";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        // On an audio track: the track plays through, the sidechain can feed the meter instead.
        AudioIOLayout {
            main_input_channels: Some(STEREO),
            main_output_channels: Some(STEREO),
            aux_input_ports: &[STEREO],
            aux_output_ports: &[],
            names: PORT_NAMES,
        },
        // As a pure instrument, for hosts that give instruments no main input.
        AudioIOLayout {
            main_input_channels: None,
            main_output_channels: Some(STEREO),
            aux_input_ports: &[STEREO],
            aux_output_ports: &[],
            names: PORT_NAMES,
        },
    ];

    const MIDI_INPUT: MidiConfig = MidiConfig::Basic;
    const MIDI_OUTPUT: MidiConfig = MidiConfig::MidiCCs;
    const SAMPLE_ACCURATE_AUTOMATION: bool = false;

    type SysExMessage = ();
    /// No tasks go through nice-plug's shared background thread: it quits when a task outlives
    /// its instance and then aborts the host at teardown (see [`worker::control`]).
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    type Editor = editor::Editor;

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        Some(editor::create(editor::Shared {
            params: Arc::clone(&self.params.settings),
            saved: self.params.run.clone(),
            status: Arc::clone(&self.status),
            control: Arc::clone(&self.control),
            history: Arc::clone(&self.history_reader),
            fonts: Arc::clone(&self.fonts),
            scores: Arc::clone(&self.scores),
            exports: Arc::clone(&self.exports),
            heard: Arc::clone(&self.heard),
        }))
    }

    fn filter_state(state: &mut PluginState) {
        params::presets::fill_missing_with_classic(state);
        params::clamp_state(state);
    }

    fn activate(
        &mut self,
        audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        _context: &mut impl ActivateContext<Self>,
    ) -> bool {
        let (sample_rate, max_block) = (buffer_config.sample_rate, buffer_config.max_buffer_size);
        self.status.activated(sample_rate, max_block);
        let settings = &self.params.settings;
        if let Some((source, collector)) =
            threads::start_model_threads(&self.control, &self.params, &mut self.history)
        {
            self.audio.set_source(source);
            self.collector = collector;
        }
        if self.listener.is_none()
            && let Some((listener, ear)) =
                threads::start_listener(&self.control, &self.heard, f64::from(sample_rate))
        {
            self.audio.set_listener(ear, Arc::clone(&self.heard));
            self.listener = Some(listener);
        }
        let max_block = max_block as usize;
        if let Some(inbox) =
            threads::request_soundfont(&self.fonts, settings, sample_rate, max_block)
        {
            self.audio.set_font_inbox(inbox);
        }
        if let Some(inbox) = threads::start_score_loader(&self.scores, settings) {
            self.audio.set_score_inbox(inbox);
        }
        plugin::audio::set_gate(&self.control, settings);
        if !self.control.requested() {
            let session = settings.session();
            self.control.prepare(session.model_path().map(|_| session));
        }
        let has_main_input = audio_io_layout.main_input_channels.is_some();
        self.audio
            .activate(has_main_input, buffer_config, &self.params);
        true
    }

    fn reset(&mut self) {
        let sound = &self.params.settings.sound;
        sound.gain.smoothed.reset(sound.gain.value());
        sound.thru.smoothed.reset(sound.thru.value());
        self.audio.reset();
    }

    fn deactivate(&mut self) {
        self.audio.all_sound_off();
        self.status.deactivated();
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        let report = (self.audio).process(buffer, aux, context, &self.params, &self.control);
        self.status.report_block(&report);
        ProcessStatus::Normal
    }
}

impl ClapPlugin for LatentChoir {
    const CLAP_ID: &'static str = "org.latent-choir.latent-choir";
    const CLAP_DESCRIPTION: Option<&'static str> = Some(
        "A language model sings: its hidden states become melody, the track's loudness steers it",
    );
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::Instrument,
        ClapFeature::Synthesizer,
        ClapFeature::NoteEffect,
        ClapFeature::Stereo,
    ];
}

impl Vst3Plugin for LatentChoir {
    const VST3_CLASS_ID: [u8; 16] = *b"LatentChoirLLM01";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] = &[
        Vst3SubCategory::Instrument,
        Vst3SubCategory::Synth,
        Vst3SubCategory::Generator,
        Vst3SubCategory::Stereo,
    ];
}

mod clap_export;
pub mod vst3_export;
