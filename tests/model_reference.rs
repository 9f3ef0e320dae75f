//! The architectures against Hugging Face `transformers`, from safetensors folders and GGUF files.
//!
//! Each `tests/fixtures/tiny-*` folder holds a tiny randomly initialised model and
//! `reference.json`, what transformers computed for a fixed prompt; both were written by
//! `tools/reference/make_fixtures.py` (run by hand). Here the Rust models must reproduce it:
//! hidden states and logits within 1e-4 (f32), the greedy continuation exactly, attention entropy
//! and MLP sparsity within 1e-3, also when the prompt is fed token by token through the KV cache.
//! `tests/fixtures/gguf/tiny-*.gguf` (written by `tools/reference/make_gguf_fixtures.py` the way
//! llama.cpp's converter writes each family) must reproduce their folder's `reference.json` the
//! same way, loaded through `loader::load` with the tokenizer from the GGUF metadata.
//! The second half feeds the loaders broken folders and files and the models bad steps.
//!
//! `cargo test --test model_reference -- --nocapture` prints the measured errors.

use std::path::{Path, PathBuf};

use latent_choir::llm::arch::gpt2::Gpt2;
use latent_choir::llm::arch::llama::Llama;
use latent_choir::llm::{LanguageModel, LlmError, Step};
use serde::Deserialize;

/// Hidden states and logits: f32 through a few layers, different matmul kernels.
const VALUE_TOLERANCE: f32 = 1e-4;
/// Attention entropy and MLP sparsity.
const STAT_TOLERANCE: f32 = 1e-3;
/// An activation this close to the near-zero threshold (relative to the token's peak) may land
/// on the other side of it in another implementation: f32 rounding differs at ~1e-6 relative.
const THRESHOLD_SLACK: f32 = 1e-4;

#[derive(Deserialize)]
struct Reference {
    prompt: String,
    input_ids: Vec<u32>,
    /// `[n_layers + 1][seq][width]`, the last entry after the final norm.
    hidden_states: Vec<Vec<Vec<f32>>>,
    /// `[seq][vocab]`.
    logits: Vec<Vec<f32>>,
    greedy: Vec<u32>,
    greedy_margin: f32,
    /// `[n_layers][seq]`.
    attention_entropy: Vec<Vec<f32>>,
    mlp_sparsity: Vec<Vec<f32>>,
    mlp_threshold_margin: Vec<Vec<f32>>,
    /// `[vocab]`: prompt minus its last token, then the last token through the cache.
    incremental_logits: Vec<f32>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn gguf_fixture(name: &str) -> PathBuf {
    fixture("gguf").join(format!("{name}.gguf"))
}

/// The reference of fixture `name` (a GGUF version `name.gguf` shares its folder's).
fn reference(name: &str) -> Reference {
    let name = name.strip_suffix(".gguf").unwrap_or(name);
    let path = fixture(name).join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// A loaded fixture model and the width of its MLP activations (for the sparsity resolution).
struct Loaded {
    model: Box<dyn LanguageModel>,
    mlp_width: usize,
}

fn load(name: &str) -> Loaded {
    let folder = fixture(name);
    if let Some(stem) = name.strip_suffix(".gguf") {
        // The GGUF version of fixture `stem`, through the loader (its tokenizer from metadata).
        let loaded = latent_choir::llm::loader::load(&gguf_fixture(stem))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mlp_width = Llama::load(&fixture(stem))
            .unwrap_or_else(|e| panic!("{stem}: {e}"))
            .config()
            .intermediate_size;
        return Loaded {
            model: loaded.model,
            mlp_width,
        };
    }
    if name.starts_with("tiny-gpt2") {
        let model = Gpt2::load(&folder).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mlp_width = model.config().n_inner;
        Loaded {
            model: Box::new(model),
            mlp_width,
        }
    } else {
        let model = Llama::load(&folder).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mlp_width = model.config().intermediate_size;
        Loaded {
            model: Box::new(model),
            mlp_width,
        }
    }
}

fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f32::max)
}

fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Largest errors seen for one fixture.
#[derive(Default, Debug)]
struct Errors {
    hidden: f32,
    logits: f32,
    entropy: f32,
    sparsity: f32,
    /// Sparsity values that differ by exactly one activation at the threshold.
    threshold_flips: usize,
}

