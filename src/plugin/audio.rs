//! The audio thread's side of one instance: the sonifier and its source, the SoundFont inbox,
//! the Generate switch and MIDI out, run once per block. Built (and rebuilt) in `activate`.

use nice_plug::prelude::*;

use std::sync::Arc;

use crate::params::{LatentChoirParams, ScaleChoice, SourceChoice};
use crate::playback::ear::Ear;
use crate::playback::player::Hearing;
use crate::playback::score_loader::{ScoreInbox, style_tag};
use crate::playback::sonifier::{BlockInput, Sonifier, metered_input};
use crate::playback::soundfont_loader::FontInbox;
use crate::status::BlockReport;
use crate::synth::mixer;
use crate::worker::control::ModelControl;
use crate::worker::feed::OFFLINE_WAIT;

use super::clock::block_clock;
use super::generate::GenerateSwitch;
use super::listener::ListenState;
use super::midi_out::MidiOut;
use super::params::PluginParams;
use super::source::PluginSource;

#[derive(Default)]
pub struct AudioPath {
    /// Player, choir and their buffers: the sonification shared with `latent-choir render`.
    sonifier: Option<Sonifier>,
    /// The model's queue, or the project's saved run in replay mode (made with the worker).
    source: Option<PluginSource>,
    /// SoundFonts loaded on their own thread arrive here.
    font_inbox: Option<FontInbox>,
    score_inbox: Option<ScoreInbox>,
    midi: MidiOut,
    generate: GenerateSwitch,
    offline: bool,
    /// Whether the active layout has a main input; without one the host's buffer is not ours
    /// to pass through.
    has_main_input: bool,
    /// Where Listen sends the input, and what the listener heard (for Follow Key).
    ear: Option<Ear>,
    heard: Option<Arc<ListenState>>,
}

impl AudioPath {
    /// For a new sample rate, block size and mode. Notes the last activation left sounding get
    /// their note-offs in the first block.
    pub fn activate(&mut self, has_main_input: bool, config: &BufferConfig, params: &PluginParams) {
        self.has_main_input = has_main_input;
        self.offline = config.process_mode == ProcessMode::Offline;
        let mut sonifier = Sonifier::new(config.sample_rate, config.max_buffer_size as usize);
        if let Some(previous) = &mut self.sonifier {
            sonifier.inherit_offs(previous);
            // The Model Weights piece stays: it does not depend on the rate or block size.
            let piece = previous.score_player_mut().replace(None);
            sonifier.score_player_mut().replace(piece);
        }
        self.sonifier = Some(sonifier);
        if let Some(ear) = &mut self.ear {
            ear.set_sample_rate(f64::from(config.sample_rate));
        }
        params.run.set_sample_rate(config.sample_rate);
        if let Some(source) = &mut self.source {
            source.set_offline(self.offline.then_some(OFFLINE_WAIT));
            if let Some(run) = params.run.take_pending() {
                source.install_replay(*run);
            }
        }
    }

    /// The listener's ear and state, once it runs (the first activation).
    pub fn set_listener(&mut self, ear: Ear, heard: Arc<ListenState>) {
        self.ear = Some(ear);
        self.heard = Some(heard);
    }

    /// Where frames come from, once the worker runs (the first activation).
    pub fn set_source(&mut self, source: PluginSource) {
        self.source = Some(source);
    }

    pub fn set_font_inbox(&mut self, inbox: FontInbox) {
        self.font_inbox = Some(inbox);
    }

    pub fn set_score_inbox(&mut self, inbox: ScoreInbox) {
        self.score_inbox = Some(inbox);
    }

    pub fn reset(&mut self) {
        if let Some(sonifier) = &mut self.sonifier {
            sonifier.reset();
        }
    }

    pub fn all_sound_off(&mut self) {
        if let Some(sonifier) = &mut self.sonifier {
            sonifier.all_sound_off();
        }
    }

