//! Latent Choir: hear a language model think. This file is the plugin shell that hosts see; the
//! parts live in their own modules (see DESIGN.md's layout).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nice_plug::prelude::*;

pub mod activation;
pub mod editor;
pub mod io;
pub mod llm;
pub mod loudness;
pub mod music;
pub mod offline;
pub mod params;
pub mod playback;
pub mod plugin;
pub mod project;
pub mod rng;
pub mod status;
pub mod synth;
pub mod worker;

use project::export::ExportStatus;
use worker::feed::{FeedShared, OFFLINE_WAIT};
use playback::history::{HISTORY_CAPACITY, HistoryReader, HistoryWriter};
use worker::link::{GateSettings, Link, LinkStatus};
use playback::player::Clock;
use plugin::source::PluginSource;
use project::collector::{CollectorThread, Describer};
use playback::sonifier::{BlockInput, Sonifier, metered_input};
use playback::soundfont_loader::{FontInbox, FontLoader};
use plugin::model_start::{StartModel, StartRequests};
use llm::tokenizer::PromptMode;
use worker::thread::Command;
use params::LatentChoirParams;
use status::{AudioStatus, BlockReport};

pub struct LatentChoir {
    params: Arc<LatentChoirParams>,
    status: Arc<AudioStatus>,
    /// What the worker and the audio thread report, made before the worker exists so the
    /// editor (created first) can read them.
    feed: Arc<FeedShared>,
    link_status: Arc<LinkStatus>,
    /// Played frames for the editor: the writer goes to the audio side's source when the
    /// worker starts; the reader is shared by every editor instance.
    history: Option<HistoryWriter>,
    history_reader: Arc<Mutex<HistoryReader>>,
    /// Whether the active layout has a main input; without one the host's buffer is not ours
    /// to pass through.
    has_main_input: bool,
    /// The model's worker thread, started on the first `initialize` and kept for the life of
    /// the instance (a reload is a command, not a new thread).
    link: Option<Link>,
    gate: Arc<GateSettings>,
    /// Everything below is built in `initialize` for its sample rate and block size.
    /// The model's queue, or the project's saved run in replay mode.
    source: Option<PluginSource>,
    /// Drains what the audio thread played into the saved run.
    collector: Option<CollectorThread>,
    /// What the last export from the editor did.
    exports: Arc<ExportStatus>,
    /// Player, choir and their buffers: the sonification shared with `latent-choir render`.
    sonifier: Option<Sonifier>,
    offline: bool,
    /// The worker's command sender, for the background task that starts the model when
    /// Generate is first turned on (the audio thread cannot send commands itself).
    commands: Arc<Mutex<Option<std::sync::mpsc::Sender<Command>>>>,
    /// The model has been asked to load and start, by the Generate parameter or the editor
    /// (whichever comes first; the other leaves it alone).
    model_requested: Arc<AtomicBool>,
    /// The audio thread's requests to start the model, served by the collector thread.
    requests: Arc<StartRequests>,
    /// SoundFonts load on their own thread and arrive in the inbox; the editor asks for them
    /// through the same loader.
    fonts: Arc<Mutex<Option<FontLoader>>>,
    font_inbox: Option<FontInbox>,
    /// Incoming MIDI held for one block, to go out with MIDI Thru merged in time order with
    /// the notes the plugin makes (hosts require output events sorted by time).
    thru: Vec<PluginNoteEvent<Self>>,
    /// Generate's value in the last block: turning it on after a saved run has ended asks the
    /// model for new text.
    generate_was_on: bool,
}

/// MIDI events one block passes through; more are dropped (and counted).
const THRU_CAPACITY: usize = 1024;

