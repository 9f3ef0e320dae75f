//! The editor's view of what was played: it drains the audio thread's history ring each frame
//! and keeps the transcript (with the token sounding now) and the recent records the plots read.

use std::collections::VecDeque;
use std::ops::Range;

use crate::io::run_file::PlayedToken;
use crate::music::phrasing::{self, Mark};
use crate::playback::history::HistoryReader;

/// Records kept for the plots: the trajectories fade over the last part of this, the history
/// plots show all of it.
pub const RECENT: usize = 160;
/// Transcript length (bytes) beyond which the oldest half is let go.
const MAX_TEXT: usize = 32 * 1024;

/// One played token's place in the transcript.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub index: u32,
    pub bytes: (usize, usize),
    /// Its place in the phrasing (comma, sentence end, …), as the mapping reads it.
    pub mark: Mark,
}

#[derive(Default)]
pub struct Playback {
    run: Option<u32>,
    transcript: String,
    spans: VecDeque<Span>,
    recent: VecDeque<PlayedToken>,
    /// The token sounding now: the last one played, which after a seek or loop is one already
    /// in the transcript.
    current: Option<Span>,
}

impl Playback {
    /// Takes every record the audio thread has written since the last call.
    pub fn drain(&mut self, reader: &mut HistoryReader) -> usize {
        reader.drain(|record| self.take(record))
    }

