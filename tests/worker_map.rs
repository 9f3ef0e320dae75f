//! The worker's projection maps, through its public API: fitting on first load with progress
//! events, reusing the cache, refusing another model's map or one fitted on other positions
//! (and refitting), a map file given explicitly, cancelling a fit, and the coordinates every
//! token then carries.
//!
//! Fits use the tiny fixture models and the 40-line `tests/fixtures/pca/corpus.txt` in a
//! temporary cache folder (a fraction of a second each); nothing touches the user's cache.

mod common;

use common::paths::fixture;
use common::temp::TempDir;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use latent_choir::activation::{Corpus, MapCache, file, identify};
use latent_choir::llm::sampler::SamplerConfig;
use latent_choir::llm::tokenizer::PromptMode;
use latent_choir::worker::session::{AtEnd, TokenResult};
use latent_choir::worker::thread::{
    Command, FinishReason, MapSource, Pacing, SharedTemperature, WorkerEvent, WorkerHandle,
};

const TIMEOUT: Duration = Duration::from_secs(60);
const K: usize = 4;
/// Non-empty lines of the corpus.
const LINES: usize = 40;

fn cache(dir: &Path) -> MapCache {
    MapCache {
        dir: dir.to_path_buf(),
        corpus: Corpus::from_file(&fixture("pca/corpus.txt")).expect("corpus"),
        components: K,
        skip_first: true,
    }
}

struct Harness {
    worker: WorkerHandle,
    events: Receiver<WorkerEvent>,
}

impl Harness {
    fn new(source: MapSource) -> Self {
        let (sender, events) = mpsc::channel();
        let worker = WorkerHandle::spawn(SharedTemperature::new(0.8), Pacing::Free, move |event| {
            let _ = sender.send(event);
        })
        .expect("spawn the worker");
        let harness = Self { worker, events };
        harness.send(Command::SetMapSource(source));
        harness.send(Command::SetPrompt {
            text: "The choir sings".to_owned(),
            mode: PromptMode::Raw,
        });
        harness.send(Command::SetAtEnd(AtEnd::Continue));
        harness.send(Command::SetMaxTokens(Some(5)));
        harness
    }

    fn send(&self, command: Command) {
        self.worker.send(command).expect("the worker is alive");
    }

    fn next(&self) -> WorkerEvent {
        self.events
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("no event within {TIMEOUT:?}: {e}"))
    }

    /// `Load(model)`: `Loading` and `Loaded`.
    fn load(&self, model: &Path) {
        self.send(Command::Load(model.to_path_buf()));
        assert!(matches!(self.next(), WorkerEvent::Loading { .. }));
        match self.next() {
            WorkerEvent::Loaded { path, .. } => assert_eq!(path, model),
            other => panic!("expected Loaded, got {}", describe(&other)),
        }
    }

    /// `Fitting` events for the whole corpus, in order, then whatever came next.
    fn fitting(&self) -> WorkerEvent {
        for done in 0..=LINES {
            match self.next() {
                WorkerEvent::Fitting { done: d, total } => {
                    assert_eq!((d, total), (done, LINES));
                }
                other => panic!("expected Fitting {done}/{LINES}, got {}", describe(&other)),
            }
        }
        self.next()
    }

    /// Run the prompt and 5 tokens; every result.
    fn generate(&self) -> Vec<TokenResult> {
        self.send(Command::Start);
        let mut results = match self.next() {
            WorkerEvent::PromptProcessed(results) => results,
            other => panic!("expected PromptProcessed, got {}", describe(&other)),
        };
        loop {
            match self.next() {
                WorkerEvent::Token(token) => results.push(token),
                WorkerEvent::Finished(reason) => {
                    assert_eq!(reason, FinishReason::MaxTokens);
                    return results;
                }
                other => panic!("expected a token, got {}", describe(&other)),
            }
        }
    }
}

fn describe(event: &WorkerEvent) -> String {
    match event {
        WorkerEvent::PromptProcessed(results) => {
            format!("PromptProcessed({} tokens)", results.len())
        }
        WorkerEvent::Token(token) => format!("Token({})", token.id),
        other => format!("{other:?}"),
    }
}

