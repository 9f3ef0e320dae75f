//! The run as a clip on the host's timeline: which token belongs to which grid step, so the
//! transport can stop, seek and loop over what the model wrote.
//!
//! Token `i` of a run plays at grid step `anchor + i`, where the anchor is the step its first
//! token played on. Every step the transport has passed is remembered as a [`Slot`]: the token
//! played there, a held step (no token was ready), or a rest (a gap the playhead skipped past).
//! A step already remembered plays again from here; a step past the end (the frontier) takes
//! the model's next token. Jumping ahead of the frontier leaves the skipped steps as rests: the
//! text goes on where the playhead is, and a later pass over the gap is silent there, as it was.
//!
//! The mapping from a frame to notes keeps state (each layer's running norm statistics, the
//! last note of each voice, the drone). To play a remembered step after a jump with the same
//! notes as the first pass, the clip keeps the mapping state every [`CHECKPOINT_EVERY`]
//! slots and replays the few frames between the checkpoint and the step.
//!
//! A saved run comes back as a *closed* clip ([`Clip::saved`]): its tokens on the steps they
//! were first played on, and nothing past its end (the notes are released there).
//!
//! Everything is allocated in [`Clip::new`]; the audio thread only reads and writes within
//! the capacity. A run longer than the capacity plays on, but only its first steps can be
//! played again.

use crate::music::frame::TokenFrame;
use crate::music::voices::{MappingParams, MappingState, map_frame};

/// Grid steps a run remembers (the saved run keeps as many tokens): 17 minutes at 120 BPM and
/// 2 tokens per beat.
pub const CLIP_STEPS: usize = 4096;
/// Slots between stored mapping states: at most this many frames are mapped again on a jump.
pub const CHECKPOINT_EVERY: usize = 16;

/// What one grid step of a run holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Nothing plays (a gap the playhead skipped); notes already sounding end on schedule.
    Rest,
    /// No token was ready: the sounding notes were held through the step.
    Hold,
    /// The token with this index in [`Clip::frames`].
    Token(u32),
}

/// What to do at a grid step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cue<'a> {
    /// A step not played before: take the model's next token (and [`Clip::record`] it).
    Live,
    /// Play this remembered token again.
    Again(&'a TokenFrame),
    /// Hold the sounding notes, as the first pass did.
    Hold,
    /// Play nothing new: before the run's first token, or in a gap.
    Rest,
    /// Past the end of a saved run: release everything, play nothing.
    End,
}

/// How a loop (a jump back into what was played) behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopPasses {
    /// Every pass plays the same tokens.
    Replay,
    /// Each pass forgets what followed the loop start, and the model writes on there.
    Anew,
}

pub struct Clip {
    /// Grid step of slot 0; `None` until a run's first token plays.
    anchor: Option<i64>,
    /// The run the slots belong to.
    run: Option<u32>,
    slots: Vec<Slot>,
    frames: Vec<TokenFrame>,
    /// Mapping state before slot `CHECKPOINT_EVERY * j`, for each `j` recorded so far.
    checkpoints: Vec<MappingState>,
    /// The step the last cue was for: a cue for an earlier step is a jump back.
    last_step: Option<i64>,
    /// A saved run: nothing is recorded, nothing comes after its last step.
    closed: bool,
    /// A step past a closed clip's end was cued.
    ended: bool,
}

impl Clip {
    /// Allocates room for [`CLIP_STEPS`] steps; call off the audio thread.
    pub fn new() -> Self {
        Self::with_capacity(CLIP_STEPS)
    }

    pub fn with_capacity(steps: usize) -> Self {
        Self {
            anchor: None,
            run: None,
            slots: Vec::with_capacity(steps),
            frames: Vec::with_capacity(steps),
            checkpoints: Vec::with_capacity(steps.div_ceil(CHECKPOINT_EVERY)),
            last_step: None,
            closed: false,
            ended: false,
        }
    }

