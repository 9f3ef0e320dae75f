//! Tokenizers: tokenizer.json, or byte-level BPE or SentencePiece built from GGUF metadata.
//!
//! Every model Latent Choir loads gets a [`Tokenizer`]: the Hugging Face `tokenizers` pipeline
//! that does the splitting and merging, plus what the worker needs around it — which ids end a
//! generation, how an instruct model wants its prompt ([`PromptMode`]), and a streaming decoder
//! ([`TokenStream`]) that only ever hands out whole characters, since a byte-level BPE token may
//! hold half of one.
//!
//! Two sources:
//! * [`Tokenizer::from_file`]: a Hugging Face `tokenizer.json`, with `tokenizer_config.json`,
//!   `config.json`, `generation_config.json` and `chat_template.jinja` read from the same folder
//!   when present (end-of-sequence ids, BOS, chat template).
//! * [`Tokenizer::from_gguf`]: rebuilt from a GGUF file's `tokenizer.ggml.*` metadata. Byte-level
//!   BPE (`tokenizer.ggml.model = "gpt2"`) with the split regex named by `tokenizer.ggml.pre`
//!   (see [`GgufSplit`]), or SentencePiece (`"llama"`: Llama 2, Mistral, Gemma, Phi-3), encoded
//!   by our own merger (`spm`) as llama.cpp does.
//!
//! The chat format comes from the model's chat template (`chat`).
//!
//! Decoding keeps special tokens (`<|im_end|>` decodes to its text), like `transformers`'
//! `decode(ids)`, and does not "clean up" spaces before punctuation: what the model wrote is what
//! comes out.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::Content;
#[cfg(test)]
use candle_core::quantized::gguf_file::Value;
use serde_json::Value as Json;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use super::error::{LlmError, Result};

mod chat;
mod gguf_meta;
mod spm;

#[cfg(test)]
use chat::chatml_default_system;
pub use chat::{ChatFormat, ChatRole, ChatTemplate};
use gguf_meta::{gguf_bool, gguf_f32_array, gguf_int, gguf_int_array, gguf_str, gguf_str_array};
use spm::{PieceKind, SpmVocab};

/// How a prompt becomes the model's first tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptMode {
    /// Wrapped in the model's chat template as one user message, ready for the assistant's
    /// answer. Models without a chat template fall back to [`PromptMode::Raw`].
    #[default]
    Chat,
    /// The text as it is, continued by the model. A BOS token is prepended only if the
    /// tokenizer itself asks for one (llama-style tokenizers do; GPT-2 and SmolLM2 do not).
    Raw,
}

/// The split applied before byte-level BPE in a GGUF tokenizer, chosen by `tokenizer.ggml.pre`
/// (llama.cpp's names, and llama.cpp's split for each). Only `smollm` is checked against a
/// reference (`tests/tokenizer_reference.rs`); the others follow llama.cpp's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufSplit {
    /// GPT-2's regex (`gpt2`, `gpt-2`, `phi-2`, `mpt`, `olmo`, `jais`; also `default` and a
    /// missing key, as in `transformers`: llama.cpp's own fallback split differs slightly).
    Gpt2,
    /// Every numeric character on its own, then GPT-2's regex (`smollm`, `starcoder`, `refact`,
    /// `command-r`, `codeshell`, `exaone`, `minerva`): `Digits(individual_digits)` + `ByteLevel`.
    IsolatedDigits,
    /// Llama 3's regex: numbers in runs of up to three, contractions case-insensitive
    /// (`llama-bpe`, `llama3`, `llama-v3`, `falcon3`, `falcon-h1`, `pixtral`, `dbrx`,
    /// `smaug-bpe`).
    Llama3,
    /// Qwen2's regex: like Llama 3's but every digit on its own (`qwen2`, `deepseek-r1-qwen`,
    /// `stablelm2`, ...).
    Qwen2,
    /// Qwen3.5's: Qwen2's with combining marks kept inside words (`qwen35`).
    Qwen35,
}

/// `tokenizer.ggml.pre` names (llama.cpp's) → the split, and whether merges are skipped for a
/// pre-token that is already a vocabulary entry.
const PRE_TOKENIZERS: &[(&[&str], GgufSplit, bool)] = &[
    (
        &[
            "default",
            "gpt2",
            "gpt-2",
            "phi-2",
            "mpt",
            "olmo",
            "jais",
            "trillion",
            "granite-docling",
            "mellum",
            "a.x-4.0",
        ],
        GgufSplit::Gpt2,
        false,
    ),
    (
        &[
            "smollm",
            "starcoder",
            "refact",
            "command-r",
            "codeshell",
            "exaone",
            "minerva",
            "mellum2",
        ],
        GgufSplit::IsolatedDigits,
        false,
    ),
    (
        &[
            "llama-bpe",
            "llama3",
            "llama-v3",
            "falcon3",
            "falcon-h1",
            "pixtral",
        ],
        GgufSplit::Llama3,
        true,
    ),
    (
        &["dbrx", "smaug-bpe", "glm4", "chatglm-bpe"],
        GgufSplit::Llama3,
        false,
    ),
    (
        &[
            "qwen2",
            "deepseek-r1-qwen",
            "stablelm2",
            "kormo",
            "f2llmv2",
            "hunyuan",
            "solar-open",
        ],
        GgufSplit::Qwen2,
        false,
    ),
    (&["qwen35"], GgufSplit::Qwen35, false),
];

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl GgufSplit {
    /// The split for a `tokenizer.ggml.pre` value, and whether llama.cpp skips the merges for
    /// a pre-token that is already a whole vocabulary entry (`ignore_merges`, Llama 3 only).
    pub fn from_pre(pre: Option<&str>) -> Result<(Self, bool)> {
        let name = pre.unwrap_or("default");
        PRE_TOKENIZERS
            .iter()
            .find(|(names, _, _)| names.contains(&name))
            .map(|&(_, split, ignore_merges)| (split, ignore_merges))
            .ok_or_else(|| {
                let known: Vec<&str> = PRE_TOKENIZERS
                    .iter()
                    .flat_map(|(names, _, _)| names.iter().copied())
                    .collect();
                LlmError::Tokenizer(format!(
                    "GGUF pre-tokenizer {name:?} (tokenizer.ggml.pre) is not supported \
                     (supported: {})",
                    known.join(", ")
                ))
            })
    }

    fn pre_tokenizer(self) -> Result<PreTokenizerWrapper> {
        let byte_level = |use_regex| ByteLevel::new(false, false, use_regex).into();
        let split = |regex: &str| -> Result<PreTokenizerWrapper> {
            Split::new(
                SplitPattern::Regex(regex.to_owned()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map(Into::into)
            .map_err(|e| LlmError::Tokenizer(format!("bad split regex: {e}")))
        };
        Ok(match self {
            Self::Gpt2 => byte_level(true),
            Self::IsolatedDigits => {
                Sequence::new(vec![Digits::new(true).into(), byte_level(true)]).into()
            }
            Self::Llama3 => Sequence::new(vec![split(LLAMA3_SPLIT)?, byte_level(false)]).into(),
            Self::Qwen2 => Sequence::new(vec![split(QWEN2_SPLIT)?, byte_level(false)]).into(),
            Self::Qwen35 => Sequence::new(vec![split(QWEN35_SPLIT)?, byte_level(false)]).into(),
        })
    }
}

/// Special tokens that end a generation wherever a vocabulary has them as special tokens.
const END_MARKERS: &[&str] = &[
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<|end|>",
    "<|return|>",
    "</s>",
];

/// Far beyond any real vocabulary (Gemma 3 has 262,144 tokens): a larger id means a broken file.
const MAX_VOCAB: usize = 1 << 24;

/// Special tokens taken as BOS when no config names one.
const BOS_MARKERS: &[&str] = &["<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>"];

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const GGUF_TOKEN_CONTROL: i64 = 3;
const GGUF_TOKEN_USER_DEFINED: i64 = 4;

/// What turns text into ids.
enum Engine {
    /// The `tokenizers` pipeline: tokenizer.json, or a GGUF's byte-level BPE.
    Hf(Box<tokenizers::Tokenizer>),
    /// A GGUF's SentencePiece vocabulary.
    Spm(Box<SpmVocab>),
}

/// A model's tokenizer. Cheap to clone (shared inside), `Send + Sync`.
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// Where it came from, for messages.
    source: String,
    /// Ids `0..vocab_size` are valid.
    vocab_size: usize,
    /// The raw bytes of every id when the decoder is byte-level (GPT-2 style); `None` for
    /// other decoders, which are run through `tokenizers` instead.
    token_bytes: Option<Vec<Box<[u8]>>>,
    special: Vec<bool>,
    bos_id: Option<u32>,
    eos_ids: Vec<u32>,
    /// GGUF only: ids `encode(.., true)` puts around the text (a `tokenizer.json` carries its
    /// own post-processor instead).
    prepend_bos: Option<u32>,
    append_eos: Option<u32>,
    chat_template: Option<String>,
    chat: Option<ChatTemplate>,
}

impl Inner {
    /// Does decoding drop the space prefix of `id` when it comes first (SentencePiece)?
    fn strips_prefix(&self, id: u32) -> bool {
        match &self.engine {
            Engine::Spm(vocab) => vocab.strips_prefix(id),
            Engine::Hf(_) => false,
        }
    }
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Tokenizer")
            .field("source", &inner.source)
            .field("vocab_size", &inner.vocab_size)
            .field("byte_level", &inner.token_bytes.is_some())
            .field("bos_id", &inner.bos_id)
            .field("eos_ids", &inner.eos_ids)
            .field("chat", &inner.chat)
            .finish()
    }
}