impl Errors {
    /// Compares a step covering reference positions `start..start + step.n_new`.
    fn check_step(
        &mut self,
        what: &str,
        step: &Step,
        start: usize,
        reference: &Reference,
        mlp_width: usize,
    ) {
        let n = step.n_new;
        let width = reference.hidden_states[0][0].len();
        let n_layers = reference.attention_entropy.len();
        assert_eq!(
            step.hidden.len(),
            (n_layers + 1) * n * width,
            "{what}: hidden size"
        );
        assert_eq!(
            step.attention_entropy.len(),
            n_layers * n,
            "{what}: entropy size"
        );
        assert_eq!(
            step.mlp_sparsity.len(),
            n_layers * n,
            "{what}: sparsity size"
        );

        for (layer, want_layer) in reference.hidden_states.iter().enumerate() {
            for pos in 0..n {
                let got = step.hidden_state(layer, pos, width);
                let err = max_abs_diff(got, &want_layer[start + pos]);
                assert!(
                    err <= VALUE_TOLERANCE,
                    "{what}: hidden state {layer} at position {} off by {err}",
                    start + pos
                );
                self.hidden = self.hidden.max(err);
            }
        }

        let last = start + n - 1;
        let err = max_abs_diff(&step.logits, &reference.logits[last]);
        assert!(
            err <= VALUE_TOLERANCE,
            "{what}: logits at position {last} off by {err}"
        );
        self.logits = self.logits.max(err);

        for layer in 0..n_layers {
            for pos in 0..n {
                let p = start + pos;
                let got = step.attention_entropy[layer * n + pos];
                let err = (got - reference.attention_entropy[layer][p]).abs();
                assert!(
                    err <= STAT_TOLERANCE,
                    "{what}: attention entropy of layer {layer} at position {p}: {got} vs {}",
                    reference.attention_entropy[layer][p]
                );
                self.entropy = self.entropy.max(err);

                let got = step.mlp_sparsity[layer * n + pos];
                let want = reference.mlp_sparsity[layer][p];
                let err = (got - want).abs();
                if err > STAT_TOLERANCE {
                    // Allowed only as a single activation lying at the threshold in the
                    // reference, which rounding may put on either side.
                    let one = 1.0 / mlp_width as f32;
                    let margin = reference.mlp_threshold_margin[layer][p];
                    assert!(
                        (err - one).abs() < 1e-6 && margin < THRESHOLD_SLACK,
                        "{what}: MLP sparsity of layer {layer} at position {p}: {got} vs {want} \
                         (nearest activation {margin} of the peak from the threshold)"
                    );
                    self.threshold_flips += 1;
                } else {
                    self.sparsity = self.sparsity.max(err);
                }
            }
        }
    }
}