    /// A saved run as a closed clip: `frames` (of one run) on the grid steps they were first
    /// played on, or, without `steps`, one per step from wherever the transport first plays it.
    /// The mapping state is rebuilt as the first pass had it; steps out of order or beyond the
    /// capacity are left out.
    /// `params`: the mapping the run was played with, so the checkpoints hold the state (the
    /// chords included) a first pass had.
    pub fn saved(frames: &[TokenFrame], steps: Option<&[i64]>, params: &MappingParams) -> Self {
        let mut clip = Self::new();
        let mut state = MappingState::new();
        for (i, frame) in frames.iter().enumerate() {
            let step = match steps {
                Some(steps) => match steps.get(i) {
                    Some(&step) => step,
                    None => break,
                },
                None => i as i64,
            };
            clip.record(step, Some(frame), &state);
            map_frame(frame, params, step, &mut state);
        }
        clip.closed = true;
        clip.last_step = None;
        if steps.is_none() {
            clip.anchor = None;
        }
        clip
    }

    /// The tokens remembered, in play order.
    pub fn frames(&self) -> &[TokenFrame] {
        &self.frames
    }

    /// A step past the end of a saved run has been reached.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Forget the run: the next token anchors a new one.
    pub fn clear(&mut self) {
        self.anchor = None;
        self.run = None;
        self.slots.clear();
        self.frames.clear();
        self.checkpoints.clear();
        self.last_step = None;
        self.closed = false;
        self.ended = false;
    }

    /// Grid step of the run's first token.
    pub fn anchor(&self) -> Option<i64> {
        self.anchor
    }

    /// Steps remembered (the frontier is `anchor + len`).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The token remembered at `step`, if any.
    pub fn token_at(&self, step: i64) -> Option<&TokenFrame> {
        match self.slot(step)? {
            Slot::Token(i) => self.frames.get(i as usize),
            Slot::Rest | Slot::Hold => None,
        }
    }

    fn index(&self, step: i64) -> Option<usize> {
        usize::try_from(step.checked_sub(self.anchor?)?).ok()
    }

    fn slot(&self, step: i64) -> Option<Slot> {
        self.slots.get(self.index(step)?).copied()
    }

    /// What step `step` plays. `live_run` is the run the model is writing now: a different one
    /// than the clip's (new text was asked for) is taken live wherever the playhead is.
    /// A jump back with [`LoopPasses::Anew`] forgets everything from `step` on.
    pub fn cue(&mut self, step: i64, live_run: Option<u32>, passes: LoopPasses) -> Cue<'_> {
        let back = self.last_step.is_some_and(|last| step <= last);
        self.last_step = Some(step);
        if live_run.is_some() && live_run != self.run {
            return Cue::Live;
        }
        if self.anchor.is_none() && self.closed {
            // A saved run without its positions starts where the transport first plays it.
            self.anchor = Some(step);
        }
        let Some(anchor) = self.anchor else {
            return Cue::Live;
        };
        if step < anchor {
            return Cue::Rest;
        }
        if back && passes == LoopPasses::Anew && !self.closed {
            self.truncate(step);
        }
        match self.slot(step) {
            Some(Slot::Token(i)) => self.frames.get(i as usize).map_or(Cue::Rest, Cue::Again),
            Some(Slot::Hold) => Cue::Hold,
            Some(Slot::Rest) => Cue::Rest,
            None if self.closed => {
                self.ended = true;
                Cue::End
            }
            None => Cue::Live,
        }
    }

    /// Forgets the slots from `step` on (and the frames only they held).
    fn truncate(&mut self, step: i64) {
        let Some(at) = self.index(step) else { return };
        if at >= self.slots.len() {
            return;
        }
        let first_frame = self.slots[at..].iter().find_map(|slot| match slot {
            Slot::Token(i) => Some(*i as usize),
            _ => None,
        });
        self.slots.truncate(at);
        if let Some(first) = first_frame {
            self.frames.truncate(first);
        }
        self.checkpoints.truncate(at.div_ceil(CHECKPOINT_EVERY));
    }

    /// A token played live at `step` (`frame` of `None`: none was ready, the notes held).
    /// `before` is the mapping state just before the step. A frame of a run other than the
    /// clip's starts a new run anchored here; a step past the frontier leaves rests in
    /// between. Beyond the capacity nothing is remembered.
    pub fn record(&mut self, step: i64, frame: Option<&TokenFrame>, before: &MappingState) {
        if self.closed && frame.is_some_and(|f| Some(f.run) == self.run) {
            return;
        }
        let fresh = MappingState::new();
        let mut before = before;
        if let Some(frame) = frame
            && (self.run != Some(frame.run) || self.anchor.is_none())
        {
            self.clear();
            self.run = Some(frame.run);
            self.anchor = Some(step);
            self.last_step = Some(step);
            // The player starts a new run's mapping afresh.
            before = &fresh;
        }
        let Some(at) = self.index(step) else { return };
        if at < self.slots.len() || at >= self.slots.capacity() {
            // Recorded already, or beyond what can be remembered.
            return;
        }
        let slot = match frame {
            Some(frame) if self.frames.len() < self.frames.capacity() => {
                self.frames.push(*frame);
                Slot::Token((self.frames.len() - 1) as u32)
            }
            Some(_) => return,
            None => Slot::Hold,
        };
        while self.slots.len() < at {
            self.push_slot(Slot::Rest, before);
        }
        self.push_slot(slot, before);
    }

    fn push_slot(&mut self, slot: Slot, before: &MappingState) {
        if self.slots.len().is_multiple_of(CHECKPOINT_EVERY)
            && self.checkpoints.len() < self.checkpoints.capacity()
        {
            self.checkpoints.push(*before);
        }
        self.slots.push(slot);
    }

    /// The mapping state the first pass had just before `step`, as the current `params` map
    /// the tokens: from the nearest checkpoint, the frames in between mapped again. `None`
    /// outside what was remembered.
    pub fn state_before(&self, step: i64, params: &MappingParams) -> Option<MappingState> {
        let at = self.index(step)?.min(self.slots.len());
        let checkpoint = (at / CHECKPOINT_EVERY).min(self.checkpoints.len().checked_sub(1)?);
        let mut state = self.checkpoints[checkpoint];
        let anchor = self.anchor?;
        let from = checkpoint * CHECKPOINT_EVERY;
        for (k, slot) in self.slots[from..at].iter().enumerate() {
            if let Slot::Token(i) = slot
                && let Some(frame) = self.frames.get(*i as usize)
            {
                map_frame(frame, params, anchor + (from + k) as i64, &mut state);
            }
        }
        Some(state)
    }
}

