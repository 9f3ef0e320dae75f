//! The mapping: one token frame + the current parameters → what each voice plays at this step.
//!
//! Runs on the audio thread at every grid step, with whatever the parameters are right now, so a
//! Scale or Root change is heard on the very next note. All inputs and outputs are fixed-size
//! `Copy` values; nothing allocates.
//!
//! * Pitch: PC1 of the voice's hidden state, mapped linearly from [-1, 1] onto the voice's range
//!   and then to the nearest scale tone inside it. Pitch depends on PC1 alone, so it rises and
//!   falls exactly with the model's trajectory along its main direction.
//! * Velocity: the hidden state's norm against that layer's running statistics
//!   ([`super::dynamics`]); a typical norm (and the first token) plays at the middle of the range.
//! * Length: attention entropy. Focused attention (low entropy) holds the note (legato, up to a
//!   tie into the next step); diffuse attention (high entropy) detaches it (staccato). A layer
//!   that reads narrowly sounds sustained; one that spreads its attention thin sounds scattered.
//! * Ornament: MLP sparsity × ornament amount is the chance of a neighbour note late in the step
//!   ([`super::ornament`]); the sign of PC2 says whether it sits above or below.
//! * Drone: the key's root, re-articulated only when root or octave change ([`super::drone`]).
//!
//! Hidden state 0 is the embeddings, which no block produced: it has no attention entropy or
//! MLP sparsity of its own (the frame stores 0). A voice on it borrows block 1's statistics
//! (those of the first block, which reads the embeddings) so it breathes like the others instead of
//! being stuck at legato with no ornaments.

use super::drone::{DroneAction, DroneState};
use super::dynamics::{LayerDynamics, Swell, middle_velocity, spread_bounds, velocity};
use super::frame::TokenFrame;
use super::harmony::{Chord, HarmonicRhythm, HarmonyState};
use super::ornament::{self, Ornament, OrnamentInput};
use super::phrasing::{self, Harmony, PhrasingParams, PhrasingState};
use super::scale::{Root, Scale};
use super::tension::{self, TensionMapping, TensionPlan};

/// Melodic voices (the drone is separate).
pub const VOICES: usize = 3;
/// Shortest note, as a fraction of the grid step (keeps a note audible at any tempo).
pub const MIN_LENGTH: f32 = 0.1;
/// Longest note: a full step, i.e. a tie into the next step.
pub const TIE_LENGTH: f32 = 1.0;

/// How a voice turns its layer's first coordinate into pitch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MelodyMode {
    /// Pitch follows PC1 across the range: where the state is.
    #[default]
    Trajectory,
    /// The change of PC1 since the last token is the interval, in scale steps: how far the
    /// state moved. Folded back into the range at its edges.
    Contour,
    /// PC1 picks among the tonic triad's tones in the range.
    ChordTones,
    /// The layer's Markov–LSTM phrase ([`super::markov_lstm`]): a scale degree from a
    /// transition matrix of the state's block norms, tilted by a tiny LSTM whose weights are
    /// the singular vectors of the recent states; its velocity and length too.
    MarkovLstm,
}

/// Scale steps for a change of PC1 by 1 (a quarter of its span) in Contour mode.
const CONTOUR_STEPS: f32 = 5.0;

/// One melodic voice's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VoiceMapping {
    pub enabled: bool,
    pub mode: MelodyMode,
    /// Hidden state the voice follows (0 = embeddings); clamped to the frame's last state.
    pub layer: usize,
    /// Lowest MIDI note the voice plays.
    pub low: u8,
    /// Highest MIDI note the voice plays (swapped with `low` if smaller).
    pub high: u8,
}

/// The parameter values the mapping reads, copied from the host parameters each step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MappingParams {
    pub voices: [VoiceMapping; VOICES],
    pub scale: Scale,
    pub root: Root,
    pub drone_enabled: bool,
    /// Octave of the drone's root, C4 = 60 (so 2 gives MIDI 36 + root).
    pub drone_octave: i32,
    /// Scales MLP sparsity into ornament probability, [0, 1].
    pub ornament_amount: f32,
    /// Note length at fully focused attention (entropy 0), as a fraction of the step; 1.0 ties.
    pub legato_length: f32,
    /// Note length at fully diffuse attention (entropy 1), as a fraction of the step.
    pub staccato_length: f32,
    pub velocity_min: u8,
    pub velocity_max: u8,
    /// Phrasing from the text (all off: the notes as the states alone make them).
    pub phrasing: PhrasingParams,
    /// Accents on strong beats, 0…1 (the player applies them: it knows the bar).
    pub accent: f32,
    /// How often the chord changes (Off: the tonic triad throughout, as before harmony).
    pub harmony: HarmonicRhythm,
    /// The bass: the key's root held (the drone), or the chord's root and fifth.
    pub bass: BassMode,
    /// A voice that would cross below the voice under it moves by an octave instead.
    pub avoid_crossing: bool,
    /// 0…1: widens the velocity range and lets the phrase-level swell of the norms move it.
    pub dynamics: f32,
    /// 0…1: every second step is late by up to a third of a step (1: triplet swing).
    pub swing: f32,
    /// 0…1: each note a little late and its velocity off by a little, by a hash of the token
    /// (so a bounce is the same every time).
    pub humanise: f32,
    /// Grid steps in a bar, for the harmonic rhythm and the accents (set by the player).
    pub steps_per_bar: u32,
    /// The Tension voice and the pull of tension on the other voices.
    pub tension: TensionMapping,
}