fn check_fixture(name: &str) {
    let reference = reference(name);
    let Loaded {
        mut model,
        mlp_width,
    } = load(name);
    let prompt = &reference.input_ids;
    let seq = prompt.len();
    let info = model.info().clone();
    assert_eq!(info.n_layers + 1, reference.hidden_states.len());
    assert_eq!(info.width, reference.hidden_states[0][0].len());
    assert_eq!(info.vocab_size, reference.logits[0].len());

    // The fixture's tokenizer encodes the prompt to the reference ids.
    let folder = name.strip_suffix(".gguf").unwrap_or(name);
    if folder != name {
        let loaded = latent_choir::llm::loader::load(&gguf_fixture(folder)).unwrap();
        let ids = loaded.tokenizer.encode(&reference.prompt, false).unwrap();
        assert_eq!(ids, *prompt, "{name}: GGUF tokenizer");
    }
    let tokenizer = tokenizers::Tokenizer::from_file(fixture(folder).join("tokenizer.json"))
        .unwrap_or_else(|e| panic!("{name}: tokenizer.json: {e}"));
    let encoding = tokenizer
        .encode(reference.prompt.as_str(), false)
        .unwrap_or_else(|e| panic!("{name}: encode: {e}"));
    assert_eq!(encoding.get_ids(), prompt.as_slice(), "{name}: tokenizer");

    let mut errors = Errors::default();

    // The whole prompt in one step.
    let step = model.forward(prompt).unwrap();
    assert_eq!(step.n_new, seq);
    errors.check_step(
        &format!("{name} (whole prompt)"),
        &step,
        0,
        &reference,
        mlp_width,
    );
    assert_eq!(model.position(), seq);

    // The prompt token by token through the KV cache: every position's logits.
    model.reset();
    assert_eq!(model.position(), 0);
    for (pos, &token) in prompt.iter().enumerate() {
        let step = model.forward(&[token]).unwrap();
        let what = format!("{name} (token by token)");
        errors.check_step(&what, &step, pos, &reference, mlp_width);
    }

    // All but the last token, then the last one alone.
    model.reset();
    model.forward(&prompt[..seq - 1]).unwrap();
    let step = model.forward(&prompt[seq - 1..]).unwrap();
    let incremental = max_abs_diff(&step.logits, &reference.incremental_logits);
    assert!(
        incremental <= VALUE_TOLERANCE,
        "{name}: incremental logits off by {incremental}"
    );
    errors.check_step(
        &format!("{name} (incremental)"),
        &step,
        seq - 1,
        &reference,
        mlp_width,
    );

    // Greedy continuation, temperature 0.
    model.reset();
    let mut step = model.forward(prompt).unwrap();
    let mut greedy = Vec::new();
    for _ in 0..reference.greedy.len() {
        let token = argmax(&step.logits);
        greedy.push(token);
        step = model.forward(&[token]).unwrap();
    }
    assert_eq!(greedy, reference.greedy, "{name}: greedy continuation");

    eprintln!(
        "{name:18} max |Δ| hidden {:.2e}  logits {:.2e}  incremental logits {incremental:.2e}  \
         entropy {:.2e}  sparsity {:.2e} (+{} one-activation flips at the threshold)  \
         greedy margin {:.3}",
        errors.hidden,
        errors.logits,
        errors.entropy,
        errors.sparsity,
        errors.threshold_flips,
        reference.greedy_margin
    );
}

#[test]
fn tiny_gpt2_matches_transformers() {
    check_fixture("tiny-gpt2");
}

#[test]
fn tiny_gpt2_legacy_names_match_transformers() {
    check_fixture("tiny-gpt2-legacy");
}

#[test]
fn tiny_llama_matches_transformers() {
    check_fixture("tiny-llama");
}

#[test]
fn tiny_qwen2_matches_transformers() {
    check_fixture("tiny-qwen2");
}

#[test]
fn tiny_llama3_rope_bf16_matches_transformers() {
    check_fixture("tiny-llama3");
}

#[test]
fn tiny_qwen3_matches_transformers() {
    check_fixture("tiny-qwen3");
}

/// Sliding window 4 on five of six layers cuts the 12-token prompt; local and global RoPE.
#[test]
fn tiny_gemma3_matches_transformers() {
    let config = Llama::load(&fixture("tiny-gemma3"))
        .unwrap()
        .config()
        .clone();
    assert_eq!(config.sliding_windows[..5], [Some(4); 5]);
    assert_eq!(config.sliding_windows[5], None);
    assert!(reference("tiny-gemma3").input_ids.len() > 4);
    check_fixture("tiny-gemma3");
}

/// The prompt runs on the short LongRoPE factors, the greedy continuation crosses into the
/// long ones.
#[test]
fn tiny_phi3_matches_transformers() {
    let config = Llama::load(&fixture("tiny-phi3")).unwrap().config().clone();
    let prompt = reference("tiny-phi3").input_ids.len();
    match config.rope_scaling {
        latent_choir::llm::arch::llama::RopeScaling::LongRope {
            original_max_position_embeddings: original,
            ..
        } => assert!(prompt <= original && original < prompt + 10),
        other => panic!("tiny-phi3: {other:?}"),
    }
    assert_eq!(config.rope_dim * 2, config.head_dim);
    check_fixture("tiny-phi3");
}

#[test]
fn tiny_mistral_sliding_window_matches_transformers() {
    check_fixture("tiny-mistral");
}

#[test]
fn gguf_llama_matches_transformers() {
    check_fixture("tiny-llama.gguf");
}

#[test]
fn gguf_qwen2_matches_transformers() {
    check_fixture("tiny-qwen2.gguf");
}

#[test]
fn gguf_qwen3_matches_transformers() {
    check_fixture("tiny-qwen3.gguf");
}

#[test]
fn gguf_gemma3_matches_transformers() {
    check_fixture("tiny-gemma3.gguf");
}

#[test]
fn gguf_phi3_matches_transformers() {
    check_fixture("tiny-phi3.gguf");
}