impl Default for Clip {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(run: u32, index: u32) -> TokenFrame {
        let mut frame = TokenFrame::new(index, index, "t", 3, 0.7);
        frame.run = run;
        for state in 0..3 {
            let x = ((index * 5 + state as u32) % 9) as f32 / 4.0 - 1.0;
            frame.set_state(
                state,
                crate::music::frame::components(&[x, 0.0, 0.0, 0.0]),
                5.0 + index as f32,
                0.5,
                0.5,
            );
        }
        frame
    }

    fn index_of(cue: Cue<'_>) -> Option<u32> {
        match cue {
            Cue::Again(frame) => Some(frame.index),
            _ => None,
        }
    }

    #[test]
    fn steps_replay_their_tokens_and_the_frontier_goes_live() {
        let mut clip = Clip::with_capacity(64);
        let state = MappingState::new();
        let run = Some(1);
        assert_eq!(clip.cue(10, run, LoopPasses::Replay), Cue::Live);
        for (step, index) in (10..14).zip(0..) {
            clip.record(step, Some(&frame(1, index)), &state);
        }
        clip.record(14, None, &state);
        assert_eq!(clip.anchor(), Some(10));
        assert_eq!(clip.cue(9, run, LoopPasses::Replay), Cue::Rest);
        assert_eq!(index_of(clip.cue(12, run, LoopPasses::Replay)), Some(2));
        assert_eq!(clip.cue(14, run, LoopPasses::Replay), Cue::Hold);
        assert_eq!(clip.cue(15, run, LoopPasses::Replay), Cue::Live);
        // Past the frontier: the gap becomes rests, the token lands on the playhead.
        clip.record(20, Some(&frame(1, 4)), &state);
        assert_eq!(clip.cue(17, run, LoopPasses::Replay), Cue::Rest);
        assert_eq!(index_of(clip.cue(20, run, LoopPasses::Replay)), Some(4));
        // A new run is taken live anywhere, and starts a clip of its own.
        assert_eq!(clip.cue(12, Some(2), LoopPasses::Replay), Cue::Live);
        clip.record(12, Some(&frame(2, 0)), &state);
        assert_eq!(clip.anchor(), Some(12));
        assert_eq!(clip.len(), 1);
    }

