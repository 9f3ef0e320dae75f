//! The audio-thread half of the sonification: the token clock, the loudness curve, the mapping
//! and a note scheduler, turning frames into sample-accurate note messages for one block.
//!
//! Per block the caller passes how time moves (host transport or free-running), the audio the
//! loudness is measured on, the current parameter values and a [`FrameSource`]. At each grid
//! step the player reads the loudness curve (the meter has seen every sample before the step),
//! takes the next frame, maps it with the parameters as they are now, and schedules its notes.
//! Note-offs and ornaments that fall in later blocks wait in a fixed-size schedule. The result
//! is a sorted list of [`NoteMessage`]s for the block, which the caller plays on the synth and
//! sends out as MIDI at the same offsets.
//!
//! On the host's transport the steps go through the source's [`Clip`]: a step played before
//! (after a seek or a loop jump) plays its remembered token again, with the mapping state the
//! first pass had there; a new step takes the source's next frame. When the transport stops,
//! every note is released and no step passes until it plays again.
//!
//! Every note-on gets its note-off: on schedule, on a transport jump, when playing stops, when
//! a new run starts, and through [`Player::all_notes_off`]. Offs go out on the channel their
//! note-on used, whatever the channel parameters say by then.
//!
//! Nothing here allocates after [`Player::new`].

use crate::loudness::{CurvePoint, CurveSettings, LoudnessMeter, TemperatureCurve};
use crate::music::drone::DroneAction;
use crate::music::dynamics::accent;
use crate::music::feel::{Feel, feel};
use crate::music::frame::{SPECTRAL_PARTIALS, TokenFrame};
use crate::music::grid::{FreeBlock, HostBlock, TokenClock};
use crate::music::message::{
    ControlMessage, DRONE_SLOT, NO_TOKEN, NoteMessage, SLOTS, TENSION_SLOT,
};
use crate::music::tension::TensionPlan;
use crate::music::voices::{MappingParams, MappingState, StepPlan, TIE_LENGTH, VOICES, map_frame};

use crate::music::scale::{Root, Scale};

use super::clip::{Clip, Cue, LoopPasses};
use super::ear::Ear;

/// Note messages one block can hold: a block with many steps at a fast rate makes at most
/// (3 voices × 2 notes + drone) × 2 per step.
const MAX_EVENTS: usize = 1024;
/// Controller messages one block can hold (one per step).
const MAX_CONTROLS: usize = 256;

/// Notes (and ornaments) waiting for a later sample: each voice has at most a main note, an
/// ornament's on and off, and a held note in flight.
const MAX_SCHEDULED: usize = 64;

/// Steps a voice's Spectral partials are remembered for: a note that starts late (swing,
/// humanise, an ornament) still finds the partials of the token that made it.
const SPECTRUM_CUES: usize = 8;

/// The partials a voice's notes of one step sound with the Spectral instruments: the frame's
/// partials at the voice's layer, and the key the step was mapped in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpectrumCue {
    pub token: u32,
    pub partials: [i8; SPECTRAL_PARTIALS],
    pub key: (Scale, Root),
}

const NO_CUE: SpectrumCue = SpectrumCue {
    token: NO_TOKEN,
    partials: [0; SPECTRAL_PARTIALS],
    key: (Scale::Major, Root::C),
};

/// How time moves in this block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clock {
    /// The host transport plays: one token per grid step of `1 / tokens_per_beat` beats.
    Transport {
        beat: f64,
        tempo: f64,
        tokens_per_beat: f64,
    },
    /// Free run (chosen, standalone, hosts without a transport): a steady rate.
    Free { tokens_per_second: f64 },
    /// The host's transport is stopped: the notes are released and no step passes.
    Stopped,
}

impl Clock {
    /// Samples between steps.
    fn step_samples(&self, sample_rate: f64) -> f64 {
        let samples = match *self {
            Clock::Transport {
                tempo,
                tokens_per_beat,
                ..
            } => sample_rate * 60.0 / (tempo * tokens_per_beat),
            Clock::Free { tokens_per_second } => sample_rate / tokens_per_second,
            Clock::Stopped => 1.0,
        };
        if samples.is_finite() && samples >= 1.0 {
            samples
        } else {
            1.0
        }
    }
}

/// The parameter values the player reads this block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlayerSettings {
    /// Generating and playing; off releases every note and pauses the clock.
    pub playing: bool,
    pub mapping: MappingParams,
    /// MIDI channel (0-based) of each slot: voices 1–3, then the drone.
    pub channels: [u8; SLOTS],
    pub curve: CurveSettings,
    /// What a loop jump plays on its second and later passes.
    pub loop_passes: LoopPasses,
}

/// Where frames come from (the queue from the worker, or a recorded run).
pub trait FrameSource {
    /// The next frame to play, if one is ready. Must not block (the offline bounce may wait,
    /// bounded).
    fn next_frame(&mut self) -> Option<TokenFrame>;
    /// `frame` was played at a step where the loudness curve read `point`; `step` is that
    /// step on the host's grid (`None` free-running).
    fn played(&mut self, frame: &TokenFrame, point: &CurvePoint, step: Option<i64>);
    /// The input up to `frame`'s step went to the listener (a listening boundary): the line it
    /// makes enters the model's context before the token that `frame`'s ticket lets through.
    /// Called right before `played`.
    fn heard(&mut self, _frame: &TokenFrame) {}
    /// `frame`, remembered on the clip, was played again (seek, loop).
    fn replayed(&mut self, _frame: &TokenFrame, _point: &CurvePoint) {}
    /// Where the steps of the host's transport are remembered; `None`: every step takes the
    /// next frame, wherever the playhead is.
    fn clip(&mut self) -> Option<&mut Clip> {
        None
    }
    /// The run the source's next frame belongs to, when it knows: a run other than the
    /// clip's is new text, played from the playhead on.
    fn live_run(&self) -> Option<u32> {
        None
    }
    /// No frame will ever come (a saved run played to its end): the frontier rests instead of
    /// holding the notes.
    fn exhausted(&self) -> bool {
        false
    }
}

/// What one step plays, taken out of the clip.
enum StepPlay {
    /// A frame from the source.
    New(TokenFrame),
    /// A frame remembered on the clip.
    Again(TokenFrame),
    /// No frame was ready: hold; `counted` for an underrun now, not a remembered one.
    Hold {
        counted: bool,
    },
    Rest,
}

/// What the player does for the listener this block.
#[derive(Default)]
pub struct Hearing<'a> {
    /// Listen is on: the metered input goes to `ear`, and a boundary is marked every `bars`
    /// bars (on new frames only: a replayed stretch was heard already).
    pub ear: Option<(&'a mut Ear, u32)>,
    /// Follow Key is on: the key heard last, taken up at the next bar line.
    pub key: Option<(Scale, Root)>,
}