/// What the bass plays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BassMode {
    /// The key's root, held (re-struck only when the key or octave changes).
    #[default]
    Drone,
    /// The current chord's root, and its fifth in the second half of a bar-long chord.
    Moving,
}

impl MappingParams {
    /// The defaults for a model with `hidden_states` states (voices on the first, middle and last).
    pub fn for_hidden_states(hidden_states: usize) -> Self {
        let [first, middle, last] = default_layers(hidden_states);
        let voice = |layer, low, high| VoiceMapping {
            enabled: true,
            mode: MelodyMode::Trajectory,
            layer,
            low,
            high,
        };
        Self {
            voices: [
                voice(first, 72, 96),  // flute-like
                voice(middle, 55, 79), // clarinet-like
                voice(last, 48, 72),   // strings
            ],
            scale: Scale::Major,
            root: Root::C,
            drone_enabled: true,
            drone_octave: 2,
            ornament_amount: 0.5,
            legato_length: TIE_LENGTH,
            staccato_length: 0.3,
            velocity_min: 40,
            velocity_max: 110,
            phrasing: PhrasingParams::default(),
            accent: 0.0,
            harmony: HarmonicRhythm::Off,
            bass: BassMode::Drone,
            avoid_crossing: false,
            dynamics: 0.0,
            swing: 0.0,
            humanise: 0.0,
            steps_per_bar: 8,
            tension: TensionMapping::default(),
        }
    }
}

impl Default for MappingParams {
    /// Defaults for the embedded model (SmolLM2-135M: 30 blocks, 31 hidden states).
    fn default() -> Self {
        Self::for_hidden_states(31)
    }
}

/// Default voice layers: the first, middle and last hidden state (GPT-2's 13 give 0, 6, 12, as
/// in the original work).
pub fn default_layers(hidden_states: usize) -> [usize; VOICES] {
    let last = hidden_states.saturating_sub(1);
    [0, last / 2, last]
}

/// What one voice plays at this step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VoiceNote {
    pub note: u8,
    /// 1..=127.
    pub velocity: u8,
    /// Fraction of the grid step, [0.1, 1.0]; 1.0 ties (legato) into the next step.
    pub length: f32,
    /// The voice's previous note tied into this one and it is the same pitch: keep that note
    /// sounding instead of striking it again.
    pub tied: bool,
    /// A neighbour note later in the step; the main note's `length` already ends before it.
    pub ornament: Option<Ornament>,
}

/// Everything that happens at one grid step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepPlan {
    /// `None` for a disabled voice or a frame without hidden states.
    pub voices: [Option<VoiceNote>; VOICES],
    pub drone: DroneAction,
    pub tension: TensionPlan,
}

/// What one voice remembers from the previous step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct VoiceMemory {
    last_note: Option<u8>,
    /// The last note was planned to tie into this step.
    holds: bool,
    /// PC1 of the voice's layer at the last token (Contour mode).
    last_coord: Option<f32>,
}

/// The mapping's memory between steps: last notes, per-layer norm statistics, the drone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MappingState {
    voices: [VoiceMemory; VOICES],
    dynamics: LayerDynamics,
    drone: DroneState,
    phrasing: PhrasingState,
    harmony: HarmonyState,
    swell: Swell,
    /// The last character of the previous token's text (a word continues across tokens).
    last_char: char,
}

impl Default for MappingState {
    fn default() -> Self {
        Self::new()
    }
}

impl MappingState {
    pub const fn new() -> Self {
        Self {
            voices: [VoiceMemory {
                last_note: None,
                holds: false,
                last_coord: None,
            }; VOICES],
            dynamics: LayerDynamics::new(),
            drone: DroneState::new(),
            phrasing: PhrasingState::new(),
            harmony: HarmonyState::new(),
            swell: Swell::new(),
            last_char: ' ',
        }
    }

    /// Start over (new prompt, restart): forget notes and norm statistics.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The caller has silenced every note (transport jump, stop): nothing ties over into the
    /// next step and the drone starts again. Norm statistics are kept; the model did not change.
    pub fn release_all(&mut self) {
        for voice in &mut self.voices {
            voice.holds = false;
        }
        self.drone.released();
    }

    /// The note `voice` last played.
    pub fn last_note(&self, voice: usize) -> Option<u8> {
        self.voices.get(voice).and_then(|v| v.last_note)
    }

    /// The note the drone is sounding.
    pub fn drone_note(&self) -> Option<u8> {
        self.drone.note()
    }

    /// Bring the drone in line with the parameters without a frame (e.g. a Root change while
    /// no token is due).
    pub fn update_drone(&mut self, params: &MappingParams) -> DroneAction {
        let (root, velocity) = match params.bass {
            BassMode::Drone => (
                params.root,
                middle_velocity(params.velocity_min, params.velocity_max),
            ),
            BassMode::Moving => {
                let (min, max) =
                    spread_bounds(params.velocity_min, params.velocity_max, params.dynamics);
                let pitch_class = self.harmony.bass(params.scale, params.root);
                let z = self.swell.z(params.dynamics);
                (Root::from_pitch_class(pitch_class), velocity(z, min, max))
            }
        };
        self.drone
            .update(params.drone_enabled, root, params.drone_octave, velocity)
    }