    #[test]
    fn a_loop_played_anew_forgets_what_followed_its_start() {
        let mut clip = Clip::with_capacity(64);
        let state = MappingState::new();
        for index in 0..8 {
            clip.cue(i64::from(index), Some(1), LoopPasses::Anew);
            clip.record(i64::from(index), Some(&frame(1, index)), &state);
        }
        // Jump back to step 4: replayed passes keep the tokens, fresh passes drop them.
        assert_eq!(index_of(clip.cue(4, Some(1), LoopPasses::Replay)), Some(4));
        assert_eq!(clip.cue(4, Some(1), LoopPasses::Anew), Cue::Live);
        assert_eq!(clip.len(), 4);
        clip.record(4, Some(&frame(1, 8)), &state);
        assert_eq!(index_of(clip.cue(4, Some(1), LoopPasses::Replay)), Some(8));
    }

    #[test]
    fn the_mapping_state_is_rebuilt_as_the_first_pass_had_it() {
        let mut clip = Clip::with_capacity(256);
        let params = MappingParams::default();
        let mut state = MappingState::new();
        let mut states = Vec::new();
        for index in 0..100u32 {
            states.push(state);
            let frame = frame(3, index);
            clip.record(i64::from(index) + 7, Some(&frame), &state);
            map_frame(&frame, &params, 0, &mut state);
        }
        for (index, expected) in states.iter().enumerate() {
            let step = index as i64 + 7;
            assert_eq!(clip.state_before(step, &params).as_ref(), Some(expected));
        }
        assert_eq!(clip.state_before(6, &params), None);
    }

    #[test]
    fn a_saved_run_sits_where_it_was_played_and_ends() {
        let frames: Vec<_> = (0..4).map(|i| frame(9, i)).collect();
        let mut clip = Clip::saved(&frames, Some(&[20, 21, 24, 25]), &MappingParams::default());
        let run = Some(9);
        assert_eq!(clip.cue(19, run, LoopPasses::Anew), Cue::Rest);
        assert_eq!(index_of(clip.cue(21, run, LoopPasses::Anew)), Some(1));
        assert_eq!(clip.cue(22, run, LoopPasses::Anew), Cue::Rest, "the gap");
        assert_eq!(index_of(clip.cue(24, run, LoopPasses::Anew)), Some(2));
        assert!(!clip.ended());
        assert_eq!(clip.cue(26, run, LoopPasses::Anew), Cue::End);
        assert!(clip.ended());
        // Closed: a jump back replays it whatever the loop setting.
        assert_eq!(index_of(clip.cue(20, run, LoopPasses::Anew)), Some(0));
        // New text replaces it.
        assert_eq!(clip.cue(21, Some(3), LoopPasses::Replay), Cue::Live);
        clip.record(21, Some(&frame(3, 0)), &MappingState::new());
        assert_eq!(clip.anchor(), Some(21));
        assert_eq!(clip.cue(22, Some(3), LoopPasses::Replay), Cue::Live);

        // Without positions it starts where the transport first plays it.
        let mut clip = Clip::saved(&frames, None, &MappingParams::default());
        assert_eq!(index_of(clip.cue(100, run, LoopPasses::Replay)), Some(0));
        assert_eq!(index_of(clip.cue(103, run, LoopPasses::Replay)), Some(3));
        assert_eq!(clip.cue(104, run, LoopPasses::Replay), Cue::End);
    }

    #[test]
    fn a_saved_clip_rebuilds_the_first_passes_norm_statistics() {
        let frames: Vec<_> = (0..40).map(|i| frame(9, i)).collect();
        let steps: Vec<i64> = (0..40).collect();
        let clip = Clip::saved(&frames, Some(&steps), &MappingParams::default());
        let params = MappingParams::default();
        let mut state = MappingState::new();
        for frame in &frames[..33] {
            map_frame(frame, &params, 0, &mut state);
        }
        assert_eq!(clip.state_before(33, &params), Some(state));
    }

    #[test]
    fn nothing_past_the_capacity_is_remembered() {
        let mut clip = Clip::with_capacity(4);
        let state = MappingState::new();
        for index in 0..6u32 {
            clip.record(i64::from(index), Some(&frame(1, index)), &state);
        }
        assert_eq!(clip.len(), 4);
        assert_eq!(clip.cue(5, Some(1), LoopPasses::Replay), Cue::Live);
        assert_eq!(index_of(clip.cue(3, Some(1), LoopPasses::Replay)), Some(3));
    }
}