/// Steps in a bar: 4 beats on the host's grid, or 2 s free-running (4/4 at 120 BPM).
fn steps_per_bar(clock: &Clock) -> i64 {
    let steps = match *clock {
        Clock::Transport {
            tokens_per_beat, ..
        } => 4.0 * tokens_per_beat,
        Clock::Free { tokens_per_second } => 2.0 * tokens_per_second,
        Clock::Stopped => 1.0,
    };
    if steps.is_finite() {
        (steps.round() as i64).max(1)
    } else {
        1
    }
}

/// What happened in one block, for the status display and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PlayerReport {
    /// Grid steps that fell in the block.
    pub steps: u32,
    /// Steps where no frame was ready (the notes held instead).
    pub underruns: u32,
    /// Note messages that did not fit in the block's list (should stay 0).
    pub dropped: u32,
    /// The curve at the block's last step.
    pub point: Option<CurvePoint>,
    /// `(run, index)` of the last frame played.
    pub played: Option<(u32, u32)>,
}

/// Where a step's notes start: the token that made them, the offset in the block and the
/// absolute sample.
#[derive(Clone, Copy, Debug)]
struct StepAt {
    token: u32,
    offset: u32,
    now: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Scheduled {
    /// Absolute sample time.
    due: u64,
    message: NoteMessage,
    /// For a note-off: its note-on has gone out (an ornament's off waits for its on).
    sounding: bool,
}

pub struct Player {
    sample_rate: f64,
    clock: TokenClock,
    mapping: MappingState,
    meter: LoudnessMeter,
    curve: TemperatureCurve,
    scheduled: [Scheduled; MAX_SCHEDULED],
    n_scheduled: usize,
    events: [NoteMessage; MAX_EVENTS],
    n_events: usize,
    controls: [ControlMessage; MAX_CONTROLS],
    n_controls: usize,
    dropped: u32,
    /// `(channel, note)` of the sounding drone.
    drone: Option<(u8, u8)>,
    /// Absolute sample time of the current block's first sample.
    time: u64,
    last_step: Option<u64>,
    run: Option<u32>,
    was_playing: bool,
    /// The transport step after the last one played: the mapping state is that of the step
    /// before it. Any other step is reached by a jump and has its state rebuilt.
    next_step: Option<i64>,
    /// Note-offs owed from before a reset or re-activation, sent at the next block's start
    /// (the host's MIDI out must not be left with hanging notes).
    owed: [NoteMessage; MAX_SCHEDULED + 1],
    n_owed: usize,
    /// A token has played since the last release: the drone follows the parameters.
    drone_follows: bool,
    /// The heard key the scale follows (Follow Key), taken up at a bar line.
    followed: Option<(Scale, Root)>,
    /// Per voice, the last steps' Spectral partials (a ring).
    spectra: [[SpectrumCue; SPECTRUM_CUES]; VOICES],
    next_cue: [usize; VOICES],
}

const SILENT: NoteMessage = NoteMessage {
    offset: 0,
    slot: 0,
    channel: 0,
    note: 0,
    velocity: 0,
    token: NO_TOKEN,
};

impl Player {
    /// Allocates the loudness meter; call off the audio thread (`initialize`).
    pub fn new(sample_rate: f64) -> Self {
        Self {
            sample_rate,
            clock: TokenClock::new(),
            mapping: MappingState::new(),
            meter: LoudnessMeter::new(sample_rate as f32),
            curve: TemperatureCurve::default(),
            scheduled: [Scheduled {
                due: 0,
                message: SILENT,
                sounding: false,
            }; MAX_SCHEDULED],
            n_scheduled: 0,
            events: [SILENT; MAX_EVENTS],
            n_events: 0,
            controls: [ControlMessage::default(); MAX_CONTROLS],
            n_controls: 0,
            dropped: 0,
            drone: None,
            time: 0,
            last_step: None,
            run: None,
            was_playing: false,
            next_step: None,
            owed: [SILENT; MAX_SCHEDULED + 1],
            n_owed: 0,
            drone_follows: false,
            followed: None,
            spectra: [[NO_CUE; SPECTRUM_CUES]; VOICES],
            next_cue: [0; VOICES],
        }
    }

    /// This block's note messages, sorted by offset (offs before ons at the same offset).
    pub fn events(&self) -> &[NoteMessage] {
        &self.events[..self.n_events]
    }

    /// This block's tension controller messages, in step order.
    pub fn controls(&self) -> &[ControlMessage] {
        &self.controls[..self.n_controls]
    }

    /// Whether the loudness meter works at this sample rate (not below 8 kHz).
    pub fn is_metering(&self) -> bool {
        self.meter.is_metering()
    }

    /// Forget everything: clock, mapping, meter, schedule (the host's `reset`). Notes still
    /// sounding get their note-offs at the start of the next block.
    pub fn reset(&mut self) {
        self.owe_offs();
        self.clock.reset();
        self.mapping.reset();
        self.meter.reset();
        self.curve.reset();
        self.n_scheduled = 0;
        self.n_events = 0;
        self.drone = None;
        self.time = 0;
        self.last_step = None;
        self.run = None;
        self.was_playing = false;
        self.next_step = None;
        self.drone_follows = false;
        self.followed = None;
        self.forget_spectra();
    }

    /// The Spectral partials of `slot`'s notes made by `token` (`None` for other slots, or a
    /// token older than the last few steps).
    pub fn spectrum(&self, slot: u8, token: u32) -> Option<&SpectrumCue> {
        let ring = self.spectra.get(usize::from(slot))?;
        ring.iter()
            .find(|cue| cue.token == token && token != NO_TOKEN)
    }

    fn forget_spectra(&mut self) {
        self.spectra = [[NO_CUE; SPECTRUM_CUES]; VOICES];
        self.next_cue = [0; VOICES];
    }

    /// Remembers each sounding voice's partials for this step's notes.
    fn cue_spectra(&mut self, frame: &TokenFrame, plan: &StepPlan, mapping: &MappingParams) {
        let last = frame.hidden_states().saturating_sub(1);
        for (voice, note) in plan.voices.iter().enumerate().take(VOICES) {
            if note.is_none() {
                continue;
            }
            let layer = mapping.voices[voice].layer.min(last);
            let at = self.next_cue[voice];
            self.spectra[voice][at] = SpectrumCue {
                token: frame.index,
                partials: frame.partials[layer],
                key: (mapping.scale, mapping.root),
            };
            self.next_cue[voice] = (at + 1) % SPECTRUM_CUES;
        }
    }

    /// Takes over the note-offs `previous` (the player of an earlier activation) owed or
    /// would owe: they go out at the start of this player's first block.
    pub fn inherit_offs(&mut self, previous: &mut Player) {
        previous.owe_offs();
        for off in &previous.owed[..previous.n_owed] {
            self.owe(*off);
        }
        previous.n_owed = 0;
    }