impl Default for LatentChoir {
    fn default() -> Self {
        let (history, history_reader) = playback::history::history(HISTORY_CAPACITY);
        let params = Arc::new(LatentChoirParams::default());
        let commands = Arc::new(Mutex::new(None));
        let requests = Arc::new(StartRequests::new(
            Arc::clone(&commands),
            params.run.clone(),
        ));
        Self {
            params,
            status: Arc::new(AudioStatus::default()),
            feed: Arc::new(FeedShared::default()),
            link_status: Arc::new(LinkStatus::default()),
            history: Some(history),
            history_reader: Arc::new(Mutex::new(history_reader)),
            has_main_input: true,
            link: None,
            gate: Arc::new(GateSettings::new(4, 0.8)),
            source: None,
            collector: None,
            exports: Arc::new(ExportStatus::default()),
            sonifier: None,
            offline: false,
            commands,
            model_requested: Arc::new(AtomicBool::new(false)),
            requests,
            fonts: Arc::new(Mutex::new(None)),
            font_inbox: None,
            thru: Vec::with_capacity(THRU_CAPACITY),
            generate_was_on: false,
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
    /// No tasks go through nice-plug's shared background thread: it quits when a task outlives
    /// its instance and then aborts the host at teardown (see [`plugin::model_start`]).
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    type Editor = editor::Editor;

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        let (saved, exports) = (self.params.run.clone(), Arc::clone(&self.exports));
        Some(editor::create(editor::Shared {
            params: Arc::clone(&self.params),
            status: Arc::clone(&self.status),
            link: Arc::clone(&self.link_status),
            feed: Arc::clone(&self.feed),
            history: Arc::clone(&self.history_reader),
            commands: Arc::clone(&self.commands),
            model_requested: Arc::clone(&self.model_requested),
            fonts: Arc::clone(&self.fonts),
            exports: Arc::clone(&self.exports),
            export: Arc::new(move |request| {
                let (saved, exports) = (saved.clone(), Arc::clone(&exports));
                let spawned = std::thread::Builder::new()
                    .name("latent-choir-export".to_owned())
                    .spawn(move || project::export::run_export(&saved, &request, &exports));
                if let Err(error) = spawned {
                    nice_log!("Latent Choir: could not start the export: {error}");
                }
            }),
        }))
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
        let sample_rate = buffer_config.sample_rate;
        let max_block = buffer_config.max_buffer_size as usize;
        self.offline = buffer_config.process_mode == ProcessMode::Offline;
        let mut sonifier = Sonifier::new(sample_rate, max_block);
        if let Some(previous) = &mut self.sonifier {
            sonifier.inherit_offs(previous);
        }
        self.sonifier = Some(sonifier);
        self.gate.set(
            self.params.lookahead.value().max(1) as u32,
            self.params.temp_fixed.value(),
        );
        if self.link.is_none() {
            self.start_worker();
        }
        self.request_soundfont(sample_rate, max_block);
        if !self.model_requested.load(Ordering::Acquire) {
            self.requests.prepare(self.prepare_start());
        }
        self.params.run.set_sample_rate(sample_rate);
        if let Some(source) = &mut self.source {
            source.set_offline(self.offline.then_some(OFFLINE_WAIT));
            if let Some(run) = self.params.run.take_pending() {
                source.install_replay(*run);
            }
        }
        true
    }

    fn reset(&mut self) {
        self.params.gain.smoothed.reset(self.params.gain.value());
        self.params.thru.smoothed.reset(self.params.thru.value());
        if let Some(sonifier) = &mut self.sonifier {
            sonifier.reset();
        }
    }

    fn deactivate(&mut self) {
        if let Some(sonifier) = &mut self.sonifier {
            sonifier.all_sound_off();
        }
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
        self.thru.clear();
        while let Some(event) = context.next_event() {
            midi_events_in += 1;
            if !midi_thru {
                continue;
            }
            if self.thru.len() < self.thru.capacity() {
                self.thru.push(event);
            } else {
                midi_out_dropped += 1;
            }
        }
        sort_events(&mut self.thru);

        let frames = buffer.samples();
        self.start_model_if_asked();
        midi_out_dropped += u64::from(self.play(buffer, aux, context, frames));

        let mix = match &self.sonifier {
            Some(sonifier) => {
                sonifier.mix_into(buffer.as_slice(), self.has_main_input, &self.params)
            }
            None => synth::mixer::mix_block(
                buffer.as_slice(),
                &[],
                self.has_main_input,
                || self.params.thru.smoothed.next(),
                || self.params.gain.smoothed.next(),
            ),
        };
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

/// Where an output event goes in a block: by time, note-offs (and everything else) before
/// note-ons at the same sample.
fn event_order<S>(event: &NoteEvent<S>) -> (u32, bool) {
    (event.timing(), matches!(event, NoteEvent::NoteOn { .. }))
}

/// Stable insertion sort by time, note-offs before note-ons at the same sample (the host's
/// events are almost always in order already). No allocation.
fn sort_events<S>(events: &mut [NoteEvent<S>]) {
    for i in 1..events.len() {
        let mut j = i;
        while j > 0 && event_order(&events[j - 1]) > event_order(&events[j]) {
            events.swap(j - 1, j);
            j -= 1;
        }
    }
}

impl LatentChoir {
    /// The model starts the first time Generate is on (not while a saved run replays), and
    /// writes new text when Generate is turned on again after the saved run has ended.
    fn start_model_if_asked(&mut self) {
        let generate = self.params.generate.value();
        let turned_on = generate && !self.generate_was_on;
        self.generate_was_on = generate;
        let replay_ended = self.source.as_ref().is_some_and(|s| s.replay_finished());
        if !generate || (self.params.run.is_replaying() && !(turned_on && replay_ended)) {
            return;
        }
        let started = if self
            .model_requested
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.requests.start()
        } else if turned_on && replay_ended {
            self.requests.new_text();
            true
        } else {
            false
        };
        if started && let Some(source) = &mut self.source {
            // From the next step on the model's frames play (an offline bounce waits for them,
            // so it comes out the same every time).
            source.live.expect_start();
            if replay_ended {
                source.go_live();
            }
        }
    }

    /// Starts the model's worker thread, idle: the model loads when Generate is first on.
    fn start_worker(&mut self) {
        let Ok((link, queue)) = Link::spawn_with(
            Arc::clone(&self.gate),
            Arc::clone(&self.feed),
            Arc::clone(&self.link_status),
        ) else {
            nice_log!("Latent Choir: could not start the model thread");
            return;
        };
        let mut source = PluginSource::new(queue, self.params.run.clone());
        if let Some(history) = self.history.take() {
            source.set_history(history);
        }
        let describer = Describer::new(&self.params, Arc::clone(&self.link_status));
        source.connect(self.params.run.connect(describer));
        let saved = self.params.run.clone();
        let requests = Arc::clone(&self.requests);
        match CollectorThread::spawn(move || {
            saved.drain();
            requests.serve();
        }) {
            Ok(thread) => self.collector = Some(thread),
            Err(error) => nice_log!("Latent Choir: no run collector thread: {error}"),
        }
        if let Ok(mut commands) = self.commands.lock() {
            *commands = Some(link.worker.sender());
        }
        self.link = Some(link);
        self.source = Some(source);
    }

    /// Asks the loader for the saved SoundFont, prepared for this activation (the choir is new,
    /// so even an unchanged font is loaded again for its sample rate).
    fn request_soundfont(&mut self, sample_rate: f32, max_block: usize) {
        let Ok(mut fonts) = self.fonts.lock() else {
            return;
        };
        if fonts.is_none() {
            match FontLoader::spawn() {
                Ok((loader, inbox)) => {
                    *fonts = Some(loader);
                    self.font_inbox = Some(inbox);
                }
                Err(error) => nice_log!("Latent Choir: no SoundFont loader thread: {error}"),
            }
        }
        let Some(fonts) = fonts.as_ref() else { return };
        fonts.set_format(sample_rate, max_block);
        let path = self
            .params
            .soundfont
            .read()
            .map(|p| p.trim().to_owned())
            .unwrap_or_default();
        if !path.is_empty() {
            fonts.request(Some(std::path::PathBuf::from(path)));
        }
    }

    /// The commands that start the saved model on the saved prompt, prepared off the audio
    /// thread; `None` without a model to load.
    fn prepare_start(&self) -> Option<StartModel> {
        let model = self
            .params
            .model
            .read()
            .map(|m| m.clone())
            .unwrap_or_default();
        let model = if model.is_empty() {
            llm::discovery::default_model_path()?
        } else {
            std::path::PathBuf::from(model)
        };
        let prompt = self
            .params
            .prompt
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|_| params::DEFAULT_PROMPT.to_owned());
        let seed = self.params.seed.read().map(|s| *s).unwrap_or(1);
        let raw = self.params.raw_prompt.read().map(|r| *r).unwrap_or(false);
        Some(StartModel {
            model,
            prompt,
            mode: if raw {
                PromptMode::Raw
            } else {
                PromptMode::Chat
            },
            seed,
        })
    }

    /// The sonification for one block (see [`Sonifier`]), its notes sent out as MIDI; returns
    /// the MIDI events the host had no room for.
    fn play(
        &mut self,
        buffer: &mut Buffer,
        aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
        frames: usize,
    ) -> u32 {
        let (Some(sonifier), Some(source)) = (&mut self.sonifier, &mut self.source) else {
            return 0;
        };
        if let Some(inbox) = &mut self.font_inbox {
            inbox.install(sonifier.choir_mut(), self.offline);
        }
        let params = &self.params;
        self.gate.set(
            params.lookahead.value().max(1) as u32,
            params.temp_fixed.value(),
        );
        let transport = context.transport();
        let tokens_per_beat = f64::from(params.tokens_per_beat.value());
        let follow = params.timing.value() == params::Timing::FollowTransport;
        // The standalone app's transport (JACK's) may never roll: it runs free while stopped.
        let standalone = context.plugin_api() == PluginApi::Standalone;
        let (clock, bpm) = match (transport.playing, transport.pos_beats(), transport.tempo) {
            (true, Some(beat), Some(tempo)) if follow => (
                Clock::Transport {
                    beat,
                    tempo,
                    tokens_per_beat,
                },
                tempo,
            ),
            (false, Some(_), Some(tempo)) if follow && !standalone => (Clock::Stopped, tempo),
            _ => {
                let tokens_per_second = f64::from(params.tokens_per_second.value());
                (
                    Clock::Free { tokens_per_second },
                    60.0 * tokens_per_second / tokens_per_beat.max(1e-6),
                )
            }
        };
        source.begin_block(bpm);
        let main = self.has_main_input.then_some(buffer.as_slice_immutable());
        let sidechain = aux.inputs.first().map(|s| s.as_slice_immutable());
        let metered = metered_input(params.meter_source.value(), main, sidechain);
        let mut dropped_midi = 0;
        let last = frames.saturating_sub(1) as u32;
        let block = BlockInput {
            frames,
            clock,
            metered,
            playing: params.generate.value(),
        };
        let thru = &self.thru;
        let mut next_thru = 0;
        let mut send = |event: PluginNoteEvent<Self>| {
            if context.try_send_event(event).is_err() {
                dropped_midi += 1;
            }
        };
        sonifier.process_block(block, params, source, |message| {
            let (timing, channel, key) = (
                message.offset.min(last),
                nice_plug::midi::Channel::Number(message.channel),
                nice_plug::midi::Key::Number(message.note),
            );
            let voice_id = nice_plug::midi::VoiceID::Wildcard;
            let event = if message.is_on() {
                NoteEvent::NoteOn {
                    timing,
                    voice_id,
                    channel,
                    key,
                    velocity: f32::from(message.velocity) / 127.0,
                }
            } else {
                NoteEvent::NoteOff {
                    timing,
                    voice_id,
                    channel,
                    key,
                    velocity: 0.0,
                }
            };
            // Incoming events due before this one go out first.
            while let Some(earlier) = thru
                .get(next_thru)
                .filter(|e| event_order(e) < event_order(&event))
            {
                send(*earlier);
                next_thru += 1;
            }
            send(event);
        });
        for event in &thru[next_thru..] {
            send(*event);
        }
        dropped_midi
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
mod vst3_export;