#[test]
fn model_info_describes_the_checkpoint() {
    let gpt2 = Gpt2::load(&fixture("tiny-gpt2")).unwrap();
    let info = gpt2.info();
    assert_eq!(
        (info.architecture.as_str(), info.n_layers, info.width),
        ("gpt2", 2, 64)
    );
    assert_eq!((info.context_length, info.dtype.as_str()), (128, "f32"));
    let llama3 = Llama::load(&fixture("tiny-llama3")).unwrap();
    assert_eq!(llama3.info().dtype, "bf16");
    let qwen2 = Llama::load(&fixture("tiny-qwen2")).unwrap();
    assert_eq!(qwen2.info().architecture, "qwen2");
    assert!(qwen2.config().tie_word_embeddings);
    for (name, family) in [
        ("tiny-qwen3", "qwen3"),
        ("tiny-gemma3", "gemma3_text"),
        ("tiny-phi3", "phi3"),
        ("tiny-mistral", "mistral"),
    ] {
        assert_eq!(
            Llama::load(&fixture(name)).unwrap().info().architecture,
            family
        );
    }
    for (name, arch) in [("tiny-gemma3", "gemma3"), ("tiny-phi3", "phi3")] {
        let loaded = latent_choir::llm::loader::load(&gguf_fixture(name)).unwrap();
        assert_eq!(loaded.model.info().architecture, arch);
        assert_eq!(loaded.model.info().dtype, "F32");
    }
}

// ---------------------------------------------------------------------------------------------
// Broken GGUF files.
// ---------------------------------------------------------------------------------------------

/// A scratch copy of GGUF fixture `name`, its bytes edited.
fn scratch_gguf(name: &str, tag: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("model_reference");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{tag}.gguf"));
    let mut bytes = std::fs::read(gguf_fixture(name)).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn truncated_gguf_is_corrupt() {
    let full = std::fs::metadata(gguf_fixture("tiny-qwen3")).unwrap().len() as usize;
    for keep in [3, 40, 2000, full / 2, full - 1] {
        let path = scratch_gguf("tiny-qwen3", &format!("cut-{keep}"), |b| b.truncate(keep));
        match latent_choir::llm::loader::load(&path) {
            Err(LlmError::Corrupt { path: p, .. }) => assert_eq!(p, path),
            Err(LlmError::Compute(message)) => {
                panic!("cut to {keep}: expected Corrupt, got Compute({message})")
            }
            other => panic!("cut to {keep}: expected Corrupt, got {:?}", other.err()),
        }
    }
}

/// Replaces the ggml type of every tensor in the GGUF header (stored after its dims) by `ty`.
fn set_tensor_types(bytes: &mut [u8], ty: u32) {
    fn u64_at(bytes: &[u8], at: &mut usize) -> u64 {
        let v = u64::from_le_bytes(bytes[*at..*at + 8].try_into().unwrap());
        *at += 8;
        v
    }
    fn u32_at(bytes: &[u8], at: &mut usize) -> u32 {
        let v = u32::from_le_bytes(bytes[*at..*at + 4].try_into().unwrap());
        *at += 4;
        v
    }
    // Skips one metadata value of type `ty`.
    fn skip_value(bytes: &[u8], at: &mut usize, ty: u32) {
        match ty {
            0 | 1 | 7 => *at += 1,
            2 | 3 => *at += 2,
            4..=6 => *at += 4,
            10..=12 => *at += 8,
            8 => {
                let len = u64_at(bytes, at) as usize;
                *at += len;
            }
            9 => {
                let inner = u32_at(bytes, at);
                for _ in 0..u64_at(bytes, at) {
                    skip_value(bytes, at, inner);
                }
            }
            other => panic!("metadata type {other}"),
        }
    }
    let mut at = 8;
    let n_tensors = u64_at(bytes, &mut at);
    let n_kv = u64_at(bytes, &mut at);
    for _ in 0..n_kv {
        let len = u64_at(bytes, &mut at) as usize;
        at += len;
        let value_type = u32_at(bytes, &mut at);
        skip_value(bytes, &mut at, value_type);
    }
    for _ in 0..n_tensors {
        let len = u64_at(bytes, &mut at) as usize;
        at += len;
        let dims = u32_at(bytes, &mut at) as usize;
        at += 8 * dims;
        bytes[at..at + 4].copy_from_slice(&ty.to_le_bytes());
        at += 4 + 8;
    }
}

#[test]
fn unknown_gguf_tensor_type_is_corrupt() {
    let path = scratch_gguf("tiny-llama", "type-77", |b| set_tensor_types(b, 77));
    match latent_choir::llm::loader::load(&path) {
        Err(LlmError::Corrupt { path: p, message }) => {
            assert_eq!(p, path);
            eprintln!("unknown tensor type: {message}");
        }
        other => panic!("expected Corrupt, got {:?}", other.err()),
    }
}

#[test]
fn unknown_gguf_architecture_is_named_with_the_supported_ones() {
    let path = scratch_gguf("tiny-qwen3", "mamba", |bytes| {
        // "qwen3" → "mamba" wherever it is the architecture (same length: offsets hold).
        let at = bytes.windows(5).position(|w| w == b"qwen3").unwrap();
        bytes[at..at + 5].copy_from_slice(b"mamba");
    });
    let err = latent_choir::llm::loader::load(&path).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, LlmError::UnknownArchitecture(ref a) if a == "mamba"),
        "{message}"
    );
    for name in ["mamba", "gemma3", "phi3", "qwen3", "gemma3_text", "gpt2"] {
        assert!(message.contains(name), "{message}");
    }
}

