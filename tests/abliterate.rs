//! Abliteration (`llm::abliterate`) through the library: the written folder loads with our own
//! loader, and no hidden state before the final norm has a component along the direction
//! projected out (|h·r̂| / ‖h‖ below 1e-4, where the original model's are ~0.1). The GGUF path
//! runs on the default model when it is on this machine: exported without a direction, the
//! folder must compute the GGUF's hidden states (which proves Q and K are un-permuted right).

mod common;

use std::path::Path;

use common::paths::fixture;
use common::temp::TempDir;
use latent_choir::llm::abliterate::{MARKER_FILE, abliterate, export_hf};
use latent_choir::llm::discovery::default_model_path;
use latent_choir::llm::loader::{LoadedModel, load};
use latent_choir::llm::tokenizer::PromptMode;
use latent_choir::llm::{LlmError, Step};
use safetensors::{Dtype, SafeTensors};

const TEXT: &str = "The quick brown fox jumps over the lazy dog, and the choir sings along.";

/// A unit vector from a fixed seed (a 64-bit LCG), the same on every run.
fn direction(width: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let values: Vec<f64> = (0..width)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    values.iter().map(|v| (v / norm) as f32).collect()
}

fn forward(model: &mut LoadedModel, ids: &[u32]) -> Step {
    model.model.reset();
    model.model.forward(ids).expect("forward")
}

/// The largest |h·r̂| / ‖h‖ over the hidden states `0..n_layers` (embedding output and every
/// block output but the last, which is only reported after the final norm) at every position.
fn max_along(step: &Step, model: &LoadedModel, r: &[f32]) -> f64 {
    let info = model.model.info();
    let mut worst = 0.0_f64;
    for layer in 0..info.n_layers {
        for pos in 0..step.n_new {
            let h = step.hidden_state(layer, pos, info.width);
            let along: f64 = h.iter().zip(r).map(|(&x, &d)| f64::from(x * d)).sum();
            let norm = h.iter().map(|&x| f64::from(x * x)).sum::<f64>().sqrt();
            assert!(norm > 0.0, "state {layer} at {pos} is zero");
            worst = worst.max(along.abs() / norm);
        }
    }
    worst
}

fn all_finite(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite())
}