    /// Scale degree (0-based) of the chord sounding now.
    pub fn chord_degree(&self) -> u8 {
        self.harmony.degree()
    }
}

/// Turn one frame, played at grid step `step` (counted from the bar line; free-running, the
/// token's index), into this step's notes with the current parameters, and remember what is
/// needed for the next step.
pub fn map_frame(
    frame: &TokenFrame,
    params: &MappingParams,
    step: i64,
    state: &mut MappingState,
) -> StepPlan {
    let states = frame.hidden_states();
    state
        .harmony
        .step(params.harmony, step, params.steps_per_bar);
    let chord = state.harmony.chord(params.scale, params.root);
    // A new paragraph may have moved the register (no shift: the parameters as they are).
    let shift = state.phrasing.register_shift(&params.phrasing);
    let mut shifted = *params;
    for voice in &mut shifted.voices {
        voice.low = (i32::from(voice.low) + shift).clamp(0, 127) as u8;
        voice.high = (i32::from(voice.high) + shift).clamp(0, 127) as u8;
    }
    let params = &shifted;
    let mut voices = [None; VOICES];
    for (v, (slot, voice)) in voices.iter_mut().zip(&params.voices).enumerate() {
        *slot = if voice.enabled && states > 0 {
            Some(map_voice(
                frame,
                params,
                state,
                &chord,
                v,
                voice.layer.min(states - 1),
            ))
        } else {
            None
        };
    }
    let mut previous = [0u8; 4];
    let mark = phrasing::classify(state.last_char.encode_utf8(&mut previous), frame.text());
    state.last_char = frame.text().chars().last().unwrap_or(state.last_char);
    let ranges = params
        .voices
        .map(|v| (v.low.min(v.high), v.low.max(v.high)));
    let harmony = Harmony {
        scale: params.scale,
        root: params.root,
        ranges: &ranges,
    };
    // Where the chord changes, the moving lines land on its tones.
    if params.harmony != HarmonicRhythm::Off && state.harmony.changed() {
        for (v, slot) in voices.iter_mut().enumerate() {
            let (low, high) = ranges[v];
            if let Some(note) = slot
                && params.voices[v].mode == MelodyMode::Contour
                && !chord.contains(note.note)
            {
                note.note = chord.nearest(note.note, low, high);
                note.tied &= state.voices[v].last_note == Some(note.note);
                note.ornament = None;
            }
        }
    }
    phrasing::apply(
        mark,
        &params.phrasing,
        &mut state.phrasing,
        &harmony,
        &mut voices,
    );
    if mark == phrasing::Mark::SentenceEnd && params.phrasing.cadence {
        state.harmony.cadence();
    }
    if params.avoid_crossing {
        uncross(&mut voices, &ranges);
    }
    if params.tension.dissonance > 0.0 {
        for (v, slot) in voices.iter_mut().enumerate() {
            if let Some(note) = slot {
                let drifted = tension::drift(
                    note.note,
                    frame,
                    params.tension.dissonance,
                    params.scale,
                    params.root,
                    v,
                );
                if drifted != note.note {
                    note.note = drifted;
                    note.tied = false;
                    note.ornament = None;
                }
            }
        }
    }
    let tension = tension::plan(frame, &params.tension, &chord);
    for ((slot, memory), voice) in voices.iter().zip(&mut state.voices).zip(&params.voices) {
        match slot {
            Some(event) => {
                memory.last_note = Some(event.note);
                memory.holds = event.length >= TIE_LENGTH && event.ornament.is_none();
            }
            None => memory.holds = false,
        }
        if states > 0 {
            memory.last_coord = Some(unit_coord(frame.coords[voice.layer.min(states - 1)][0]));
        }
    }
    // After the notes: each token is compared with the ones before it.
    let mean_z = (0..states)
        .map(|s| state.dynamics.z(s, frame.norm[s]))
        .sum::<f32>()
        / states.max(1) as f32;
    state.swell.observe(mean_z);
    state.dynamics.observe(frame);
    if states > 0 {
        state.harmony.observe(frame.coords[states - 1][0]);
    }
    StepPlan {
        voices,
        drone: state.update_drone(params),
        tension,
    }
}

