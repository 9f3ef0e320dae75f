//! One block of sonification, the same for the plugin and the command-line renderer: the player
//! turns due frames into notes, the choir plays them (split at each note's sample offset) and
//! every note goes to the caller's MIDI sink; then what was played is mixed with the input.
//!
//! The plugin calls it from `process()`; `latent-choir render` and `replay` call it with a
//! simulated transport. Nothing here allocates after [`Sonifier::new`].

use crate::music::frame::SPECTRAL_PARTIALS;
use crate::music::score::BuiltInSound;
use crate::music::spectral::layout;
use crate::music::voices::VOICES;
use crate::params::{LatentChoirParams, LoopChoice, MeterSource, SourceChoice};
use crate::synth::mixer::{self, MixReport};
use crate::synth::{Choir, Source, Timbre, VoiceId};
use crate::weights::render::timbre;

use crate::music::{ControlMessage, NoteMessage};

use super::clip::LoopPasses;
use super::player::{Clock, FrameSource, Hearing, Player, PlayerReport, PlayerSettings};
use super::score_player::ScorePlayer;

/// How one block runs.
pub struct BlockInput<'a> {
    /// Samples in the block.
    pub frames: usize,
    pub clock: Clock,
    /// The audio the loudness is measured on; `None`: silence.
    pub metered: Option<[&'a [f32]; 2]>,
    /// Tokens advance (Generate is on); off releases every note.
    pub playing: bool,
    /// Listen and Follow Key.
    pub hearing: Hearing<'a>,
}

/// The player, the choir and the buffers they play into, built for one sample rate and a
/// largest block.
pub struct Sonifier {
    player: Player,
    /// Model Weights: the composed piece on the grid, instead of the tokens.
    scores: ScorePlayer,
    choir: Choir,
    /// The choir's output before mixing, `[left, right]`, one block long.
    played: [Vec<f32>; 2],
    /// Silence for the meter when the metered input is absent.
    silence: Vec<f32>,
    /// Frames of the last block.
    frames: usize,
    /// A Spectral note's partials, laid out before its note-on.
    partials: [(f32, f32, f32); SPECTRAL_PARTIALS],
}

impl Sonifier {
    /// Allocates everything: call off the audio thread (`activate`).
    pub fn new(sample_rate: f32, max_block: usize) -> Self {
        let max_block = max_block.max(1);
        Self {
            player: Player::new(f64::from(sample_rate)),
            scores: ScorePlayer::new(f64::from(sample_rate)),
            choir: Choir::new(sample_rate, max_block),
            played: [vec![0.0; max_block], vec![0.0; max_block]],
            silence: vec![0.0; max_block],
            frames: 0,
            partials: [(0.0, 0.0, 0.0); SPECTRAL_PARTIALS],
        }
    }

    /// The largest block [`Sonifier::process_block`] plays in one call.
    pub fn max_block(&self) -> usize {
        self.silence.len()
    }

    pub fn choir_mut(&mut self) -> &mut Choir {
        &mut self.choir
    }

    /// The Model Weights player, for installing pieces (`score_loader::ScoreInbox`).
    pub fn score_player_mut(&mut self) -> &mut ScorePlayer {
        &mut self.scores
    }

    /// Silences the synth and forgets the player's state (the host's `reset`); the MIDI
    /// note-offs of what was sounding go out with the next block.
    pub fn reset(&mut self) {
        self.choir.all_sound_off();
        self.player.reset();
        self.scores.reset();
    }

    /// A new activation's sonifier takes over the MIDI note-offs the last one owed.
    pub fn inherit_offs(&mut self, previous: &mut Sonifier) {
        self.player.inherit_offs(&mut previous.player);
    }

    pub fn all_sound_off(&mut self) {
        self.choir.all_sound_off();
    }