    /// One record, in play order. A record of another run starts the view over; a token
    /// played again (the playhead went back) moves the highlight instead of adding text.
    pub fn take(&mut self, record: &PlayedToken) {
        if self.run != Some(record.frame.run) {
            self.clear();
            self.run = Some(record.frame.run);
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(*record);
        if self
            .spans
            .back()
            .is_some_and(|last| record.frame.index <= last.index)
        {
            let at = self
                .spans
                .partition_point(|span| span.index < record.frame.index);
            self.current = self
                .spans
                .get(at)
                .filter(|span| span.index == record.frame.index)
                .copied();
            return;
        }
        let start = self.transcript.len();
        let mut previous = [0u8; 4];
        let previous = self
            .transcript
            .chars()
            .next_back()
            .unwrap_or(' ')
            .encode_utf8(&mut previous);
        let mark = phrasing::classify(previous, record.frame.text());
        self.transcript.push_str(record.frame.text());
        self.spans.push_back(Span {
            index: record.frame.index,
            bytes: (start, self.transcript.len()),
            mark,
        });
        self.current = self.spans.back().copied();
        if self.transcript.len() > MAX_TEXT {
            self.forget_oldest_half();
        }
    }

    pub fn clear(&mut self) {
        self.run = None;
        self.transcript.clear();
        self.spans.clear();
        self.recent.clear();
        self.current = None;
    }

    /// Everything played in this run (its oldest part let go after a long run).
    pub fn transcript(&self) -> &str {
        &self.transcript
    }

    /// The token sounding now: the last one the audio thread played.
    pub fn current(&self) -> Option<Span> {
        self.current
    }

    /// The tokens in the transcript, oldest first.
    pub fn spans(&self) -> &VecDeque<Span> {
        &self.spans
    }

    /// Byte range of the token sounding now in [`Playback::transcript`].
    pub fn highlight(&self) -> Option<Range<usize>> {
        self.current().map(|span| span.bytes.0..span.bytes.1)
    }

    /// The last [`RECENT`] records, oldest first.
    pub fn recent(&self) -> &VecDeque<PlayedToken> {
        &self.recent
    }

    pub fn run(&self) -> Option<u32> {
        self.run
    }

    fn forget_oldest_half(&mut self) {
        let mut cut = self.transcript.len() / 2;
        // Cut at a token boundary so every span stays valid.
        if let Some(span) = self.spans.iter().find(|s| s.bytes.0 >= cut) {
            cut = span.bytes.0;
        }
        self.transcript.drain(..cut);
        self.spans.retain(|s| s.bytes.0 >= cut);
        for span in &mut self.spans {
            span.bytes = (span.bytes.0 - cut, span.bytes.1 - cut);
        }
        self.current = self.current.and_then(|current| {
            let span = self.spans.iter().find(|s| s.index == current.index)?;
            Some(*span)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loudness::CurvePoint;
    use crate::music::frame::TokenFrame;
    use crate::playback::history::history;

    fn frame(run: u32, index: u32, text: &str) -> TokenFrame {
        let mut frame = TokenFrame::new(index, 1, text, 2, 0.8);
        frame.run = run;
        frame.set_state(
            1,
            super::super::plots::tests::coords(index as f32 / 10.0, 0.0),
            1.0,
            0.0,
            0.0,
        );
        frame
    }

    const POINT: CurvePoint = CurvePoint {
        lufs: -30.0,
        smoothed: -30.0,
        velocity: 0.0,
        temperature: 0.8,
    };

    #[test]
    fn the_highlight_follows_what_was_played_not_what_was_made() {
        let (mut writer, mut reader) = history(16);
        reader.shared().set_open(true);
        let mut playback = Playback::default();
        // The worker has made five tokens, the audio thread has played two of them.
        let made = [" The", " forest", " was", " dark", "."];
        for (i, text) in made.iter().enumerate().take(2) {
            writer.record(&frame(1, i as u32, text), &POINT);
        }
        playback.drain(&mut reader);
        assert_eq!(playback.transcript(), " The forest");
        assert_eq!(playback.current().map(|s| s.index), Some(1));
        let range = playback.highlight().expect("a token is sounding");
        assert_eq!(&playback.transcript()[range], " forest");

        // Nothing new played: the highlight stays.
        playback.drain(&mut reader);
        assert_eq!(playback.current().map(|s| s.index), Some(1));

        for (i, text) in made.iter().enumerate().skip(2) {
            writer.record(&frame(1, i as u32, text), &POINT);
            playback.drain(&mut reader);
            let range = playback.highlight().expect("a token is sounding");
            assert_eq!(&playback.transcript()[range], *text);
            assert_eq!(playback.current().map(|s| s.index), Some(i as u32));
        }
        assert_eq!(playback.transcript(), " The forest was dark.");
        let pc1: Vec<f32> = playback
            .recent()
            .iter()
            .map(|r| r.frame.coords[1][0])
            .collect();
        assert_eq!(pc1, [0.0, 0.1, 0.2, 0.3, 0.4]);
    }

    #[test]
    fn after_a_jump_back_the_highlight_moves_to_the_token_played_again() {
        let (mut writer, mut reader) = history(16);
        reader.shared().set_open(true);
        let mut playback = Playback::default();
        for (i, text) in [" The", " forest", " was", " dark"].iter().enumerate() {
            writer.record(&frame(1, i as u32, text), &POINT);
        }
        // The playhead jumps back to the second token.
        writer.record(&frame(1, 1, " forest"), &POINT);
        playback.drain(&mut reader);
        assert_eq!(playback.transcript(), " The forest was dark");
        let range = playback.highlight().expect("a token is sounding");
        assert_eq!(&playback.transcript()[range], " forest");
        // And plays on past the old end: new text is added again.
        for (i, text) in [(2, " was"), (3, " dark"), (4, ".")] {
            writer.record(&frame(1, i, text), &POINT);
        }
        playback.drain(&mut reader);
        assert_eq!(playback.transcript(), " The forest was dark.");
        assert_eq!(playback.current().map(|s| s.index), Some(4));
    }

    #[test]
    fn a_new_run_starts_the_view_over() {
        let mut playback = Playback::default();
        let (mut writer, mut reader) = history(16);
        reader.shared().set_open(true);
        writer.record(&frame(1, 0, "old"), &POINT);
        writer.record(&frame(2, 0, "new"), &POINT);
        playback.drain(&mut reader);
        assert_eq!(playback.run(), Some(2));
        assert_eq!(playback.transcript(), "new");
        assert_eq!(playback.recent().len(), 1);
    }

    #[test]
    fn recent_records_and_text_stay_bounded() {
        let mut playback = Playback::default();
        let text = "x".repeat(40);
        for i in 0..2000 {
            let record = PlayedToken {
                frame: frame(1, i, &text),
                point: POINT,
            };
            playback.take(&record);
        }
        assert_eq!(playback.recent().len(), RECENT);
        assert_eq!(playback.recent().back().map(|r| r.frame.index), Some(1999));
        assert!(playback.transcript().len() <= MAX_TEXT);
        let range = playback.highlight().expect("a token is sounding");
        assert_eq!(range.end, playback.transcript().len());
        assert_eq!(&playback.transcript()[range], text);
        assert_eq!(playback.current().map(|s| s.index), Some(1999));
    }
}
