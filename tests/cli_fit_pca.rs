//! `latent-choir fit-pca` and `generate --projections` as a user runs them: a subprocess with
//! its own `XDG_CACHE_HOME`, so nothing touches the real map cache.

mod common;

use common::cli;
use common::paths::fixture;
use common::temp::TempDir;
use std::path::Path;
use std::process::Command;

use latent_choir::activation::{Corpus, file, identify};
use ndarray::{Array1, Array3};
use ndarray_npy::NpzReader;
use safetensors::SafeTensors;

/// The CLI with `cache` as XDG_CACHE_HOME.
fn with_cache(cache: &Path, args: &[&str]) -> Command {
    let mut command = cli::command();
    command.args(args).env("XDG_CACHE_HOME", cache);
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeed(cache: &Path, args: &[&str]) -> (String, String) {
    let out = cli::succeed(&mut with_cache(cache, args));
    (text(&out.stdout), text(&out.stderr))
}

fn fail(cache: &Path, args: &[&str]) -> String {
    cli::fail(&mut with_cache(cache, args))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

#[test]
fn fit_pca_writes_a_complete_map_and_generate_projects_through_it() {
    let tmp = TempDir::new("cli-fit");
    let cache = tmp.0.join("cache");
    let llama = fixture("tiny-llama");
    let corpus = fixture("pca/corpus.txt");
    let out = tmp.0.join("maps/llama.safetensors");
    let (stdout, _) = succeed(
        &cache,
        &[
            "fit-pca",
            "--model",
            path(&llama),
            "--corpus",
            path(&corpus),
            "--components",
            "4",
            "--out",
            path(&out),
        ],
    );
    for line in [
        "tokens",
        "positions    skip-first",
        "explained-variance ratio",
        "state   0",
        "state   2",
        "map",
    ] {
        assert!(
            stdout.contains(line),
            "the summary lacks {line:?}:\n{stdout}"
        );
    }
    assert!(stdout.contains(path(&out)));

    // The tensors and metadata, read as any safetensors reader would.
    let bytes = std::fs::read(&out).expect("the map was written");
    let tensors = SafeTensors::deserialize(&bytes).expect("safetensors");
    for i in 0..=2 {
        for (name, shape) in [
            ("mean", vec![64]),
            ("components", vec![4, 64]),
            ("explained_variance", vec![4]),
            ("lo", vec![4]),
            ("hi", vec![4]),
        ] {
            let tensor = tensors.tensor(&format!("layer.{i}.{name}")).expect(name);
            assert_eq!(tensor.shape(), shape, "layer.{i}.{name}");
            assert_eq!(tensor.dtype(), safetensors::Dtype::F32);
        }
    }
    assert!(tensors.tensor("layer.3.mean").is_err());
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().expect("metadata");
    let identity = identify(&llama).unwrap();
    for (key, value) in [
        ("model_identity", identity.sha256.as_str()),
        ("n_layers", "2"),
        ("width", "64"),
        ("components", "4"),
        ("corpus_source", "corpus.txt"),
        (
            "corpus_sha256",
            &Corpus::from_file(&corpus).unwrap().sha256(),
        ),
        ("tool_version", env!("CARGO_PKG_VERSION")),
        ("format_version", "1"),
        ("positions", "skip-first"),
        // 1,399 tokens (after truncation) on 40 lines, first positions left out.
        ("tokens", "1359"),
    ] {
        assert_eq!(meta.get(key).map(String::as_str), Some(value), "{key}");
    }
    let map = file::load(&out).expect("our loader accepts it");
    assert_eq!(map.metadata().tokens, 1359);
    assert!(map.metadata().skip_first);

    // generate --projections with that map: coords [3, n, 4] in [-1, 1].
    let npz = tmp.0.join("run.npz");
    succeed(
        &cache,
        &[
            "generate",
            "--model",
            path(&llama),
            "--raw",
            "--prompt",
            "The choir sings",
            "--max-tokens",
            "6",
            "--seed",
            "3",
            "--map",
            path(&out),
            "--projections",
            path(&npz),
        ],
    );
    let mut reader = NpzReader::new(std::fs::File::open(&npz).unwrap()).unwrap();
    let coords: Array3<f32> = reader.by_name("coords").expect("coords");
    let tokens: Array1<i64> = reader.by_name("tokens").expect("tokens");
    let n = tokens.len();
    assert!(n > 6, "prompt and generated tokens");
    assert_eq!(coords.shape(), [3, n, 4]);
    assert!(coords.iter().all(|c| (-1.0..=1.0).contains(c)));
    assert!(coords.iter().any(|&c| c != 0.0));
}

#[test]
fn a_map_of_another_model_is_refused_with_a_clear_message() {
    let tmp = TempDir::new("cli-refuse");
    let cache = tmp.0.join("cache");
    let out = tmp.0.join("llama.safetensors");
    succeed(
        &cache,
        &[
            "fit-pca",
            "--model",
            path(&fixture("tiny-llama")),
            "--corpus",
            path(&fixture("pca/corpus.txt")),
            "--components",
            "4",
            "--out",
            path(&out),
        ],
    );
    let stderr = fail(
        &cache,
        &[
            "generate",
            "--model",
            path(&fixture("tiny-gpt2")),
            "--raw",
            "--prompt",
            "Hello",
            "--max-tokens",
            "2",
            "--map",
            path(&out),
            "--projections",
            path(&tmp.0.join("x.npz")),
        ],
    );
    assert!(stderr.contains("another model"), "{stderr}");
    assert!(
        stderr.contains("tiny-llama") && stderr.contains("tiny-gpt2"),
        "{stderr}"
    );
    assert!(stderr.contains("fit-pca"), "says what to do: {stderr}");
    assert!(!tmp.0.join("x.npz").exists());

    // A damaged map.
    std::fs::write(&out, b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let stderr = fail(
        &cache,
        &[
            "generate",
            "--model",
            path(&fixture("tiny-llama")),
            "--raw",
            "--prompt",
            "Hello",
            "--max-tokens",
            "2",
            "--map",
            path(&out),
            "--projections",
            path(&tmp.0.join("x.npz")),
        ],
    );
    assert!(stderr.contains("not a usable projection map"), "{stderr}");
    // Bad arguments.
    let stderr = fail(
        &cache,
        &[
            "fit-pca",
            "--model",
            path(&fixture("tiny-llama")),
            "--components",
            "65",
            "--out",
            path(&out),
        ],
    );
    assert!(stderr.contains("65 components"), "{stderr}");
    let empty = tmp.0.join("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    let stderr = fail(
        &cache,
        &[
            "fit-pca",
            "--model",
            path(&fixture("tiny-llama")),
            "--corpus",
            path(&empty),
            "--out",
            path(&out),
        ],
    );
    assert!(stderr.contains("no usable text"), "{stderr}");
}

#[test]
fn the_default_output_is_the_cache_that_generate_fits_and_reuses() {
    let tmp = TempDir::new("cli-cache");
    let cache = tmp.0.join("cache");
    let gpt2 = fixture("tiny-gpt2");
    let sha = identify(&gpt2).unwrap().sha256;
    let maps = cache.join("latent-choir/maps");
    let corpus = fixture("pca/corpus.txt");
    let fit = [
        "fit-pca",
        "--model",
        path(&gpt2),
        "--corpus",
        path(&corpus),
        "--components",
        "16",
    ];
    let (stdout, _) = succeed(&cache, &fit);
    let cached = maps.join(format!("{sha}-k16.safetensors"));
    assert!(stdout.contains(path(&cached)), "{stdout}");
    // --reuse keeps a valid map.
    let mut reuse = fit.to_vec();
    reuse.push("--reuse");
    let (stdout, _) = succeed(&cache, &reuse);
    assert!(stdout.contains("kept"), "{stdout}");

    // generate --projections without --map takes the cached map (fitted on a corpus of
    // another name than the embedded one: a deliberate choice, kept).
    let npz = tmp.0.join("run.npz");
    let run = [
        "generate",
        "--model",
        path(&gpt2),
        "--raw",
        "--prompt",
        "Hello there",
        "--max-tokens",
        "3",
        "--projections",
        path(&npz),
    ];
    let (_, stderr) = succeed(&cache, &run);
    assert!(
        !stderr.contains("fitting"),
        "the cached map was not used:\n{stderr}"
    );
    let mut reader = NpzReader::new(std::fs::File::open(&npz).unwrap()).unwrap();
    let coords: Array3<f32> = reader.by_name("coords").unwrap();
    assert_eq!(coords.shape()[2], 16);

    // Without a usable cached map it fits one on the embedded corpus and stores it.
    std::fs::write(&cached, b"garbage").unwrap();
    let (_, stderr) = succeed(&cache, &run);
    assert!(stderr.contains("not using the cached map"), "{stderr}");
    assert!(stderr.contains("not a usable projection map"), "{stderr}");
    assert!(stderr.contains("map stored at"), "{stderr}");
    let map = file::load(&cached).expect("a valid map again");
    assert_eq!(map.metadata().corpus_source, "embedded");
    assert!(map.metadata().skip_first);

    // A map fitted on every position (--keep-first, or any map from before first positions
    // were left out) is refused and refitted the default way.
    succeed(&cache, &[&fit[..], &["--keep-first"]].concat());
    assert!(!file::load(&cached).unwrap().metadata().skip_first);
    let (_, stderr) = succeed(&cache, &run);
    assert!(stderr.contains("not using the cached map"), "{stderr}");
    assert!(stderr.contains("every position"), "{stderr}");
    assert!(stderr.contains("map stored at"), "{stderr}");
    assert!(file::load(&cached).unwrap().metadata().skip_first);
}

#[test]
fn keep_first_fits_every_position_and_the_default_procedure_refits_such_a_map() {
    let tmp = TempDir::new("cli-keep-first");
    let cache = tmp.0.join("cache");
    let gpt2 = fixture("tiny-gpt2");
    let sha = identify(&gpt2).unwrap().sha256;
    let cached = cache.join(format!("latent-choir/maps/{sha}-k4.safetensors"));
    let corpus = fixture("pca/corpus.txt");
    let fit = [
        "fit-pca",
        "--model",
        path(&gpt2),
        "--corpus",
        path(&corpus),
        "--components",
        "4",
    ];
    let keep_first = [&fit[..], &["--keep-first"]].concat();
    let (stdout, stderr) = succeed(&cache, &keep_first);
    assert!(
        stdout.contains("positions    every (--keep-first)"),
        "{stdout}"
    );
    assert!(stdout.contains("tokens       1399 fitted"), "{stdout}");
    assert!(stderr.contains("refit a cached map"), "{stderr}");
    let map = file::load(&cached).unwrap();
    assert!(!map.metadata().skip_first);
    assert_eq!(map.metadata().tokens, 1399);
    // --reuse keeps it for --keep-first, and refits it for the default procedure.
    let (stdout, _) = succeed(&cache, &[&keep_first[..], &["--reuse"]].concat());
    assert!(stdout.contains("kept"), "{stdout}");
    let (stdout, stderr) = succeed(&cache, &[&fit[..], &["--reuse"]].concat());
    assert!(!stdout.contains("kept"), "{stdout}");
    assert!(stderr.contains("every position"), "{stderr}");
    assert!(stdout.contains("positions    skip-first"), "{stdout}");
    assert!(stdout.contains("tokens       1359 fitted"), "{stdout}");
    assert!(file::load(&cached).unwrap().metadata().skip_first);
}