    /// Moves every sounding note into the owed note-offs.
    fn owe_offs(&mut self) {
        let from = self.n_events;
        self.release_all(0);
        for i in from..self.n_events {
            self.owe(self.events[i]);
        }
        self.n_events = from;
    }

    fn owe(&mut self, off: NoteMessage) {
        let known = self.owed[..self.n_owed]
            .iter()
            .any(|o| (o.slot, o.channel, o.note) == (off.slot, off.channel, off.note));
        if !known && self.n_owed < self.owed.len() {
            self.owed[self.n_owed] = off;
            self.n_owed += 1;
        }
    }

    /// Replaces this block's events with note-offs for everything sounding, at `offset`.
    pub fn all_notes_off(&mut self, offset: u32) -> &[NoteMessage] {
        self.n_events = 0;
        self.release_all(offset);
        self.events()
    }

    /// Runs one block of `left.len()` samples; `left`/`right` is what loudness is measured on.
    pub fn process(
        &mut self,
        left: &[f32],
        right: &[f32],
        clock: Clock,
        settings: &PlayerSettings,
        source: &mut impl FrameSource,
        mut hearing: Hearing,
    ) -> PlayerReport {
        let mut settings = *settings;
        if hearing.key.is_none() {
            self.followed = None;
        }
        let len = left.len().min(right.len());
        let block_start = self.time;
        let block_end = block_start + len as u64;
        self.n_events = 0;
        self.n_controls = 0;
        self.dropped = 0;
        let mut report = PlayerReport::default();
        for i in 0..self.n_owed {
            self.push_event(self.owed[i]);
        }
        self.n_owed = 0;

        if !settings.playing || clock == Clock::Stopped {
            if self.was_playing {
                self.release_all(0);
                self.clock.reset();
                self.last_step = None;
                self.next_step = None;
            }
            self.was_playing = false;
            self.meter.add(&left[..len], &right[..len]);
            self.time = block_end;
            report.dropped = self.dropped;
            return report;
        }
        self.was_playing = true;

        let steps = match clock {
            Clock::Transport {
                beat,
                tempo,
                tokens_per_beat,
            } => self.clock.host_block(&HostBlock {
                beat,
                tempo,
                sample_rate: self.sample_rate,
                len: len as u32,
                tokens_per_beat,
            }),
            Clock::Free { tokens_per_second } => self.clock.free_block(&FreeBlock {
                sample_rate: self.sample_rate,
                len: len as u32,
                tokens_per_second,
            }),
            // Released and returned above.
            Clock::Stopped => return report,
        };
        let on_transport = matches!(clock, Clock::Transport { .. });
        if steps.jumped {
            self.release_all(0);
            self.last_step = None;
            self.next_step = None;
        }
        // The key followed since the last bar line holds between steps too, so the drone's
        // update below does not fall back to the Root parameter.
        if let Some((scale, root)) = self.followed {
            settings.mapping.scale = scale;
            settings.mapping.root = root;
        }
        // While the music plays, a Root or drone change applies at once, token or not (after a
        // release, the drone waits for the next token, as it did the first time).
        if self.drone_follows {
            let drone = self.mapping.update_drone(&settings.mapping);
            self.apply_drone(
                drone,
                0,
                settings.channels[usize::from(DRONE_SLOT)],
                NO_TOKEN,
            );
        }

        let step_samples = clock.step_samples(self.sample_rate);
        let bar = steps_per_bar(&clock);
        settings.mapping.steps_per_bar = u32::try_from(bar).unwrap_or(u32::MAX);
        let mut fed = 0;
        for step in steps {
            let offset = step.offset.min(len as u32);
            let now = block_start + u64::from(offset);
            self.flush_scheduled(block_start, now);
            let (heard_l, heard_r) = (&left[fed..offset as usize], &right[fed..offset as usize]);
            self.meter.add(heard_l, heard_r);
            if let Some((ear, _)) = &mut hearing.ear {
                ear.add(heard_l, heard_r);
            }
            fed = offset as usize;
            // Steps on the host's grid, or the run's own count free-running.
            let grid_step = if on_transport { step.step } else { -1 };
            if hearing.key.is_some() && (!on_transport || grid_step.rem_euclid(bar) == 0) {
                self.followed = hearing.key;
            }
            if let Some((scale, root)) = self.followed {
                settings.mapping.scale = scale;
                settings.mapping.root = root;
            }
            let dt = self
                .last_step
                .map_or(0.0, |last| (now - last) as f64 / self.sample_rate);
            self.last_step = Some(now);
            let point = self
                .curve
                .tick(self.meter.momentary(), dt as f32, &settings.curve);
            report.steps += 1;
            report.point = Some(point);

            let play = if on_transport {
                self.cue(step.step, offset, &settings, source)
            } else {
                self.next_live(offset, source)
            };
            let frame = match play {
                StepPlay::New(frame) | StepPlay::Again(frame) => frame,
                StepPlay::Hold { counted } => {
                    report.underruns += u32::from(counted);
                    self.hold(now, step_samples);
                    continue;
                }
                StepPlay::Rest => continue,
            };
            if self.run != Some(frame.run) {
                if self.run.is_some() {
                    self.release_all(offset);
                }
                self.mapping.reset();
                self.forget_spectra();
                self.run = Some(frame.run);
            }
            let position = if on_transport {
                grid_step
            } else {
                i64::from(frame.index)
            };
            let mut plan = map_frame(&frame, &settings.mapping, position, &mut self.mapping);
            if settings.mapping.accent > 0.0 {
                for note in plan.voices.iter_mut().flatten() {
                    note.velocity = accent(note.velocity, position, bar, settings.mapping.accent);
                }
            }
            let feel = feel(
                position,
                frame.index,
                settings.mapping.swing,
                settings.mapping.humanise,
            );
            for (voice, note) in plan.voices.iter_mut().enumerate() {
                if let Some(note) = note {
                    note.velocity = feel.velocity(voice, note.velocity);
                }
            }
            let at = StepAt {
                token: frame.index,
                offset,
                now,
            };
            self.cue_spectra(&frame, &plan, &settings.mapping);
            let controller = settings.mapping.tension.controller;
            self.apply(
                &plan,
                &feel,
                at,
                step_samples,
                (&settings.channels, controller),
            );
            self.drone_follows = true;
            match play {
                StepPlay::Again(_) => source.replayed(&frame, &point),
                _ => {
                    if let Some((ear, bars)) = &mut hearing.ear {
                        let stride = bar * i64::from((*bars).max(1));
                        let position = if on_transport {
                            grid_step
                        } else {
                            i64::from(frame.index)
                        };
                        if position > 0
                            && position.rem_euclid(stride) == 0
                            && ear.mark(frame.run, frame.index)
                        {
                            source.heard(&frame);
                        }
                    }
                    source.played(&frame, &point, on_transport.then_some(step.step))
                }
            }
            report.played = Some((frame.run, frame.index));
        }
        self.meter.add(&left[fed..len], &right[fed..len]);
        if let Some((ear, _)) = &mut hearing.ear {
            ear.add(&left[fed..len], &right[fed..len]);
        }
        self.flush_scheduled(block_start, block_end);
        self.sort_events();
        self.time = block_end;
        report.dropped = self.dropped;
        report
    }

