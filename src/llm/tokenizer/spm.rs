//! SentencePiece vocabularies from GGUF metadata (`tokenizer.ggml.model = "llama"`: Llama 2,
//! Mistral, Gemma, Phi-3), encoded the way llama.cpp's SPM tokenizer and SentencePiece's BPE
//! model do.
//!
//! Encoding a piece of plain text: spaces become `▁` (with one more in front when the file asks
//! for a space prefix), the text starts as one symbol per character, and the adjacent pair
//! whose joined text is the vocabulary piece with the highest score is merged, leftmost first
//! on ties, until no pair is a piece. A character without a piece is spelled with its UTF-8
//! bytes as `<0xXX>` pieces (byte fallback). Control and user-defined pieces written in the
//! text (`<start_of_turn>`, `<s>`) are cut out first and stand for their own id; the text after
//! one gets the space prefix again, as in llama.cpp. `tests/spm_tokenizer.rs` checks this
//! against `sentencepiece`.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::llm::error::{LlmError, Result};

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PieceKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceKind {
    pub(super) fn from_gguf(value: i64) -> Result<Self> {
        Ok(match value {
            // 0 is "undefined" in llama.cpp; converters write 1 for ordinary pieces.
            0 | 1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            other => {
                return Err(LlmError::Tokenizer(format!(
                    "GGUF token type {other} is not one of llama.cpp's (1 normal ... 6 byte)"
                )));
            }
        })
    }
}

/// The space marker SentencePiece writes for ' '.
const SPACE: char = '\u{2581}';

/// A SentencePiece vocabulary, ready to encode.
#[derive(Debug)]
pub(super) struct SpmVocab {
    pieces: Vec<String>,
    scores: Vec<f32>,
    kinds: Vec<PieceKind>,
    /// Pieces merges may produce (normal, user-defined and unused), by text; the first id wins.
    mergeable: HashMap<String, u32>,
    /// Every piece by text, first id wins.
    by_text: HashMap<String, u32>,
    /// `<0xXX>` pieces.
    byte_ids: [Option<u32>; 256],
    /// Control and user-defined pieces matched whole in text, longest first.
    specials: Vec<(String, u32)>,
    /// Bytes some special piece starts with, to skip the search elsewhere.
    special_first_bytes: [bool; 256],
    add_space_prefix: bool,
    unk_id: Option<u32>,
}

impl SpmVocab {
    pub(super) fn new(
        pieces: Vec<String>,
        scores: Vec<f32>,
        kinds: Vec<PieceKind>,
        add_space_prefix: bool,
        unk_id: Option<u32>,
    ) -> Result<Self> {
        let n = pieces.len();
        if scores.len() != n || kinds.len() != n {
            return Err(LlmError::Tokenizer(format!(
                "the GGUF lists {n} tokens but {} scores and {} token types",
                scores.len(),
                kinds.len()
            )));
        }
        let mut by_text = HashMap::with_capacity(n);
        let mut mergeable = HashMap::with_capacity(n);
        let mut byte_ids = [None; 256];
        let mut specials = Vec::new();
        let mut special_first_bytes = [false; 256];
        for (id, (piece, &kind)) in pieces.iter().zip(&kinds).enumerate() {
            let id = id as u32;
            let first = !by_text.contains_key(piece);
            if first {
                by_text.insert(piece.clone(), id);
            }
            match kind {
                PieceKind::Normal | PieceKind::Unused => {
                    mergeable.entry(piece.clone()).or_insert(id);
                }
                PieceKind::UserDefined | PieceKind::Control => {
                    if kind == PieceKind::UserDefined {
                        mergeable.entry(piece.clone()).or_insert(id);
                    }
                    if first && !piece.is_empty() {
                        special_first_bytes[piece.as_bytes()[0] as usize] = true;
                        specials.push((piece.clone(), id));
                    }
                }
                PieceKind::Byte => match parse_byte_piece(piece) {
                    Some(b) => {
                        byte_ids[b as usize].get_or_insert(id);
                    }
                    None => {
                        return Err(LlmError::Tokenizer(format!(
                            "GGUF token {id} ({piece:?}) is typed as a byte but is not <0xXX>"
                        )));
                    }
                },
                PieceKind::Unknown => {}
            }
        }
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Ok(Self {
            pieces,
            scores,
            kinds,
            mergeable,
            by_text,
            byte_ids,
            specials,
            special_first_bytes,
            add_space_prefix,
            unk_id,
        })
    }

    pub(super) fn kind(&self, id: u32) -> Option<PieceKind> {
        self.kinds.get(id as usize).copied()
    }

