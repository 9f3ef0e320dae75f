//! Lines the listener made of the track, on their way into the model's context.
//!
//! The audio thread marks a listening boundary on a frame's ticket; the listener (its own
//! thread) tokenizes the stretch up to it and puts the line here under that frame; the worker's
//! gate holds the token the ticket lets through until the line is here, and the worker reads
//! the line into the context right before that token. So where a line enters depends only on
//! the frames, never on how the threads ran: the offline bounce and real time agree.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub use crate::io::run_file::HeardLine;

/// Longest the worker holds a token for a line that has not come (a listener that died);
/// the lookahead covers the usual tens of milliseconds.
pub const HEARD_WAIT: Duration = Duration::from_secs(5);

/// Lines by `(run, frame)` of the boundary they describe.
#[derive(Debug, Default)]
pub struct HeardInbox {
    lines: Mutex<HashMap<(u32, u32), String>>,
}

impl HeardInbox {
    /// The line for the boundary at `frame` of `run`; an empty line means "nothing to read"
    /// (the listener could not listen), and lets the token through at once.
    pub fn put(&self, run: u32, frame: u32, line: String) {
        if let Ok(mut lines) = self.lines.lock() {
            // Lines of older runs will never be asked for.
            lines.retain(|(r, _), _| *r == run);
            lines.insert((run, frame), line);
        }
    }

    pub fn take(&self, run: u32, frame: u32) -> Option<String> {
        self.lines.lock().ok()?.remove(&(run, frame))
    }
}