    /// Plays one block (at most [`Sonifier::max_block`] frames). Every note message goes to
    /// `midi` in time order; the sound is left in [`Sonifier::played`].
    pub fn process_block(
        &mut self,
        block: BlockInput<'_>,
        params: &LatentChoirParams,
        source: &mut impl FrameSource,
        mut midi: impl FnMut(MidiMessage),
    ) -> PlayerReport {
        let BlockInput {
            frames,
            clock,
            metered,
            playing,
            hearing,
        } = block;
        let [left, right] = &mut self.played;
        let frames = frames.min(left.len()).min(right.len());
        self.frames = frames;
        left[..frames].fill(0.0);
        right[..frames].fill(0.0);

        let weights = params.generation.source.value() == SourceChoice::Weights;
        let settings = PlayerSettings {
            // In Model Weights the tokens rest (their notes released); the piece plays.
            playing: playing && !weights,
            mapping: params.mapping(),
            channels: params.channels(),
            curve: params.curve(),
            loop_passes: match params.generation.loop_passes.value() {
                LoopChoice::Replay => LoopPasses::Replay,
                LoopChoice::Anew => LoopPasses::Anew,
            },
        };
        let silence = &self.silence[..frames];
        let [meter_l, meter_r] = metered.unwrap_or([silence, silence]);
        let (meter_l, meter_r) = (
            meter_l.get(..frames).unwrap_or(silence),
            meter_r.get(..frames).unwrap_or(silence),
        );
        // The caches are cold after the host's other work: the loads start now and overlap
        // the player's.
        self.choir.prefetch(frames);
        let report = self
            .player
            .process(meter_l, meter_r, clock, &settings, source, hearing);

        // Model Weights: each slot sounds as the piece's track on it (timbre, GM program, drum
        // kit); slots the piece leaves empty keep their own sound.
        let piece = self
            .scores
            .score()
            .filter(|_| weights)
            .map(|p| (p.slots, p.bpm));
        let choir = &mut self.choir;
        // Voice levels, pans, instruments and programs follow their parameters every block.
        let instruments = params.sound.instruments.value().source();
        let mut programs = [0i32; VoiceId::COUNT];
        for (i, voice) in params.voices.iter().enumerate() {
            if let Some(id) = VoiceId::from_index(i) {
                choir.set_level(id, voice.level.value());
                choir.set_pan(id, voice.pan.value());
                programs[i] = voice.program.value();
            }
        }
        programs[VoiceId::Drone.index()] = params.drone.program.value();
        programs[VoiceId::Tension.index()] = params.tension.program.value();
        choir.set_level(VoiceId::Drone, params.drone.level.value());
        choir.set_level(VoiceId::Tension, params.tension.level.value());
        choir.set_reverb_mix(params.sound.reverb.value());
        let mut drums = [false; crate::music::SLOTS];
        for voice in VoiceId::ALL {
            let sound = piece.and_then(|(slots, _)| slots.get(voice.index()).copied().flatten());
            let i = voice.index();
            // Only the three voices follow a layer: the drone and the Tension voice (and any
            // slot a Model Weights piece plays) keep the built-in synth under Spectral.
            let source = match instruments {
                Source::Spectral if i >= VOICES || sound.is_some() => Source::BuiltIn,
                source => source,
            };
            match sound {
                Some(sound) => {
                    drums[i] = sound.sound == BuiltInSound::Drums;
                    choir.set_timbre(voice, timbre(sound.sound));
                    programs[i] = i32::from(sound.program);
                }
                None => choir.set_timbre(voice, Timbre::for_voice(voice)),
            }
            choir.set_percussion(voice, drums[i]);
            set_instrument(choir, voice, source, programs[i]);
        }
        let in_scale = params.sound.spectral_scale.value();
        let channels = params.channels();
        let bpm = piece.map_or(120.0, |(_, bpm)| bpm);
        // The piece plays while Generate is on, like the tokens: one play switch for both.
        let score_events = if weights && playing {
            self.scores.process(clock, frames, channels, drums, bpm)
        } else {
            self.scores
                .process(Clock::Stopped, frames, channels, drums, bpm)
        };

        let mut cursor = 0usize;
        let controls = self.player.controls();
        let mut next_control = 0;
        // Whichever source rests sends only releases, all at offset 0: it goes first, so the
        // two lists in a row stay in time order.
        let (resting, sounding) = if weights {
            (self.player.events(), score_events)
        } else {
            (score_events, self.player.events())
        };
        for message in resting.iter().chain(sounding) {
            // The controller goes out before the notes of its step, in time order with them.
            while let Some(control) = controls
                .get(next_control)
                .filter(|c| c.offset <= message.offset)
            {
                midi(MidiMessage::Control(control));
                next_control += 1;
            }
            let at = (message.offset as usize).min(frames);
            if at > cursor {
                choir.render(&mut left[cursor..at], &mut right[cursor..at]);
                cursor = at;
            }
            let Some(voice) = VoiceId::from_index(usize::from(message.slot)) else {
                continue;
            };
            if message.is_on() {
                if choir.source(voice) == Source::Spectral {
                    let cue = self.player.spectrum(message.slot, message.token);
                    let partials = &mut self.partials;
                    let count = cue.map_or(0, |cue| {
                        let key = in_scale.then_some(cue.key);
                        layout(message.note, &cue.partials, key, partials)
                    });
                    choir.set_spectrum(voice, &partials[..count]);
                }
                choir.note_on(voice, message.note, message.velocity);
            } else {
                choir.note_off(voice, message.note);
            }
            midi(MidiMessage::Note(message));
        }
        for control in &controls[next_control..] {
            midi(MidiMessage::Control(control));
        }
        if cursor < frames {
            choir.render(&mut left[cursor..frames], &mut right[cursor..frames]);
        }
        report
    }

