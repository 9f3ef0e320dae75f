//! Frame sources around a run file: one that records what another source played (the render
//! writes it to the run file), and one that plays recorded frames back (replay, no model).

use crate::io::run_file::PlayedToken;
use crate::loudness::CurvePoint;
use crate::music::frame::TokenFrame;

use crate::playback::player::FrameSource;

/// Passes frames through from `inner` and keeps every frame played with its curve point.
/// Grows a list: for the command line, not the plugin's audio thread.
pub struct Recorder<S> {
    pub inner: S,
    pub played: Vec<PlayedToken>,
}

impl<S: FrameSource> Recorder<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            played: Vec::new(),
        }
    }
}

impl<S: FrameSource> FrameSource for Recorder<S> {
    fn next_frame(&mut self) -> Option<TokenFrame> {
        self.inner.next_frame()
    }

    fn heard(&mut self, frame: &TokenFrame) {
        self.inner.heard(frame);
    }

    fn played(&mut self, frame: &TokenFrame, point: &CurvePoint, step: Option<i64>) {
        self.inner.played(frame, point, step);
        self.played.push(PlayedToken {
            frame: *frame,
            point: *point,
        });
    }
}

/// Recorded frames, one per step, as if the worker were always ahead; then nothing.
pub struct Playback {
    frames: Vec<TokenFrame>,
    next: usize,
}

impl Playback {
    pub fn new(frames: Vec<TokenFrame>) -> Self {
        Self { frames, next: 0 }
    }

    /// The frames, to be dropped elsewhere (the audio thread must not free them).
    pub fn into_frames(self) -> Vec<TokenFrame> {
        self.frames
    }

    /// From the first frame again.
    pub fn rewind(&mut self) {
        self.next = 0;
    }

    /// Frames not yet played.
    pub fn remaining(&self) -> usize {
        self.frames.len().saturating_sub(self.next)
    }
}

impl FrameSource for Playback {
    fn next_frame(&mut self) -> Option<TokenFrame> {
        let frame = self.frames.get(self.next).copied();
        self.next += usize::from(frame.is_some());
        frame
    }

    fn played(&mut self, _frame: &TokenFrame, _point: &CurvePoint, _step: Option<i64>) {}
}