impl Tokenizer {
    /// Load a Hugging Face `tokenizer.json` (or the folder holding one). Sibling files, when
    /// present, say which ids end a generation (`generation_config.json`'s and `config.json`'s
    /// `eos_token_id`, `tokenizer_config.json`'s `eos_token`), which is BOS, and the chat
    /// template (`tokenizer_config.json`'s `chat_template`, or `chat_template.jinja`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = if path.is_dir() {
            path.join("tokenizer.json")
        } else {
            path.to_path_buf()
        };
        if !file.is_file() {
            return Err(LlmError::NotFound(file));
        }
        let mut hf = tokenizers::Tokenizer::from_file(&file).map_err(|e| LlmError::Corrupt {
            path: file.clone(),
            message: format!("not a readable tokenizer.json: {e}"),
        })?;
        // Some tokenizer.json files carry training-time truncation or padding; a prompt must
        // never be cut or padded silently.
        hf.with_truncation(None)
            .map_err(|e| LlmError::Tokenizer(e.to_string()))?;
        hf.with_padding(None);

        let dir = file.parent().unwrap_or(Path::new("."));
        let tokenizer_config = read_json(&dir.join("tokenizer_config.json"))?;
        let config = read_json(&dir.join("config.json"))?;
        let generation_config = read_json(&dir.join("generation_config.json"))?;

        let vocab = hf.get_vocab(true);
        let vocab_size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        if vocab_size > MAX_VOCAB {
            return Err(LlmError::Corrupt {
                path: file,
                message: format!("token id {} is implausibly large", vocab_size - 1),
            });
        }
        let mut special = vec![false; vocab_size];
        for (id, token) in hf.get_added_tokens_decoder() {
            if token.special
                && let Some(slot) = special.get_mut(id as usize)
            {
                *slot = true;
            }
        }

        let named_id = |key: &str| -> Option<u32> {
            let value = tokenizer_config.as_ref()?.get(key)?;
            let content = match value {
                Json::String(s) => s.as_str(),
                Json::Object(o) => o.get("content")?.as_str()?,
                _ => return None,
            };
            hf.token_to_id(content)
        };
        let in_vocab = |id: u32| (id as usize) < vocab_size;

        let mut eos_ids = Vec::new();
        for cfg in [&generation_config, &config].into_iter().flatten() {
            json_ids(cfg.get("eos_token_id"), &mut eos_ids);
        }
        eos_ids.extend(named_id("eos_token"));
        for marker in END_MARKERS {
            if let Some(id) = hf.token_to_id(marker)
                && special.get(id as usize).copied().unwrap_or(false)
            {
                eos_ids.push(id);
            }
        }
        eos_ids.retain(|&id| in_vocab(id));
        dedup_in_order(&mut eos_ids);

        let mut bos_ids = Vec::new();
        for cfg in [&generation_config, &config].into_iter().flatten() {
            json_ids(cfg.get("bos_token_id"), &mut bos_ids);
        }
        let bos_marker = || {
            BOS_MARKERS.iter().find_map(|marker| {
                hf.token_to_id(marker)
                    .filter(|&id| special.get(id as usize).copied().unwrap_or(false))
            })
        };
        let bos_id = bos_ids
            .into_iter()
            .chain(named_id("bos_token"))
            .find(|&id| in_vocab(id))
            .or_else(bos_marker);

        let chat_template = match std::fs::read_to_string(dir.join("chat_template.jinja")) {
            Ok(text) => Some(text),
            Err(_) => tokenizer_config
                .as_ref()
                .and_then(|c| json_chat_template(c.get("chat_template"))),
        };

        let token_bytes = match hf.get_decoder() {
            Some(DecoderWrapper::ByteLevel(_)) => Some(
                (0..vocab_size as u32)
                    .map(|id| {
                        hf.id_to_token(id)
                            .map(|piece| byte_level_bytes(&piece))
                            .unwrap_or_default()
                    })
                    .collect(),
            ),
            _ => None,
        };

        Ok(Self::assemble(Inner {
            source: file.display().to_string(),
            vocab_size,
            token_bytes,
            special,
            bos_id,
            eos_ids,
            prepend_bos: None,
            append_eos: None,
            chat: None,
            chat_template,
            engine: Engine::Hf(Box::new(hf)),
        }))
    }

    /// Read a GGUF file's header and build its tokenizer (see [`Tokenizer::from_gguf`]).
    pub fn from_gguf_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LlmError::NotFound(path.to_path_buf()),
            _ => LlmError::Io {
                path: path.to_path_buf(),
                message: e.to_string(),
            },
        })?;
        let content = Content::read(&mut file).map_err(|e| LlmError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_gguf(&content)
    }

    /// Build the tokenizer a GGUF file describes in its `tokenizer.ggml.*` metadata: the
    /// vocabulary, merges, token types (control tokens become special tokens, so
    /// `<|im_start|>` in a text encodes to its one id), BOS/EOS ids, the split regex
    /// (`tokenizer.ggml.pre`) and `tokenizer.chat_template`.
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let md = &content.metadata;
        let model = gguf_str(md, "tokenizer.ggml.model")?.ok_or_else(|| {
            LlmError::Tokenizer("the GGUF file has no tokenizer (tokenizer.ggml.model)".into())
        })?;
        match model {
            "gpt2" => {}
            "llama" => return Self::from_gguf_spm(content),
            other => {
                return Err(LlmError::Tokenizer(format!(
                    "GGUF tokenizer model {other:?} is not supported (supported: \"gpt2\", \
                     byte-level BPE; \"llama\", SentencePiece)"
                )));
            }
        }
        let pre = gguf_str(md, "tokenizer.ggml.pre")?;
        let (split, ignore_merges) = GgufSplit::from_pre(pre)?;

        let tokens = gguf_str_array(md, "tokenizer.ggml.tokens")?
            .ok_or_else(|| LlmError::Tokenizer("the GGUF has no tokenizer.ggml.tokens".into()))?;
        let n = tokens.len();
        if n == 0 || u32::try_from(n).is_err() {
            return Err(LlmError::Tokenizer(format!(
                "the GGUF vocabulary has {n} tokens"
            )));
        }
        let token_types = match gguf_int_array(md, "tokenizer.ggml.token_type")? {
            Some(types) if types.len() != n => {
                return Err(LlmError::Tokenizer(format!(
                    "the GGUF lists {} token types for {n} tokens",
                    types.len()
                )));
            }
            Some(types) => types,
            None => vec![1; n],
        };
        let merge_lines = gguf_str_array(md, "tokenizer.ggml.merges")?.ok_or_else(|| {
            LlmError::Tokenizer("the GGUF byte-level BPE tokenizer has no merges".into())
        })?;

        let mut vocab = Vocab::default();
        for (id, token) in tokens.iter().enumerate() {
            // A repeated entry keeps its first id, as llama.cpp does.
            vocab.entry(token.to_string()).or_insert(id as u32);
        }
        // A byte-level vocabulary has a symbol for every printable ASCII byte and newline. Some
        // lack rare control bytes (SmolLM2 has none for 0x04, 0x06, 0x13, ...): those are
        // dropped when encoding, as llama.cpp does.
        if let Some(b) = (b' '..=b'~')
            .chain([b'\n'])
            .find(|&b| !vocab.contains_key(&byte_level_symbol(b).to_string()))
        {
            return Err(LlmError::Tokenizer(format!(
                "the GGUF vocabulary is not byte-level: it has no token for byte 0x{b:02X}"
            )));
        }
        let mut merges: Merges = Vec::with_capacity(merge_lines.len());
        for (i, line) in merge_lines.iter().enumerate() {
            // Split at the first space after the first character, so a merge of a token that
            // begins with a space still parses.
            let cut = line
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(at, _)| at);
            match cut {
                Some(at) => merges.push((line[..at].to_owned(), line[at + 1..].to_owned())),
                None => {
                    return Err(LlmError::Tokenizer(format!(
                        "GGUF merge {i} ({line:?}) is not two tokens separated by a space"
                    )));
                }
            }
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(ignore_merges)
            .build()
            .map_err(|e| {
                LlmError::Tokenizer(format!("GGUF BPE vocabulary is inconsistent: {e}"))
            })?;

        let mut hf = tokenizers::Tokenizer::new(bpe);
        hf.with_pre_tokenizer(Some(split.pre_tokenizer()?));
        hf.with_decoder(Some(ByteLevel::default()));
        let mut control = Vec::new();
        let mut user_defined = Vec::new();
        let mut special = vec![false; n];
        for (id, (token, &kind)) in tokens.iter().zip(&token_types).enumerate() {
            if vocab_first_id(&hf, token) != Some(id as u32) {
                continue;
            }
            match kind {
                GGUF_TOKEN_CONTROL => {
                    special[id] = true;
                    control.push(AddedToken::from(token.to_string(), true).normalized(false));
                }
                GGUF_TOKEN_USER_DEFINED => {
                    user_defined.push(AddedToken::from(token.to_string(), false).normalized(false));
                }
                _ => {}
            }
        }
        hf.add_special_tokens(&control);
        hf.add_tokens(&user_defined);

        let id_key = |key: &str| gguf_id(md, key, n);
        let bos_id = id_key("tokenizer.ggml.bos_token_id")?;
        let mut eos_ids: Vec<u32> = Vec::new();
        for key in [
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
        ] {
            eos_ids.extend(id_key(key)?);
        }
        for marker in END_MARKERS {
            if let Some(id) = hf.token_to_id(marker)
                && special.get(id as usize).copied().unwrap_or(false)
            {
                eos_ids.push(id);
            }
        }
        dedup_in_order(&mut eos_ids);

        // Byte-level BPE adds no BOS unless the file says so (llama.cpp's default too).
        let add_bos = gguf_bool(md, "tokenizer.ggml.add_bos_token")?.unwrap_or(false);
        let add_eos = gguf_bool(md, "tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        let token_bytes = tokens.iter().map(|token| byte_level_bytes(token)).collect();
        let chat_template = gguf_str(md, "tokenizer.chat_template")?.map(str::to_owned);

        Ok(Self::assemble(Inner {
            source: format!(
                "GGUF tokenizer ({model}, pre {:?})",
                pre.unwrap_or("default")
            ),
            vocab_size: n,
            token_bytes: Some(token_bytes),
            special,
            bos_id,
            prepend_bos: if add_bos { bos_id } else { None },
            append_eos: if add_eos {
                eos_ids.first().copied()
            } else {
                None
            },
            eos_ids,
            chat_template,
            chat: None,
            engine: Engine::Hf(Box::new(hf)),
        }))
    }

    /// A SentencePiece GGUF (`tokenizer.ggml.model = "llama"`): pieces, scores and token types,
    /// byte fallback, the space prefix, BOS/EOS as the file says (BOS by default, as llama.cpp).
    fn from_gguf_spm(content: &Content) -> Result<Self> {
        let md = &content.metadata;
        let tokens = gguf_str_array(md, "tokenizer.ggml.tokens")?
            .ok_or_else(|| LlmError::Tokenizer("the GGUF has no tokenizer.ggml.tokens".into()))?;
        let n = tokens.len();
        if n == 0 || n > MAX_VOCAB {
            return Err(LlmError::Tokenizer(format!(
                "the GGUF vocabulary has {n} tokens"
            )));
        }
        let kinds = match gguf_int_array(md, "tokenizer.ggml.token_type")? {
            Some(types) => types
                .into_iter()
                .map(PieceKind::from_gguf)
                .collect::<Result<Vec<_>>>()?,
            None => vec![PieceKind::Normal; n],
        };
        let scores = gguf_f32_array(md, "tokenizer.ggml.scores")?.unwrap_or_else(|| vec![0.0; n]);
        let id_key = |key: &str| gguf_id(md, key, n);
        let bos_id = id_key("tokenizer.ggml.bos_token_id")?;
        let unk_id = id_key("tokenizer.ggml.unknown_token_id")?;
        id_key("tokenizer.ggml.padding_token_id")?;
        let add_space_prefix = gguf_bool(md, "tokenizer.ggml.add_space_prefix")?.unwrap_or(true);
        let add_bos = gguf_bool(md, "tokenizer.ggml.add_bos_token")?.unwrap_or(true);
        let add_eos = gguf_bool(md, "tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        let pieces: Vec<String> = tokens.iter().map(|t| (*t).to_owned()).collect();
        let vocab = SpmVocab::new(pieces, scores, kinds, add_space_prefix, unk_id)?;

        let mut eos_ids: Vec<u32> = Vec::new();
        for key in [
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
        ] {
            eos_ids.extend(id_key(key)?);
        }
        // Gemma's <end_of_turn> is user-defined, not control: both end a generation.
        let special: Vec<bool> = (0..n as u32)
            .map(|id| vocab.kind(id) == Some(PieceKind::Control))
            .collect();
        for marker in END_MARKERS {
            if let Some(id) = vocab.id(marker)
                && matches!(
                    vocab.kind(id),
                    Some(PieceKind::Control | PieceKind::UserDefined)
                )
            {
                eos_ids.push(id);
            }
        }
        dedup_in_order(&mut eos_ids);
        if add_bos && bos_id.is_none() {
            return Err(LlmError::Tokenizer(
                "the GGUF asks for a BOS token (add_bos_token) but names none".into(),
            ));
        }
        let token_bytes = (0..n as u32).map(|id| vocab.piece_bytes(id)).collect();
        let chat_template = gguf_str(md, "tokenizer.chat_template")?.map(str::to_owned);
        Ok(Self::assemble(Inner {
            source: "GGUF tokenizer (llama, SentencePiece)".to_owned(),
            vocab_size: n,
            token_bytes: Some(token_bytes),
            special,
            bos_id,
            prepend_bos: if add_bos { bos_id } else { None },
            append_eos: if add_eos {
                eos_ids.first().copied()
            } else {
                None
            },
            eos_ids,
            chat_template,
            chat: None,
            engine: Engine::Spm(Box::new(vocab)),
        }))
    }

    /// Writes the Hugging Face files [`Tokenizer::from_file`] reads back as this same
    /// tokenizer: `tokenizer.json` (with a post-processor for the BOS/EOS a GGUF adds),
    /// `tokenizer_config.json` (BOS, EOS, chat template) and `generation_config.json` (every
    /// end id). A GGUF model converted to a folder keeps its prompts and stops this way.
    pub fn save_hf(&self, dir: &Path) -> Result<()> {
        let inner = &self.inner;
        let Engine::Hf(hf) = &inner.engine else {
            return Err(LlmError::Tokenizer(format!(
                "{} cannot be written as a tokenizer.json yet",
                inner.source
            )));
        };
        let text = hf.to_string(false).map_err(|e| {
            LlmError::Tokenizer(format!("could not serialise {}: {e}", inner.source))
        })?;
        let mut json: Json = serde_json::from_str(&text).map_err(|e| {
            LlmError::Tokenizer(format!("could not serialise {}: {e}", inner.source))
        })?;
        if inner.prepend_bos.is_some() || inner.append_eos.is_some() {
            json["post_processor"] = self.wrapping_template()?;
        }
        write_json(&dir.join("tokenizer.json"), &json)?;

        let piece = |id: Option<u32>| id.and_then(|id| hf.id_to_token(id));
        let mut config = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": inner.prepend_bos.is_some(),
            "add_eos_token": inner.append_eos.is_some(),
            "clean_up_tokenization_spaces": false,
            "bos_token": piece(inner.bos_id),
            "eos_token": piece(inner.eos_ids.first().copied()),
        });
        if let Some(template) = &inner.chat_template {
            config["chat_template"] = Json::String(template.clone());
        }
        write_json(&dir.join("tokenizer_config.json"), &config)?;
        let generation = serde_json::json!({
            "bos_token_id": inner.bos_id,
            "eos_token_id": inner.eos_ids,
        });
        write_json(&dir.join("generation_config.json"), &generation)
    }

    /// A `TemplateProcessing` post-processor (as JSON) that puts the GGUF's BOS/EOS around a
    /// sequence, as `encode(.., true)` does here.
    fn wrapping_template(&self) -> Result<Json> {
        let inner = &self.inner;
        let mut special = serde_json::Map::new();
        let mut piece = |id: u32, type_id: u32| -> Result<Json> {
            let token = self.token_piece(id).ok_or_else(|| {
                LlmError::Tokenizer(format!("special token id {id} has no vocabulary entry"))
            })?;
            special.insert(
                token.clone(),
                serde_json::json!({"id": token, "ids": [id], "tokens": [token]}),
            );
            Ok(serde_json::json!({"SpecialToken": {"id": token, "type_id": type_id}}))
        };
        let mut single = Vec::new();
        let mut pair = Vec::new();
        for (sequence, type_id, out) in [("A", 0, &mut single), ("B", 1, &mut pair)] {
            out.extend(inner.prepend_bos.map(|id| piece(id, type_id)).transpose()?);
            out.push(serde_json::json!({"Sequence": {"id": sequence, "type_id": type_id}}));
            out.extend(inner.append_eos.map(|id| piece(id, type_id)).transpose()?);
        }
        let pair: Vec<Json> = single.iter().cloned().chain(pair).collect();
        Ok(serde_json::json!({
            "type": "TemplateProcessing",
            "single": single,
            "pair": pair,
            "special_tokens": special,
        }))
    }

    fn assemble(mut inner: Inner) -> Self {
        inner.chat = match inner.chat_template.as_deref() {
            // A template in a format we cannot render: raw continuation.
            Some(template) => ChatTemplate::detect(template),
            None => {
                let has = |t: &str| inner_token_id(&inner.engine, t).is_some();
                (has("<|im_start|>") && has("<|im_end|>")).then(ChatTemplate::chatml)
            }
        };
        // The chat format's end-of-turn tokens stop a generation too.
        if let Some(chat) = &inner.chat {
            for marker in chat.format.stop_markers() {
                if let Some(id) = inner_token_id(&inner.engine, marker) {
                    inner.eos_ids.push(id);
                }
            }
            dedup_in_order(&mut inner.eos_ids);
        }
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) encode to
    /// their single id. `add_special_tokens` adds what the tokenizer adds around a sequence
    /// (BOS for llama-style tokenizers; nothing for GPT-2 or SmolLM2). A byte the vocabulary
    /// has no token for (a few control characters in SmolLM2's) is left out.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let inner = &self.inner;
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if add_special_tokens {
            ids.extend(inner.prepend_bos);
        }
        match &inner.engine {
            Engine::Hf(hf) => {
                let encoding = hf
                    .encode_fast(text, add_special_tokens)
                    .map_err(|e| LlmError::Tokenizer(format!("could not encode text: {e}")))?;
                ids.extend_from_slice(encoding.get_ids());
            }
            Engine::Spm(vocab) => vocab.encode(text, &mut ids),
        }
        if add_special_tokens {
            ids.extend(inner.append_eos);
        }
        Ok(ids)
    }

    /// The text of `ids`, special tokens included. Bytes that do not form valid UTF-8 (a
    /// character cut off at the end) come out as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.check_ids(ids)?;
        match &self.inner.token_bytes {
            Some(table) => {
                let mut bytes: Vec<u8> = ids
                    .iter()
                    .flat_map(|&id| table[id as usize].iter().copied())
                    .collect();
                if ids.first().is_some_and(|&id| self.inner.strips_prefix(id)) {
                    bytes.remove(0);
                }
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            None => match &self.inner.engine {
                Engine::Hf(hf) => hf
                    .decode(ids, false)
                    .map_err(|e| LlmError::Tokenizer(format!("could not decode tokens: {e}"))),
                Engine::Spm(_) => Err(LlmError::Tokenizer(
                    "a SentencePiece tokenizer without a byte table".into(),
                )),
            },
        }
    }

    /// A streaming decoder: feed it ids one at a time as they are generated.
    pub fn stream(&self) -> TokenStream {
        TokenStream {
            tokenizer: self.clone(),
            pending: Vec::new(),
            window: Vec::new(),
            window_text: String::new(),
            started: false,
        }
    }

    /// The ids of a prompt: in `Chat` mode wrapped in the chat template (when the model has
    /// one), in `Raw` mode as is. Either way the ids are what `transformers` gives: the chat
    /// text is encoded without extra special tokens (the template writes its own), raw text
    /// with them.
    pub fn prompt_ids(&self, text: &str, mode: PromptMode) -> Result<Vec<u32>> {
        let ids = match (mode, self.chat_prompt(text)) {
            (PromptMode::Chat, Some(chat)) => self.encode(&chat, false)?,
            _ => self.encode(text, true)?,
        };
        if ids.is_empty() {
            return Err(LlmError::EmptyPrompt);
        }
        Ok(ids)
    }

    /// `user` as the model's chat prompt: one user message, the template's default system
    /// prompt if it has one, and the opening of the assistant's turn (what
    /// `apply_chat_template(.., add_generation_prompt=True)` renders). `None` when the model
    /// has no chat format we can render.
    pub fn chat_prompt(&self, user: &str) -> Option<String> {
        self.chat_prompt_with_system(None, user)
    }

    /// Like [`Tokenizer::chat_prompt`] with a system prompt of your own; `None` uses the
    /// template's default, if any.
    pub fn chat_prompt_with_system(&self, system: Option<&str>, user: &str) -> Option<String> {
        let chat = self.inner.chat.as_ref()?;
        let bos = self.inner.bos_id.and_then(|id| self.token_piece(id));
        Some(chat.render(bos.as_deref(), system, user))
    }

    /// A conversation as the model's chat prompt, ready for the assistant's next turn (see
    /// [`ChatTemplate::render_conversation`]); `None` when the model has no chat format we can
    /// render.
    pub fn chat_conversation(&self, messages: &[(ChatRole, &str)]) -> Option<String> {
        let chat = self.inner.chat.as_ref()?;
        let bos = self.inner.bos_id.and_then(|id| self.token_piece(id));
        Some(chat.render_conversation(bos.as_deref(), messages))
    }

    /// The chat format found in the template (or, without a template, from ChatML's special
    /// tokens); `None`: chat prompts fall back to raw text.
    pub fn chat_format(&self) -> Option<ChatFormat> {
        self.inner.chat.as_ref().map(|c| c.format)
    }

    /// The system prompt the chat template adds when none is given (SmolLM2: "You are a
    /// helpful AI assistant named SmolLM, trained by Hugging Face").
    pub fn default_system_prompt(&self) -> Option<&str> {
        self.inner.chat.as_ref()?.default_system.as_deref()
    }

    /// The chat template's source text, as the model ships it.
    pub fn chat_template(&self) -> Option<&str> {
        self.inner.chat_template.as_deref()
    }

    /// Does `id` end a generation?
    pub fn is_eos(&self, id: u32) -> bool {
        self.inner.eos_ids.contains(&id)
    }

    /// Every id that ends a generation; the declared EOS first, then end-of-turn tokens and
    /// other end markers the vocabulary has (`<|endoftext|>`, `<|im_end|>`, `<|eot_id|>` ...).
    pub fn eos_ids(&self) -> &[u32] {
        &self.inner.eos_ids
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.inner.bos_id
    }

    /// Number of token ids (`0..vocab_size`), added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.vocab_size
    }

    /// Is `id` a special (control) token such as `<|im_start|>`?
    pub fn is_special(&self, id: u32) -> bool {
        self.inner
            .special
            .get(id as usize)
            .copied()
            .unwrap_or(false)
    }

    /// The id of a vocabulary entry or added token, spelled as the vocabulary spells it
    /// (`"Ġworld"` in a byte-level vocabulary, `"<|im_end|>"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        inner_token_id(&self.inner.engine, token)
    }

    /// The vocabulary entry of `id` as stored (`"Ġworld"`), not decoded.
    pub fn token_piece(&self, id: u32) -> Option<String> {
        match &self.inner.engine {
            Engine::Hf(hf) => hf.id_to_token(id),
            Engine::Spm(vocab) => vocab.piece(id).map(str::to_owned),
        }
    }

    /// The bytes `id` stands for. For a byte-level vocabulary these may be part of a UTF-8
    /// character; otherwise they are the UTF-8 of the token decoded alone.
    pub fn token_bytes(&self, id: u32) -> Result<Vec<u8>> {
        self.check_ids(&[id])?;
        match &self.inner.token_bytes {
            Some(table) => Ok(table[id as usize].to_vec()),
            None => Ok(self.decode(&[id])?.into_bytes()),
        }
    }

    /// The text of one token for display: its characters, with bytes that are only part of a
    /// character (byte-level tokens can split one) written as `\xNN`.
    pub fn token_text(&self, id: u32) -> Result<String> {
        Ok(escape_partial_utf8(&self.token_bytes(id)?))
    }

    /// The underlying `tokenizers` tokenizer; `None` for a SentencePiece GGUF, which is
    /// encoded by our own merger.
    pub fn hf(&self) -> Option<&tokenizers::Tokenizer> {
        match &self.inner.engine {
            Engine::Hf(hf) => Some(hf.as_ref()),
            Engine::Spm(_) => None,
        }
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        let n = self.inner.vocab_size;
        match ids.iter().find(|&&id| id as usize >= n) {
            Some(id) => Err(LlmError::Tokenizer(format!(
                "token id {id} is outside the {n}-token vocabulary of {}",
                self.inner.source
            ))),
            None => Ok(()),
        }
    }
}