/// One voice's note for this frame (the voice is enabled and `layer` is valid).
fn map_voice(
    frame: &TokenFrame,
    params: &MappingParams,
    state: &MappingState,
    chord: &Chord,
    v: usize,
    layer: usize,
) -> VoiceNote {
    let voice = &params.voices[v];
    let (low, high) = {
        let (a, b) = (voice.low.min(127), voice.high.min(127));
        (a.min(b), a.max(b))
    };
    let [pc1, pc2, ..] = frame.coords[layer];
    let pc1 = unit_coord(pc1);

    // Pitch: PC1 alone, linear onto the range, then the nearest scale tone inside it.
    let position = (pc1 + 1.0) * 0.5;
    let pitch = f32::from(low) + position * f32::from(high - low);
    let trajectory = params.scale.nearest_in_range(pitch, params.root, low, high);
    let memory = state.voices[v];
    let note = match voice.mode {
        MelodyMode::Trajectory => trajectory,
        MelodyMode::Contour => match (memory.last_note, memory.last_coord) {
            (Some(last), Some(previous)) => {
                let steps = ((pc1 - previous) * CONTOUR_STEPS).round() as i32;
                let moved = params.scale.degree_step(last, params.root, steps);
                fold_into(moved, params, low, high)
            }
            // The first token starts where the trajectory would.
            _ => trajectory,
        },
        MelodyMode::ChordTones => chord_tone(position, chord, low, high).unwrap_or(trajectory),
        MelodyMode::MarkovLstm => phrase_note(frame.phrase[layer].degree, params, low, high),
    };

    let (min, max) = spread_bounds(params.velocity_min, params.velocity_max, params.dynamics);
    let velocity = if voice.mode == MelodyMode::MarkovLstm {
        let v = fraction(frame.phrase[layer].velocity, 0.5);
        (f32::from(min) + v * f32::from(max.saturating_sub(min))).round() as u8
    } else {
        let z = state.dynamics.z(layer, frame.norm[layer]) + state.swell.z(params.dynamics);
        velocity(z, min, max)
    };

    // Embeddings have no block of their own: use the first block's statistics.
    let block = if layer == 0 && frame.hidden_states() > 1 {
        1
    } else {
        layer
    };
    let entropy = fraction(frame.entropy[block], 0.5);
    let legato = clamp_length(params.legato_length);
    let staccato = clamp_length(params.staccato_length);
    // Written as a weighted sum so both ends are exact.
    let mut length = if voice.mode == MelodyMode::MarkovLstm {
        clamp_length(frame.phrase[layer].duration)
    } else {
        clamp_length(legato * (1.0 - entropy) + staccato * entropy)
    };

    let sparsity = fraction(frame.sparsity[block], 0.0);
    let ornament = ornament::plan(&OrnamentInput {
        index: frame.index,
        voice: v,
        probability: sparsity * fraction(params.ornament_amount, 0.0),
        upward: unit_coord(pc2) >= 0.0,
        main_note: note,
        main_velocity: velocity,
        scale: params.scale,
        root: params.root,
        low,
        high,
    });
    if let Some(ornament) = ornament {
        length = length.min(ornament.offset).max(MIN_LENGTH);
    }

    VoiceNote {
        note,
        velocity,
        length,
        tied: memory.holds && memory.last_note == Some(note),
        ornament,
    }
}

/// Scale degree `degree` (0 = the key's root) counted up from the lowest root in the range.
fn phrase_note(degree: u8, params: &MappingParams, low: u8, high: u8) -> u8 {
    let root = params.root.pitch_class();
    let base = (low..=high).find(|&n| n % 12 == root).unwrap_or_else(|| {
        params
            .scale
            .nearest_in_range(f32::from(low), params.root, low, high)
    });
    let note = params
        .scale
        .degree_step(base, params.root, i32::from(degree.min(6)));
    fold_into(note, params, low, high)
}

/// `note` reflected back into `low..=high` at the edge it crossed, on a scale tone.
fn fold_into(note: u8, params: &MappingParams, low: u8, high: u8) -> u8 {
    let (low, high) = (i32::from(low), i32::from(high));
    let mut n = i32::from(note);
    // Each reflection lands strictly nearer the range; a degenerate range ends at once.
    for _ in 0..8 {
        if n > high {
            n = 2 * high - n;
        } else if n < low {
            n = 2 * low - n;
        } else {
            break;
        }
    }
    let n = n.clamp(low, high);
    params
        .scale
        .nearest_in_range(n as f32, params.root, low as u8, high as u8)
}

/// The tone of `chord` (the tonic triad without harmony) `position` (0…1) picks among those
/// in `low..=high`.
fn chord_tone(position: f32, chord: &Chord, low: u8, high: u8) -> Option<u8> {
    let tones = || (low..=high).filter(move |&n| chord.contains(n));
    let count = tones().count();
    let index = ((position.clamp(0.0, 1.0) * count as f32) as usize).min(count.checked_sub(1)?);
    tones().nth(index)
}

