//! Where the plugin's audio thread takes its frames from: the model's queue, or the saved run
//! of a reopened project (replay mode, no model). Both are built off the audio thread; the
//! switch is an atomic read once per block. Every played frame goes to the editor's history,
//! and live ones to the run collector (which the project saves). The source keeps the run's
//! [`Clip`], so what was played survives re-activation and the host can seek over it.

use crate::loudness::CurvePoint;
use crate::music::frame::TokenFrame;
use crate::playback::clip::Clip;
use crate::playback::history::HistoryWriter;
use crate::playback::player::FrameSource;
use crate::project::collector::CollectorWriter;
use crate::project::saved_run::{REPLAY_RUN, ReplayInbox, SavedRun};
use crate::worker::feed::QueueSource;

pub struct PluginSource {
    pub live: QueueSource,
    /// The live run, or the saved run, on the grid; free-running replay plays the saved run's
    /// frames in order, from `replay_next`.
    clip: Clip,
    replay_next: usize,
    saved: SavedRun,
    collector: Option<CollectorWriter>,
    inbox: Option<ReplayInbox>,
    history: Option<HistoryWriter>,
    /// This block's grid tempo, for the collector.
    bpm: f64,
    replaying: bool,
    /// The audio thread has asked for new text after the saved run: play live now, before the
    /// housekeeping thread has left replay mode.
    going_live: bool,
}

impl PluginSource {
    pub fn new(live: QueueSource, saved: SavedRun) -> Self {
        Self {
            live,
            clip: Clip::new(),
            replay_next: 0,
            saved,
            collector: None,
            inbox: None,
            history: None,
            bpm: 0.0,
            replaying: false,
            going_live: false,
        }
    }

    /// Report every played frame to the editor through `writer`.
    pub fn set_history(&mut self, writer: HistoryWriter) {
        self.history = Some(writer);
    }

    /// Report live frames to the run collector through `writer`; take runs restored while
    /// running from `inbox`.
    pub fn connect(&mut self, (writer, inbox): (CollectorWriter, ReplayInbox)) {
        self.collector = Some(writer);
        self.inbox = Some(inbox);
    }

    /// Offline bounce: the queue waits for the worker, the collector for room.
    pub fn set_offline(&mut self, wait: Option<std::time::Duration>) {
        self.live.set_offline(wait);
        if let Some(collector) = &mut self.collector {
            collector.set_offline(wait.is_some());
        }
    }

    /// Activation: replay this saved run (built by the caller, off the audio thread).
    pub fn install_replay(&mut self, clip: Clip) {
        self.clip = clip;
        self.replay_next = 0;
    }

    /// Audio thread, before each block: the mode (an atomic), a run restored meanwhile, and
    /// the grid's tempo.
    pub fn begin_block(&mut self, bpm: f64) {
        self.bpm = bpm;
        // The flag first: a restore pushes its frames before setting it.
        let saved = self.saved.is_replaying();
        self.going_live &= saved;
        self.replaying = saved && !self.going_live;
        if let Some(inbox) = &mut self.inbox
            && inbox.take(&mut self.clip)
        {
            self.replay_next = 0;
        }
    }

    /// The saved run has ended and the model was asked for new text: its frames play from the
    /// next step.
    pub fn go_live(&mut self) {
        self.going_live = true;
        self.replaying = false;
    }

    /// Whether saved frames are playing instead of the model's.
    pub fn is_replaying(&self) -> bool {
        self.replaying
    }

    /// The saved run has played to its end (on the grid, or free-running).
    pub fn replay_finished(&self) -> bool {
        self.replaying && (self.clip.ended() || self.replay_next >= self.clip.frames().len())
    }
}

impl FrameSource for PluginSource {
    fn next_frame(&mut self) -> Option<TokenFrame> {
        if !self.replaying {
            return self.live.next_frame();
        }
        let frame = self.clip.frames().get(self.replay_next).copied();
        self.replay_next += usize::from(frame.is_some());
        frame
    }

    fn heard(&mut self, frame: &TokenFrame) {
        if !self.replaying {
            self.live.heard(frame);
        }
    }

    fn replayed(&mut self, frame: &TokenFrame, point: &CurvePoint) {
        if let Some(history) = &mut self.history {
            history.record(frame, point);
        }
    }

    fn clip(&mut self) -> Option<&mut Clip> {
        Some(&mut self.clip)
    }

    fn live_run(&self) -> Option<u32> {
        if self.replaying {
            Some(REPLAY_RUN)
        } else {
            self.live.live_run()
        }
    }

    fn exhausted(&self) -> bool {
        self.replaying && self.replay_next >= self.clip.frames().len()
    }

    fn played(&mut self, frame: &TokenFrame, point: &CurvePoint, step: Option<i64>) {
        if !self.replaying {
            self.live.played(frame, point, step);
            if let Some(collector) = &mut self.collector {
                collector.record(frame, point, self.bpm, step);
            }
        }
        if let Some(history) = &mut self.history {
            history.record(frame, point);
        }
    }
}