/// Turns generated ids into text as they arrive, one complete piece at a time. A character
/// split across tokens is held back until its last byte arrives, so every returned string is
/// whole characters; all returned pieces plus [`TokenStream::finish`] add up to
/// [`Tokenizer::decode`] of all the ids.
#[derive(Debug, Clone)]
pub struct TokenStream {
    tokenizer: Tokenizer,
    /// Byte-level path: bytes of an incomplete character.
    pending: Vec<u8>,
    /// Other decoders: the ids whose decoding is compared against to find the new text (the
    /// last emitted id for context, then the ones not yet emitted), and that decoding.
    window: Vec<u32>,
    window_text: String,
    /// Has a token been pushed since the start (a SentencePiece space prefix is dropped from
    /// the first one only)?
    started: bool,
}

/// Without complete text after this many ids, emit what there is (U+FFFD included).
const STREAM_MAX_HELD: usize = 8;

impl TokenStream {
    /// Add the next id; returns the text it completes (often the token's own text, empty while
    /// a character is still incomplete).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.tokenizer.check_ids(&[id])?;
        let inner = Arc::clone(&self.tokenizer.inner);
        match &inner.token_bytes {
            Some(table) => {
                let bytes = &table[id as usize];
                let skip = usize::from(!self.started && inner.strips_prefix(id));
                self.started = true;
                self.pending
                    .extend_from_slice(bytes.get(skip..).unwrap_or_default());
                Ok(take_complete_utf8(&mut self.pending))
            }
            None => {
                self.window.push(id);
                let text = self.tokenizer.decode(&self.window)?;
                let held = self.window.len().saturating_sub(1);
                if text.ends_with('\u{FFFD}') && held < STREAM_MAX_HELD {
                    return Ok(String::new());
                }
                let new = new_suffix(&self.window_text, &text);
                // Keep the last id as context: decoders such as sentencepiece's strip the
                // leading space of the first token only.
                self.window.drain(..self.window.len() - 1);
                self.window_text = self.tokenizer.decode(&self.window)?;
                Ok(new)
            }
        }
    }

    /// Whatever is still held back (an incomplete character at the very end), as U+FFFD.
    /// The stream starts afresh afterwards.
    pub fn finish(&mut self) -> Result<String> {
        let out = if self.tokenizer.inner.token_bytes.is_some() {
            String::from_utf8_lossy(&self.pending).into_owned()
        } else if self.window.is_empty() {
            String::new()
        } else {
            let text = self.tokenizer.decode(&self.window)?;
            new_suffix(&self.window_text, &text)
        };
        self.reset();
        Ok(out)
    }

    /// Forget everything held back (a new generation starts).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.window.clear();
        self.window_text.clear();
        self.started = false;
    }

    /// Is part of a character waiting for its next token?
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.window.len() > 1
    }
}