#[test]
fn config_that_does_not_fit_the_tensors_is_corrupt() {
    for (name, tag, edit) in [
        (
            "tiny-qwen3",
            "head-dim",
            (|c| c["head_dim"] = 16.into()) as ConfigEdit,
        ),
        ("tiny-gemma3", "width", |c| {
            c["intermediate_size"] = 96.into()
        }),
        ("tiny-phi3", "heads", |c| {
            c["num_key_value_heads"] = 4.into()
        }),
    ] {
        let dir = scratch_copy(name, tag, MODEL_FILES);
        edit_config(&dir, edit);
        match Llama::load(&dir) {
            Err(LlmError::Corrupt { message, .. }) => eprintln!("{name} {tag}: {message}"),
            other => panic!("{name} {tag}: expected Corrupt, got {:?}", other.err()),
        }
    }
}

#[test]
fn multimodal_gemma3_asks_for_the_text_checkpoint() {
    let dir = scratch_copy("tiny-gemma3", "multimodal", MODEL_FILES);
    edit_config(&dir, |c| c["model_type"] = "gemma3".into());
    match Llama::load(&dir) {
        Err(LlmError::Corrupt { message, .. }) => {
            assert!(message.contains("gemma3_text"), "{message}")
        }
        other => panic!("expected Corrupt, got {:?}", other.err()),
    }
}

