//! The run kept with the project: the persisted `run` field of the plugin state.
//!
//! It holds the collection of the run being played ([`super::collector`]) and writes it
//! into the state as a run file (`.lcrun`, the same bytes `latent-choir render --run` writes)
//! in base64. Loading a state with a run puts the plugin in replay mode: at its next
//! activation the saved frames play instead of the model's, until the user asks for new text
//! ([`SavedRun::leave_replay`]). A state loaded while the plugin is running (a preset, a host's
//! undo) hands its frames to the audio thread through a small ring instead, and they play from
//! the next block; the frames they replace come back the same way to be freed here. A state
//! whose run cannot be read is reported, never fatal: the plugin generates with the model as if
//! there were no saved run.

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use nice_plug::params::persist::PersistentField;
use nice_plug::prelude::nice_log;

use crate::io::run_file::Run;
use crate::music::frame::TokenFrame;

use crate::offline::replay::recorded_params;
use crate::playback::clip::Clip;

use super::collector::{Collection, CollectorReader, CollectorWriter, Describer, collector};

/// The run id replayed frames carry: never one the worker gives, so the player starts the
/// live run afresh when the user asks for new text.
pub const REPLAY_RUN: u32 = u32::MAX;

/// A handle to the saved run, shared by the parameters (for the state), the plugin, its
/// collector thread and the editor.
#[derive(Clone, Default)]
pub struct SavedRun(Arc<Shared>);

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    /// Saved frames play instead of the model's (read by the audio thread every block).
    replaying: AtomicBool,
    sample_rate: AtomicU32,
}

#[derive(Default)]
struct Inner {
    reader: Option<CollectorReader>,
    /// To the audio thread: frames of a run restored while it runs; back: the ones they
    /// replaced, freed by the next drain.
    handoff: Option<Handoff>,
    describer: Option<Describer>,
    /// The run being played (collected live, or restored and being replayed).
    collection: Option<Collection>,
    /// A restored run waiting for the next activation to be replayed.
    pending: Option<Run>,
    /// What the editor shows about the saved run (a restore problem, replay mode).
    message: String,
    /// The last state text and what it was made of: hosts may ask for the state often (undo
    /// snapshots), and an unchanged run is not encoded again.
    encoded: Option<(Shape, Arc<String>)>,
}

/// This side of the restored-run handoff: runs out, replaced ones back.
type Handoff = (rtrb::Producer<Box<Clip>>, rtrb::Consumer<Box<Clip>>);

/// What a state text was made of: a restored run (`None`) or a collection's run and length.
type Shape = Option<(u32, usize)>;

/// A saved run made ready for the audio thread (off it: building it allocates): its frames on
/// the grid steps they were played on, a closed clip.
fn restored(run: &Run) -> Box<Clip> {
    let frames = replay_frames(run);
    let mapping = recorded_params(run)
        .map(|params| {
            let mut mapping = params.mapping();
            // Four beats a bar on the host's grid, as the player counts them.
            let per_bar = 4.0 * params.generation.tokens_per_beat.value();
            mapping.steps_per_bar = (per_bar.round() as u32).max(1);
            mapping
        })
        .unwrap_or_default();
    Box::new(Clip::saved(
        &frames,
        run.manifest.grid_steps.as_deref(),
        &mapping,
    ))
}

impl SavedRun {
    /// Makes the rings to and from the audio thread: played frames to collect (`describer`
    /// identifies each new run), and restored runs to replay. Call once, off the audio thread.
    pub fn connect(&self, describer: Describer) -> (CollectorWriter, ReplayInbox) {
        let (writer, reader) = collector();
        let (to_audio, from_here) = rtrb::RingBuffer::new(HANDOFF_SLOTS);
        let (to_here, from_audio) = rtrb::RingBuffer::new(HANDOFF_SLOTS * 2);
        if let Ok(mut inner) = self.0.inner.lock() {
            inner.reader = Some(reader);
            inner.describer = Some(describer);
            inner.handoff = Some((to_audio, from_audio));
        }
        let inbox = ReplayInbox {
            frames: from_here,
            spent: to_here,
        };
        (writer, inbox)
    }

