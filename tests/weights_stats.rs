//! The weight analysis against NumPy (`tools/reference/weights_reference.py`, fixtures in
//! `tests/fixtures/weights/`): singular values, norms, moments, histograms, row norms, each
//! block's tension and spectrum delta, and the model's key, on the tiny llama and GPT-2 fixture
//! models and (summarised) the default model.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use latent_choir::weights::WeightStats;
use latent_choir::weights::analysis::analyze;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference(name: &str) -> Value {
    let path = fixtures().join("weights").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

fn close(found: f64, expected: f64, relative: f64, absolute: f64, what: &str) {
    let tolerance = absolute + relative * expected.abs();
    assert!(
        (found - expected).abs() <= tolerance,
        "{what}: {found} vs NumPy {expected}"
    );
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

fn compare_matrices(stats: &WeightStats, reference: &Value, full: bool) {
    for expected in reference["matrices"].as_array().expect("matrices") {
        let name = expected["name"].as_str().unwrap();
        let found = stats
            .matrices
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no stats for {name}"));
        assert_eq!(
            found.role.name(),
            expected["role"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            found.layer.map(|l| l as u64),
            expected["layer"].as_u64(),
            "{name}"
        );
        let shape: Vec<usize> = expected["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(found.shape.to_vec(), shape, "{name}");
        let s = expected["singular_values"].as_array().unwrap();
        if full {
            assert_eq!(
                found.singular_values.len(),
                s.len(),
                "{name}: spectrum length"
            );
        }
        let top = f(&s[0]);
        for (i, (a, b)) in found.singular_values.iter().zip(s).enumerate() {
            close(
                f64::from(*a),
                f(b),
                1e-4,
                1e-5 * top,
                &format!("{name} σ{i}"),
            );
        }
        close(found.frobenius, f(&expected["frobenius"]), 1e-6, 0.0, name);
        let m = &expected["moments"];
        let std = f(&m["std"]);
        close(found.moments.mean, f(&m["mean"]), 0.0, 1e-6 * std, name);
        close(found.moments.std, std, 1e-6, 0.0, name);
        close(found.moments.skewness, f(&m["skewness"]), 1e-5, 1e-5, name);
        close(found.moments.kurtosis, f(&m["kurtosis"]), 1e-5, 1e-5, name);
        close(found.moments.min, f(&m["min"]), 0.0, 1e-7, name);
        close(found.moments.max, f(&m["max"]), 0.0, 1e-7, name);
        if full {
            let counts: Vec<u64> = expected["histogram"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(found.histogram.counts.len(), counts.len());
            // A value exactly on an edge may land on either side of it in f32 vs f64.
            let moved: u64 = found
                .histogram
                .counts
                .iter()
                .zip(&counts)
                .map(|(a, b)| a.abs_diff(*b))
                .sum();
            assert!(
                moved <= 2,
                "{name}: histogram {:?} vs {counts:?}",
                found.histogram.counts
            );
            let rows = expected["row_norms"].as_array().unwrap();
            assert_eq!(found.row_norms.len(), rows.len());
            for (a, b) in found.row_norms.iter().zip(rows) {
                close(f64::from(*a), f(b), 1e-5, 0.0, &format!("{name} row norm"));
            }
        }
    }
}

fn compare_key(stats: &WeightStats, reference: &Value) {
    let key = &reference["key"];
    assert_eq!(u64::from(stats.key.root), key["root"].as_u64().unwrap());
    assert_eq!(stats.key.scale, key["scale"].as_str().unwrap());
    assert_eq!(
        stats.key.root_dimension as u64,
        key["root_dimension"].as_u64().unwrap()
    );
    assert_eq!(stats.key.vectors as u64, key["vectors"].as_u64().unwrap());
    close(
        stats.key.pc2_skewness,
        f(&key["pc2_skewness"]),
        1e-4,
        1e-6,
        "PC2 skewness",
    );
    close(
        stats.key.pc3_kurtosis,
        f(&key["pc3_kurtosis"]),
        1e-4,
        1e-6,
        "PC3 kurtosis",
    );
}

fn compare_model(folder: &str) {
    let stats =
        analyze(&fixtures().join(folder), |_, _| ControlFlow::Continue(())).expect("analysis");
    let reference = reference(folder);
    compare_matrices(&stats, &reference, true);
    assert_eq!(
        stats.matrices.len(),
        reference["matrices"].as_array().unwrap().len(),
        "every matrix and no more"
    );
    let layers = reference["layers"].as_array().unwrap();
    assert_eq!(stats.layers.len(), layers.len());
    for (found, expected) in stats.layers.iter().zip(layers) {
        close(found.tension, f(&expected["tension"]), 1e-6, 0.0, "tension");
        close(
            found.svd_delta_mean,
            f(&expected["svd_delta_mean"]),
            1e-4,
            1e-6,
            "svd delta",
        );
    }
    let norms = reference["norms"].as_array().unwrap();
    assert_eq!(stats.norms.len(), norms.len());
    for (found, expected) in stats.norms.iter().zip(norms) {
        close(
            found.moments.std,
            f(&expected["std"]),
            1e-6,
            1e-9,
            &found.name,
        );
        close(
            found.moments.skewness,
            f(&expected["skewness"]),
            1e-5,
            1e-6,
            &found.name,
        );
    }
    compare_key(&stats, &reference);
}

#[test]
fn tiny_llama_matches_numpy() {
    compare_model("tiny-llama");
}

#[test]
fn tiny_gpt2_matches_numpy_with_c_attn_split_into_q_k_v() {
    compare_model("tiny-gpt2");
}

#[test]
fn the_default_model_matches_numpy_and_has_its_own_key() {
    let Some(path) = latent_choir::llm::discovery::default_model_path().filter(|p| p.exists())
    else {
        eprintln!("default model missing: run `cargo xtask fetch-model`");
        return;
    };
    let stats = analyze(&path, |_, _| ControlFlow::Continue(())).expect("analysis");
    let reference = reference("smollm2-summary");
    compare_matrices(&stats, &reference, false);
    compare_key(&stats, &reference);
    assert_eq!(stats.model.layers, 30);
    // Every matrix of every block, the embeddings; the head is tied.
    assert_eq!(stats.matrices.len(), 1 + 30 * 7);
    assert!(
        stats
            .matrices
            .iter()
            .all(|m| m.dtype == "Q4_1" || m.role.name() == "embedding")
    );
}

#[test]
fn missing_and_unsupported_models_are_clear_errors() {
    let err = analyze(Path::new("/nonexistent/model.gguf"), |_, _| {
        ControlFlow::Continue(())
    })
    .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    let dir = std::env::temp_dir().join(format!("lc-weights-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.gguf");
    std::fs::write(&bad, b"GGUF but not really").unwrap();
    let err = analyze(&bad, |_, _| ControlFlow::Continue(())).unwrap_err();
    assert!(err.to_string().contains("not a usable model"), "{err}");
    std::fs::write(dir.join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
    let err = analyze(&dir, |_, _| ControlFlow::Continue(())).unwrap_err();
    assert!(
        err.to_string().contains("unsupported model architecture"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
