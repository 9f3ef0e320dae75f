//! SentencePiece GGUF tokenizers and chat templates against their references.
//!
//! `tests/fixtures/tokenizer/spm-llama.gguf` and `spm-gemma.gguf` hold tiny SentencePiece BPE
//! vocabularies trained with `sentencepiece` and written as llama.cpp's converter writes them;
//! `spm.json` holds `sentencepiece`'s ids and decoded text for tricky strings, and
//! `chat_templates.json` each family's chat template rendered by transformers. All made by
//! `tools/reference/spm_tokenizer_reference.py` (its docstring says how).

use std::path::PathBuf;

use latent_choir::llm::tokenizer::{ChatFormat, ChatTemplate, PromptMode, Tokenizer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vocab {
    vocab_size: usize,
    bos_id: u32,
    eos_id: u32,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    pieces: Vec<String>,
    decoded: String,
}

#[derive(Deserialize)]
struct Family {
    family: String,
    template: String,
    bos_token: Option<String>,
    format: String,
    stops: Vec<String>,
    cases: Vec<ChatCase>,
}

#[derive(Deserialize)]
struct ChatCase {
    system: Option<String>,
    user: String,
    prompt: String,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer")
}

fn vocab(name: &str) -> Vocab {
    let all: std::collections::HashMap<String, Vocab> =
        serde_json::from_str(include_str!("fixtures/tokenizer/spm.json")).expect("spm.json");
    all.into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, v)| v)
        .expect("vocabulary in spm.json")
}

fn families() -> Vec<Family> {
    serde_json::from_str(include_str!("fixtures/tokenizer/chat_templates.json"))
        .expect("chat_templates.json")
}

fn tokenizer(name: &str) -> Tokenizer {
    Tokenizer::from_gguf_file(fixture_dir().join(format!("{name}.gguf")))
        .expect("the fixture GGUF builds a tokenizer")
}

fn check_vocabulary(name: &str) {
    let reference = vocab(name);
    let tok = tokenizer(name);
    assert_eq!(tok.vocab_size(), reference.vocab_size);
    assert_eq!(tok.bos_id(), Some(reference.bos_id));
    assert_eq!(tok.eos_ids().first(), Some(&reference.eos_id));
    for case in &reference.cases {
        let ids = tok.encode(&case.text, false).expect("encode");
        let pieces: Vec<String> = ids
            .iter()
            .map(|&id| tok.token_piece(id).unwrap_or_default())
            .collect();
        assert_eq!(
            (&ids, &pieces),
            (&case.ids, &case.pieces),
            "{name}: ids of {:?}",
            case.text
        );
        // The file says add_bos_token = true.
        let with_bos = tok.encode(&case.text, true).expect("encode");
        assert_eq!(with_bos[0], reference.bos_id);
        assert_eq!(&with_bos[1..], &case.ids[..]);

        assert_eq!(
            tok.decode(&case.ids).expect("decode"),
            case.decoded,
            "{name}: decoding {:?}",
            case.text
        );
        let mut stream = tok.stream();
        let mut text = String::new();
        for &id in &case.ids {
            text.push_str(&stream.push(id).expect("push"));
        }
        text.push_str(&stream.finish().expect("finish"));
        assert_eq!(text, case.decoded, "{name}: streaming {:?}", case.text);
    }
}

#[test]
fn llama_style_vocabulary_matches_sentencepiece() {
    check_vocabulary("spm-llama");
}

#[test]
fn gemma_style_vocabulary_matches_sentencepiece() {
    check_vocabulary("spm-gemma");
}

#[test]
fn byte_fallback_is_exercised() {
    let tok = tokenizer("spm-gemma");
    let ids = tok.encode("🎵", false).expect("encode");
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| tok.token_piece(id).unwrap_or_default())
        .collect();
    assert_eq!(pieces, ["<0xF0>", "<0x9F>", "<0x8E>", "<0xB5>"]);
    assert_eq!(tok.decode(&ids).expect("decode"), "🎵");
    // Half a character decodes as U+FFFD, and the stream holds it back.
    assert_eq!(tok.decode(&ids[..2]).expect("decode"), "\u{FFFD}");
    let mut stream = tok.stream();
    assert_eq!(stream.push(ids[0]).expect("push"), "");
    assert!(stream.has_pending());
}

fn family(name: &str) -> Family {
    families()
        .into_iter()
        .find(|f| f.family == name)
        .expect("family in chat_templates.json")
}

#[test]
fn gemma_chat_prompt_and_stops() {
    let tok = tokenizer("spm-gemma");
    let gemma = family("gemma3");
    assert_eq!(tok.chat_format(), Some(ChatFormat::Gemma));
    let case = &gemma.cases[0];
    assert!(case.system.is_none());
    let prompt = tok.chat_prompt(&case.user).expect("a chat prompt");
    assert_eq!(prompt, case.prompt);
    let ids = tok.prompt_ids(&case.user, PromptMode::Chat).expect("ids");
    let start = tok.token_to_id("<start_of_turn>").expect("<start_of_turn>");
    let end = tok.token_to_id("<end_of_turn>").expect("<end_of_turn>");
    assert_eq!(
        &ids[..2],
        &[2, start],
        "<bos> then <start_of_turn>, each one id"
    );
    assert_eq!(ids.iter().filter(|&&id| id == start).count(), 2);
    assert_eq!(ids.iter().filter(|&&id| id == end).count(), 1);
    assert!(tok.is_eos(end), "<end_of_turn> ends a generation");
    assert!(tok.is_eos(1), "<eos> ends a generation");
    // The next assistant turn encodes to the template's own markers.
    let next = tok
        .encode(ChatFormat::Gemma.next_turn(), false)
        .expect("encode");
    assert!(next.contains(&start));
}

