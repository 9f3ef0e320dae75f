//! Latent Choir: hear a language model think. This file is the plugin shell that hosts see; the
//! parts live in their own modules (see DESIGN.md's layout).

use std::num::NonZeroU32;
use std::sync::Arc;

use nice_plug::prelude::*;

pub mod activation;
pub mod editor;
pub mod engine;
pub mod io;
pub mod llm;
pub mod loudness;
pub mod music;
pub mod params;
pub mod status;
pub mod synth;

use params::LatentChoirParams;
use status::{AudioStatus, BlockReport};

pub struct LatentChoir {
    params: Arc<LatentChoirParams>,
    status: Arc<AudioStatus>,
    editor_state: Arc<nice_plug_egui::EguiEditorState>,
    /// Whether the active layout has a main input; without one the host's buffer is not ours
    /// to pass through.
    has_main_input: bool,
}

impl Default for LatentChoir {
    fn default() -> Self {
        Self {
            params: Arc::new(LatentChoirParams::default()),
            status: Arc::new(AudioStatus::default()),
            editor_state: editor::default_state(),
            has_main_input: true,
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
    const MIDI_OUTPUT: MidiConfig = MidiConfig::Basic;
    const SAMPLE_ACCURATE_AUTOMATION: bool = false;

    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    type Editor = editor::Editor;

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        editor::create(
            self.params.clone(),
            self.status.clone(),
            self.editor_state.clone(),
        )
    }

    fn filter_state(state: &mut PluginState) {
        params::clamp_state(state);
    }

    fn activate(
        &mut self,
        audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        _context: &mut impl ActivateContext<Self>,
    ) -> bool {
        self.has_main_input = audio_io_layout.main_input_channels.is_some();
        self.status
            .activated(buffer_config.sample_rate, buffer_config.max_buffer_size);
        true
    }

    fn reset(&mut self) {
        self.params.gain.smoothed.reset(self.params.gain.value());
        self.params.thru.smoothed.reset(self.params.thru.value());
    }

    fn deactivate(&mut self) {
        self.status.deactivated();
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        let midi_thru = self.params.midi_thru.value();
        let mut midi_events_in = 0;
        let mut midi_out_dropped = 0;
        while let Some(event) = context.next_event() {
            midi_events_in += 1;
            if midi_thru && context.try_send_event(event).is_err() {
                midi_out_dropped += 1;
            }
        }

        let thru = &self.params.thru.smoothed;
        let gain = &self.params.gain.smoothed;
        let mix = synth::mixer::mix_block(
            buffer.as_slice(),
            self.has_main_input,
            || thru.next(),
            || gain.next(),
        );
        let sidechain_peak = aux
            .inputs
            .first()
            .map_or(0.0, |side| synth::mixer::peak(side.as_slice_immutable()));

        let transport = context.transport();
        self.status.report_block(&BlockReport {
            tempo: transport.tempo,
            playing: transport.playing,
            main_peak: mix.input_peak,
            sidechain_peak,
            non_finite_inputs: mix.non_finite,
            midi_events_in,
            midi_out_dropped,
        });
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

nice_export_clap!(LatentChoir);
nice_export_vst3!(LatentChoir);