/// Voices in order of their ranges (highest first): where a higher voice sits below the one
/// under it, it moves up by octaves as far as its range allows, else the lower one moves down.
/// A few passes settle three voices (moving one pair can cross the next).
fn uncross(voices: &mut [Option<VoiceNote>; VOICES], ranges: &[(u8, u8); VOICES]) {
    let mut order = [0, 1, 2];
    order.sort_by_key(|&v| std::cmp::Reverse(u16::from(ranges[v].0) + u16::from(ranges[v].1)));
    for _ in 0..VOICES {
        for pair in order.windows(2) {
            let (upper, lower) = (pair[0], pair[1]);
            for _ in 0..10 {
                let (Some(u), Some(l)) = (voices[upper], voices[lower]) else {
                    break;
                };
                if u.note >= l.note {
                    break;
                }
                let (voice, by) = if u.note + 12 <= ranges[upper].1 {
                    (upper, 12)
                } else if l.note >= ranges[lower].0 + 12 {
                    (lower, -12)
                } else {
                    break;
                };
                if let Some(note) = &mut voices[voice] {
                    note.note = note.note.saturating_add_signed(by);
                    note.tied = false;
                    if let Some(ornament) = &mut note.ornament {
                        ornament.note = ornament.note.saturating_add_signed(by);
                    }
                }
            }
        }
    }
    // Octaves could not part them (ranges that overlap a lot): the two exchange pitches,
    // each keeping its own velocity and length, where each pitch fits the other's range.
    for _ in 0..VOICES {
        for pair in order.windows(2) {
            let (upper, lower) = (pair[0], pair[1]);
            let (Some(u), Some(l)) = (voices[upper], voices[lower]) else {
                continue;
            };
            let fits = |note: u8, (low, high): (u8, u8)| (low..=high).contains(&note);
            if u.note < l.note && fits(l.note, ranges[upper]) && fits(u.note, ranges[lower]) {
                for (voice, note) in [(upper, l.note), (lower, u.note)] {
                    if let Some(event) = &mut voices[voice] {
                        event.note = note;
                        event.tied = false;
                        event.ornament = None;
                    }
                }
            }
        }
    }
}

/// A PCA coordinate made safe: NaN is the centre, anything else clamped to [-1, 1].
fn unit_coord(x: f32) -> f32 {
    if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) }
}

/// A [0, 1] statistic made safe: NaN becomes `fallback`.
fn fraction(x: f32, fallback: f32) -> f32 {
    if x.is_nan() {
        fallback
    } else {
        x.clamp(0.0, 1.0)
    }
}