fn expect_ready(event: WorkerEvent, fitted: bool) -> PathBuf {
    match event {
        WorkerEvent::MapReady {
            path,
            components,
            fitted: f,
            save_error,
            cloud,
        } => {
            assert_eq!(components, K);
            // Fitted now or read back from the cache, the map brings its corpus cloud.
            let cloud = cloud.expect("the map's corpus cloud");
            assert!(cloud.n_states() > 1);
            assert!((0..cloud.n_states()).all(|s| !cloud.layer(s).is_empty()));
            assert_eq!(f, fitted, "fitted");
            assert_eq!(save_error, None);
            path
        }
        other => panic!("expected MapReady, got {}", describe(&other)),
    }
}

/// Every result carries `[3][K]` coordinates in [-1, 1], the projection of its own hidden
/// states through the map at `map_path`.
fn check_coords(results: &[TokenResult], map_path: &Path) {
    let map = file::load(map_path).expect("the stored map loads");
    assert!(!results.is_empty());
    for token in results {
        assert_eq!(token.coords.len(), 3 * K);
        assert!(token.coords.iter().all(|c| (-1.0..=1.0).contains(c)));
        assert_eq!(token.coords, map.project(&token.hidden, 1));
    }
    // Not all stuck at one value.
    let first = &results[0].coords;
    assert!(results.iter().any(|t| &t.coords != first));
}

#[test]
fn the_first_load_fits_and_stores_the_map_and_the_next_reuses_it() {
    let dir = TempDir::new("worker-map-fit");
    let harness = Harness::new(MapSource::Cache(cache(&dir.0)));
    let model = fixture("tiny-llama");
    harness.load(&model);
    let path = expect_ready(harness.fitting(), true);
    let identity = identify(&model).expect("identify");
    assert_eq!(
        path,
        dir.0.join(format!("{}-k{K}.safetensors", identity.sha256))
    );
    check_coords(&harness.generate(), &path);

    // Loaded again: straight from the cache.
    harness.load(&model);
    assert_eq!(expect_ready(harness.next(), false), path);
    // A new sampler reloads the model and keeps its map: no map events.
    harness.send(Command::SetSampler(SamplerConfig {
        top_k: 1,
        ..SamplerConfig::default()
    }));
    harness.send(Command::Start);
    assert!(matches!(harness.next(), WorkerEvent::Loading { .. }));
    assert!(matches!(harness.next(), WorkerEvent::Loaded { .. }));
    harness.send(Command::Stop);
    let mut results = Vec::new();
    loop {
        match harness.next() {
            WorkerEvent::PromptProcessed(r) => results.extend(r),
            WorkerEvent::Token(t) => results.push(t),
            WorkerEvent::Finished(_) => break,
            other => panic!("unexpected {}", describe(&other)),
        }
    }
    check_coords(&results, &path);
}

#[test]
fn another_models_map_in_the_cache_is_refused_and_refitted() {
    let dir = TempDir::new("worker-map-refit");
    let harness = Harness::new(MapSource::Cache(cache(&dir.0)));
    // Fit tiny-gpt2, then put its map where tiny-llama's belongs.
    harness.load(&fixture("tiny-gpt2"));
    let gpt2_map = expect_ready(harness.fitting(), true);
    let llama = fixture("tiny-llama");
    let llama_map = dir.0.join(format!(
        "{}-k{K}.safetensors",
        identify(&llama).unwrap().sha256
    ));
    std::fs::copy(&gpt2_map, &llama_map).unwrap();

    harness.load(&llama);
    match harness.next() {
        WorkerEvent::MapRefused { path, message } => {
            assert_eq!(path, llama_map);
            assert!(message.contains("another model"), "{message}");
            assert!(message.contains("tiny-gpt2"), "{message}");
        }
        other => panic!("expected MapRefused, got {}", describe(&other)),
    }
    assert_eq!(expect_ready(harness.fitting(), true), llama_map);
    let map = file::load(&llama_map).unwrap();
    assert_eq!(map.metadata().model_name, "tiny-llama");
    check_coords(&harness.generate(), &llama_map);

    // A damaged file is refused and refitted too.
    std::fs::write(&llama_map, b"not a map").unwrap();
    harness.load(&llama);
    match harness.next() {
        WorkerEvent::MapRefused { message, .. } => {
            assert!(message.contains("not a usable projection map"), "{message}")
        }
        other => panic!("expected MapRefused, got {}", describe(&other)),
    }
    expect_ready(harness.fitting(), true);
}