    /// One block: MIDI in, the sonification, MIDI out, the mix into `buffer`.
    pub fn process<P: Plugin<SysExMessage = ()>>(
        &mut self,
        buffer: &mut Buffer,
        aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<P>,
        params: &PluginParams,
        control: &ModelControl,
    ) -> BlockReport {
        let settings = &params.settings;
        let midi_in = (self.midi).take_input(|| context.next_event(), settings.midi.thru.value());
        let mut dropped =
            midi_in.dropped + u64::from(self.play(buffer, aux, context, params, control));
        let mut send = |event| context.try_send_event(event).is_ok();
        dropped += u64::from(self.midi.flush(&mut send));

        let mix = match &self.sonifier {
            Some(sonifier) => sonifier.mix_into(buffer.as_slice(), self.has_main_input, settings),
            None => mixer::mix_block(
                buffer.as_slice(),
                &[],
                self.has_main_input,
                || settings.sound.thru.smoothed.next(),
                || settings.sound.gain.smoothed.next(),
            ),
        };
        let transport = context.transport();
        BlockReport {
            tempo: transport.tempo,
            playing: transport.playing,
            main_peak: mix.input_peak,
            sidechain_peak: (aux.inputs.first())
                .map_or(0.0, |side| mixer::peak(side.as_slice_immutable())),
            non_finite_inputs: mix.non_finite,
            midi_events_in: midi_in.events,
            midi_out_dropped: dropped,
        }
    }

    /// The sonification for one block (see [`Sonifier`]), its notes sent out as MIDI; returns
    /// the MIDI events the host had no room for.
    fn play<P: Plugin<SysExMessage = ()>>(
        &mut self,
        buffer: &mut Buffer,
        aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<P>,
        params: &PluginParams,
        control: &ModelControl,
    ) -> u32 {
        let (Some(sonifier), Some(source)) = (&mut self.sonifier, &mut self.source) else {
            return 0;
        };
        let settings = &params.settings;
        let generation = &settings.generation;
        let generate = generation.generate.value();
        self.generate.update(generate, &params.run, source, control);
        if let Some(inbox) = &mut self.font_inbox {
            inbox.install(sonifier.choir_mut(), self.offline);
        }
        if let Some(inbox) = &mut self.score_inbox {
            // What the composer is asked for (`plugin::threads::start_score_loader`).
            let wanted = (generate && generation.source.value() == SourceChoice::Weights)
                .then(|| style_tag(generation.weight_style.value().style()));
            inbox.install(sonifier.score_player_mut(), wanted, self.offline);
        }
        let lookahead = generation.lookahead.value().max(1) as u32;
        control
            .gate()
            .set(lookahead, settings.temperature.fixed.value());
        let standalone = context.plugin_api() == PluginApi::Standalone;
        let (clock, bpm) = block_clock(context.transport(), generation, standalone);
        source.begin_block(bpm);
        let main = self.has_main_input.then_some(buffer.as_slice_immutable());
        let sidechain = aux.inputs.first().map(|s| s.as_slice_immutable());
        let frames = buffer.samples();
        let listen = &settings.listen;
        let heard_key = match &self.heard {
            Some(heard) if listen.follow_key.value() => heard.followed_key(),
            _ => None,
        };
        // A key heard in the track wins over the model's own: it is what the music does now.
        let key = heard_key.or_else(|| {
            (settings.melody.scale.value() == ScaleChoice::ModelKey)
                .then(|| control.status().model_key())
                .flatten()
        });
        let ear = match &mut self.ear {
            Some(ear) if listen.enabled.value() => Some((ear, listen.every.value().max(1) as u32)),
            _ => None,
        };
        let block = BlockInput {
            frames,
            clock,
            metered: metered_input(settings.temperature.meter_source.value(), main, sidechain),
            playing: generate,
            hearing: Hearing { ear, key },
        };
        let (midi, mut dropped) = (&mut self.midi, 0);
        let mut send = |event| context.try_send_event(event).is_ok();
        sonifier.process_block(block, settings, source, |message| {
            dropped += midi.send(message, frames, &mut send);
        });
        dropped
    }
}

/// Hands the worker's gate the lookahead and the temperature of the first tokens as the
/// parameters say now.
pub fn set_gate(control: &ModelControl, settings: &LatentChoirParams) {
    let lookahead = settings.generation.lookahead.value().max(1) as u32;
    control
        .gate()
        .set(lookahead, settings.temperature.fixed.value());
}