    pub fn set_sample_rate(&self, sample_rate: f32) {
        self.0
            .sample_rate
            .store(sample_rate.round() as u32, Ordering::Relaxed);
    }

    /// Saved frames play instead of the model's. Audio thread safe (an atomic).
    pub fn is_replaying(&self) -> bool {
        self.0.replaying.load(Ordering::Acquire)
    }

    /// Activation: a restored run, if one is waiting; from now on it replays.
    pub fn take_pending(&self) -> Option<Box<Clip>> {
        let mut inner = self.0.inner.lock().ok()?;
        let run = inner.pending.take()?;
        let frames = restored(&run);
        inner.collection = Some(Collection::restored(run));
        self.0.replaying.store(true, Ordering::Release);
        Some(frames)
    }

    /// New text was asked for: the saved run is dropped and the model's frames play again.
    pub fn leave_replay(&self) {
        if let Ok(mut inner) = self.0.inner.lock() {
            inner.collection = None;
            inner.encoded = None;
            inner.pending = None;
            inner.message.clear();
        }
        self.0.replaying.store(false, Ordering::Release);
    }

    /// Moves what the audio thread reported into the collection (collector thread, save).
    pub fn drain(&self) {
        let Ok(mut inner) = self.0.inner.lock() else {
            return;
        };
        if let Some((_, spent)) = inner.handoff.as_mut() {
            while spent.pop().is_ok() {}
        }
        let Inner {
            reader,
            describer,
            collection,
            ..
        } = &mut *inner;
        let (Some(reader), Some(describer)) = (reader.as_mut(), describer.as_ref()) else {
            return;
        };
        let replaying = self.is_replaying();
        let sample_rate = self.0.sample_rate.load(Ordering::Relaxed);
        reader.drain(|record| {
            if replaying {
                return;
            }
            let run = record.token.frame.run;
            if collection.as_ref().is_none_or(|c| c.run_id != run) {
                *collection = Some(Collection::new(
                    run,
                    describer.describe(record.bpm, sample_rate),
                ));
            }
            if let Some(collection) = collection.as_mut() {
                collection.push(record.token, record.step);
            }
        });
        if !replaying && let Some(collection) = collection.as_mut() {
            let heard = describer.heard(collection.run_id);
            if !heard.is_empty() {
                collection.heard = heard;
            }
            if let Some(remote) = describer.remote(collection.run_id) {
                collection.remote = Some(remote);
            }
        }
    }

    /// The run as it stands (a restored one not yet replayed included).
    pub fn run(&self) -> Option<Run> {
        self.drain();
        let inner = self.0.inner.lock().ok()?;
        match (&inner.pending, &inner.collection) {
            (Some(run), _) => Some(run.clone()),
            (None, Some(collection)) if !collection.tokens.is_empty() => Some(collection.to_run()),
            _ => None,
        }
    }

    /// A line for the editor about the saved run (empty when there is nothing to say).
    pub fn message(&self) -> String {
        let replaying = self.is_replaying();
        let Ok(inner) = self.0.inner.lock() else {
            return String::new();
        };
        if !inner.message.is_empty() {
            return inner.message.clone();
        }
        match (&inner.collection, replaying) {
            (Some(collection), true) => format!(
                "Replaying the project's saved run on the timeline: {} tokens of \u{201c}{}\u{201d}. After its end it rests; seek or loop to hear it again, or press Generate (or turn the Generate switch off and on) for new text",
                collection.tokens.len(),
                collection.manifest.prompt
            ),
            (Some(collection), false) if collection.left_out > 0 => format!(
                "The project keeps the first {} tokens of this run",
                collection.tokens.len()
            ),
            _ => String::new(),
        }
    }