    /// What transport step `step` plays: from the clip when it was played before (the
    /// mapping state rebuilt after a jump), else the source's next frame, remembered.
    fn cue(
        &mut self,
        step: i64,
        offset: u32,
        settings: &PlayerSettings,
        source: &mut impl FrameSource,
    ) -> StepPlay {
        // The mapping state stays the clip's through rests and holds only if it already was.
        let continuous = self.next_step == Some(step);
        self.next_step = continuous.then_some(step + 1);
        let live_run = source.live_run();
        match source
            .clip()
            .map(|clip| clip.cue(step, live_run, settings.loop_passes))
        {
            Some(Cue::Again(frame)) => {
                let frame = *frame;
                if !continuous
                    && let Some(state) = source
                        .clip()
                        .and_then(|clip| clip.state_before(step, &settings.mapping))
                {
                    if self.run.is_some_and(|run| run != frame.run) {
                        // Another run's notes (a project state loaded while playing).
                        self.release_all(offset);
                    }
                    // Everything was released at the jump: nothing ties over.
                    self.mapping = state;
                    self.mapping.release_all();
                    self.run = Some(frame.run);
                }
                self.next_step = Some(step + 1);
                StepPlay::Again(frame)
            }
            Some(Cue::Hold) => StepPlay::Hold { counted: false },
            Some(Cue::Rest) => StepPlay::Rest,
            Some(Cue::End) => {
                self.release_all(offset);
                StepPlay::Rest
            }
            Some(Cue::Live) => {
                let play = self.next_live(offset, source);
                let frame = match &play {
                    StepPlay::New(frame) => Some(frame),
                    StepPlay::Hold { .. } => None,
                    _ => return play,
                };
                if let Some(clip) = source.clip() {
                    // Recorded with the state it is played with: from here the two agree.
                    clip.record(step, frame, &self.mapping);
                    self.next_step = Some(step + 1);
                }
                play
            }
            None => self.next_live(offset, source),
        }
    }

    /// The source's next frame, a held step when none is ready, or a rest (every note
    /// released) when none will ever come.
    fn next_live(&mut self, offset: u32, source: &mut impl FrameSource) -> StepPlay {
        if source.exhausted() {
            self.release_all(offset);
            return StepPlay::Rest;
        }
        match source.next_frame() {
            Some(frame) => StepPlay::New(frame),
            None => StepPlay::Hold { counted: true },
        }
    }

    /// Starts this step's notes and schedules their ends.
    fn apply(
        &mut self,
        plan: &StepPlan,
        feel: &Feel,
        at: StepAt,
        step_samples: f64,
        (channels, controller): (&[u8; SLOTS], u8),
    ) {
        let StepAt { token, offset, now } = at;
        let samples = |fraction: f32| ((f64::from(fraction) * step_samples).round() as u64).max(1);
        for (voice, event) in plan.voices.iter().enumerate() {
            let Some(event) = event else { continue };
            let slot = voice as u8;
            let length = if event.length >= TIE_LENGTH {
                (step_samples.round() as u64).max(1)
            } else {
                samples(event.length)
            };
            let sounding = self.find_scheduled_off(slot, event.note);
            let delay = (f64::from(feel.delay[voice]) * step_samples).round() as u64;
            if let (true, Some(i)) = (event.tied, sounding) {
                self.scheduled[i].due = now + delay + length;
                continue;
            }
            let channel = channels[voice];
            let on = NoteMessage {
                offset,
                slot,
                channel,
                note: event.note,
                velocity: event.velocity.max(1),
                token,
            };
            let start = now + delay;
            if delay > 0 {
                // Late (swing, humanise): the on waits in the schedule like an ornament's, and
                // ends a same note still sounding when it comes.
                if self.n_scheduled + 2 > MAX_SCHEDULED {
                    self.dropped += 1;
                    continue;
                }
                self.schedule(start, on, false);
                self.schedule(start + length, NoteMessage { velocity: 0, ..on }, false);
            } else {
                if let Some(i) = sounding {
                    let off = self.remove_scheduled(i);
                    self.push_event(NoteMessage { offset, ..off });
                }
                self.push_event(on);
                self.schedule(now + length, NoteMessage { velocity: 0, ..on }, true);
            }
            // An ornament needs room for both its on and its off, or it is left out.
            if let Some(ornament) = event
                .ornament
                .filter(|_| self.n_scheduled + 2 <= MAX_SCHEDULED)
            {
                let start = start + samples(ornament.offset);
                let on = NoteMessage {
                    note: ornament.note,
                    velocity: ornament.velocity.max(1),
                    ..on
                };
                self.schedule(start, on, false);
                self.schedule(
                    start + samples(ornament.length),
                    NoteMessage { velocity: 0, ..on },
                    false,
                );
            }
        }
        self.apply_drone(plan.drone, offset, channels[usize::from(DRONE_SLOT)], token);
        self.apply_tension(
            &plan.tension,
            at,
            step_samples,
            (channels[usize::from(TENSION_SLOT)], controller),
        );
    }

    /// The Tension voice's notes for this step: a note already sounding is held on (the organ
    /// does not re-strike a held chord), a new one starts; each ends with the step unless the
    /// next step holds it again. Then the tension controller.
    fn apply_tension(
        &mut self,
        plan: &TensionPlan,
        at: StepAt,
        step_samples: f64,
        (channel, controller): (u8, u8),
    ) {
        let StepAt { token, offset, now } = at;
        let length = (step_samples.round() as u64).max(1);
        for note in plan.notes.into_iter().flatten() {
            if let Some(i) = self.find_scheduled_off(TENSION_SLOT, note) {
                self.scheduled[i].due = now + length;
                continue;
            }
            if self.n_scheduled + 1 > MAX_SCHEDULED {
                self.dropped += 1;
                continue;
            }
            let on = NoteMessage {
                offset,
                slot: TENSION_SLOT,
                channel,
                note,
                velocity: plan.velocity.max(1),
                token,
            };
            self.push_event(on);
            self.schedule(now + length, NoteMessage { velocity: 0, ..on }, true);
        }
        if let Some(value) = plan.cc
            && self.n_controls < MAX_CONTROLS
        {
            self.controls[self.n_controls] = ControlMessage {
                offset,
                channel,
                controller,
                value,
                token,
            };
            self.n_controls += 1;
        }
    }