/// The text `text` adds after `before`; if a decoder rewrote earlier text, what follows the
/// common prefix.
fn new_suffix(before: &str, text: &str) -> String {
    match text.strip_prefix(before) {
        Some(rest) => rest.to_owned(),
        None => {
            let common = before
                .char_indices()
                .zip(text.chars())
                .find(|((_, a), b)| a != b)
                .map(|((at, _), _)| at)
                .unwrap_or(before.len().min(text.len()));
            text.get(common..).unwrap_or_default().to_owned()
        }
    }
}

/// Remove and return the longest prefix of `bytes` that is complete: valid UTF-8, with
/// invalid sequences as U+FFFD (as `String::from_utf8_lossy` writes them). An incomplete
/// character at the end stays in `bytes`.
fn take_complete_utf8(bytes: &mut Vec<u8>) -> String {
    let mut out = String::new();
    let mut start = 0;
    while start < bytes.len() {
        match std::str::from_utf8(&bytes[start..]) {
            Ok(text) => {
                out.push_str(text);
                start = bytes.len();
            }
            Err(err) => {
                let valid = start + err.valid_up_to();
                out.push_str(&String::from_utf8_lossy(&bytes[start..valid]));
                match err.error_len() {
                    Some(bad) => {
                        out.push('\u{FFFD}');
                        start = valid + bad;
                    }
                    None => {
                        start = valid;
                        break;
                    }
                }
            }
        }
    }
    bytes.drain(..start);
    out
}