    /// The state's text: the run file's bytes in base64, empty without a run.
    pub fn encode(&self) -> Arc<String> {
        self.drain();
        let shape = match self.0.inner.lock() {
            Ok(inner) => match (&inner.pending, &inner.collection) {
                (Some(_), _) => None,
                (None, Some(c)) => Some((c.run_id, c.tokens.len())),
                (None, None) => Some((0, 0)),
            },
            Err(_) => return Arc::default(),
        };
        if let Ok(inner) = self.0.inner.lock()
            && let Some((known, text)) = &inner.encoded
            && *known == shape
            && shape.is_some()
        {
            return Arc::clone(text);
        }
        let Some(run) = self.run() else {
            return Arc::default();
        };
        let mut bytes = Cursor::new(Vec::new());
        let text = match run.write_to(&mut bytes) {
            Ok(()) => Arc::new(base64::encode(bytes.into_inner())),
            Err(error) => {
                nice_log!("Latent Choir: the run could not be saved with the project: {error}");
                return Arc::default();
            }
        };
        if let Ok(mut inner) = self.0.inner.lock() {
            inner.encoded = Some((shape, Arc::clone(&text)));
        }
        text
    }

    /// Reads the state's text back; a run that cannot be read is reported and left out.
    pub fn restore(&self, text: &str) {
        let decoded = decode(text);
        let Ok(mut inner) = self.0.inner.lock() else {
            return;
        };
        inner.collection = None;
        inner.encoded = None;
        self.0.replaying.store(false, Ordering::Release);
        match decoded {
            Ok(Some(run)) if inner.handoff.is_some() => {
                // Running (or activated before): the audio thread takes the frames at its next
                // block. Pushed before the flag is set, so a block that sees the flag finds them.
                let frames = restored(&run);
                inner.message.clear();
                inner.pending = None;
                if let Some((to_audio, _)) = inner.handoff.as_mut()
                    && to_audio.push(frames).is_ok()
                {
                    inner.collection = Some(Collection::restored(run));
                    self.0.replaying.store(true, Ordering::Release);
                } else {
                    inner.pending = Some(run);
                }
            }
            Ok(run) => {
                inner.pending = run;
                inner.message.clear();
            }
            Err(error) => {
                inner.pending = None;
                inner.message = format!(
                    "The project's saved run could not be read ({error}); the model will write new text"
                );
                nice_log!("Latent Choir: {}", inner.message);
            }
        }
    }
}

/// Restored runs on their way to the audio thread: enough for a few state loads between two
/// blocks.
const HANDOFF_SLOTS: usize = 4;

/// The audio thread's end of the restored-run handoff.
pub struct ReplayInbox {
    frames: rtrb::Consumer<Box<Clip>>,
    spent: rtrb::Producer<Box<Clip>>,
}

impl ReplayInbox {
    /// Audio thread: the newest restored run, if one arrived, swapped with what `current`
    /// holds; the run it replaces goes back to be freed off the audio thread.
    pub fn take(&mut self, current: &mut Clip) -> bool {
        let mut newest = None;
        while let Ok(frames) = self.frames.pop() {
            if let Some(older) = newest.replace(frames) {
                self.give_back(older);
            }
        }
        let Some(mut newest) = newest else {
            return false;
        };
        std::mem::swap(current, &mut *newest);
        self.give_back(newest);
        true
    }

    fn give_back(&mut self, frames: Box<Clip>) {
        if let Err(rtrb::PushError::Full(frames)) = self.spent.push(frames) {
            // Freeing here would break the audio thread's rule; the ring holds twice what can
            // arrive between two drains, so this cannot happen, and leaking beats a glitch.
            std::mem::forget(frames);
        }
    }
}

/// A run's frames as replay plays them.
fn replay_frames(run: &Run) -> Vec<TokenFrame> {
    run.frames()
        .map(|mut frame| {
            frame.run = REPLAY_RUN;
            frame
        })
        .collect()
}