    fn apply_drone(&mut self, action: DroneAction, offset: u32, channel: u8, token: u32) {
        let off = |(channel, note): (u8, u8)| NoteMessage {
            offset,
            slot: DRONE_SLOT,
            channel,
            note,
            velocity: 0,
            token,
        };
        let start = |this: &mut Self, note: u8, velocity: u8| {
            this.push_event(NoteMessage {
                offset,
                slot: DRONE_SLOT,
                channel,
                note,
                velocity: velocity.max(1),
                token,
            });
            this.drone = Some((channel, note));
        };
        match action {
            DroneAction::Keep => {}
            DroneAction::Start { note, velocity }
            | DroneAction::Change {
                to: note, velocity, ..
            } => {
                if self.drone == Some((channel, note)) {
                    // Already sounding (the mapping started over, the drone did not).
                    return;
                }
                if let Some(sounding) = self.drone.take() {
                    self.end_drone(off(sounding));
                }
                start(self, note, velocity);
            }
            DroneAction::Stop { .. } => {
                if let Some(sounding) = self.drone.take() {
                    self.end_drone(off(sounding));
                }
            }
        }
    }

    /// Ends the sounding drone with `off`. A drone struck at this same offset (the bass moved
    /// twice at one instant: a key change at the block start, then a new chord on the step)
    /// is taken back instead: its off would sort before its on.
    fn end_drone(&mut self, off: NoteMessage) {
        let struck_now = self.events[..self.n_events].iter().rposition(|m| {
            m.is_on()
                && m.slot == DRONE_SLOT
                && (m.channel, m.note, m.offset) == (off.channel, off.note, off.offset)
        });
        match struck_now {
            Some(i) => {
                self.events.copy_within(i + 1..self.n_events, i);
                self.n_events -= 1;
            }
            None => self.push_event(off),
        }
    }

    /// No frame this step: melodic notes that would end before the next step keep sounding
    /// until it, so an underrun is heard as a held chord rather than a gap.
    fn hold(&mut self, now: u64, step_samples: f64) {
        let until = now + (step_samples.round() as u64).max(1);
        for scheduled in &mut self.scheduled[..self.n_scheduled] {
            if scheduled.sounding && scheduled.due <= until {
                scheduled.due = until;
            }
        }
    }

    /// Note-offs at `offset` for every sounding note, pending ornaments dropped, the drone
    /// released.
    fn release_all(&mut self, offset: u32) {
        self.drone_follows = false;
        for i in 0..self.n_scheduled {
            let Scheduled {
                message, sounding, ..
            } = self.scheduled[i];
            if sounding {
                self.push_event(NoteMessage { offset, ..message });
            }
        }
        self.n_scheduled = 0;
        if let Some((channel, note)) = self.drone.take() {
            self.push_event(NoteMessage {
                offset,
                slot: DRONE_SLOT,
                channel,
                note,
                velocity: 0,
                token: NO_TOKEN,
            });
        }
        self.mapping.release_all();
    }

    /// Moves scheduled messages due before `limit` into this block's events, in time order.
    fn flush_scheduled(&mut self, block_start: u64, limit: u64) {
        while let Some(i) = (0..self.n_scheduled)
            .filter(|&i| self.scheduled[i].due < limit)
            .min_by_key(|&i| (self.scheduled[i].due, self.scheduled[i].message.is_on()))
        {
            let due = self.scheduled[i].due;
            let message = self.remove_scheduled(i);
            let offset = due.saturating_sub(block_start) as u32;
            if message.is_on() {
                // A note struck again while still sounding: end the old one first.
                if let Some(j) = self.find_scheduled_off(message.slot, message.note) {
                    let old = self.remove_scheduled(j);
                    self.push_event(NoteMessage { offset, ..old });
                }
                // Its own off now has a note to end.
                if let Some(own) = self.scheduled[..self.n_scheduled].iter_mut().find(|s| {
                    !s.sounding
                        && !s.message.is_on()
                        && s.message.slot == message.slot
                        && s.message.note == message.note
                }) {
                    own.sounding = true;
                }
            }
            self.push_event(NoteMessage { offset, ..message });
        }
    }

    /// The pending note-off of a note of `slot` that is sounding now.
    fn find_scheduled_off(&self, slot: u8, note: u8) -> Option<usize> {
        self.scheduled[..self.n_scheduled]
            .iter()
            .position(|s| s.sounding && s.message.slot == slot && s.message.note == note)
    }

    /// `sounding`: for a note-off, whether its note-on has already gone out.
    fn schedule(&mut self, due: u64, message: NoteMessage, sounding: bool) {
        if self.n_scheduled < MAX_SCHEDULED {
            self.scheduled[self.n_scheduled] = Scheduled {
                due,
                message,
                sounding: sounding && !message.is_on(),
            };
            self.n_scheduled += 1;
        } else if message.is_on() || !sounding {
            // No room to remember its end: better not to start it.
            self.dropped += 1;
        } else {
            // No room to wait: end it now rather than never.
            let offset = due.saturating_sub(self.time) as u32;
            self.push_event(NoteMessage { offset, ..message });
        }
    }

    fn remove_scheduled(&mut self, i: usize) -> NoteMessage {
        let message = self.scheduled[i].message;
        self.n_scheduled -= 1;
        self.scheduled[i] = self.scheduled[self.n_scheduled];
        message
    }

    fn push_event(&mut self, message: NoteMessage) {
        if self.n_events < MAX_EVENTS {
            self.events[self.n_events] = message;
            self.n_events += 1;
        } else {
            self.dropped += 1;
        }
    }