fn clamp_length(x: f32) -> f32 {
    if x.is_nan() {
        TIE_LENGTH
    } else {
        x.clamp(MIN_LENGTH, TIE_LENGTH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::frame::{FRAME_COMPONENTS, MAX_HIDDEN_STATES};

    /// Deterministic synthetic frames shaped like a 12-block model's (13 hidden states).
    struct Frames(u64);
    impl Frames {
        fn next_f32(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 24) as f32
        }
        fn frame(&mut self, index: u32) -> TokenFrame {
            let mut frame = TokenFrame::new(index, index * 7, "tok", 13, 0.8);
            for s in 0..13 {
                let coords = [(); FRAME_COMPONENTS].map(|_| self.next_f32() * 2.0 - 1.0);
                let norm = 5.0 + s as f32 * 10.0 * (0.5 + self.next_f32());
                let (entropy, sparsity) = if s == 0 {
                    (0.0, 0.0)
                } else {
                    (self.next_f32(), self.next_f32())
                };
                frame.set_state(s, coords, norm, entropy, sparsity);
            }
            frame
        }
    }

    fn all_scales_roots() -> impl Iterator<Item = (Scale, Root)> {
        Scale::ALL
            .into_iter()
            .flat_map(|s| Root::ALL.into_iter().map(move |r| (s, r)))
    }

    #[test]
    fn default_layers_are_first_middle_last() {
        assert_eq!(default_layers(13), [0, 6, 12]);
        assert_eq!(default_layers(31), [0, 15, 30]);
        assert_eq!(default_layers(MAX_HIDDEN_STATES), [0, 32, 64]);
        assert_eq!(default_layers(1), [0, 0, 0]);
        assert_eq!(default_layers(0), [0, 0, 0]);
        let params = MappingParams::default();
        assert_eq!(params.voices.map(|v| v.layer), [0, 15, 30]);
        assert_eq!(
            params.voices.map(|v| (v.low, v.high)),
            [(72, 96), (55, 79), (48, 72)]
        );
        assert_eq!(params.drone_octave, 2);
    }

    #[test]
    fn notes_stay_in_range_and_scale() {
        let mut frames = Frames(0x5EED);
        let mut stock: Vec<TokenFrame> = (0..40).map(|i| frames.frame(i)).collect();
        // Hostile values must not escape either.
        stock[3].coords[0][0] = f32::NAN;
        stock[4].coords[6][0] = f32::INFINITY;
        stock[5].coords[12][0] = -7.0;
        stock[6].norm[6] = f32::NAN;
        stock[7].entropy[6] = f32::NAN;
        stock[8].sparsity[12] = f32::INFINITY;
        for (scale, root) in all_scales_roots() {
            let mut params = MappingParams::for_hidden_states(13);
            params.scale = scale;
            params.root = root;
            params.ornament_amount = 1.0;
            params.voices[1].low = 61; // ranges that do not start on a scale tone
            params.voices[1].high = 70;
            let mut state = MappingState::new();
            for frame in &stock {
                let plan = map_frame(frame, &params, 0, &mut state);
                for (voice, event) in params.voices.iter().zip(plan.voices) {
                    let event = event.expect("enabled voice plays");
                    for note in [Some(event.note), event.ornament.map(|o| o.note)]
                        .into_iter()
                        .flatten()
                    {
                        assert!(
                            (voice.low..=voice.high).contains(&note),
                            "{scale:?} {root:?}"
                        );
                        assert!(scale.contains(note, root), "{scale:?} {root:?} {note}");
                    }
                    assert!((params.velocity_min..=params.velocity_max).contains(&event.velocity));
                    assert!((MIN_LENGTH..=TIE_LENGTH).contains(&event.length));
                }
            }
        }
    }

    #[test]
    fn pitch_is_monotone_in_pc1() {
        let mut frames = Frames(77);
        let base = frames.frame(5);
        for (scale, root) in all_scales_roots() {
            let mut params = MappingParams::for_hidden_states(13);
            params.scale = scale;
            params.root = root;
            let mut previous = [0u8; VOICES];
            let mut lowest = [0u8; VOICES];
            for i in 0..=2000 {
                let pc1 = -1.0 + i as f32 / 1000.0;
                let mut frame = base;
                for layer in default_layers(13) {
                    frame.coords[layer][0] = pc1;
                }
                // Same state every time: only PC1 differs.
                let plan = map_frame(&frame, &params, 0, &mut MappingState::new());
                for v in 0..VOICES {
                    let note = plan.voices[v].unwrap().note;
                    assert!(note >= previous[v], "{scale:?} {root:?} voice {v} at {pc1}");
                    if i == 0 {
                        lowest[v] = note;
                    }
                    previous[v] = note;
                }
            }
            // The sweep covers the range: lowest and highest scale tones in it.
            for v in 0..VOICES {
                let voice = params.voices[v];
                let first_in = (voice.low..=voice.high).find(|&n| scale.contains(n, root));
                let last_in = (voice.low..=voice.high)
                    .rev()
                    .find(|&n| scale.contains(n, root));
                assert_eq!(Some(lowest[v]), first_in);
                assert_eq!(Some(previous[v]), last_in);
            }
        }
    }

    #[test]
    fn velocity_follows_norm_against_running_average() {
        let params = MappingParams::for_hidden_states(13);
        let mut frames = Frames(9);
        let mut state = MappingState::new();
        // The first frame plays at the middle whatever its norm.
        let mut first = frames.frame(0);
        first.norm = [1e6; MAX_HIDDEN_STATES];
        let plan = map_frame(&first, &params, 0, &mut state);
        let middle = middle_velocity(params.velocity_min, params.velocity_max);
        assert!(plan.voices.iter().all(|e| e.unwrap().velocity == middle));

        // Warm up around norm 20 on every layer, with some spread.
        let mut state = MappingState::new();
        for i in 0..100 {
            let mut frame = frames.frame(i);
            frame.norm = [20.0 * (1.0 + 0.1 * ((i % 5) as f32 - 2.0)); MAX_HIDDEN_STATES];
            map_frame(&frame, &params, 0, &mut state);
        }
        let probe = frames.frame(100);
        let velocities: Vec<[u8; VOICES]> = [5.0, 12.0, 20.0, 24.0, 40.0, 1000.0]
            .into_iter()
            .map(|norm| {
                let mut frame = probe;
                frame.norm = [norm; MAX_HIDDEN_STATES];
                map_frame(&frame, &params, 0, &mut state.clone())
                    .voices
                    .map(|e| e.unwrap().velocity)
            })
            .collect();
        for v in 0..VOICES {
            for pair in velocities.windows(2) {
                assert!(pair[0][v] < pair[1][v], "voice {v}: {velocities:?}");
            }
            assert!(velocities[0][v] >= params.velocity_min);
            assert!(velocities[5][v] <= params.velocity_max);
            assert!((i32::from(velocities[2][v]) - i32::from(middle)).abs() <= 3);
        }
    }

    #[test]
    fn same_frames_give_same_plans() {
        let params = MappingParams::for_hidden_states(13);
        let run = || {
            let mut frames = Frames(2024);
            let mut state = MappingState::new();
            (0..200)
                .map(|i| map_frame(&frames.frame(i), &params, 0, &mut state))
                .collect::<Vec<_>>()
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        // And the run is not trivially constant: notes, lengths and ornaments vary.
        let notes: std::collections::BTreeSet<u8> =
            a.iter().map(|p| p.voices[1].unwrap().note).collect();
        assert!(notes.len() > 5);
        let ornaments = a
            .iter()
            .flat_map(|p| p.voices)
            .flatten()
            .filter(|e| e.ornament.is_some());
        assert!(ornaments.count() > 20);
        assert!(a.iter().any(|p| p.voices[2].unwrap().length < 0.6));
        assert!(a.iter().any(|p| p.voices[2].unwrap().length > 0.8));
        // Reset gives the same again.
        let mut frames = Frames(2024);
        let mut state = MappingState::new();
        for i in 0..50 {
            map_frame(&frames.frame(i), &params, 0, &mut state);
        }
        state.reset();
        let mut frames = Frames(2024);
        let again: Vec<_> = (0..200)
            .map(|i| map_frame(&frames.frame(i), &params, 0, &mut state))
            .collect();
        assert_eq!(again, a);
    }

    #[test]
    fn scale_and_root_changes_apply_on_the_next_frame() {
        let mut params = MappingParams::for_hidden_states(13);
        params.scale = Scale::Major;
        params.root = Root::C;
        let mut frames = Frames(31);
        let mut state = MappingState::new();
        let plan = map_frame(&frames.frame(0), &params, 0, &mut state);
        assert_eq!(
            plan.drone,
            DroneAction::Start {
                note: 36,
                velocity: 75
            }
        );
        for i in 1..10 {
            let plan = map_frame(&frames.frame(i), &params, 0, &mut state);
            assert_eq!(plan.drone, DroneAction::Keep);
        }
        params.scale = Scale::PentatonicMinor;
        params.root = Root::FSharp;
        for i in 10..60 {
            let plan = map_frame(&frames.frame(i), &params, 0, &mut state);
            if i == 10 {
                assert_eq!(
                    plan.drone,
                    DroneAction::Change {
                        from: 36,
                        to: 42,
                        velocity: 75
                    }
                );
            } else {
                assert_eq!(plan.drone, DroneAction::Keep);
            }
            for event in plan.voices.into_iter().flatten() {
                assert!(Scale::PentatonicMinor.contains(event.note, Root::FSharp));
            }
        }
        // Only the next frame; the change does not wait for the statistics or anything else:
        // the plan equals that of a fresh state apart from velocity/tie memory.
        params.scale = Scale::Chromatic;
        let mut frame = frames.frame(60);
        frame.coords[6][0] = 0.0; // the middle of 55..=79 is exactly 67
        let plan = map_frame(&frame, &params, 0, &mut state);
        assert_eq!(plan.voices[1].unwrap().note, 67);
    }

    #[test]
    fn entropy_sets_length_and_sparsity_sets_ornaments() {
        let mut params = MappingParams::for_hidden_states(13);
        params.legato_length = 1.0;
        params.staccato_length = 0.2;
        params.ornament_amount = 0.0;
        let mut frames = Frames(4);
        let mut frame = frames.frame(0);
        let length_at = |entropy: f32, frame: &mut TokenFrame| {
            frame.entropy = [entropy; MAX_HIDDEN_STATES];
            frame.entropy[0] = 0.0; // embeddings: voice 1 borrows block 1
            map_frame(frame, &params, 0, &mut MappingState::new())
                .voices
                .map(|e| e.unwrap().length)
        };
        assert_eq!(length_at(0.0, &mut frame), [1.0; VOICES]);
        assert_eq!(length_at(1.0, &mut frame), [0.2; VOICES]);
        let mid = length_at(0.5, &mut frame);
        assert!(mid.iter().all(|&l| (l - 0.6).abs() < 1e-6));

        // No sparsity or no amount: never an ornament; full: always (range permitting).
        let count = |sparsity: f32, amount: f32| {
            let mut params = params;
            params.ornament_amount = amount;
            let mut frames = Frames(5);
            let mut state = MappingState::new();
            (0..300)
                .map(|i| {
                    let mut frame = frames.frame(i);
                    frame.sparsity = [sparsity; MAX_HIDDEN_STATES];
                    map_frame(&frame, &params, 0, &mut state)
                })
                .flat_map(|p| p.voices)
                .flatten()
                .filter(|e| e.ornament.is_some())
                .count()
        };
        assert_eq!(count(0.0, 1.0), 0);
        assert_eq!(count(1.0, 0.0), 0);
        assert_eq!(count(1.0, 1.0), 900);
        let half = count(1.0, 0.5);
        assert!((350..550).contains(&half), "{half}");

        // An ornamented note ends where its ornament starts, and never ties.
        params.ornament_amount = 1.0;
        let mut frame = frames.frame(1);
        frame.sparsity = [1.0; MAX_HIDDEN_STATES];
        frame.entropy = [0.0; MAX_HIDDEN_STATES];
        let plan = map_frame(&frame, &params, 0, &mut MappingState::new());
        for event in plan.voices.into_iter().flatten() {
            let ornament = event.ornament.unwrap();
            assert_eq!(event.length, ornament.offset);
            assert!(ornament.note != event.note);
        }
    }

    #[test]
    fn ties_layers_and_disabled_voices() {
        let mut params = MappingParams::for_hidden_states(13);
        params.ornament_amount = 0.0;
        params.voices[0].layer = 100; // clamps to the last state
        params.voices[2].enabled = false;
        let mut frames = Frames(8);
        let mut frame = frames.frame(0);
        frame.entropy = [0.0; MAX_HIDDEN_STATES]; // fully focused: ties
        frame.coords[12][0] = 1.0;
        let mut state = MappingState::new();
        let plan = map_frame(&frame, &params, 0, &mut state);
        assert_eq!(plan.voices[0].unwrap().note, 96); // top of 72..=96, in C major
        assert!(!plan.voices[0].unwrap().tied);
        assert_eq!(plan.voices[2], None);
        // Same note again after a tie: held, not struck.
        frame.index = 1;
        let plan = map_frame(&frame, &params, 0, &mut state);
        assert!(plan.voices[0].unwrap().tied);
        assert_eq!(state.last_note(0), Some(96));
        // After the caller released everything, it is struck again, and so is the drone.
        state.release_all();
        frame.index = 2;
        let plan = map_frame(&frame, &params, 0, &mut state);
        assert!(!plan.voices[0].unwrap().tied);
        assert!(matches!(plan.drone, DroneAction::Start { note: 36, .. }));
        // A frame without hidden states plays nothing and breaks ties.
        let plan = map_frame(&TokenFrame::EMPTY, &params, 0, &mut state);
        assert_eq!(plan.voices, [None; VOICES]);
        let plan = map_frame(&frame, &params, 0, &mut state);
        assert!(!plan.voices[0].unwrap().tied);
    }

    #[test]
    fn the_text_phrases_the_steps_when_phrasing_is_on_and_changes_nothing_when_off() {
        let texts = [
            " The", " forest", ",", " sil", "ent", ".", " Then", "\n\n", " rain",
        ];
        let play = |phrasing: PhrasingParams| {
            let mut frames = Frames(11);
            let mut params = MappingParams::for_hidden_states(13);
            params.ornament_amount = 0.0;
            params.phrasing = phrasing;
            let mut state = MappingState::new();
            texts
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let mut frame = frames.frame(i as u32);
                    frame.set_text(text);
                    map_frame(&frame, &params, 0, &mut state).voices
                })
                .collect::<Vec<_>>()
        };
        let plain = play(PhrasingParams::default());
        let phrased = play(PhrasingParams {
            comma_breath: 1.0,
            cadence: true,
            paragraph_shift: 12,
            word_ties: true,
        });
        assert!(plain.iter().all(|step| step.iter().all(Option::is_some)));
        assert_eq!(
            phrased[..2],
            plain[..2],
            "plain words play as without phrasing"
        );
        assert_eq!(phrased[2], [None; VOICES], "a full breath at the comma");
        assert!(
            phrased[4].iter().flatten().all(|n| n.length == TIE_LENGTH),
            "'ent' ties"
        );
        let c_major_triad = [0, 4, 7];
        assert!(
            phrased[5]
                .iter()
                .flatten()
                .all(|n| c_major_triad.contains(&(n.note % 12))),
            "the full stop cadences on the tonic triad: {:?}",
            phrased[5]
        );
        assert_eq!(phrased[6], [None; VOICES], "and the next step rests");
        // After the paragraph the voices sing an octave higher than they would have.
        let (up, before) = (phrased[8], plain[8]);
        for (a, b) in up.iter().flatten().zip(before.iter().flatten()) {
            assert!(a.note >= b.note + 10, "{} vs {}", a.note, b.note);
        }
    }

    /// Frames whose states drift: PC1 of every layer moves by a little each token (as deep
    /// layers do), around a slow wave.
    fn drifting(count: u32) -> Vec<TokenFrame> {
        let mut noise = Frames(3);
        (0..count)
            .map(|i| {
                let mut frame = noise.frame(i);
                for s in 0..13 {
                    let mut coords = frame.coords[s];
                    coords[0] = (i as f32 * 0.15).sin() * 0.8 + (noise.next_f32() - 0.5) * 0.1;
                    frame.set_state(
                        s,
                        coords,
                        frame.norm[s],
                        frame.entropy[s],
                        frame.sparsity[s],
                    );
                }
                frame
            })
            .collect()
    }

    fn melody(mode: MelodyMode, frames: &[TokenFrame]) -> (Vec<u8>, (u8, u8)) {
        let mut params = MappingParams::for_hidden_states(13);
        params.ornament_amount = 0.0;
        params.voices[1].mode = mode;
        let mut state = MappingState::new();
        let notes = frames
            .iter()
            .map(|f| {
                map_frame(f, &params, 0, &mut state).voices[1]
                    .expect("voice 2")
                    .note
            })
            .collect();
        (notes, (params.voices[1].low, params.voices[1].high))
    }

    #[test]
    fn contour_moves_by_how_far_the_state_moved_and_chord_tones_stay_on_the_triad() {
        let frames = drifting(64);
        let (trajectory, (low, high)) = melody(MelodyMode::Trajectory, &frames);
        let (contour, _) = melody(MelodyMode::Contour, &frames);
        let (chords, _) = melody(MelodyMode::ChordTones, &frames);
        assert_eq!(
            contour[0], trajectory[0],
            "the contour starts where the trajectory would"
        );
        let small = |notes: &[u8]| {
            notes
                .windows(2)
                .filter(|w| w[0].abs_diff(w[1]) <= 5)
                .count() as f32
                / (notes.len() - 1) as f32
        };
        assert!(small(&contour) >= 0.8, "steps, not leaps: {contour:?}");
        assert!(contour.iter().all(|n| (low..=high).contains(n)));
        assert!(contour.iter().all(|n| Scale::Major.contains(*n, Root::C)));
        assert!(
            contour
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 4,
            "it moves"
        );
        assert!(
            chords
                .iter()
                .all(|n| [0, 4, 7].contains(&(n % 12)) && (low..=high).contains(n))
        );
        assert_ne!(contour, trajectory);
    }

    #[test]
    fn contour_folds_back_at_the_range_edges() {
        let mut params = MappingParams::for_hidden_states(13);
        params.voices[0].mode = MelodyMode::Contour;
        for note in [50u8, 100, 127, 0] {
            let folded = fold_into(note, &params, 72, 96);
            assert!(
                (72..=96).contains(&folded) && Scale::Major.contains(folded, Root::C),
                "{note} → {folded}"
            );
        }
        assert_eq!(
            fold_into(100, &params, 72, 96),
            91,
            "4 above the top is 4 below it (92), on the lower tone of the tie"
        );
    }
}
