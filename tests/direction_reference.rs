//! Our concept-direction fit against scikit-learn's on the same activations.
//!
//! `tools/reference/direction_reference.py` (run by hand) ran the tiny fixture models with
//! `transformers` over `tests/fixtures/directions/` (12 paired refusal prompts, and 9 other
//! negatives for the unpaired case), pooled each prompt's hidden states without position 0,
//! fitted `sklearn.decomposition.PCA(n_components=1)` on the differences of the final half of
//! the states, oriented it and measured both poles at every state. The Rust fit must agree:
//! the direction up to 1e-3 in |cos| (its eigen gap is ≥ 23 % here, so f32 activations move
//! it far less), the same layers and pairing, the explained-variance ratio within 1e-3, the
//! poles within 1e-3 (+1e-3 relative), and the orientation exactly (cos > 0, not only |cos|).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use latent_choir::activation::ModelIdentity;
use latent_choir::activation::direction::fit;
use latent_choir::activation::direction::{Pairing, PromptPair, PromptSet};
use latent_choir::llm::loader;
use ndarray::Array1;
use ndarray_npy::NpzReader;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn check(model: &str, unpaired: bool) {
    let dir = fixtures().join("directions");
    let suffix = if unpaired { "-unpaired" } else { "" };
    let path = dir.join(format!("{model}{suffix}.npz"));
    let mut npz = NpzReader::new(std::fs::File::open(&path).expect("fixture")).expect("npz");
    let array = |npz: &mut NpzReader<std::fs::File>, name: &str| -> Array1<f64> {
        npz.by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let expected = array(&mut npz, "direction");
    let layers: Array1<i64> = npz.by_name("layers").expect("layers");
    let ratio = array(&mut npz, "explained_variance_ratio")[0];

    let negative = if unpaired {
        "negative_unpaired.txt"
    } else {
        "negative.txt"
    };
    let pair = PromptPair {
        name: "fixture".to_owned(),
        positive: PromptSet::from_file(&dir.join("positive.txt")).expect("positive"),
        negative: PromptSet::from_file(&dir.join(negative)).expect("negative"),
    };
    let mut loaded = loader::load(&fixtures().join(model)).expect("model");
    let identity = ModelIdentity {
        sha256: "0".repeat(64),
        name: model.to_owned(),
    };
    let (direction, stats) = fit::fit(&mut loaded, &identity, &pair, &mut |_| {
        ControlFlow::Continue(())
    })
    .expect("fit");
    let meta = direction.metadata();
    assert_eq!(
        meta.pairing,
        if unpaired {
            Pairing::Groups
        } else {
            Pairing::Paired
        }
    );
    assert_eq!(
        meta.layers,
        layers.iter().map(|&l| l as usize).collect::<Vec<_>>()
    );
    let cos: f64 = direction
        .vector()
        .iter()
        .zip(expected.iter())
        .map(|(a, b)| f64::from(*a) * b)
        .sum::<f64>()
        / expected.iter().map(|v| v * v).sum::<f64>().sqrt();
    println!(
        "{model}{suffix}: cos {cos:.7}, ratio {} vs {ratio}, {} tokens",
        meta.explained_variance_ratio, stats.tokens
    );
    assert!(cos >= 0.999, "{model}{suffix}: cos {cos}");
    assert!(
        (f64::from(meta.explained_variance_ratio) - ratio).abs() < 1e-3,
        "{model}{suffix}: ratio {} vs {ratio}",
        meta.explained_variance_ratio
    );
    for name in ["pos_mean", "pos_std", "neg_mean", "neg_std"] {
        let want = array(&mut npz, name);
        assert_eq!(want.len(), direction.n_states(), "{name}");
        for (state, (pole, want)) in direction.poles().iter().zip(want.iter()).enumerate() {
            let got = match name {
                "pos_mean" => pole.positive_mean,
                "pos_std" => pole.positive_std,
                "neg_mean" => pole.negative_mean,
                _ => pole.negative_std,
            };
            let tolerance = 1e-3 + 1e-3 * want.abs();
            assert!(
                (f64::from(got) - want).abs() < tolerance,
                "{model}{suffix} {name}[{state}]: {got} vs {want}"
            );
        }
    }
}

#[test]
fn gpt2_paired() {
    check("tiny-gpt2", false);
}

#[test]
fn gpt2_unpaired() {
    check("tiny-gpt2", true);
}

#[test]
fn llama_paired() {
    check("tiny-llama", false);
}

#[test]
fn llama_unpaired() {
    check("tiny-llama", true);
}

#[test]
fn a_prompt_of_one_token_is_refused_by_name() {
    let mut loaded = loader::load(&fixtures().join("tiny-llama")).expect("model");
    let pair = PromptPair {
        name: "short".to_owned(),
        positive: PromptSet::from_text("a whole sentence here\na\n", "p").unwrap(),
        negative: PromptSet::from_text("another sentence here\nand one more\n", "n").unwrap(),
    };
    let identity = ModelIdentity {
        sha256: "0".repeat(64),
        name: "tiny".to_owned(),
    };
    let err = fit::fit(&mut loaded, &identity, &pair, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("positive prompt 2"), "{text}");
}