    /// Stable insertion sort by offset, offs before ons (events are nearly sorted already).
    fn sort_events(&mut self) {
        let key = |m: &NoteMessage| (m.offset, m.is_on());
        for i in 1..self.n_events {
            let mut j = i;
            while j > 0 && key(&self.events[j - 1]) > key(&self.events[j]) {
                self.events.swap(j - 1, j);
                j -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::scale::{Root, Scale};

    /// Frames from a list, as if the worker were always ahead.
    struct Frames {
        frames: Vec<TokenFrame>,
        next: usize,
        played: Vec<(u32, f32)>,
        heard: Vec<u32>,
    }

    impl Frames {
        fn new(count: u32, run: u32) -> Self {
            let frames = (0..count)
                .map(|i| {
                    let mut frame = TokenFrame::new(i, i, "tok", 31, 0.7);
                    frame.run = run;
                    for state in 0..31 {
                        let x = ((i * 7 + state as u32 * 3) % 17) as f32 / 8.0 - 1.0;
                        let entropy = if state == 0 {
                            0.0
                        } else {
                            (i % 5) as f32 / 4.0
                        };
                        frame.set_state(
                            state,
                            crate::music::frame::components(&[x, -x, 0.0, 0.0]),
                            10.0 + (i % 3) as f32,
                            entropy,
                            0.6,
                        );
                    }
                    frame
                })
                .collect();
            Self {
                frames,
                next: 0,
                played: Vec::new(),
                heard: Vec::new(),
            }
        }
    }

    impl FrameSource for Frames {
        fn next_frame(&mut self) -> Option<TokenFrame> {
            let frame = self.frames.get(self.next).copied();
            self.next += 1;
            frame
        }

        fn played(&mut self, frame: &TokenFrame, point: &CurvePoint, _step: Option<i64>) {
            self.played.push((frame.index, point.temperature));
        }

        fn heard(&mut self, frame: &TokenFrame) {
            self.heard.push(frame.index);
        }
    }

    fn settings() -> PlayerSettings {
        PlayerSettings {
            playing: true,
            mapping: MappingParams::default(),
            channels: [0, 1, 2, 3, 4],
            curve: CurveSettings::default(),
            loop_passes: LoopPasses::Replay,
        }
    }

    /// Plays `bars` of 4/4 at `bpm` in blocks of varying size; returns (absolute sample, message).
    fn play(
        player: &mut Player,
        frames: &mut Frames,
        settings: &PlayerSettings,
        bpm: f64,
        samples: usize,
    ) -> Vec<(u64, NoteMessage)> {
        let rate = 48_000.0;
        let mut out = Vec::new();
        let mut at = 0usize;
        let sizes = [512, 17, 1024, 333, 4096, 1];
        let silence = vec![0.0_f32; 4096];
        let mut i = 0;
        while at < samples {
            let len = sizes[i % sizes.len()].min(samples - at);
            i += 1;
            let beat = at as f64 / rate * bpm / 60.0;
            let clock = Clock::Transport {
                beat,
                tempo: bpm,
                tokens_per_beat: 2.0,
            };
            player.process(
                &silence[..len],
                &silence[..len],
                clock,
                settings,
                frames,
                Hearing::default(),
            );
            out.extend(
                player
                    .events()
                    .iter()
                    .map(|m| (at as u64 + u64::from(m.offset), *m)),
            );
            at += len;
        }
        out
    }

    /// Every note-on is followed by exactly one note-off of the same slot, channel and note.
    fn assert_paired(events: &[(u64, NoteMessage)]) {
        let mut sounding: Vec<(u8, u8, u8)> = Vec::new();
        for (time, m) in events {
            let key = (m.slot, m.channel, m.note);
            if m.is_on() {
                assert!(!sounding.contains(&key), "{key:?} struck twice at {time}");
                sounding.push(key);
            } else {
                let at = sounding.iter().position(|k| *k == key);
                assert!(at.is_some(), "note-off without note-on {key:?} at {time}");
                sounding.remove(at.unwrap_or(0));
            }
        }
        assert!(sounding.is_empty(), "left sounding: {sounding:?}");
    }

    /// `events` and the note-offs a stop right after them sends.
    fn stopped(
        player: &mut Player,
        frames: &mut Frames,
        settings: &PlayerSettings,
        mut events: Vec<(u64, NoteMessage)>,
    ) -> Vec<(u64, NoteMessage)> {
        let stop = PlayerSettings {
            playing: false,
            ..*settings
        };
        events.extend(play(player, frames, &stop, 120.0, 512));
        events
    }

    #[test]
    fn swing_delays_the_off_steps_and_humanise_is_the_same_in_every_bounce() {
        // 120 BPM, two steps a beat: a step is 12 000 samples.
        let step = 12_000u64;
        let ons = |swing: f32, humanise: f32| {
            let mut player = Player::new(48_000.0);
            let mut frames = Frames::new(1000, 1);
            let mut settings = settings();
            settings.mapping.swing = swing;
            settings.mapping.humanise = humanise;
            settings.mapping.ornament_amount = 0.0;
            let events = play(
                &mut player,
                &mut frames,
                &settings,
                120.0,
                16 * step as usize,
            );
            assert_paired(&stopped(
                &mut player,
                &mut frames,
                &settings,
                events.clone(),
            ));
            events
                .into_iter()
                .filter(|(_, m)| m.is_on() && m.slot != DRONE_SLOT)
                .map(|(t, m)| (t, m.slot, m.velocity, m.token))
                .collect::<Vec<_>>()
        };
        let straight = ons(0.0, 0.0);
        assert!(straight.iter().all(|(t, ..)| t % step == 0), "on the grid");
        let swung = ons(1.0, 0.0);
        assert!(!swung.is_empty());
        for (t, _, _, token) in &swung {
            // Token i plays at step i; odd steps a third of a step late.
            let expected = u64::from(*token) * step + if token % 2 == 1 { step / 3 } else { 0 };
            assert_eq!(*t, expected, "token {token}");
        }
        let human = ons(0.0, 1.0);
        assert_eq!(human, ons(0.0, 1.0), "the same feel every time");
        let late: Vec<u64> = human
            .iter()
            .map(|(t, _, _, token)| t - u64::from(*token) * step)
            .collect();
        assert!(late.iter().all(|&d| d <= step * 8 / 100 + 1));
        assert!(late.iter().any(|&d| d > 0));
        let velocities_differ = human.iter().zip(&straight).any(|(h, s)| h.2 != s.2);
        assert!(velocities_differ, "humanise moves velocities");
    }

    #[test]
    fn with_harmony_the_bass_moves_with_the_chords_and_voices_do_not_cross() {
        let mut player = Player::new(48_000.0);
        let mut frames = Frames::new(1000, 1);
        let mut settings = settings();
        settings.mapping.harmony = crate::music::harmony::HarmonicRhythm::Bar;
        settings.mapping.bass = crate::music::voices::BassMode::Moving;
        settings.mapping.avoid_crossing = true;
        // Overlapping ranges, so crossing would happen.
        for voice in &mut settings.mapping.voices {
            voice.low = 55;
            voice.high = 84;
        }
        settings.mapping.voices[0].low = 60;
        let bar = 4 * 24_000u64;
        let events = play(&mut player, &mut frames, &settings, 120.0, 8 * bar as usize);
        assert_paired(&stopped(
            &mut player,
            &mut frames,
            &settings,
            events.clone(),
        ));
        let bass: Vec<(u64, u8)> = events
            .iter()
            .filter(|(_, m)| m.is_on() && m.slot == DRONE_SLOT)
            .map(|(t, m)| (*t, m.note))
            .collect();
        assert!(bass.len() > 4, "the bass moves: {bass:?}");
        assert!(
            bass.iter().all(|(t, _)| t % (bar / 2) == 0),
            "bass notes change on the bar and the half bar: {bass:?}"
        );
        let pitch_classes: std::collections::BTreeSet<u8> =
            bass.iter().map(|(_, n)| n % 12).collect();
        assert!(pitch_classes.len() >= 3, "{pitch_classes:?}");
        assert!(
            pitch_classes
                .iter()
                .all(|pc| Scale::Major.intervals().contains(pc))
        );
        // At each step, voice 1 (the highest range) is not under voice 2.
        let mut at_step: std::collections::BTreeMap<u64, [Option<u8>; 3]> = Default::default();
        for (t, m) in events.iter().filter(|(_, m)| m.is_on() && m.slot < 3) {
            at_step.entry(*t).or_default()[usize::from(m.slot)] = Some(m.note);
        }
        for (t, notes) in &at_step {
            if let [Some(top), Some(middle), _] = notes {
                assert!(top >= middle, "crossed at {t}: {notes:?}");
            }
        }
    }

    #[test]
    fn eight_bars_at_120_bpm_land_on_the_grid_and_pair_up() {
        let mut player = Player::new(48_000.0);
        let mut frames = Frames::new(1000, 1);
        let settings = settings();
        let bars = 8 * 4 * 24_000;
        let mut events = play(&mut player, &mut frames, &settings, 120.0, bars);
        let stop = PlayerSettings {
            playing: false,
            ..settings
        };
        events.extend(
            play(&mut player, &mut frames, &stop, 120.0, 512)
                .into_iter()
                .map(|(t, m)| (t + bars as u64, m)),
        );
        assert_eq!(frames.played.len(), 64, "two tokens per beat for 32 beats");
        let melodic_ons: Vec<_> = events
            .iter()
            .filter(|(_, m)| m.is_on() && m.slot < DRONE_SLOT)
            .collect();
        for (time, m) in &melodic_ons {
            let on_grid = time % 12_000 == 0;
            // Ornaments fall at 1/2 or 3/4 of a step.
            let ornament = time % 12_000 == 6_000 || time % 12_000 == 9_000;
            assert!(on_grid || ornament, "note-on at {time}: {m:?}");
            let voice = &settings.mapping.voices[usize::from(m.slot)];
            assert!(
                (voice.low..=voice.high).contains(&m.note),
                "{m:?} out of range"
            );
            assert!(
                Scale::Major.contains(m.note, Root::C),
                "{m:?} not in C major"
            );
            assert_eq!(m.channel, m.slot);
        }
        let main_notes = melodic_ons.iter().filter(|(t, _)| t % 12_000 == 0).count();
        assert!(main_notes >= 64, "{main_notes} main notes");
        assert!(
            events
                .iter()
                .any(|(t, m)| *t == 0 && m.is_on() && m.slot == DRONE_SLOT)
        );
        assert_paired(&events);
    }

    #[test]
    fn a_loop_jump_releases_everything_and_restarts_on_the_grid() {
        let mut player = Player::new(48_000.0);
        let mut frames = Frames::new(1000, 1);
        let settings = settings();
        let mut events = play(&mut player, &mut frames, &settings, 120.0, 48_000 * 3 + 100);
        let before = frames.played.len();
        // Jump back to beat 0.
        let silence = vec![0.0_f32; 512];
        let clock = Clock::Transport {
            beat: 0.0,
            tempo: 120.0,
            tokens_per_beat: 2.0,
        };
        let report = player.process(
            &silence,
            &silence,
            clock,
            &settings,
            &mut frames,
            Hearing::default(),
        );
        assert_eq!(report.steps, 1, "the step at the loop start fires");
        assert_eq!(frames.played.len(), before + 1);
        let offs_first = player.events().iter().take_while(|m| !m.is_on()).count();
        assert!(offs_first > 0, "sounding notes end at the jump");
        assert!(player.events().iter().all(|m| m.offset == 0));
        let t = 48_000 * 3 + 100;
        events.extend(player.events().iter().map(|m| (t as u64, *m)));
        events.extend(player.all_notes_off(0).iter().map(|m| (t as u64 + 512, *m)));
        assert_paired(&events);
    }

    #[test]
    fn same_frames_same_notes_and_a_scale_change_applies_at_the_next_step() {
        let run = |scale_change_at: Option<usize>| {
            let mut player = Player::new(48_000.0);
            let mut frames = Frames::new(1000, 1);
            let mut settings = settings();
            let mut events = Vec::new();
            for block in 0..200 {
                if Some(block) == scale_change_at {
                    settings.mapping.scale = Scale::Phrygian;
                    settings.mapping.root = Root::D;
                }
                let silence = vec![0.0_f32; 1200];
                let clock = Clock::Free {
                    tokens_per_second: 8.0,
                };
                player.process(
                    &silence,
                    &silence,
                    clock,
                    &settings,
                    &mut frames,
                    Hearing::default(),
                );
                events.extend(player.events().iter().map(|m| (block, *m)));
            }
            events
        };
        assert_eq!(run(None), run(None));
        let changed = run(Some(100));
        for (block, m) in &changed {
            if m.is_on() && *block >= 100 && m.slot < DRONE_SLOT {
                assert!(
                    Scale::Phrygian.contains(m.note, Root::D),
                    "{m:?} at block {block}"
                );
            }
        }
        assert!(
            changed
                .iter()
                .any(|(b, m)| *b == 100 && m.slot == DRONE_SLOT && m.is_on() && m.note % 12 == 2)
        );
    }

    #[test]
    fn underruns_hold_the_notes_and_a_new_run_starts_over() {
        let mut player = Player::new(48_000.0);
        let mut frames = Frames::new(4, 1);
        let settings = settings();
        let silence = vec![0.0_f32; 6_000];
        let clock = Clock::Free {
            tokens_per_second: 8.0,
        };
        let mut underruns = 0;
        let mut events = Vec::new();
        for block in 0..10u64 {
            underruns += player
                .process(
                    &silence,
                    &silence,
                    clock,
                    &settings,
                    &mut frames,
                    Hearing::default(),
                )
                .underruns;
            events.extend(
                player
                    .events()
                    .iter()
                    .map(|m| (block * 6_000 + u64::from(m.offset), *m)),
            );
        }
        assert_eq!(underruns, 6);
        let mut next_run = Frames::new(4, 2);
        player.process(
            &silence,
            &silence,
            clock,
            &settings,
            &mut next_run,
            Hearing::default(),
        );
        let offs = player.events().iter().filter(|m| !m.is_on()).count();
        assert!(
            offs > 0,
            "the old run's held notes end when the new run starts"
        );
        events.extend(
            player
                .events()
                .iter()
                .map(|m| (60_000 + u64::from(m.offset), *m)),
        );
        events.extend(player.all_notes_off(0).iter().map(|m| (66_000, *m)));
        assert_paired(&events);
    }

    #[test]
    fn a_reset_or_a_new_activation_sends_the_owed_note_offs() {
        let mut player = Player::new(48_000.0);
        let mut frames = Frames::new(1000, 1);
        let settings = settings();
        let mut events = play(&mut player, &mut frames, &settings, 120.0, 30_000);
        assert!(events.iter().any(|(_, m)| m.is_on()));
        player.reset();
        let silence = [0.0_f32; 64];
        let stop = PlayerSettings {
            playing: false,
            ..settings
        };
        player.process(
            &silence,
            &silence,
            Clock::Stopped,
            &stop,
            &mut frames,
            Hearing::default(),
        );
        assert!(player.events().iter().all(|m| !m.is_on() && m.offset == 0));
        events.extend(player.events().iter().map(|m| (30_000, *m)));
        assert_paired(&events);

        // Re-activation: the new player sends what the old one left sounding.
        let mut events = play(&mut player, &mut frames, &settings, 120.0, 30_000);
        let mut next = Player::new(48_000.0);
        next.inherit_offs(&mut player);
        next.process(
            &silence,
            &silence,
            Clock::Stopped,
            &stop,
            &mut frames,
            Hearing::default(),
        );
        events.extend(next.events().iter().map(|m| (30_000, *m)));
        assert_paired(&events);
    }

    #[test]
    fn stop_releases_every_note_and_no_step_passes() {
        let mut player = Player::new(48_000.0);
        let mut frames = Frames::new(1000, 1);
        let settings = settings();
        let mut events = play(&mut player, &mut frames, &settings, 120.0, 30_000);
        let played = frames.played.len();
        let silence = [0.0_f32; 512];
        for block in 0..100u64 {
            player.process(
                &silence,
                &silence,
                Clock::Stopped,
                &settings,
                &mut frames,
                Hearing::default(),
            );
            assert!(player.events().iter().all(|m| !m.is_on()));
            assert!(block == 0 || player.events().is_empty());
            events.extend(player.events().iter().map(|m| (30_000 + block * 512, *m)));
        }
        assert_eq!(
            frames.played.len(),
            played,
            "no token is used up while stopped"
        );
        assert_paired(&events);
    }

    #[test]
    fn frames_with_no_states_still_advance() {
        let mut player = Player::new(48_000.0);
        let mut frames = Frames::new(3, 1);
        for frame in &mut frames.frames {
            frame.hidden_states = 0;
        }
        let silence = vec![0.0_f32; 48_000];
        let clock = Clock::Free {
            tokens_per_second: 2.0,
        };
        let report = player.process(
            &silence,
            &silence,
            clock,
            &settings(),
            &mut frames,
            Hearing::default(),
        );
        assert_eq!(report.steps, 2);
        assert!(player.events().iter().all(|m| m.slot == DRONE_SLOT));
    }

    /// Blocks of 500 samples at 120 BPM (a step every 12 000), from `from` to `to`, with
    /// `hearing` made fresh for each block; the note-ons of the melodic voices, by sample.
    fn hear(
        player: &mut Player,
        frames: &mut Frames,
        (from, to): (usize, usize),
        mut hearing: impl FnMut() -> (Option<(Scale, Root)>, bool),
        ear: &mut crate::playback::ear::Ear,
    ) -> Vec<(u64, u8)> {
        let silence = vec![0.25_f32; 500];
        let mut ons = Vec::new();
        let mut at = from;
        while at < to {
            let len = 500.min(to - at);
            let clock = Clock::Transport {
                beat: at as f64 / 48_000.0 * 2.0,
                tempo: 120.0,
                tokens_per_beat: 2.0,
            };
            let (key, listening) = hearing();
            let hearing = Hearing {
                ear: listening.then_some((&mut *ear, 1)),
                key,
            };
            player.process(
                &silence[..len],
                &silence[..len],
                clock,
                &settings(),
                frames,
                hearing,
            );
            ons.extend(
                player
                    .events()
                    .iter()
                    .filter(|m| m.is_on() && m.slot != DRONE_SLOT)
                    .map(|m| ((at + m.offset as usize) as u64, m.note)),
            );
            at += len;
        }
        ons
    }

    #[test]
    fn a_heard_key_is_taken_up_at_the_next_bar_line() {
        let mut player = Player::new(48_000.0);
        let mut frames = Frames::new(64, 1);
        let (mut ear, _tap) = crate::playback::ear::ear(48_000.0);
        let step = 12_000;
        // Bar 1 and half of bar 2 in C major; then F# major is heard, from mid-bar 2.
        let before = hear(
            &mut player,
            &mut frames,
            (0, 12 * step),
            || (None, false),
            &mut ear,
        );
        let f_sharp = Some((Scale::Major, Root::FSharp));
        let after = hear(
            &mut player,
            &mut frames,
            (12 * step, 24 * step),
            || (f_sharp, false),
            &mut ear,
        );
        let c_major = [0, 2, 4, 5, 7, 9, 11];
        let f_sharp_major = [6, 8, 10, 11, 1, 3, 5];
        let in_scale = |notes: &[(u64, u8)], scale: &[u8]| {
            notes.iter().all(|(_, n)| scale.contains(&(n % 12)))
        };
        let (mid_bar, next_bar): (Vec<_>, Vec<_>) =
            after.iter().partition(|(at, _)| *at < 16 * step as u64);
        assert!(!before.is_empty() && !mid_bar.is_empty() && !next_bar.is_empty());
        assert!(in_scale(&before, &c_major));
        assert!(
            in_scale(&mid_bar, &c_major),
            "the key waits for the bar line: {mid_bar:?}"
        );
        assert!(
            in_scale(&next_bar, &f_sharp_major),
            "then the heard key plays: {next_bar:?}"
        );
        assert!(next_bar.iter().any(|(_, n)| !c_major.contains(&(n % 12))));
    }

    #[test]
    fn listening_marks_each_boundary_on_the_frame_that_plays_there() {
        let mut player = Player::new(48_000.0);
        let mut frames = Frames::new(64, 1);
        let (mut ear, mut tap) = crate::playback::ear::ear(48_000.0);
        let step = 12_000;
        // Listen Every 1 bar = 8 steps: boundaries at steps 8, 16 and 24 (not at 0: nothing heard).
        hear(
            &mut player,
            &mut frames,
            (0, 25 * step),
            || (None, true),
            &mut ear,
        );
        assert_eq!(frames.heard, [8, 16, 24]);
        let marks: Vec<_> = std::iter::from_fn(|| tap.marks.pop().ok()).collect();
        let at: Vec<u64> = marks.iter().map(|m| m.sample).collect();
        // Every sample before the boundary's step went to the ear first.
        assert_eq!(at, [8 * step as u64, 16 * step as u64, 24 * step as u64]);
        assert!(marks.iter().all(|m| m.sample_rate == 48_000.0));
        assert_eq!(tap.samples.slots() as u64, 25 * step as u64);
    }
}
