//! The embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF) through the `latent-choir` CLI,
//! against `tests/fixtures/smollm2/reference.npz`: what Hugging Face `transformers` computes on
//! the same GGUF, dequantised to float32 (`tools/reference/smollm2_reference.py`).
//!
//! Tolerance: our linear layers keep the weights quantized but use exact f32 activations, so we
//! compute the dequantised model too; what differs is f32 summation order over 576–1536 terms
//! per product, through 30 blocks. Measured worst case is 4e-6 of each layer's largest value; the
//! bound is 1e-4 of it, far below what any real mistake moves (8-bit activations alone: 1e-2).

use std::path::PathBuf;

mod common;

use common::cli::{command, succeed};
use ndarray::{Array1, Array3};
use ndarray_npy::NpzReader;

const PROMPT: &str = "What is the capital of France?";

fn default_model() -> PathBuf {
    let path = latent_choir::llm::discovery::default_model_path().expect("a data dir");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask fetch-model` (cargo xtask test does it)",
        path.display()
    );
    path
}

fn cli(args: &[&str]) -> String {
    String::from_utf8_lossy(&succeed(command().args(args)).stdout).into_owned()
}

/// The greedy answer to [`PROMPT`], 24 tokens at most, as `generate` prints it.
fn greedy_answer(extra: &[&str]) -> String {
    let model = default_model();
    let model = model.to_str().expect("utf-8 path");
    let mut args = vec![
        "generate",
        "--model",
        model,
        "--prompt",
        PROMPT,
        "--temperature",
        "0",
        "--repetition-penalty",
        "1",
        "--max-tokens",
        "24",
    ];
    args.extend_from_slice(extra);
    cli(&args)
}

#[test]
fn greedy_answer_to_the_capital_question() {
    let answer = greedy_answer(&[]);
    assert_eq!(answer.trim(), "The capital of France is Paris.");
}

#[test]
fn hidden_states_match_the_transformers_reference() {
    let model = default_model();
    let out = std::env::temp_dir().join(format!("lc-default-{}.npz", std::process::id()));
    cli(&[
        "generate",
        "--model",
        model.to_str().expect("utf-8 path"),
        "--prompt",
        PROMPT,
        "--max-tokens",
        "0",
        "--hidden-states",
        out.to_str().expect("utf-8 path"),
    ]);
    let mut ours = NpzReader::new(std::fs::File::open(&out).expect("our npz")).expect("npz");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/smollm2/reference.npz"
    );
    let mut reference =
        NpzReader::new(std::fs::File::open(fixture).expect("fixture")).expect("npz");
    let our_ids: Array1<i64> = ours.by_name("tokens").expect("tokens");
    let ref_ids: Array1<i64> = reference.by_name("input_ids").expect("input_ids");
    assert_eq!(
        our_ids, ref_ids,
        "the chat prompt tokenises as in transformers"
    );

    let hidden: Array3<f32> = ours.by_name("hidden_states").expect("hidden_states");
    let expected: Array3<f32> = reference.by_name("hidden_states").expect("hidden_states");
    let layers: Array1<i64> = reference.by_name("layers").expect("layers");
    assert_eq!(hidden.dim().0, 31, "embedding output plus 30 blocks");
    for (i, &layer) in layers.iter().enumerate() {
        let ours = hidden.index_axis(ndarray::Axis(0), layer as usize);
        let theirs = expected.index_axis(ndarray::Axis(0), i);
        let scale = theirs.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
        let worst = ours
            .iter()
            .zip(theirs.iter())
            .fold(0.0_f32, |m, (a, b)| m.max((a - b).abs()));
        println!("layer {layer}: max |diff| {worst:e} of max |value| {scale}");
        assert!(
            worst <= 1e-4 * scale,
            "layer {layer}: {worst} > 1e-4 × {scale}"
        );
    }
    let _ = std::fs::remove_file(out);
}

#[test]
fn a_fresh_chat_turn_shows_no_markup() {
    let text = greedy_answer(&["--continue-at-end"]);
    let (answer, next_turn) = text
        .split_once('\n')
        .expect("the answer ends with its turn, read as a line break");
    assert_eq!(answer, "The capital of France is Paris.");
    assert!(
        next_turn.trim().len() > 10,
        "the model went on talking in a new turn: {next_turn:?}"
    );
    assert!(
        !next_turn.contains("<|") && !next_turn.contains("assistant\n"),
        "the new turn shows markup: {next_turn:?}"
    );
}