    /// What the last block played, `[left, right]` (empty when the synth is muted).
    pub fn played(&self, params: &LatentChoirParams) -> [&[f32]; 2] {
        if params.sound.synth_mute.value() {
            return [&[], &[]];
        }
        let [left, right] = &self.played;
        [&left[..self.frames], &right[..self.frames]]
    }

    /// Mixes the last block into `channels` (the input on entry, when `has_input`; the output
    /// on return) at the Input Thru and Output Gain parameters.
    pub fn mix_into(
        &self,
        channels: &mut [&mut [f32]],
        has_input: bool,
        params: &LatentChoirParams,
    ) -> MixReport {
        let (thru, gain) = (&params.sound.thru.smoothed, &params.sound.gain.smoothed);
        mixer::mix_block(
            channels,
            &self.played(params),
            has_input,
            || thru.next(),
            || gain.next(),
        )
    }
}

/// What the sonifier sends out besides sound: notes, and the tension controller.
#[derive(Clone, Copy, Debug)]
pub enum MidiMessage<'a> {
    Note(&'a NoteMessage),
    Control(&'a ControlMessage),
}

/// Points `voice` at its engine and GM program; a program change goes to the font only when
/// the parameter moved.
fn set_instrument(choir: &mut Choir, voice: VoiceId, source: Source, program: i32) {
    choir.set_source(voice, source);
    let program = program.clamp(0, 127) as u8;
    if choir.program(voice) != program {
        choir.set_program(voice, program);
    }
}

/// The stereo pair the loudness is measured on, as the Metered Input parameter chooses: the
/// main input (when the layout has one) or the sidechain; `None` when that input is absent.
pub fn metered_input<'a>(
    source: MeterSource,
    main: Option<&'a [&'a mut [f32]]>,
    sidechain: Option<&'a [&'a mut [f32]]>,
) -> Option<[&'a [f32]; 2]> {
    let channels = match source {
        MeterSource::Main => main?,
        MeterSource::Sidechain => sidechain?,
    };
    match channels {
        [l, r, ..] => Some([&l[..], &r[..]]),
        [mono] => Some([&mono[..], &mono[..]]),
        [] => None,
    }
}