    pub(super) fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }

    pub(super) fn id(&self, piece: &str) -> Option<u32> {
        self.by_text.get(piece).copied()
    }

    /// The bytes `id` stands for in decoded text: `▁` as a space, `<0xXX>` as its byte,
    /// control, unknown and user-defined pieces as their own text.
    pub(super) fn piece_bytes(&self, id: u32) -> Box<[u8]> {
        let Some(piece) = self.piece(id) else {
            return Box::default();
        };
        match self.kinds[id as usize] {
            PieceKind::Byte => parse_byte_piece(piece)
                .map(|b| vec![b])
                .unwrap_or_default()
                .into_boxed_slice(),
            PieceKind::Normal | PieceKind::Unused => {
                piece.replace(SPACE, " ").into_bytes().into_boxed_slice()
            }
            _ => piece.as_bytes().into(),
        }
    }

    /// Does decoding drop the first character (the space prefix) when `id` comes first? As
    /// SentencePiece's decoder: an ordinary piece that starts with `▁`, in a vocabulary that
    /// adds the prefix.
    pub(super) fn strips_prefix(&self, id: u32) -> bool {
        self.add_space_prefix
            && self.kind(id) == Some(PieceKind::Normal)
            && self.piece(id).is_some_and(|p| p.starts_with(SPACE))
    }

    /// The ids of `text`: special pieces cut out, the plain text between them merged.
    pub(super) fn encode(&self, text: &str, out: &mut Vec<u32>) {
        let mut after_special = true;
        let mut plain_start = 0;
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            if self.special_first_bytes[bytes[at] as usize]
                && let Some((piece, id)) = self
                    .specials
                    .iter()
                    .find(|(piece, _)| text[at..].starts_with(piece.as_str()))
            {
                if plain_start < at {
                    self.encode_plain(&text[plain_start..at], after_special, out);
                }
                out.push(*id);
                after_special = true;
                at += piece.len();
                plain_start = at;
                continue;
            }
            at += 1;
            while at < bytes.len() && !text.is_char_boundary(at) {
                at += 1;
            }
        }
        if plain_start < text.len() {
            self.encode_plain(&text[plain_start..], after_special, out);
        }
    }

    fn encode_plain(&self, text: &str, after_special: bool, out: &mut Vec<u32>) {
        let mut escaped = String::with_capacity(text.len() + 3);
        if self.add_space_prefix && after_special {
            escaped.push(SPACE);
        }
        escaped.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));
        Merger::new(self, &escaped).run(out);
    }

    fn push_bytes(&self, text: &str, out: &mut Vec<u32>) {
        for &b in text.as_bytes() {
            // A vocabulary without byte pieces: the unknown piece, once per byte.
            out.extend(self.byte_ids[b as usize].or(self.unk_id));
        }
    }
}

/// `<0xXX>` → the byte.
fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// One symbol of the text being merged: a byte range, linked to its neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of two adjacent symbols.
struct Pair {
    left: usize,
    right: usize,
    score: f32,
    /// The joined length when queued: a pair whose symbols changed since is stale.
    len: usize,
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pair {}
impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pair {
    /// Highest score first, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

struct Merger<'a> {
    vocab: &'a SpmVocab,
    text: &'a str,
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Pair>,
    /// What each merged text was made of, to split an unused piece back up.
    made_of: HashMap<(usize, usize), (usize, usize)>,
}

impl<'a> Merger<'a> {
    fn new(vocab: &'a SpmVocab, text: &'a str) -> Self {
        let count = text.chars().count();
        let symbols = text
            .char_indices()
            .enumerate()
            .map(|(i, (start, c))| Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: (i + 1 < count).then_some(i + 1),
            })
            .collect();
        Self {
            vocab,
            text,
            symbols,
            queue: BinaryHeap::new(),
            made_of: HashMap::new(),
        }
    }

    fn run(mut self, out: &mut Vec<u32>) {
        for i in 1..self.symbols.len() {
            self.try_pair(i - 1, i);
        }
        while let Some(pair) = self.queue.pop() {
            let (left, right) = (self.symbols[pair.left], self.symbols[pair.right]);
            if left.len == 0 || right.len == 0 || left.len + right.len != pair.len {
                continue;
            }
            self.made_of
                .insert((left.start, pair.len), (left.len, right.len));
            self.symbols[pair.left].len += right.len;
            self.symbols[pair.left].next = right.next;
            self.symbols[pair.right].len = 0;
            if let Some(next) = right.next {
                self.symbols[next].prev = Some(pair.left);
            }
            if let Some(prev) = left.prev {
                self.try_pair(prev, pair.left);
            }
            if let Some(next) = right.next {
                self.try_pair(pair.left, next);
            }
        }
        let mut at = (!self.symbols.is_empty()).then_some(0);
        while let Some(i) = at {
            let symbol = self.symbols[i];
            self.emit(symbol.start, symbol.len, out);
            at = symbol.next;
        }
    }

    fn try_pair(&mut self, left: usize, right: usize) {
        let (l, r) = (self.symbols[left], self.symbols[right]);
        let joined = &self.text[l.start..r.start + r.len];
        if let Some(&id) = self.vocab.mergeable.get(joined) {
            self.queue.push(Pair {
                left,
                right,
                score: self.vocab.scores[id as usize],
                len: joined.len(),
            });
        }
    }

    /// The ids of one final symbol: its piece, an unused piece split back into what it was
    /// merged from, or a character without a piece as bytes.
    fn emit(&self, start: usize, len: usize, out: &mut Vec<u32>) {
        let text = &self.text[start..start + len];
        if let Some(&id) = self.vocab.mergeable.get(text)
            && self.vocab.kinds[id as usize] != PieceKind::Unused
        {
            out.push(id);
            return;
        }
        match self.made_of.get(&(start, len)) {
            Some(&(left, right)) => {
                self.emit(start, left, out);
                self.emit(start + left, right, out);
            }
            None => self.vocab.push_bytes(text, out),
        }
    }
}