#[test]
fn a_cached_map_fitted_on_every_position_is_refused_and_refitted() {
    let dir = TempDir::new("worker-map-positions");
    let llama = fixture("tiny-llama");
    // A map fitted the literal way (`fit-pca --keep-first`, or any map from before first
    // positions were left out) in the cache.
    let every = Harness::new(MapSource::Cache(MapCache {
        skip_first: false,
        ..cache(&dir.0)
    }));
    every.load(&llama);
    let path = expect_ready(every.fitting(), true);
    assert!(!file::load(&path).unwrap().metadata().skip_first);
    drop(every);

    let harness = Harness::new(MapSource::Cache(cache(&dir.0)));
    harness.load(&llama);
    match harness.next() {
        WorkerEvent::MapRefused {
            path: refused,
            message,
        } => {
            assert_eq!(refused, path);
            assert!(message.contains("every position"), "{message}");
            assert!(message.contains("attention sink"), "{message}");
        }
        other => panic!("expected MapRefused, got {}", describe(&other)),
    }
    assert_eq!(expect_ready(harness.fitting(), true), path);
    let map = file::load(&path).unwrap();
    assert!(map.metadata().skip_first);
    check_coords(&harness.generate(), &path);
    // Now valid: reused.
    harness.load(&llama);
    assert_eq!(expect_ready(harness.next(), false), path);
}

#[test]
fn an_explicit_map_file_is_used_or_refused_and_generation_goes_on_without() {
    let dir = TempDir::new("worker-map-file");
    // Fit a map for tiny-llama through the worker.
    let fit = Harness::new(MapSource::Cache(cache(&dir.0)));
    fit.load(&fixture("tiny-llama"));
    let llama_map = expect_ready(fit.fitting(), true);
    drop(fit);

    let harness = Harness::new(MapSource::File(llama_map.clone()));
    harness.load(&fixture("tiny-llama"));
    assert_eq!(expect_ready(harness.next(), false), llama_map);
    check_coords(&harness.generate(), &llama_map);

    // tiny-llama's map for tiny-gpt2: refused, and the model still generates, without coords.
    harness.load(&fixture("tiny-gpt2"));
    match harness.next() {
        WorkerEvent::MapFailed { message } => {
            assert!(message.contains("another model"), "{message}");
            assert!(message.contains("fit-pca"), "says what to do: {message}");
        }
        other => panic!("expected MapFailed, got {}", describe(&other)),
    }
    let results = harness.generate();
    assert!(results.iter().all(|t| t.coords.is_empty()));

    // A missing file too.
    harness.send(Command::SetMapSource(MapSource::File(
        dir.0.join("missing.safetensors"),
    )));
    harness.load(&fixture("tiny-llama"));
    assert!(matches!(harness.next(), WorkerEvent::MapFailed { .. }));
}

#[test]
fn load_cancels_a_fit_and_other_commands_wait_for_it() {
    let dir = TempDir::new("worker-map-cancel");
    let harness = Harness::new(MapSource::Cache(cache(&dir.0)));
    // Both loads are queued before the first fit starts: the second cancels it at once.
    harness.send(Command::Load(fixture("tiny-gpt2")));
    harness.send(Command::Load(fixture("tiny-llama")));
    assert!(matches!(harness.next(), WorkerEvent::Loading { .. }));
    assert!(matches!(harness.next(), WorkerEvent::Loaded { .. }));
    match harness.next() {
        WorkerEvent::Fitting { done: 0, .. } => {}
        other => panic!("expected Fitting, got {}", describe(&other)),
    }
    match harness.next() {
        WorkerEvent::MapFailed { message } => assert!(message.contains("cancelled"), "{message}"),
        other => panic!("expected MapFailed, got {}", describe(&other)),
    }
    assert!(
        std::fs::read_dir(&dir.0).unwrap().next().is_none(),
        "nothing stored"
    );
    // tiny-llama's load, with Start and Stop queued during its fit: they wait for it.
    assert!(matches!(harness.next(), WorkerEvent::Loading { .. }));
    harness.send(Command::Start);
    assert!(matches!(harness.next(), WorkerEvent::Loaded { .. }));
    let path = expect_ready(harness.fitting(), true);
    match harness.next() {
        WorkerEvent::PromptProcessed(results) => check_coords(&results, &path),
        other => panic!("expected PromptProcessed, got {}", describe(&other)),
    }
}

#[test]
fn map_source_off_sends_no_map_events() {
    let harness = Harness::new(MapSource::Off);
    harness.load(&fixture("tiny-llama"));
    let results = harness.generate();
    assert!(results.iter().all(|t| t.coords.is_empty()));
}