/// A run from the state's text; `None` for an empty field or a run without tokens.
fn decode(text: &str) -> Result<Option<Run>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bytes = base64::decode(text).map_err(|e| format!("not base64: {e}"))?;
    let run =
        Run::read_from(Cursor::new(bytes), Path::new("saved run")).map_err(|e| e.to_string())?;
    Ok((!run.tokens.is_empty()).then_some(run))
}

impl PersistentField<'_, String> for SavedRun {
    fn set(&self, new_value: String) {
        self.restore(&new_value);
    }

    fn map<F, R>(&self, f: F) -> R
    where
        F: Fn(&String) -> R,
    {
        f(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loudness::CurvePoint;
    use crate::params::LatentChoirParams;
    use crate::worker::link::LinkStatus;

    const POINT: CurvePoint = CurvePoint {
        lufs: -30.0,
        smoothed: -31.0,
        velocity: 0.5,
        temperature: 0.7,
    };

    fn frame(run: u32, index: u32) -> TokenFrame {
        let mut frame = TokenFrame::new(index, 40 + index, " w", 3, 0.8);
        frame.run = run;
        for s in 0..3 {
            frame.set_state(
                s,
                crate::music::frame::components(&[0.1 * index as f32, -0.2, 0.3, 0.0]),
                9.0,
                0.4,
                0.1,
            );
        }
        frame
    }

    #[test]
    fn a_collected_run_survives_the_state_and_replays_after_activation() {
        let params = Arc::new(LatentChoirParams::default());
        let saved = SavedRun::default();
        saved.set_sample_rate(48_000.0);
        let (mut writer, _) =
            saved.connect(Describer::new(&params, Arc::new(LinkStatus::default())));
        for i in 0..3 {
            writer.record(&frame(1, i), &POINT, 120.0, None);
        }
        // A new run starts a new collection; its tokens keep their grid steps (a gap at 12).
        for (i, step) in [10, 11, 13, 14, 15].into_iter().enumerate() {
            writer.record(&frame(2, i as u32), &POINT, 90.0, Some(step));
        }
        let text = saved.encode();
        let run = saved.run().expect("a run");
        assert_eq!(run.tokens.len(), 5);
        assert_eq!(run.manifest.bpm, 90.0);
        assert_eq!(run.manifest.sample_rate, 48_000);

        let reopened = SavedRun::default();
        reopened.restore(&text);
        assert!(!reopened.is_replaying(), "replay begins at activation");
        assert_eq!(reopened.encode(), text, "saved again before activation");
        let restored = reopened.take_pending().expect("frames to replay");
        assert!(reopened.is_replaying());
        let frames = restored.frames();
        assert_eq!(frames.len(), 5);
        assert!(frames.iter().all(|f| f.run == REPLAY_RUN));
        assert_eq!(frames[4].coords[0], frame(2, 4).coords[0]);
        assert_eq!(run.manifest.grid_steps, Some(vec![10, 11, 13, 14, 15]));
        assert_eq!(restored.anchor(), Some(10));
        assert_eq!(restored.len(), 6, "five tokens and the rest between");
        assert_eq!(restored.token_at(13).map(|f| f.index), Some(2));
        assert_eq!(reopened.encode(), text, "saved again while replaying");

        reopened.leave_replay();
        assert!(!reopened.is_replaying());
        assert_eq!(*reopened.encode(), "");
    }

    #[test]
    fn a_corrupt_run_is_reported_and_left_out() {
        for text in [
            "%%% not base64",
            "AAAA",
            &base64::encode(b"PK\x03\x04 truncated"),
        ] {
            let saved = SavedRun::default();
            saved.restore(text);
            assert!(saved.take_pending().is_none(), "{text}");
            assert!(!saved.is_replaying());
            assert!(
                saved.message().contains("could not be read"),
                "{text}: {}",
                saved.message()
            );
        }
    }
}