/// Abliterates `source` along a seeded direction into a temp folder and checks the result.
fn check_abliterated(source: &Path, changed: usize, tied: bool) {
    let tmp = TempDir::new("abliterate");
    let out = tmp.join("out");
    let mut original = load(source).expect("load the original");
    let r = direction(original.model.info().width, 7);
    let report = abliterate(source, &r, &out).expect("abliterate");
    assert_eq!(report.source_format, "safetensors");
    assert_eq!(report.tensors_changed.len(), changed, "{report:?}");
    assert_eq!(report.tied_embeddings, tied);
    assert_eq!(report.out_dir, out);
    assert!(out.join(MARKER_FILE).is_file());

    let mut variant = load(&out).expect("load the abliterated folder");
    let ids = original.tokenizer.encode(TEXT, false).expect("encode");
    assert!(ids.len() >= 8, "{ids:?}");
    assert_eq!(variant.tokenizer.encode(TEXT, false).expect("encode"), ids);
    let before = forward(&mut original, &ids);
    let after = forward(&mut variant, &ids);
    let (was, is) = (
        max_along(&before, &original, &r),
        max_along(&after, &variant, &r),
    );
    println!(
        "{}: max |h·r|/|h| before {was:.3e}, after {is:.3e}",
        source.display()
    );
    assert!(is < 1e-4, "after abliteration: {is}");
    assert!(
        was > 1e-2,
        "the original barely points along r ({was}): the test proves nothing"
    );
    assert!(all_finite(&after.hidden) && all_finite(&after.logits));
    let moved = before
        .logits
        .iter()
        .zip(&after.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    assert!(moved > 1e-4, "logits did not change ({moved})");
}

#[test]
fn tiny_llama() {
    // The embedding and two blocks' o_proj and down_proj; the LM head is its own tensor.
    check_abliterated(&fixture("tiny-llama"), 5, false);
}

#[test]
fn tiny_qwen2() {
    check_abliterated(&fixture("tiny-qwen2"), 5, true);
}

#[test]
fn tiny_gpt2() {
    // wte, wpe, and both blocks' attn.c_proj and mlp.c_proj with their biases.
    check_abliterated(&fixture("tiny-gpt2"), 10, true);
}

/// A tensor's name, shape and bf16 bytes.
type Bf16Tensor = (String, Vec<usize>, Vec<u8>);

/// tiny-llama in bf16, in two shards: read like any checkpoint, changed tensors written in f32,
/// the others kept in bf16.
#[test]
fn sharded_bf16_folder() {
    let tmp = TempDir::new("abliterate-bf16");
    let source = tmp.join("bf16");
    std::fs::create_dir_all(&source).expect("mkdir");
    let llama = fixture("tiny-llama");
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(llama.join(file), source.join(file)).expect("copy");
    }
    let bytes = std::fs::read(llama.join("model.safetensors")).expect("read fixture");
    let st = SafeTensors::deserialize(&bytes).expect("fixture safetensors");
    let mut shards: [Vec<Bf16Tensor>; 2] = [Vec::new(), Vec::new()];
    let mut weight_map = serde_json::Map::new();
    for (i, (name, view)) in st.tensors().into_iter().enumerate() {
        assert_eq!(view.dtype(), Dtype::F32);
        let data: Vec<u8> = view
            .data()
            .chunks_exact(4)
            .flat_map(|b| {
                let value = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                half::bf16::from_f32(value).to_le_bytes()
            })
            .collect();
        let shard = i % 2;
        weight_map.insert(
            name.clone(),
            format!("model-0000{}-of-00002.safetensors", shard + 1).into(),
        );
        shards[shard].push((name, view.shape().to_vec(), data));
    }
    for (shard, tensors) in shards.iter().enumerate() {
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(name, shape, data)| {
                let view = safetensors::tensor::TensorView::new(Dtype::BF16, shape.clone(), data)
                    .expect("bf16 view");
                (name.clone(), view)
            })
            .collect();
        let path = source.join(format!("model-0000{}-of-00002.safetensors", shard + 1));
        safetensors::serialize_to_file(views, None, &path).expect("write shard");
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        source.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .expect("write index");

    check_abliterated(&source, 5, false);

    let out = tmp.join("out");
    let r = direction(64, 3);
    abliterate(&source, &r, &out).expect("abliterate");
    let written = std::fs::read(out.join("model.safetensors")).expect("read output");
    let written = SafeTensors::deserialize(&written).expect("output safetensors");
    let dtype = |name: &str| written.tensor(name).expect(name).dtype();
    assert_eq!(dtype("model.embed_tokens.weight"), Dtype::F32);
    assert_eq!(dtype("model.layers.1.mlp.down_proj.weight"), Dtype::F32);
    assert_eq!(dtype("model.layers.1.mlp.up_proj.weight"), Dtype::BF16);
    assert_eq!(dtype("lm_head.weight"), Dtype::BF16);
}

#[test]
fn output_folder_rules() {
    let tmp = TempDir::new("abliterate-out");
    let source = fixture("tiny-llama");
    let r = direction(64, 11);

    // Someone else's folder is left alone.
    let foreign = tmp.join("foreign");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), "mine").expect("write");
    let err = abliterate(&source, &r, &foreign).expect_err("a foreign folder");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).expect("still there"),
        "mine"
    );

    // An empty folder is used, an earlier output replaced.
    let out = tmp.join("empty");
    std::fs::create_dir_all(&out).expect("mkdir");
    abliterate(&source, &r, &out).expect("into an empty folder");
    let first = std::fs::read(out.join("model.safetensors")).expect("written");
    abliterate(&source, &direction(64, 12), &out).expect("over an earlier output");
    let second = std::fs::read(out.join("model.safetensors")).expect("written");
    assert_ne!(first, second);
    export_hf(&source, &out).expect("export over an earlier output");
    load(&out).expect("load the export");
    // No staging folder is left behind.
    assert_eq!(tmp.files(), ["empty", "foreign"]);
}

#[test]
fn clear_errors() {
    let tmp = TempDir::new("abliterate-errors");
    let out = tmp.join("out");
    let source = fixture("tiny-gpt2");

    let missing = tmp.join("no-such-model");
    let err = abliterate(&missing, &direction(64, 1), &out).expect_err("missing model");
    assert!(
        matches!(err, LlmError::NotFound(ref p) if p == &missing),
        "{err}"
    );

    let err = abliterate(&source, &direction(63, 1), &out).expect_err("wrong length");
    assert!(matches!(err, LlmError::Direction(_)), "{err}");
    assert!(
        err.to_string().contains("63") && err.to_string().contains("64"),
        "{err}"
    );

    let err = abliterate(&source, &[0.0; 64], &out).expect_err("zero direction");
    assert!(matches!(err, LlmError::Direction(_)), "{err}");
    assert!(err.to_string().contains("zero"), "{err}");

    let mut nan = direction(64, 1);
    nan[5] = f32::NAN;
    let err = abliterate(&source, &nan, &out).expect_err("NaN in the direction");
    assert!(err.to_string().contains("value 5"), "{err}");

    assert!(!out.exists(), "a failed run left {}", out.display());
}

