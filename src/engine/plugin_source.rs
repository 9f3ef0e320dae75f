//! Where the plugin's audio thread takes its frames from: the model's queue, or the saved run
//! of a reopened project (replay mode, no model). Both are built off the audio thread; the
//! switch is an atomic read once per block. Every played frame goes to the editor's history,
//! and live ones to the run collector (which the project saves).

use crate::engine::feed::QueueSource;
use crate::engine::history::HistoryWriter;
use crate::engine::player::FrameSource;
use crate::engine::recording::Playback;
use crate::engine::run_collector::CollectorWriter;
use crate::engine::saved_run::{ReplayInbox, SavedRun};
use crate::loudness::CurvePoint;
use crate::music::frame::TokenFrame;

pub struct PluginSource {
    pub live: QueueSource,
    replay: Playback,
    saved: SavedRun,
    collector: Option<CollectorWriter>,
    inbox: Option<ReplayInbox>,
    history: Option<HistoryWriter>,
    /// This block's grid tempo, for the collector.
    bpm: f64,
    replaying: bool,
    /// Replaying, a step found no saved frame left.
    ran_out: bool,
}

impl PluginSource {
    pub fn new(live: QueueSource, saved: SavedRun) -> Self {
        Self {
            live,
            replay: Playback::new(Vec::new()),
            saved,
            collector: None,
            inbox: None,
            history: None,
            bpm: 0.0,
            replaying: false,
            ran_out: false,
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

    /// Activation: replay these saved frames from the start (allocated by the caller).
    pub fn install_replay(&mut self, frames: Vec<TokenFrame>) {
        self.replay = Playback::new(frames);
        self.ran_out = false;
    }

    /// The host's reset: a replay starts again from its first frame.
    pub fn rewind(&mut self) {
        self.replay.rewind();
        self.ran_out = false;
    }

    /// Audio thread, before each block: the mode (an atomic), a run restored meanwhile, and
    /// the grid's tempo.
    pub fn begin_block(&mut self, bpm: f64) {
        self.bpm = bpm;
        // The flag first: a restore pushes its frames before setting it.
        self.replaying = self.saved.is_replaying();
        if let Some(inbox) = &mut self.inbox {
            let replay = &mut self.replay;
            let arrived =
                inbox.take(|| std::mem::replace(replay, Playback::new(Vec::new())).into_frames());
            if let Some(frames) = arrived {
                self.replay = Playback::new(frames);
                self.ran_out = false;
            }
        }
    }

    /// Whether saved frames are playing instead of the model's.
    pub fn is_replaying(&self) -> bool {
        self.replaying
    }

    /// The saved run has played to its end: the notes should stop.
    pub fn replay_finished(&self) -> bool {
        self.replaying && self.ran_out
    }
}

impl FrameSource for PluginSource {
    fn next_frame(&mut self) -> Option<TokenFrame> {
        if !self.replaying {
            return self.live.next_frame();
        }
        let frame = self.replay.next_frame();
        self.ran_out |= frame.is_none();
        frame
    }

    fn played(&mut self, frame: &TokenFrame, point: &CurvePoint) {
        if !self.replaying {
            self.live.played(frame, point);
            if let Some(collector) = &mut self.collector {
                collector.record(frame, point, self.bpm);
            }
        }
        if let Some(history) = &mut self.history {
            history.record(frame, point);
        }
    }
}
