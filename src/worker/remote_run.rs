//! A run whose text a server writes: what has been written, and the local model's reading of
//! it token by token.
//!
//! The server's pieces are its own tokens; the local model has other ones. The text not yet
//! read waits in `pending` and is tokenized with the local tokenizer; every token but the last
//! is read at once, the last waits for the next piece (" sing" may become " singing"), so the
//! local model reads the text as it would tokenize it whole and every local token is one frame.

use std::collections::VecDeque;
use std::time::Instant;

use crate::io::run_file::RemotePiece;
use crate::llm::error::Result;
use crate::llm::tokenizer::{PromptMode, Tokenizer};
use crate::remote::settings::RemoteSettings;
use crate::remote::wire::Endpoint;
use crate::remote::writer::{Piece, RemoteError, Retry, Writer};

pub struct RemoteRun {
    pub writer: Writer,
    pub endpoint: Endpoint,
    pub prompt: String,
    /// The answer so far as the server is shown it: its pieces and the lines heard.
    pub answer: String,
    /// Written, not yet read by the local model.
    pending: String,
    /// Local tokens to read, with the temperature of the piece that completed them.
    ready: VecDeque<(u32, f32)>,
    /// Pieces asked for so far (each seeds its own choice).
    pub pieces: usize,
    pub retry: Retry,
    /// No piece is asked for before then (backing off after a failure).
    pub wait_until: Option<Instant>,
    /// The server ended its answer: what is left is read, then the run ends.
    pub ended: bool,
    /// The server failed for good and the local model writes on.
    pub fallen_back: bool,
    /// The model is known to the status (said once).
    pub announced: bool,
    pub fallback: bool,
}

impl RemoteRun {
    pub fn new(
        settings: RemoteSettings,
        prompt: &str,
        mode: PromptMode,
    ) -> std::result::Result<Self, RemoteError> {
        let fallback = settings.fallback;
        Ok(Self {
            writer: Writer::new(settings)?,
            endpoint: match mode {
                PromptMode::Raw => Endpoint::Completions,
                PromptMode::Chat => Endpoint::Chat,
            },
            prompt: prompt.to_owned(),
            answer: String::new(),
            pending: String::new(),
            ready: VecDeque::new(),
            pieces: 0,
            retry: Retry::default(),
            wait_until: None,
            ended: false,
            fallen_back: false,
            announced: false,
            fallback,
        })
    }

    pub fn take_ready(&mut self) -> Option<(u32, f32)> {
        self.ready.pop_front()
    }

    /// Takes a piece the server wrote: the server reads it next time, the local model as
    /// soon as its tokens are whole. An end of answer is read as a line break when the run
    /// goes on past the end (`keep_going`), as the local model's own end is.
    pub fn accept(
        &mut self,
        piece: &Piece,
        temperature: f32,
        keep_going: bool,
        tokenizer: &Tokenizer,
    ) -> Result<()> {
        self.pieces += 1;
        self.retry = Retry::default();
        let text = match (piece.ended, keep_going) {
            (false, _) => piece.text.as_str(),
            (true, true) => "\n",
            (true, false) => {
                self.ended = true;
                return self.read_pending(tokenizer, temperature, false);
            }
        };
        self.answer.push_str(text);
        self.pending.push_str(text);
        self.read_pending(tokenizer, temperature, true)
    }

    /// A line the local model heard: the server reads it too, in the answer where it came.
    pub fn heard(&mut self, text: &str) {
        self.answer.push_str(text);
    }

    /// Everything written is read now (the server failed and the local model takes over).
    pub fn fall_back(&mut self, tokenizer: &Tokenizer, temperature: f32) -> Result<()> {
        self.fallen_back = true;
        self.read_pending(tokenizer, temperature, false)
    }

    /// Moves the pending text's whole tokens to `ready`; with `hold_last`, the last token stays
    /// pending unless its text cannot be told apart from the rest.
    fn read_pending(
        &mut self,
        tokenizer: &Tokenizer,
        temperature: f32,
        hold_last: bool,
    ) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let ids = tokenizer.encode(&self.pending, false)?;
        let take = if hold_last {
            ids.len().saturating_sub(1)
        } else {
            ids.len()
        };
        if take == 0 {
            return Ok(());
        }
        let read = tokenizer.decode(&ids[..take])?;
        if hold_last && take < ids.len() && self.pending.starts_with(&read) {
            self.pending.drain(..read.len());
            self.ready
                .extend(ids[..take].iter().map(|&id| (id, temperature)));
        } else {
            // The tokens do not spell the text back exactly (a tokenizer that adds or
            // normalises): read all of it, nothing is left to merge with.
            self.pending.clear();
            self.ready.extend(ids.iter().map(|&id| (id, temperature)));
        }
        Ok(())
    }
}

/// The record of a piece for the run file; its `run` is the frame builder's to fill in.
pub fn record(piece: &Piece, before_token: usize, temperature: f32) -> RemotePiece {
    RemotePiece {
        run: 0,
        before_token: before_token as u32,
        text: piece.text.clone(),
        temperature,
        ended: piece.ended,
        chosen: piece.chosen.map(|c| c as u32),
        top: piece.top.clone(),
    }
}