/// Valid UTF-8 as text, anything else as `\xNN`.
fn escape_partial_utf8(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// GPT-2's byte-level alphabet: bytes that are printable Latin-1 stand for themselves, the
/// other 68 (controls, space, DEL, NBSP, soft hyphen...) for U+0100.. in byte order.
const fn is_printable_byte(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

const SHIFTED_BYTES: [u8; 68] = {
    let mut table = [0u8; 68];
    let mut n = 0;
    let mut b = 0;
    while b < 256 {
        if !is_printable_byte(b as u8) {
            table[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    table
};

fn byte_level_char_to_byte(c: char) -> Option<u8> {
    let code = c as u32;
    if code < 256 && is_printable_byte(code as u8) {
        Some(code as u8)
    } else if (256..256 + SHIFTED_BYTES.len() as u32).contains(&code) {
        Some(SHIFTED_BYTES[(code - 256) as usize])
    } else {
        None
    }
}

/// The bytes a byte-level vocabulary entry stands for; an entry outside the alphabet (an added
/// token such as `<|im start|>` with a real space) stands for its own UTF-8, as in `tokenizers`.
fn byte_level_bytes(piece: &str) -> Box<[u8]> {
    piece
        .chars()
        .map(byte_level_char_to_byte)
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_else(|| piece.as_bytes().to_vec())
        .into_boxed_slice()
}

/// The byte-level alphabet's symbol for `b`.
fn byte_level_symbol(b: u8) -> char {
    if is_printable_byte(b) {
        char::from(b)
    } else {
        let index = SHIFTED_BYTES.iter().position(|&s| s == b).unwrap_or(0);
        char::from_u32(256 + index as u32).unwrap_or('\u{FFFD}')
    }
}

/// The byte-level spelling of text (inverse of [`byte_level_bytes`]).
#[cfg(test)]
fn byte_level_spelling(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_level_symbol(b)).collect()
}

/// The id the BPE model itself gives `token` (added tokens aside).
/// The id of a vocabulary entry or added token in either engine.
fn inner_token_id(engine: &Engine, token: &str) -> Option<u32> {
    match engine {
        Engine::Hf(hf) => hf.token_to_id(token),
        Engine::Spm(vocab) => vocab.id(token),
    }
}

/// A token id named by GGUF metadata (`tokenizer.ggml.bos_token_id`): `None` if absent or
/// written as "none" (-1 or u32::MAX), an error outside the `n`-token vocabulary.
fn gguf_id(
    md: &HashMap<String, candle_core::quantized::gguf_file::Value>,
    key: &str,
    n: usize,
) -> Result<Option<u32>> {
    match gguf_int(md, key)? {
        None => Ok(None),
        Some(id) if id >= 0 && (id as usize) < n => Ok(Some(id as u32)),
        Some(-1) | Some(0xFFFF_FFFF) => Ok(None),
        Some(id) => Err(LlmError::Tokenizer(format!(
            "GGUF {key} = {id} is outside the {n}-token vocabulary"
        ))),
    }
}

fn vocab_first_id(hf: &tokenizers::Tokenizer, token: &str) -> Option<u32> {
    use tokenizers::Model;
    hf.get_model().token_to_id(token)
}

fn dedup_in_order(ids: &mut Vec<u32>) {
    let mut seen = Vec::with_capacity(ids.len());
    ids.retain(|id| {
        let new = !seen.contains(id);
        if new {
            seen.push(*id);
        }
        new
    });
}

/// A JSON file next to the tokenizer: `None` if absent.
fn read_json(path: &Path) -> Result<Option<Json>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LlmError::Io {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| LlmError::Corrupt {
            path: PathBuf::from(path),
            message: format!("not valid JSON: {e}"),
        })
}

fn write_json(path: &Path, value: &Json) -> Result<()> {
    let io = |message: String| LlmError::Io {
        path: path.to_path_buf(),
        message,
    };
    let text = serde_json::to_string_pretty(value).map_err(|e| io(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| io(e.to_string()))
}

/// An id or a list of ids (`eos_token_id` may be either).
fn json_ids(value: Option<&Json>, out: &mut Vec<u32>) {
    let as_id = |v: &Json| v.as_u64().and_then(|id| u32::try_from(id).ok());
    match value {
        Some(Json::Array(items)) => out.extend(items.iter().filter_map(as_id)),
        Some(v) => out.extend(as_id(v)),
        None => {}
    }
}

/// `chat_template` is a string, or a list of named templates (the one named "default", else
/// the first).
fn json_chat_template(value: Option<&Json>) -> Option<String> {
    match value? {
        Json::String(s) => Some(s.clone()),
        Json::Array(items) => {
            let template = |item: &Json| item.get("template")?.as_str().map(str::to_owned);
            items
                .iter()
                .find(|item| item.get("name").and_then(Json::as_str) == Some("default"))
                .or_else(|| items.first())
                .and_then(template)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::VersionedMagic;

    /// A made-up byte-level vocabulary: the 256 byte symbols, a few merges, three control
    /// tokens and one user-defined token, with ChatML's template.
    fn tiny_gguf(pre: &str, template: Option<&str>) -> Content {
        let mut tokens: Vec<String> = vec![
            "<|endoftext|>".into(),
            "<|im_start|>".into(),
            "<|im_end|>".into(),
        ];
        let mut types = vec![3i32, 3, 3];
        for b in 0..=255u8 {
            tokens.push(byte_level_spelling(&[b]));
            types.push(1);
        }
        let merges = [
            "h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o", "Ġwo r", "Ġwor l", "Ġworl d",
        ];
        for m in merges {
            tokens.push(m.replace(' ', ""));
            types.push(1);
        }
        tokens.push("<think>".into());
        types.push(4);
        let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        let mut metadata = HashMap::new();
        metadata.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
        metadata.insert("tokenizer.ggml.pre".into(), Value::String(pre.into()));
        metadata.insert("tokenizer.ggml.tokens".into(), strings(&tokens));
        metadata.insert(
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        );
        metadata.insert(
            "tokenizer.ggml.merges".into(),
            Value::Array(merges.iter().map(|m| Value::String((*m).into())).collect()),
        );
        metadata.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(1));
        metadata.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(2));
        metadata.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(false));
        if let Some(t) = template {
            metadata.insert("tokenizer.chat_template".into(), Value::String(t.into()));
        }
        Content {
            magic: VersionedMagic::GgufV3,
            metadata,
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        }
    }

    const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn byte_id(b: u8) -> u32 {
        3 + b as u32
    }

    #[test]
    fn shareable_across_threads() {
        fn send_sync<T: Send + Sync + Clone>() {}
        send_sync::<Tokenizer>();
        send_sync::<TokenStream>();
    }

    #[test]
    fn byte_level_alphabet_round_trips() {
        for b in 0..=255u8 {
            let spelled = byte_level_spelling(&[b]);
            assert_eq!(spelled.chars().count(), 1);
            assert_eq!(&*byte_level_bytes(&spelled), &[b]);
        }
        assert_eq!(byte_level_spelling(b" "), "Ġ");
        assert_eq!(byte_level_spelling(b"\n"), "Ċ");
        assert_eq!(&*byte_level_bytes("<|im_start|>"), b"<|im_start|>");
        // Outside the alphabet (a real space): its own UTF-8.
        assert_eq!(&*byte_level_bytes("a b"), b"a b");
    }

    #[test]
    fn tiny_bpe_merges_and_special_tokens() {
        let tok = Tokenizer::from_gguf(&tiny_gguf("smollm", None)).unwrap();
        assert_eq!(tok.vocab_size(), 3 + 256 + 9 + 1);
        let hello = tok.token_to_id("hello").unwrap();
        let world = tok.token_to_id("Ġworld").unwrap();
        assert_eq!(
            tok.encode("hello world", false).unwrap(),
            vec![hello, world]
        );
        // No BOS: the file says add_bos_token = false.
        assert_eq!(tok.encode("hello world", true).unwrap(), vec![hello, world]);
        assert_eq!(
            tok.encode("<|im_start|>hello<|im_end|>", false).unwrap(),
            vec![1, hello, 2]
        );
        let think = tok.token_to_id("<think>").unwrap();
        assert_eq!(tok.encode("<think>", false).unwrap(), vec![think]);
        assert!(tok.is_special(1) && !tok.is_special(think) && !tok.is_special(hello));
        assert_eq!(
            tok.encode("hex", false).unwrap(),
            vec![tok.token_to_id("he").unwrap(), byte_id(b'x')]
        );
        assert_eq!(
            tok.decode(&[1, hello, world, 2]).unwrap(),
            "<|im_start|>hello world<|im_end|>"
        );
        assert_eq!(tok.bos_id(), Some(1));
        assert_eq!(tok.eos_ids(), &[2, 0]);
        assert!(tok.is_eos(0) && tok.is_eos(2) && !tok.is_eos(1));
        assert_eq!(tok.token_piece(world).as_deref(), Some("Ġworld"));
        assert_eq!(tok.token_text(world).unwrap(), " world");
        assert!(tok.decode(&[9999]).is_err());
        // A byte without a token is left out.
        let mut c = tiny_gguf("gpt2", None);
        if let Some(Value::Array(tokens)) = c.metadata.get_mut("tokenizer.ggml.tokens") {
            tokens[3 + 0x04] = Value::String("<no byte 4>".into());
        }
        let holed = Tokenizer::from_gguf(&c).unwrap();
        assert_eq!(
            holed.encode("a\u{4}b", false).unwrap(),
            vec![byte_id(b'a'), byte_id(b'b')]
        );
        assert!(tok.encode("", true).unwrap().is_empty());
    }

    #[test]
    fn isolated_digits_split_every_numeral() {
        let tok = Tokenizer::from_gguf(&tiny_gguf("smollm", None)).unwrap();
        let ids = tok.encode(" 12", false).unwrap();
        assert_eq!(ids, vec![byte_id(b' '), byte_id(b'1'), byte_id(b'2')]);
        // "½" is numeric too: a piece of its own, not glued to the space.
        let pieces = split_pieces(GgufSplit::IsolatedDigits, "a ½ b12");
        assert_eq!(pieces, ["a", "Ġ", "Â½", "Ġb", "1", "2"]);
    }

    fn split_pieces(split: GgufSplit, text: &str) -> Vec<String> {
        use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};
        let mut pre = PreTokenizedString::from(text);
        split
            .pre_tokenizer()
            .unwrap()
            .pre_tokenize(&mut pre)
            .unwrap();
        pre.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(s, _, _)| s.to_owned())
            .collect()
    }

    /// Expected pieces as Python `tokenizers` (Oniguruma regexes) splits them; ours run on
    /// fancy-regex.
    #[test]
    fn split_regexes() {
        assert_eq!(
            split_pieces(GgufSplit::Gpt2, "I'll pay 12345 now!!\n\n  ok"),
            ["I", "'ll", "Ġpay", "Ġ12345", "Ġnow", "!!", "ĊĊĠ", "Ġok"]
        );
        assert_eq!(
            split_pieces(GgufSplit::Llama3, "I'LL pay 12345 now!!\n\n  ok"),
            [
                "I", "'LL", "Ġpay", "Ġ", "123", "45", "Ġnow", "!!ĊĊ", "Ġ", "Ġok"
            ]
        );
        assert_eq!(
            split_pieces(GgufSplit::Qwen2, "pay 123 now"),
            ["pay", "Ġ", "1", "2", "3", "Ġnow"]
        );
        assert!(GgufSplit::from_pre(Some("no-such-pre")).is_err());
        assert_eq!(GgufSplit::from_pre(None).unwrap(), (GgufSplit::Gpt2, false));
        assert_eq!(
            GgufSplit::from_pre(Some("llama-bpe")).unwrap(),
            (GgufSplit::Llama3, true)
        );
    }

    #[test]
    fn streaming_holds_split_characters() {
        let tok = Tokenizer::from_gguf(&tiny_gguf("gpt2", None)).unwrap();
        // "日本" is six bytes, each its own token here.
        let ids = tok.encode("日本!", false).unwrap();
        assert_eq!(ids.len(), 7);
        let mut stream = tok.stream();
        let out: Vec<String> = ids.iter().map(|&id| stream.push(id).unwrap()).collect();
        assert_eq!(out, ["", "", "日", "", "", "本", "!"]);
        assert!(!stream.has_pending());
        assert_eq!(stream.finish().unwrap(), "");
        assert_eq!(tok.token_text(ids[0]).unwrap(), "\\xE6");
        assert_eq!(tok.decode(&ids[..1]).unwrap(), "\u{FFFD}");
    }

    #[test]
    fn streaming_invalid_and_cut_off_bytes_match_decode() {
        let tok = Tokenizer::from_gguf(&tiny_gguf("gpt2", None)).unwrap();
        // A stray continuation byte, a lead byte followed by ASCII, a cut-off character.
        let bytes: &[u8] = &[b'a', 0x97, b'b', 0xE6, b'c', 0xF0, 0x9F, 0x8E];
        let ids: Vec<u32> = bytes.iter().map(|&b| byte_id(b)).collect();
        let mut stream = tok.stream();
        let mut text = String::new();
        for &id in &ids {
            text.push_str(&stream.push(id).unwrap());
        }
        assert!(stream.has_pending());
        text.push_str(&stream.finish().unwrap());
        assert_eq!(text, tok.decode(&ids).unwrap());
        assert_eq!(text, "a\u{FFFD}b\u{FFFD}c\u{FFFD}");
    }

    #[test]
    fn chatml_prompt_with_default_system() {
        let tok = Tokenizer::from_gguf(&tiny_gguf("smollm", Some(SMOLLM2_TEMPLATE))).unwrap();
        assert_eq!(tok.chat_format(), Some(ChatFormat::ChatMl));
        assert_eq!(
            tok.default_system_prompt(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        assert_eq!(
            tok.chat_prompt("hello").unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
             Face<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            tok.chat_prompt_with_system(Some("Sing."), "hi").unwrap(),
            "<|im_start|>system\nSing.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        let chat = tok.prompt_ids("hello", PromptMode::Chat).unwrap();
        assert_eq!(chat[0], 1);
        assert_eq!(chat.iter().filter(|&&id| id == 1).count(), 3);
        let raw = tok.prompt_ids("hello", PromptMode::Raw).unwrap();
        assert_eq!(raw, vec![tok.token_to_id("hello").unwrap()]);
        assert!(matches!(
            tok.prompt_ids("", PromptMode::Raw),
            Err(LlmError::EmptyPrompt)
        ));
    }

    #[test]
    fn chat_detection() {
        // ChatML tokens but no template: ChatML without a system prompt.
        let tok = Tokenizer::from_gguf(&tiny_gguf("gpt2", None)).unwrap();
        assert_eq!(tok.chat_format(), Some(ChatFormat::ChatMl));
        assert_eq!(tok.default_system_prompt(), None);
        assert_eq!(
            tok.chat_prompt("x").unwrap(),
            "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"
        );
        // Mistral's [INST], recognised on a byte-level vocabulary too; BOS as the template
        // writes it.
        let mistral =
            "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}";
        let tok = Tokenizer::from_gguf(&tiny_gguf("gpt2", Some(mistral))).unwrap();
        assert_eq!(tok.chat_format(), Some(ChatFormat::Mistral));
        assert_eq!(
            tok.chat_prompt("hi").as_deref(),
            Some("<|im_start|>[INST] hi [/INST]")
        );
        // A template in a format we do not know (Alpaca's): raw.
        let other = "{% for m in messages %}### Instruction:\n{{ m['content'] }}\n\n{% endfor %}### Response:\n";
        let tok = Tokenizer::from_gguf(&tiny_gguf("gpt2", Some(other))).unwrap();
        assert_eq!(tok.chat_format(), None);
        assert_eq!(
            tok.prompt_ids("hello", PromptMode::Chat).unwrap(),
            tok.prompt_ids("hello", PromptMode::Raw).unwrap()
        );
        // Qwen2.5-style: the default is the literal, not the concatenations around it.
        let qwen = "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You\\'re helpful.<|im_end|>\\n' }}{%- endif %}";
        assert_eq!(
            chatml_default_system(qwen).as_deref(),
            Some("You are Qwen, created by Alibaba Cloud. You're helpful.")
        );
        let no_default = "{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}";
        assert_eq!(chatml_default_system(no_default), None);
    }

    #[test]
    fn gguf_errors_are_clear() {
        let mut c = tiny_gguf("gpt2", None);
        c.metadata
            .insert("tokenizer.ggml.model".into(), Value::String("t5".into()));
        let err = Tokenizer::from_gguf(&c).unwrap_err().to_string();
        assert!(
            err.contains("\"t5\" is not supported") && err.contains("\"llama\""),
            "{err}"
        );
        let err = GgufSplit::from_pre(Some("no-such-pre"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"no-such-pre\"") && err.contains("llama-bpe") && err.contains("qwen2"),
            "{err}"
        );

        let mut c = tiny_gguf("gpt2", None);
        c.metadata.remove("tokenizer.ggml.model");
        assert!(Tokenizer::from_gguf(&c).is_err());

        let mut c = tiny_gguf("gpt2", None);
        c.metadata.insert(
            "tokenizer.ggml.merges".into(),
            Value::Array(vec![
                Value::String("q z".into()),
                Value::String("nospace".into()),
            ]),
        );
        assert!(Tokenizer::from_gguf(&c).is_err());

        let mut c = tiny_gguf("gpt2", None);
        c.metadata
            .insert("tokenizer.ggml.eos_token_id".into(), Value::U32(1_000_000));
        assert!(Tokenizer::from_gguf(&c).is_err());

        let mut c = tiny_gguf("gpt2", None);
        c.metadata
            .insert("tokenizer.ggml.tokens".into(), Value::String("oops".into()));
        assert!(Tokenizer::from_gguf(&c).is_err());

        let mut c = tiny_gguf("gpt2", None);
        c.metadata.insert(
            "tokenizer.ggml.token_type".into(),
            Value::Array(vec![Value::I32(1)]),
        );
        assert!(Tokenizer::from_gguf(&c).is_err());

        assert!(Tokenizer::from_gguf(&tiny_gguf("unknown-pre", None)).is_err());

        // The symbol for "A" renamed: a text with "A" could not be encoded.
        let mut c = tiny_gguf("gpt2", None);
        if let Some(Value::Array(tokens)) = c.metadata.get_mut("tokenizer.ggml.tokens") {
            tokens[3 + b'A' as usize] = Value::String("<not A>".into());
        }
        let err = Tokenizer::from_gguf(&c).unwrap_err().to_string();
        assert!(
            err.contains("not byte-level") && err.contains("0x41"),
            "{err}"
        );
    }

    #[test]
    fn gguf_bos_when_asked() {
        let mut c = tiny_gguf("llama-bpe", None);
        c.metadata
            .insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(true));
        let tok = Tokenizer::from_gguf(&c).unwrap();
        let hello = tok.token_to_id("hello").unwrap();
        assert_eq!(tok.encode("hello", true).unwrap(), vec![1, hello]);
        assert_eq!(tok.encode("hello", false).unwrap(), vec![hello]);
    }

    #[test]
    fn saved_folder_reads_back_the_same_tokenizer() {
        let dir = std::env::temp_dir().join(format!(
            "latent-choir-tokenizer-save-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = tiny_gguf("llama-bpe", Some(SMOLLM2_TEMPLATE));
        c.metadata
            .insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(true));
        let gguf = Tokenizer::from_gguf(&c).unwrap();
        gguf.save_hf(&dir).unwrap();
        let saved = Tokenizer::from_file(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let saved = saved.unwrap();
        for text in ["hello world", "<|im_start|>user\nhi<think>", " 12 ½ wor"] {
            for special in [false, true] {
                assert_eq!(
                    saved.encode(text, special).unwrap(),
                    gguf.encode(text, special).unwrap(),
                    "{text:?}, special tokens {special}"
                );
            }
        }
        assert_eq!(saved.encode("hello", true).unwrap()[0], 1);
        assert_eq!(saved.bos_id(), gguf.bos_id());
        assert_eq!(saved.eos_ids(), gguf.eos_ids());
        assert_eq!(saved.chat_prompt("hi"), gguf.chat_prompt("hi"));
        assert_eq!(saved.vocab_size(), gguf.vocab_size());
        for id in 0..gguf.vocab_size() as u32 {
            assert_eq!(saved.is_special(id), gguf.is_special(id), "id {id}");
            assert_eq!(
                saved.token_bytes(id).unwrap(),
                gguf.token_bytes(id).unwrap()
            );
        }
    }

    /// A llama-2-style (sentencepiece BPE with byte fallback) tokenizer.json in a temporary
    /// folder, with a tokenizer_config.json and config.json.
    fn llama_style_folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "latent-choir-tokenizer-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut vocab = serde_json::Map::new();
        for (i, t) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
            vocab.insert((*t).into(), i.into());
        }
        for b in 0..=255u32 {
            vocab.insert(format!("<0x{b:02X}>"), (3 + b).into());
        }
        let pieces = [
            "▁", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "hell", "hello", "▁hello", "▁w",
            "or", "▁wor", "▁worl", "▁world",
        ];
        for (i, t) in pieces.iter().enumerate() {
            vocab.insert((*t).into(), (259 + i).into());
        }
        let merges = [
            "h e",
            "l l",
            "he ll",
            "hell o",
            "▁ hello",
            "▁ w",
            "o r",
            "▁w or",
            "▁wor l",
            "▁worl d",
        ];
        let json = serde_json::json!({
            "version": "1.0",
            "truncation": {"direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0},
            "padding": null,
            "added_tokens": [
                {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
            ],
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
            ]},
            "pre_tokenizer": null,
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
            },
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0}
            ]},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                "vocab": vocab, "merges": merges
            }
        });
        std::fs::write(dir.join("tokenizer.json"), json.to_string()).unwrap();
        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"bos_token": "<s>", "eos_token": {"content": "</s>"}, "add_bos_token": true}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"eos_token_id": 2, "bos_token_id": 1}"#,
        )
        .unwrap();
        dir
    }

    #[test]
    fn tokenizer_json_folder() {
        let dir = llama_style_folder("json");
        let tok = Tokenizer::from_file(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(tok.vocab_size(), 3 + 256 + 18);
        assert_eq!(tok.bos_id(), Some(1));
        assert_eq!(tok.eos_ids(), &[2]);
        assert_eq!(tok.chat_format(), None);
        let hello = tok.token_to_id("▁hello").unwrap();
        let world = tok.token_to_id("▁world").unwrap();
        // The file's own post-processor adds BOS; its truncation (4 tokens) is switched off.
        assert_eq!(
            tok.prompt_ids("hello world", PromptMode::Raw).unwrap(),
            vec![1, hello, world]
        );
        assert_eq!(
            tok.prompt_ids("hello world", PromptMode::Chat).unwrap(),
            vec![1, hello, world]
        );
        let long = tok.encode("hello world hello world hello", false).unwrap();
        assert_eq!(long.len(), 5);
        // Byte fallback for a character outside the vocabulary.
        let ids = tok.encode("hello é world", false).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), "hello é world");
        let mut stream = tok.stream();
        let mut pieces = Vec::new();
        for &id in &ids {
            pieces.push(stream.push(id).unwrap());
        }
        pieces.push(stream.finish().unwrap());
        assert_eq!(pieces.concat(), "hello é world");
        assert_eq!(pieces[0], "hello");
        assert!(pieces.contains(&"é".to_owned()), "{pieces:?}");
        assert_eq!(tok.token_text(world).unwrap(), "world");
    }

    /// A SentencePiece GGUF's metadata: `<unk>`, `<s>`, `</s>`, the 256 byte pieces, and a few
    /// scored pieces, with `<start_of_turn>` user-defined.
    fn tiny_spm() -> Content {
        let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        let mut types = vec![2i32, 3, 3];
        let mut scores = vec![0f32; 3];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
            scores.push(0.0);
        }
        for (piece, score) in [
            ("\u{2581}", -1.0),
            ("h", -2.0),
            ("i", -3.0),
            ("hi", -4.0),
            ("\u{2581}h", -5.0),
            ("\u{2581}hi", -0.5),
        ] {
            tokens.push(piece.into());
            types.push(1);
            scores.push(score);
        }
        tokens.push("<start_of_turn>".into());
        types.push(4);
        scores.push(0.0);
        let mut metadata = HashMap::new();
        metadata.insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
        metadata.insert(
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        );
        metadata.insert(
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        );
        metadata.insert(
            "tokenizer.ggml.scores".into(),
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        );
        metadata.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(1));
        metadata.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(2));
        Content {
            magic: VersionedMagic::GgufV3,
            metadata,
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        }
    }

    #[test]
    fn spm_merges_by_score_with_byte_fallback() {
        let tok = Tokenizer::from_gguf(&tiny_spm()).unwrap();
        let id = |p: &str| tok.token_to_id(p).unwrap();
        // ▁ h i: "hi" (-4) beats "▁h" (-5), then "▁"+"hi" makes "▁hi".
        assert_eq!(tok.encode("hi", false).unwrap(), vec![id("\u{2581}hi")]);
        // BOS by default (llama.cpp's default for SentencePiece), space prefix by default.
        assert_eq!(tok.encode("hi", true).unwrap(), vec![1, id("\u{2581}hi")]);
        // "é" has no piece: its two UTF-8 bytes.
        assert_eq!(
            tok.encode("hé", false).unwrap(),
            vec![id("\u{2581}h"), id("<0xC3>"), id("<0xA9>")]
        );
        // Specials in text: whole, and the text after one gets the prefix again.
        let sot = id("<start_of_turn>");
        assert_eq!(
            tok.encode("<s>hi<start_of_turn>hi", false).unwrap(),
            vec![1, id("\u{2581}hi"), sot, id("\u{2581}hi")]
        );
        assert_eq!(tok.decode(&[1, id("\u{2581}hi")]).unwrap(), "<s> hi");
        assert_eq!(
            tok.decode(&[id("\u{2581}hi"), id("\u{2581}hi")]).unwrap(),
            "hi hi"
        );
        assert!(tok.hf().is_none());
        assert!(tok.save_hf(&std::env::temp_dir()).is_err());
    }

    #[test]
    fn spm_errors_are_clear() {
        let mut c = tiny_spm();
        c.metadata
            .insert("tokenizer.ggml.eos_token_id".into(), Value::U32(100_000));
        let err = Tokenizer::from_gguf(&c).unwrap_err().to_string();
        assert!(err.contains("outside the"), "{err}");

        let mut c = tiny_spm();
        if let Some(Value::Array(types)) = c.metadata.get_mut("tokenizer.ggml.token_type") {
            types[5] = Value::I32(9);
        }
        let err = Tokenizer::from_gguf(&c).unwrap_err().to_string();
        assert!(err.contains("token type 9"), "{err}");

        let mut c = tiny_spm();
        if let Some(Value::Array(scores)) = c.metadata.get_mut("tokenizer.ggml.scores") {
            scores.pop();
        }
        assert!(Tokenizer::from_gguf(&c).is_err());

        let mut c = tiny_spm();
        if let Some(Value::Array(tokens)) = c.metadata.get_mut("tokenizer.ggml.tokens") {
            tokens[3] = Value::String("<0xZZ>".into());
        }
        let err = Tokenizer::from_gguf(&c).unwrap_err().to_string();
        assert!(err.contains("byte"), "{err}");

        let mut c = tiny_spm();
        c.metadata.remove("tokenizer.ggml.bos_token_id");
        let err = Tokenizer::from_gguf(&c).unwrap_err().to_string();
        assert!(err.contains("BOS"), "{err}");
    }

    #[test]
    fn tokenizer_json_errors() {
        let missing = std::env::temp_dir().join("latent-choir-no-such-folder/tokenizer.json");
        assert!(matches!(
            Tokenizer::from_file(&missing),
            Err(LlmError::NotFound(_))
        ));
        let dir = llama_style_folder("bad");
        std::fs::write(dir.join("tokenizer.json"), "{ not json").unwrap();
        let err = Tokenizer::from_file(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(err, Err(LlmError::Corrupt { .. })));
    }
}