/// The default model (SmolLM2-135M-Instruct, Q4_1 GGUF): exported to a folder it computes the
/// same hidden states (relative error per state below 1e-3; the weights are dequantized
/// exactly, only summation order differs) and tokenises the same; abliterated, nothing along r.
#[test]
fn gguf_default_model() {
    let Some(path) = default_model_path().filter(|p| p.exists()) else {
        println!("skipped: the default model is not on this machine (cargo xtask fetch-model)");
        return;
    };
    let tmp = TempDir::new("abliterate-gguf");
    let exported = tmp.join("exported");
    let report = export_hf(&path, &exported).expect("export the GGUF");
    assert_eq!(report.source_format, "gguf");
    assert!(report.tensors_changed.is_empty());
    assert!(report.tied_embeddings, "SmolLM2 ties its LM head");

    let mut gguf = load(&path).expect("load the GGUF");
    let mut hf = load(&exported).expect("load the exported folder");
    assert_eq!(hf.model.info().n_layers, gguf.model.info().n_layers);
    assert_eq!(hf.model.info().vocab_size, gguf.model.info().vocab_size);
    let (a, b) = (&gguf.tokenizer, &hf.tokenizer);
    for text in [TEXT, "Numbers 12345 and ½, <|im_start|>user\nhi<|im_end|>"] {
        for special in [false, true] {
            assert_eq!(b.encode(text, special).ok(), a.encode(text, special).ok());
        }
    }
    assert_eq!(b.bos_id(), a.bos_id());
    assert_eq!(b.eos_ids(), a.eos_ids());
    assert_eq!(b.chat_format(), a.chat_format());
    assert_eq!(b.default_system_prompt(), a.default_system_prompt());
    let prompt = a
        .prompt_ids("What is the capital of France?", PromptMode::Chat)
        .expect("prompt");
    assert_eq!(
        b.prompt_ids("What is the capital of France?", PromptMode::Chat)
            .expect("prompt"),
        prompt
    );

    let ids = &prompt[..8];
    let want = forward(&mut gguf, ids);
    let got = forward(&mut hf, ids);
    let info = gguf.model.info().clone();
    let mut worst = 0.0_f64;
    for layer in 0..=info.n_layers {
        for pos in 0..ids.len() {
            let (w, g) = (
                want.hidden_state(layer, pos, info.width),
                got.hidden_state(layer, pos, info.width),
            );
            let diff = w
                .iter()
                .zip(g)
                .map(|(&x, &y)| f64::from(x - y).powi(2))
                .sum::<f64>()
                .sqrt();
            let norm = w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
            worst = worst.max(diff / norm);
        }
    }
    println!("GGUF vs exported folder: worst relative error of a hidden state {worst:.3e}");
    assert!(
        worst < 1e-3,
        "the exported folder computes something else ({worst})"
    );
    drop(hf);
    std::fs::remove_dir_all(&exported).expect("remove the export");

    let r = direction(info.width, 5);
    let abliterated = tmp.join("abliterated");
    let report = abliterate(&path, &r, &abliterated).expect("abliterate the GGUF");
    assert_eq!(report.tensors_changed.len(), 1 + 2 * info.n_layers);
    let mut variant = load(&abliterated).expect("load the abliterated folder");
    let after = forward(&mut variant, ids);
    let (was, is) = (max_along(&want, &gguf, &r), max_along(&after, &variant, &r));
    println!("default model: max |h·r|/|h| before {was:.3e}, after {is:.3e}");
    assert!(is < 1e-4, "after abliteration: {is}");
    assert!(was > 1e-2, "the original barely points along r ({was})");
    assert!(all_finite(&after.hidden) && all_finite(&after.logits));
}

#[test]
fn families_it_cannot_rewrite_are_named() {
    let tmp = TempDir::new("abliterate-families");
    for (model, kind) in [
        (fixture("tiny-qwen3"), "qwen3"),
        (fixture("gguf").join("tiny-phi3.gguf"), "phi3"),
    ] {
        let err = abliterate(&model, &direction(64, 1), &tmp.join("out")).expect_err(kind);
        let message = err.to_string();
        assert!(matches!(err, LlmError::Corrupt { .. }), "{message}");
        assert!(
            message.contains("does not support") && message.contains(kind),
            "{message}"
        );
    }
}