#[test]
fn mistral_chat_prompt_on_a_llama_vocabulary() {
    let tok = tokenizer("spm-llama");
    let mistral = family("mistral-v0.1");
    assert_eq!(tok.chat_format(), Some(ChatFormat::Mistral));
    let case = &mistral.cases[0];
    assert_eq!(tok.chat_prompt(&case.user).as_deref(), Some(&*case.prompt));
    let ids = tok.prompt_ids(&case.user, PromptMode::Chat).expect("ids");
    assert_eq!(ids[0], 1, "<s> written by the template is the BOS id");
    assert_eq!(ids.iter().filter(|&&id| id == 1).count(), 1);
    assert!(tok.is_eos(2));
    let raw = tok.prompt_ids("hello", PromptMode::Raw).expect("ids");
    assert_eq!(raw[0], 1, "raw prompts get the BOS the file asks for");
}

#[test]
fn every_family_renders_as_transformers() {
    let families = families();
    assert!(families.len() >= 9);
    for family in families {
        let template = ChatTemplate::detect(&family.template)
            .unwrap_or_else(|| panic!("{}: format not recognised", family.family));
        let format = match family.format.as_str() {
            "chatml" => ChatFormat::ChatMl,
            "gemma" => ChatFormat::Gemma,
            "llama3" => ChatFormat::Llama3,
            "phi3" => ChatFormat::Phi3,
            "mistral" => ChatFormat::Mistral,
            other => panic!("unknown format {other}"),
        };
        assert_eq!(template.format, format, "{}", family.family);
        for stop in &family.stops {
            assert!(
                format.stop_markers().contains(&stop.as_str()),
                "{}: {stop} stops a generation",
                family.family
            );
        }
        for case in &family.cases {
            assert_eq!(
                template.render(
                    family.bos_token.as_deref(),
                    case.system.as_deref(),
                    &case.user
                ),
                case.prompt,
                "{}: system {:?}, user {:?}",
                family.family,
                case.system,
                case.user
            );
        }
    }
}

/// A one-block llama GGUF with `rows` embedding rows and the Gemma-style SentencePiece
/// vocabulary of the fixture (420 pieces), F32 weights of a fixed pattern.
fn write_llama_gguf(path: &std::path::Path, rows: usize) {
    use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
    use candle_core::{Device, Tensor};
    let mut reader = std::fs::File::open(fixture_dir().join("spm-gemma.gguf")).expect("open");
    let vocab = gguf_file::Content::read(&mut reader).expect("read the fixture");
    let mut metadata: Vec<(String, gguf_file::Value)> = vocab
        .metadata
        .into_iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .collect();
    let (width, ffn) = (32usize, 64usize);
    for (key, value) in [
        (
            "general.architecture",
            gguf_file::Value::String("llama".into()),
        ),
        ("llama.block_count", gguf_file::Value::U32(1)),
        (
            "llama.embedding_length",
            gguf_file::Value::U32(width as u32),
        ),
        (
            "llama.feed_forward_length",
            gguf_file::Value::U32(ffn as u32),
        ),
        ("llama.attention.head_count", gguf_file::Value::U32(2)),
        ("llama.attention.head_count_kv", gguf_file::Value::U32(2)),
        ("llama.context_length", gguf_file::Value::U32(64)),
    ] {
        metadata.push((key.to_owned(), value));
    }
    let tensor = |dims: &[usize]| -> QTensor {
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 500.0)
            .collect();
        let t = Tensor::from_vec(data, dims, &Device::Cpu).expect("tensor");
        QTensor::quantize(&t, GgmlDType::F32).expect("quantize")
    };
    let tensors = [
        ("token_embd.weight", tensor(&[rows, width])),
        ("output_norm.weight", tensor(&[width])),
        ("blk.0.attn_norm.weight", tensor(&[width])),
        ("blk.0.ffn_norm.weight", tensor(&[width])),
        ("blk.0.attn_q.weight", tensor(&[width, width])),
        ("blk.0.attn_k.weight", tensor(&[width, width])),
        ("blk.0.attn_v.weight", tensor(&[width, width])),
        ("blk.0.attn_output.weight", tensor(&[width, width])),
        ("blk.0.ffn_gate.weight", tensor(&[ffn, width])),
        ("blk.0.ffn_up.weight", tensor(&[ffn, width])),
        ("blk.0.ffn_down.weight", tensor(&[width, ffn])),
    ];
    let meta: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut file = std::fs::File::create(path).expect("create");
    gguf_file::write(&mut file, &meta, &refs).expect("write the GGUF");
}

#[test]
fn a_sentencepiece_gguf_model_loads_and_a_mismatched_one_is_refused() {
    use latent_choir::llm::loader;
    let dir = std::env::temp_dir().join(format!("latent-choir-spm-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = dir.join("good.gguf");
    let small = dir.join("small.gguf");
    write_llama_gguf(&good, 420);
    write_llama_gguf(&small, 300);
    let loaded = loader::load(&good);
    let refused = loader::load(&small).map(|_| ());
    let _ = std::fs::remove_dir_all(&dir);

    let mut loaded = loaded.expect("a SentencePiece GGUF model loads");
    let ids = loaded
        .tokenizer
        .prompt_ids("Hello", PromptMode::Chat)
        .expect("prompt ids");
    assert_eq!(ids[0], 2, "Gemma's <bos>");
    let step = loaded.model.forward(&ids).expect("forward");
    assert_eq!(step.logits.len(), 420);
    assert!(step.logits.iter().all(|v| v.is_finite()));

    let err = refused.expect_err("a 420-piece tokenizer on a 300-row model");
    let message = err.to_string();
    assert!(
        message.contains("420 tokens") && message.contains("300"),
        "{message}"
    );
}
