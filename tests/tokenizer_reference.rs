//! Our tokenizer for the default model (SmolLM2-135M-Instruct, GGUF) against Hugging Face
//! `transformers`: token ids, decoded text and the chat prompt must be identical for every string
//! in `tests/fixtures/tokenizer/smollm2.json`, written by `tools/reference/tokenizer_reference.py`
//! (see its docstring for how the reference was made).
//!
//! Needs the default model file; without it the tests fail and say how to get it.

use std::path::PathBuf;

use latent_choir::llm::tokenizer::{ChatFormat, PromptMode, Tokenizer};
use serde::Deserialize;

const FIXTURE: &str = include_str!("fixtures/tokenizer/smollm2.json");
const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Deserialize)]
struct Fixture {
    model: ModelInfo,
    vocab_size: usize,
    bos_id: u32,
    eos_id: u32,
    cases: Vec<Case>,
    chat: Chat,
}

#[derive(Deserialize)]
struct ModelInfo {
    bytes: u64,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    tokens: Vec<String>,
    decoded: String,
    /// What `transformers`' stock GGUF loader gives where it differs (it splits with GPT-2's
    /// regex instead of SmolLM2's isolated numerals).
    hf_gguf_stock_ids: Option<Vec<u32>>,
}

#[derive(Deserialize)]
struct Chat {
    prompt: String,
    text: String,
    ids: Vec<u32>,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).expect("tests/fixtures/tokenizer/smollm2.json is valid")
}

fn model_path() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .expect("neither XDG_DATA_HOME nor HOME is set");
    data.join("latent-choir").join("models").join(MODEL_FILE)
}

fn tokenizer() -> Tokenizer {
    let path = model_path();
    assert!(
        path.is_file(),
        "the default model {} is missing: run `cargo xtask fetch-model` first",
        path.display()
    );
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        size,
        fixture().model.bytes,
        "{} is not the model the reference was made with: run `cargo xtask fetch-model`",
        path.display()
    );
    Tokenizer::from_gguf_file(&path).expect("build the tokenizer from the GGUF")
}

#[test]
fn token_ids_match_transformers() {
    let tok = tokenizer();
    let fixture = fixture();
    let mut failures = Vec::new();
    for case in &fixture.cases {
        let ids = tok.encode(&case.text, false).expect("encode");
        if ids != case.ids {
            let ours: Vec<String> = ids
                .iter()
                .map(|&id| tok.token_piece(id).unwrap_or_default())
                .collect();
            failures.push(format!(
                "{:?}\n  reference {:?}\n            {:?}\n  ours      {:?}\n            {:?}",
                case.text, case.ids, case.tokens, ids, ours
            ));
        }
        if let Some(stock) = &case.hf_gguf_stock_ids {
            assert_ne!(&ids, stock, "{:?}: expected SmolLM2's own split", case.text);
        }
        // SmolLM2's GGUF says add_bos_token = false: no special tokens around a text.
        assert_eq!(
            tok.encode(&case.text, true).expect("encode"),
            ids,
            "{:?}",
            case.text
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} strings tokenize differently:\n{}",
        failures.len(),
        fixture.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn tokens_are_spelled_like_transformers() {
    let tok = tokenizer();
    for case in fixture().cases {
        let pieces: Vec<String> = case
            .ids
            .iter()
            .map(|&id| tok.token_piece(id).expect("id in vocabulary"))
            .collect();
        assert_eq!(pieces, case.tokens, "{:?}", case.text);
    }
}

#[test]
fn decoding_matches_transformers() {
    let tok = tokenizer();
    for case in fixture().cases {
        let text = tok.decode(&case.ids).expect("decode");
        assert_eq!(text, case.decoded, "decode of {:?}", case.text);
        // Byte-level BPE loses nothing.
        assert_eq!(text, case.text);
    }
}

#[test]
fn streaming_reassembles_every_string() {
    let tok = tokenizer();
    let fixture = fixture();
    let all = fixture
        .cases
        .iter()
        .map(|c| (c.text.as_str(), c.ids.as_slice()))
        .chain([(fixture.chat.text.as_str(), fixture.chat.ids.as_slice())]);
    for (text, ids) in all {
        let mut stream = tok.stream();
        let mut pieces = Vec::new();
        for &id in ids {
            pieces.push(stream.push(id).expect("stream"));
        }
        assert!(!stream.has_pending(), "{text:?}: bytes left over");
        pieces.push(stream.finish().expect("finish"));
        assert_eq!(pieces.concat(), text, "pieces {pieces:?}");
        // Only whole characters: none of the pieces may carry a replacement character.
        assert!(
            pieces.iter().all(|p| !p.contains('\u{FFFD}')),
            "{text:?} streamed as {pieces:?}"
        );
    }
}

#[test]
fn chat_prompt_matches_apply_chat_template() {
    let tok = tokenizer();
    let chat = fixture().chat;
    assert_eq!(tok.chat_format(), Some(ChatFormat::ChatMl));
    assert_eq!(
        tok.default_system_prompt(),
        Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
    );
    assert_eq!(
        tok.chat_prompt(&chat.prompt).as_deref(),
        Some(chat.text.as_str())
    );
    assert_eq!(
        tok.prompt_ids(&chat.prompt, PromptMode::Chat)
            .expect("chat ids"),
        chat.ids
    );
    assert_eq!(
        tok.prompt_ids(&chat.prompt, PromptMode::Raw)
            .expect("raw ids"),
        tok.encode(&chat.prompt, false).expect("encode")
    );
}

#[test]
fn vocabulary_and_special_ids() {
    let tok = tokenizer();
    let fixture = fixture();
    assert_eq!(tok.vocab_size(), fixture.vocab_size);
    assert_eq!(tok.bos_id(), Some(fixture.bos_id));
    assert_eq!(tok.eos_ids().first(), Some(&fixture.eos_id));
    let im_end = tok.token_to_id("<|im_end|>").expect("<|im_end|>");
    let end_of_text = tok.token_to_id("<|endoftext|>").expect("<|endoftext|>");
    assert!(tok.is_eos(im_end) && tok.is_eos(end_of_text));
    assert!(!tok.is_eos(fixture.bos_id));
    for special in ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<file_sep>"] {
        let id = tok.token_to_id(special).expect("special token");
        assert!(tok.is_special(id), "{special}");
        assert_eq!(tok.encode(special, false).expect("encode"), vec![id]);
        assert_eq!(tok.token_text(id).expect("text"), special);
    }
    let last = u32::try_from(tok.vocab_size()).expect("vocab fits u32");
    assert!(tok.decode(&[last]).is_err());
    assert!(tok.stream().push(last).is_err());
}