#[test]
fn cli_names_an_unknown_architecture() {
    let dir = scratch_copy(
        "tiny-llama",
        "cli-mamba",
        &["config.json", "model.safetensors", "tokenizer.json"],
    );
    edit_config(&dir, |c| c["model_type"] = "mamba".into());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latent-choir"))
        .args(["generate", "--model"])
        .arg(&dir)
        .args(["--prompt", "hello"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("mamba") && stderr.contains("gemma3_text"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Broken folders and bad steps.
// ---------------------------------------------------------------------------------------------

/// A fresh copy of fixture `name` (all of it, or `files` only) under the test scratch directory.
fn scratch_copy(name: &str, tag: &str, files: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("model_reference")
        .join(format!("{name}-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for file in files {
        std::fs::copy(fixture(name).join(file), dir.join(file)).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
}

const MODEL_FILES: &[&str] = &["config.json", "model.safetensors"];

type ConfigEdit = fn(&mut serde_json::Value);

#[test]
fn missing_folder_is_not_found() {
    let missing = fixture("no-such-model");
    match Gpt2::load(&missing) {
        Err(LlmError::NotFound(path)) => assert_eq!(path, missing),
        other => panic!("expected NotFound, got {:?}", other.err()),
    }
    match Llama::load(&missing) {
        Err(LlmError::NotFound(path)) => assert_eq!(path, missing),
        other => panic!("expected NotFound, got {:?}", other.err()),
    }
}

#[test]
fn missing_files_are_not_found() {
    let dir = scratch_copy("tiny-llama", "no-config", &["model.safetensors"]);
    match Llama::load(&dir) {
        Err(LlmError::NotFound(path)) => assert_eq!(path, dir.join("config.json")),
        other => panic!("expected NotFound, got {:?}", other.err()),
    }
    let dir = scratch_copy("tiny-gpt2", "no-weights", &["config.json"]);
    match Gpt2::load(&dir) {
        Err(LlmError::NotFound(path)) => assert_eq!(path, dir.join("model.safetensors")),
        other => panic!("expected NotFound, got {:?}", other.err()),
    }
}

#[test]
fn truncated_safetensors_is_corrupt() {
    for (name, keep) in [
        ("tiny-gpt2", 4),
        ("tiny-gpt2", 100_000),
        ("tiny-llama", 300_000),
    ] {
        let dir = scratch_copy(name, &format!("truncated-{keep}"), MODEL_FILES);
        let weights = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights).unwrap();
        std::fs::write(&weights, &bytes[..keep]).unwrap();
        let result = if name == "tiny-gpt2" {
            Gpt2::load(&dir).map(|_| ())
        } else {
            Llama::load(&dir).map(|_| ())
        };
        match result {
            Err(LlmError::Corrupt { path, .. }) => assert_eq!(path, weights),
            other => panic!("{name} cut to {keep} bytes: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn unknown_model_type_is_unknown_architecture() {
    let dir = scratch_copy("tiny-llama", "mamba", MODEL_FILES);
    edit_config(&dir, |c| c["model_type"] = "mamba".into());
    for result in [Llama::load(&dir).err(), Gpt2::load(&dir).err()] {
        match result {
            Some(LlmError::UnknownArchitecture(kind)) => assert_eq!(kind, "mamba"),
            other => panic!("expected UnknownArchitecture, got {other:?}"),
        }
    }
    // Each loader refuses the other's models by name too.
    assert!(matches!(
        Llama::load(&fixture("tiny-gpt2")),
        Err(LlmError::UnknownArchitecture(kind)) if kind == "gpt2"
    ));
    assert!(matches!(
        Gpt2::load(&fixture("tiny-qwen2")),
        Err(LlmError::UnknownArchitecture(kind)) if kind == "qwen2"
    ));
}

#[test]
fn bad_config_is_corrupt() {
    let cases: [(&str, ConfigEdit); 5] = [
        ("no-width", |c| {
            c.as_object_mut().unwrap().remove("n_embd");
        }),
        ("heads", |c| c["n_head"] = 5.into()),
        ("activation", |c| {
            c["activation_function"] = "swiglu-ish".into()
        }),
        ("vocab-shape", |c| c["vocab_size"] = 399.into()),
        ("no-model-type", |c| {
            c.as_object_mut().unwrap().remove("model_type");
        }),
    ];
    for (tag, edit) in cases {
        let dir = scratch_copy("tiny-gpt2", tag, MODEL_FILES);
        edit_config(&dir, edit);
        match Gpt2::load(&dir) {
            Err(LlmError::Corrupt { .. }) => {}
            other => panic!("{tag}: expected Corrupt, got {:?}", other.err()),
        }
    }

    let cases: [(&str, ConfigEdit); 3] = [
        ("kv-heads", |c| c["num_key_value_heads"] = 3.into()),
        ("rope", |c| {
            c["rope_parameters"]["rope_type"] = "mystery".into()
        }),
        ("sliding", |c| c["use_sliding_window"] = true.into()),
    ];
    for (tag, edit) in cases {
        let dir = scratch_copy("tiny-llama", tag, MODEL_FILES);
        edit_config(&dir, edit);
        match Llama::load(&dir) {
            Err(LlmError::Corrupt { .. }) => {}
            other => panic!("{tag}: expected Corrupt, got {:?}", other.err()),
        }
    }

    let dir = scratch_copy("tiny-llama", "not-json", MODEL_FILES);
    std::fs::write(dir.join("config.json"), "{\"model_type\": \"llama\",").unwrap();
    assert!(matches!(Llama::load(&dir), Err(LlmError::Corrupt { .. })));
}

#[test]
fn missing_tensors_are_named() {
    // tiny-llama does not tie its head, so it must have lm_head.weight.
    let dir = scratch_copy("tiny-llama", "no-head", MODEL_FILES);
    drop_tensor(&dir, "lm_head.weight");
    assert!(matches!(
        Llama::load(&dir),
        Err(LlmError::MissingTensor(name)) if name == "lm_head.weight"
    ));

    let dir = scratch_copy("tiny-gpt2", "no-bias", MODEL_FILES);
    drop_tensor(&dir, "transformer.h.1.mlp.c_fc.bias");
    assert!(matches!(
        Gpt2::load(&dir),
        Err(LlmError::MissingTensor(name)) if name == "transformer.h.1.mlp.c_fc.bias"
    ));
}

fn drop_tensor(dir: &Path, name: &str) {
    let path = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    assert!(tensors.remove(name).is_some(), "{name} not in {path:?}");
    candle_core::safetensors::save(&tensors, &path).unwrap();
}

#[test]
fn bad_steps_are_refused_and_leave_the_model_usable() {
    for name in ["tiny-gpt2", "tiny-llama"] {
        let Loaded { mut model, .. } = load(name);
        let context = model.info().context_length;
        let prompt = reference(name).input_ids;

        assert!(matches!(model.forward(&[]), Err(LlmError::EmptyPrompt)));
        let too_long = vec![1; context + 1];
        match model.forward(&too_long) {
            Err(LlmError::PromptTooLong { tokens, context: c }) => {
                assert_eq!((tokens, c), (context + 1, context));
            }
            other => panic!("{name}: expected PromptTooLong, got {:?}", other.err()),
        }
        let vocab = model.info().vocab_size as u32;
        assert!(matches!(
            model.forward(&[vocab]),
            Err(LlmError::Tokenizer(_))
        ));
        assert_eq!(model.position(), 0);

        let first = model.forward(&prompt).unwrap();
        // Fill the context exactly, then one more token is refused.
        let fill = vec![1; context - prompt.len()];
        model.forward(&fill).unwrap();
        assert_eq!(model.position(), context);
        match model.forward(&[1]) {
            Err(LlmError::ContextFull(c)) => assert_eq!(c, context),
            other => panic!("{name}: expected ContextFull, got {:?}", other.err()),
        }
        assert_eq!(model.position(), context);

        // After a reset the same prompt gives the same answer.
        model.reset();
        let again = model.forward(&prompt).unwrap();
        assert_eq!(first.logits, again.logits, "{name}: reset");
        assert_eq!(first.hidden, again.hidden, "{name}: reset");
    }
}

/// The window is what makes tiny-gemma3 match: the same checkpoint with a window as wide as the
/// context drifts away from the reference.
#[test]
fn gemma3_sliding_window_matters() {
    let dir = scratch_copy("tiny-gemma3", "no-window", MODEL_FILES);
    edit_config(&dir, |c| c["sliding_window"] = 128.into());
    let reference = reference("tiny-gemma3");
    let mut model = Llama::load(&dir).unwrap();
    let step = model.forward(&reference.input_ids).unwrap();
    let last = reference.input_ids.len() - 1;
    let err = max_abs_diff(&step.logits, &reference.logits[last]);
    assert!(
        err > 1e-2,
        "without the window the logits are still within {err}"
    );
}

/// The weights inventory lists the new families' matrices by role, the same values from the
/// safetensors folder and the GGUF file (no family but llama permutes Q and K).
#[test]
fn inventory_lists_the_new_families_in_both_formats() {
    use latent_choir::llm::inventory::{Inventory, Kind, Role};
    for name in ["tiny-qwen3", "tiny-gemma3", "tiny-phi3"] {
        let mut folder = Inventory::open(&fixture(name)).unwrap();
        let mut file = Inventory::open(&gguf_fixture(name)).unwrap();
        assert_eq!(folder.entries().len(), file.entries().len(), "{name}");
        let roles = [
            Role::Q,
            Role::K,
            Role::V,
            Role::O,
            Role::Gate,
            Role::Up,
            Role::Down,
        ];
        for role in roles {
            let index = |inv: &Inventory| {
                inv.entries()
                    .iter()
                    .position(|e| e.kind == Kind::Matrix(role) && e.layer == Some(1))
                    .unwrap_or_else(|| panic!("{name}: no {role:?}"))
            };
            let (a, b) = (index(&folder), index(&file));
            let (a, b) = (folder.read(a).unwrap(), file.read(b).unwrap());
            assert_eq!(a.shape, b.shape, "{name} {role:?}");
            assert_eq!(a.values, b.values, "{name} {role:?}");
        }
        eprintln!("{name}: {} / {}", folder.family, file.family);
    }
}
