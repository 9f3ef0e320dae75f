//! The LLM worker thread through its public API, with the tiny llama fixture
//! (`tests/fixtures/tiny-llama`: 2 layers, width 64, vocabulary 400, context 128), on which a
//! token takes well under a millisecond.
//!
//! Every wait has a timeout, so a worker that hangs fails the test instead of blocking it.

mod common;

use common::temp::TempDir;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use latent_choir::llm::sampler::SamplerConfig;
use latent_choir::llm::tokenizer::{PromptMode, Tokenizer};
use latent_choir::llm::{LlmError, ModelInfo};
use latent_choir::worker::session::{AtEnd, TokenResult};
use latent_choir::worker::thread::{
    Admit, Command, FinishReason, MapSource, Pacing, PanicSource, SharedTemperature, WorkerError,
    WorkerEvent, WorkerHandle,
};

/// Longest wait for one event. Generous: a debug build on a busy 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(300);
const PROMPT: &str = "Once upon a time";
/// The fixture's `config.json`.
const CONTEXT: usize = 128;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama")
}

/// A worker whose sink sends every event to `events`.
struct Harness {
    worker: WorkerHandle,
    events: Receiver<WorkerEvent>,
    temperature: SharedTemperature,
}

impl Harness {
    fn new() -> Self {
        Self::with(Pacing::Free, |_, _| {})
    }

    /// `hook` sees every event on the worker thread before it is forwarded, with the shared
    /// temperature.
    fn with(
        pacing: Pacing,
        mut hook: impl FnMut(&WorkerEvent, &SharedTemperature) + Send + 'static,
    ) -> Self {
        let (sender, events) = mpsc::channel();
        let temperature = SharedTemperature::new(0.8);
        let shared = temperature.clone();
        let worker = WorkerHandle::spawn(temperature.clone(), pacing, move |event| {
            hook(&event, &shared);
            let _ = sender.send(event);
        })
        .expect("spawn the worker");
        // These tests are about generation: no PCA map, so no map events between `Loaded` and
        // the prompt (tests/worker_map.rs covers maps).
        worker
            .send(Command::SetMapSource(MapSource::Off))
            .expect("the worker is alive");
        Self {
            worker,
            events,
            temperature,
        }
    }

    fn send(&self, command: Command) {
        self.worker.send(command).expect("the worker is alive");
    }

    fn next(&self) -> WorkerEvent {
        match self.events.recv_timeout(TIMEOUT) {
            Ok(event) => event,
            Err(e) => panic!("no event from the worker within {TIMEOUT:?}: {e}"),
        }
    }

    /// No event arrives for a while.
    fn assert_quiet(&self) {
        match self.events.recv_timeout(QUIET) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(event) => panic!("expected no event, got {}", describe(&event)),
            Err(RecvTimeoutError::Disconnected) => panic!("the worker thread ended"),
        }
    }

    fn load(&self, path: &Path) -> ModelInfo {
        self.send(Command::Load(path.to_path_buf()));
        match self.next() {
            WorkerEvent::Loading { path: p } => assert_eq!(p, path),
            other => panic!("expected Loading, got {}", describe(&other)),
        }
        match self.next() {
            WorkerEvent::Loaded { info, path: p, .. } => {
                assert_eq!(p, path);
                info
            }
            other => panic!("expected Loaded, got {}", describe(&other)),
        }
    }

    /// Load the fixture and set a raw prompt, seed and end-of-sequence behaviour.
    fn ready(&self, seed: u64, at_end: AtEnd, max_tokens: Option<usize>) {
        self.send(Command::SetSeed(seed));
        self.send(Command::SetAtEnd(at_end));
        self.send(Command::SetMaxTokens(max_tokens));
        self.send(Command::SetPrompt {
            text: PROMPT.to_owned(),
            mode: PromptMode::Raw,
        });
        self.load(&fixture());
    }

    fn expect_prompt(&self) -> Vec<TokenResult> {
        match self.next() {
            WorkerEvent::PromptProcessed(results) => results,
            other => panic!("expected PromptProcessed, got {}", describe(&other)),
        }
    }

    fn expect_finished(&self, reason: FinishReason) {
        match self.next() {
            WorkerEvent::Finished(r) => assert_eq!(r, reason),
            other => panic!("expected Finished({reason:?}), got {}", describe(&other)),
        }
    }

    /// Tokens until `Finished`; anything else fails.
    fn tokens_until_finished(&self) -> (Vec<TokenResult>, FinishReason) {
        let mut tokens = Vec::new();
        loop {
            match self.next() {
                WorkerEvent::Token(token) => tokens.push(token),
                WorkerEvent::Finished(reason) => return (tokens, reason),
                other => panic!("expected a token, got {}", describe(&other)),
            }
        }
    }

    /// `Start` on a ready worker whose prompt has not run: the prompt, then tokens until the
    /// run ends with `reason`; the generated ids.
    fn run(&self, reason: FinishReason) -> Vec<u32> {
        self.send(Command::Start);
        assert!(!self.expect_prompt().is_empty());
        let (tokens, r) = self.tokens_until_finished();
        assert_eq!(r, reason);
        ids(&tokens)
    }
}

fn ids(tokens: &[TokenResult]) -> Vec<u32> {
    tokens.iter().map(|t| t.id).collect()
}

/// An event without the hidden states, for failure messages.
fn describe(event: &WorkerEvent) -> String {
    match event {
        WorkerEvent::PromptProcessed(results) => {
            format!("PromptProcessed({} tokens)", results.len())
        }
        WorkerEvent::Token(token) => format!("Token({}, {:?})", token.id, token.text),
        other => format!("{other:?}"),
    }
}

/// The ids an uninterrupted run gives.
fn reference_ids(seed: u64, at_end: AtEnd, max_tokens: Option<usize>) -> Vec<u32> {
    let harness = Harness::new();
    harness.ready(seed, at_end, max_tokens);
    let reason = if max_tokens.is_some() {
        FinishReason::MaxTokens
    } else {
        FinishReason::ContextFull
    };
    harness.run(reason)
}

#[test]
fn load_start_generates_tokens_then_finishes() {
    let harness = Harness::new();
    harness.ready(1, AtEnd::Continue, Some(12));
    harness.send(Command::Start);

    let prompt = harness.expect_prompt();
    let expected_prompt = Tokenizer::from_file(fixture().join("tokenizer.json"))
        .unwrap()
        .prompt_ids(PROMPT, PromptMode::Raw)
        .unwrap();
    assert_eq!(ids(&prompt), expected_prompt);
    assert!(prompt.iter().all(|t| t.temperature.is_none()));

    let (tokens, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::MaxTokens);
    assert_eq!(tokens.len(), 12);
    for token in &tokens {
        assert_eq!(token.temperature, Some(0.8));
        assert!((token.id as usize) < 400);
        assert_eq!(token.hidden.len(), 3 * 64);
        assert_eq!(token.attention_entropy.len(), 2);
        assert_eq!(token.mlp_sparsity.len(), 2);
    }
    // Idle now: nothing more comes.
    harness.assert_quiet();
}

#[test]
fn the_loaded_event_describes_the_model() {
    let harness = Harness::new();
    let info = harness.load(&fixture());
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.n_layers, 2);
    assert_eq!(info.width, 64);
    assert_eq!(info.vocab_size, 400);
    assert_eq!(info.context_length, CONTEXT);
}

#[test]
fn the_temperature_is_read_before_every_token() {
    // The sink changes the temperature after every token; each token must carry the value set
    // after the one before it.
    let schedule = |n: usize| 0.05 + (n % 9) as f32 * 0.4;
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let harness = Harness::with(Pacing::Free, move |event, temperature| {
        if let WorkerEvent::Token(_) = event {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            temperature.set(schedule(n));
        }
    });
    harness.temperature.set(schedule(0));
    harness.ready(3, AtEnd::Continue, Some(30));
    harness.send(Command::Start);
    harness.expect_prompt();
    let (tokens, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::MaxTokens);
    assert_eq!(tokens.len(), 30);
    for (n, token) in tokens.iter().enumerate() {
        assert_eq!(token.temperature, Some(schedule(n)), "token {n}");
    }
}

#[test]
fn the_same_seed_and_temperatures_give_the_same_tokens() {
    let run = |seed: u64| {
        let harness = Harness::with(Pacing::Free, |event, temperature| {
            if let WorkerEvent::Token(token) = event {
                // A schedule that depends on what was generated, as loudness would.
                temperature.set(0.3 + (token.id % 5) as f32 * 0.3);
            }
        });
        harness.ready(seed, AtEnd::Continue, Some(40));
        harness.run(FinishReason::MaxTokens)
    };
    // Two workers at once.
    let first = std::thread::spawn(move || run(42));
    let second = run(42);
    let first = first.join().expect("first worker run");
    assert_eq!(first, second);
    assert_ne!(run(43), first, "another seed should give other tokens");
}

#[test]
fn failed_loads_are_reported_and_a_good_load_follows() {
    let harness = Harness::new();

    let missing = fixture().join("no-such-model");
    harness.send(Command::Load(missing.clone()));
    assert!(matches!(harness.next(), WorkerEvent::Loading { path } if path == missing));
    match harness.next() {
        WorkerEvent::LoadFailed { path, message } => {
            assert_eq!(path, missing);
            assert!(message.contains("not found"), "{message}");
        }
        other => panic!("expected LoadFailed, got {}", describe(&other)),
    }

    // Nothing is loaded, so Start is an error.
    harness.send(Command::Start);
    assert!(matches!(
        harness.next(),
        WorkerEvent::Error(WorkerError::NoModel)
    ));

    // A folder with a good config and tokenizer but garbage weights.
    let corrupt = TempDir::new("worker-corrupt");
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture().join(file), corrupt.0.join(file)).unwrap();
    }
    std::fs::write(
        corrupt.0.join("model.safetensors"),
        b"not a safetensors file",
    )
    .unwrap();
    // And one whose config is not JSON.
    let garbled = TempDir::new("worker-garbled");
    std::fs::write(garbled.0.join("config.json"), b"{ model_type: ").unwrap();

    for folder in [&corrupt.0, &garbled.0] {
        harness.send(Command::Load(folder.clone()));
        assert!(matches!(harness.next(), WorkerEvent::Loading { .. }));
        match harness.next() {
            WorkerEvent::LoadFailed { path, message } => {
                assert_eq!(&path, folder);
                assert!(!message.is_empty());
            }
            other => panic!("expected LoadFailed, got {}", describe(&other)),
        }
    }

    harness.send(Command::SetPrompt {
        text: PROMPT.to_owned(),
        mode: PromptMode::Raw,
    });
    harness.send(Command::SetMaxTokens(Some(5)));
    harness.load(&fixture());
    assert_eq!(harness.run(FinishReason::MaxTokens).len(), 5);
}

#[test]
fn stop_halts_within_a_token_and_start_resumes() {
    // The sink sends Stop on the 5th and 8th tokens, so the worker finds it before the 6th
    // and the 9th.
    let sender: Arc<OnceLock<Sender<Command>>> = Arc::new(OnceLock::new());
    let stopper = Arc::clone(&sender);
    let tokens_seen = AtomicUsize::new(0);
    let harness = Harness::with(Pacing::Free, move |event, _| {
        if let WorkerEvent::Token(_) = event
            && [5, 8].contains(&(tokens_seen.fetch_add(1, Ordering::SeqCst) + 1))
        {
            stopper.get().unwrap().send(Command::Stop).unwrap();
        }
    });
    sender.set(harness.worker.sender()).unwrap();
    harness.ready(7, AtEnd::Continue, Some(15));

    harness.send(Command::Start);
    harness.expect_prompt();
    let (before, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::Stopped);
    assert_eq!(
        before.len(),
        5,
        "Stop must take effect before the next token"
    );
    harness.assert_quiet();

    // Resumes where it stopped: no new prompt, and the tokens an uninterrupted run gives.
    harness.send(Command::Start);
    let (middle, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::Stopped);
    assert_eq!(
        middle.len(),
        3,
        "Stop must take effect before the next token"
    );
    harness.send(Command::Start);
    let (after, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::MaxTokens);
    let all: Vec<u32> = [before, middle, after]
        .iter()
        .flat_map(|t| ids(t))
        .collect();
    assert_eq!(all, reference_ids(7, AtEnd::Continue, Some(15)));

    // Stop when idle does nothing.
    harness.send(Command::Stop);
    harness.assert_quiet();
}

#[test]
fn reset_then_start_regenerates_the_same_tokens() {
    // When armed, the sink sends Reset on the next token: a Reset in the middle of a run.
    let sender: Arc<OnceLock<Sender<Command>>> = Arc::new(OnceLock::new());
    let resetter = Arc::clone(&sender);
    let armed = Arc::new(AtomicBool::new(false));
    let trigger = Arc::clone(&armed);
    let harness = Harness::with(Pacing::Free, move |event, _| {
        if let WorkerEvent::Token(_) = event
            && trigger.swap(false, Ordering::SeqCst)
        {
            resetter.get().unwrap().send(Command::Reset).unwrap();
        }
    });
    sender.set(harness.worker.sender()).unwrap();
    harness.ready(11, AtEnd::Continue, Some(10));
    let first = harness.run(FinishReason::MaxTokens);

    harness.send(Command::Reset);
    assert_eq!(harness.run(FinishReason::MaxTokens), first);

    armed.store(true, Ordering::SeqCst);
    harness.send(Command::Reset);
    harness.send(Command::Start);
    harness.expect_prompt();
    let (tokens, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::Stopped);
    assert_eq!(tokens.len(), 1);
    assert_eq!(harness.run(FinishReason::MaxTokens), first);

    // Another seed, after Reset, gives other tokens.
    harness.send(Command::SetSeed(12));
    harness.send(Command::Reset);
    assert_ne!(harness.run(FinishReason::MaxTokens), first);
}

#[test]
fn a_new_prompt_restarts_the_run() {
    let harness = Harness::new();
    harness.ready(5, AtEnd::Continue, Some(6));
    let first = harness.run(FinishReason::MaxTokens);
    harness.send(Command::SetPrompt {
        text: "The quick brown fox".to_owned(),
        mode: PromptMode::Raw,
    });
    harness.send(Command::Start);
    let prompt = harness.expect_prompt();
    assert_eq!(
        prompt.iter().map(|t| t.text.as_str()).collect::<String>(),
        "The quick brown fox"
    );
    let (tokens, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::MaxTokens);
    assert_eq!(tokens.len(), 6);
    assert_ne!(ids(&tokens), first);
}

#[test]
fn a_panicking_sink_is_reported_and_the_worker_keeps_going() {
    let tokens_seen = AtomicUsize::new(0);
    let harness = Harness::with(Pacing::Free, move |event, _| {
        if let WorkerEvent::Token(_) = event
            && tokens_seen.fetch_add(1, Ordering::SeqCst) + 1 == 3
        {
            panic!("sink trouble on token 3");
        }
    });
    harness.ready(2, AtEnd::Continue, Some(8));
    harness.send(Command::Start);
    harness.expect_prompt();
    let mut tokens = 0;
    let mut panics = Vec::new();
    loop {
        match harness.next() {
            WorkerEvent::Token(_) => tokens += 1,
            WorkerEvent::Panicked { source, message } => {
                assert_eq!(source, PanicSource::Sink);
                assert_eq!(tokens, 2, "the panic came on the third token");
                panics.push(message);
            }
            WorkerEvent::Finished(reason) => {
                assert_eq!(reason, FinishReason::MaxTokens);
                break;
            }
            other => panic!("unexpected {}", describe(&other)),
        }
    }
    assert_eq!(panics, ["sink trouble on token 3"]);
    // The third token's event was lost with the panic; the rest arrived.
    assert_eq!(tokens, 7);

    // Still usable.
    harness.send(Command::Reset);
    assert_eq!(harness.run(FinishReason::MaxTokens).len(), 8);
}

#[test]
fn drop_and_shutdown_join_the_thread() {
    // Drop while generating without end (until the context is full, at most).
    let harness = Harness::new();
    harness.ready(1, AtEnd::Continue, None);
    harness.send(Command::Start);
    harness.expect_prompt();
    let Harness { worker, events, .. } = harness;
    let extra = worker.sender();
    let (done, dropped) = mpsc::channel();
    std::thread::spawn(move || {
        drop(worker);
        let _ = done.send(());
    });
    dropped
        .recv_timeout(TIMEOUT)
        .expect("dropping the handle should join the worker thread");
    // The thread has ended, so the sink (and its sender) is gone.
    loop {
        match events.recv_timeout(TIMEOUT) {
            Ok(_) => {}
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("the sink outlived the worker"),
        }
    }
    assert!(extra.send(Command::Start).is_err());

    // Explicit shutdown, idle.
    let harness = Harness::new();
    let Harness { worker, events, .. } = harness;
    let (done, joined) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(worker.shutdown().is_ok());
    });
    assert!(joined.recv_timeout(TIMEOUT).expect("shutdown should join"));
    assert!(matches!(
        events.recv_timeout(TIMEOUT),
        Err(RecvTimeoutError::Disconnected)
    ));
}

#[test]
fn generation_ends_when_the_context_is_full() {
    let harness = Harness::new();
    harness.ready(9, AtEnd::Continue, None);
    harness.send(Command::Start);
    let prompt = harness.expect_prompt().len();
    let (tokens, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::ContextFull);
    assert_eq!(prompt + tokens.len(), CONTEXT);

    // The run stays ended: Start only repeats why.
    harness.send(Command::Start);
    harness.expect_finished(FinishReason::ContextFull);
    // Until Reset.
    harness.send(Command::Reset);
    harness.send(Command::SetMaxTokens(Some(3)));
    assert_eq!(harness.run(FinishReason::MaxTokens).len(), 3);
}

#[test]
fn max_tokens_can_be_raised_to_carry_on() {
    let harness = Harness::new();
    harness.ready(4, AtEnd::Continue, Some(5));
    let first = harness.run(FinishReason::MaxTokens);
    // At the limit, Start finishes at once.
    harness.send(Command::Start);
    harness.expect_finished(FinishReason::MaxTokens);
    harness.send(Command::SetMaxTokens(Some(9)));
    harness.send(Command::Start);
    let (more, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::MaxTokens);
    let all: Vec<u32> = first.into_iter().chain(ids(&more)).collect();
    assert_eq!(all, reference_ids(4, AtEnd::Continue, Some(9)));
}

#[test]
fn at_end_stop_ends_at_the_end_of_sequence_and_continue_goes_on() {
    let eos = Tokenizer::from_file(fixture().join("tokenizer.json"))
        .unwrap()
        .eos_ids()
        .to_vec();
    assert!(
        !eos.is_empty(),
        "the fixture's tokenizer has no end-of-sequence id"
    );
    // Near-uniform sampling over the whole vocabulary: some seed soon samples an EOS.
    let flat = SamplerConfig {
        top_k: 0,
        top_p: 1.0,
        repetition_penalty: 1.0,
        repetition_window: 0,
    };
    let harness = Harness::new();
    harness.temperature.set(50.0);
    harness.send(Command::SetSampler(flat));
    harness.ready(0, AtEnd::Continue, None);
    let (seed, continued) = (0..40)
        .find_map(|seed| {
            harness.send(Command::SetSeed(seed));
            harness.send(Command::Reset);
            let ids = harness.run(FinishReason::ContextFull);
            let at = ids.iter().position(|id| eos.contains(id))?;
            Some((seed, ids[..=at].to_vec()))
        })
        .expect("no seed in 0..40 sampled an end-of-sequence token");

    // With AtEnd::Continue the EOS token itself was generated and the run went on; with
    // AtEnd::Stop the same seed stops right before it. Changing AtEnd reloads the model.
    harness.send(Command::SetSeed(seed));
    harness.send(Command::SetAtEnd(AtEnd::Stop));
    harness.send(Command::Reset);
    harness.send(Command::Start);
    assert!(matches!(harness.next(), WorkerEvent::Loading { .. }));
    assert!(matches!(harness.next(), WorkerEvent::Loaded { .. }));
    harness.expect_prompt();
    let (tokens, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::EndOfSequence);
    assert_eq!(ids(&tokens), continued[..continued.len() - 1]);
    // Start again: still ended.
    harness.send(Command::Start);
    harness.expect_finished(FinishReason::EndOfSequence);
}

#[test]
fn a_new_sampler_applies_from_the_next_prompt_run() {
    // top_k = 1 is greedy at any temperature: the same tokens as temperature 0.
    let greedy = SamplerConfig {
        top_k: 1,
        ..SamplerConfig::default()
    };
    let harness = Harness::new();
    harness.temperature.set(0.0);
    harness.ready(6, AtEnd::Continue, Some(10));
    let at_zero = harness.run(FinishReason::MaxTokens);

    harness.temperature.set(2.0);
    harness.send(Command::Reset);
    let hot = harness.run(FinishReason::MaxTokens);
    assert_ne!(hot, at_zero);

    harness.send(Command::SetSampler(greedy));
    harness.send(Command::Reset);
    harness.send(Command::Start);
    assert!(matches!(harness.next(), WorkerEvent::Loading { .. }));
    assert!(matches!(harness.next(), WorkerEvent::Loaded { .. }));
    harness.expect_prompt();
    let (tokens, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::MaxTokens);
    assert_eq!(ids(&tokens), at_zero);
    assert!(tokens.iter().all(|t| t.temperature == Some(2.0)));
}

#[test]
fn a_closed_gate_holds_generation_and_commands_still_get_through() {
    let allowed = Arc::new(AtomicUsize::new(3));
    let produced = Arc::new(AtomicUsize::new(0));
    let (gate_allowed, gate_produced) = (Arc::clone(&allowed), Arc::clone(&produced));
    let pacing = Pacing::Gated {
        may_produce: Box::new(move |_| {
            if gate_produced.load(Ordering::SeqCst) < gate_allowed.load(Ordering::SeqCst) {
                Admit::Go
            } else {
                Admit::Wait
            }
        }),
        poll: Duration::from_millis(1),
    };
    let counter = Arc::clone(&produced);
    let harness = Harness::with(pacing, move |event, _| {
        if let WorkerEvent::Token(_) = event {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    harness.ready(8, AtEnd::Continue, Some(10));
    harness.send(Command::Start);
    harness.expect_prompt();
    for _ in 0..3 {
        assert!(matches!(harness.next(), WorkerEvent::Token(_)));
    }
    harness.assert_quiet();

    // Commands are handled while the gate is closed.
    harness.send(Command::Stop);
    harness.expect_finished(FinishReason::Stopped);
    harness.send(Command::Start);
    harness.assert_quiet();

    // Opening the gate lets exactly the allowed tokens through.
    allowed.store(6, Ordering::SeqCst);
    for _ in 0..3 {
        assert!(matches!(harness.next(), WorkerEvent::Token(_)));
    }
    harness.assert_quiet();
    allowed.store(usize::MAX, Ordering::SeqCst);
    let (rest, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::MaxTokens);
    assert_eq!(rest.len(), 4);
}

#[test]
fn the_gate_is_told_which_step_comes_next() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let gate_seen = Arc::clone(&seen);
    let pacing = Pacing::gated_steps(move |next| {
        gate_seen.lock().expect("seen").push(next);
        true
    });
    let harness = Harness::with(pacing, |_, _| {});
    harness.ready(8, AtEnd::Continue, Some(3));
    harness.send(Command::Start);
    harness.expect_prompt();
    let (tokens, _) = harness.tokens_until_finished();
    assert_eq!(tokens.len(), 3);
    harness.send(Command::Reset);
    harness.send(Command::SetMaxTokens(Some(1)));
    harness.send(Command::Start);
    harness.expect_prompt();
    let _ = harness.tokens_until_finished();
    let seen = seen.lock().expect("seen").clone();
    use latent_choir::worker::thread::NextStep::{Prompt, Token};
    assert_eq!(
        seen,
        [Prompt, Token(0), Token(1), Token(2), Prompt, Token(0)]
    );
}

#[test]
fn a_line_the_gate_hands_over_is_read_into_the_context_right_before_its_token() {
    let pacing = Pacing::admitting(|next| match next {
        latent_choir::worker::thread::NextStep::Token(2) => {
            Admit::Read("\n(what I hear: A minor)\n".into())
        }
        _ => Admit::Go,
    });
    let harness = Harness::with(pacing, |_, _| {});
    harness.ready(8, AtEnd::Continue, Some(4));
    harness.send(Command::Start);
    harness.expect_prompt();
    let mut order = Vec::new();
    loop {
        match harness.next() {
            WorkerEvent::Token(_) => order.push("token".to_owned()),
            WorkerEvent::Heard {
                before_token,
                text,
                tokens,
            } => {
                assert_eq!(text, "\n(what I hear: A minor)\n");
                assert!(tokens > 3, "the line took {tokens} positions");
                order.push(format!("heard before {before_token}"));
            }
            WorkerEvent::Finished(_) => break,
            other => panic!("unexpected {}", describe(&other)),
        }
    }
    assert_eq!(
        order,
        ["token", "token", "heard before 2", "token", "token"]
    );
}

#[test]
fn a_panicking_gate_ends_the_run_and_the_worker_survives() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gate_calls = Arc::clone(&calls);
    let pacing = Pacing::gated(move || {
        if gate_calls.fetch_add(1, Ordering::SeqCst) == 2 {
            panic!("gate trouble");
        }
        true
    });
    let harness = Harness::with(pacing, |_, _| {});
    harness.ready(1, AtEnd::Continue, Some(5));
    harness.send(Command::Start);
    harness.expect_prompt();
    assert!(matches!(harness.next(), WorkerEvent::Token(_)));
    match harness.next() {
        WorkerEvent::Panicked { source, message } => {
            assert_eq!(source, PanicSource::Gate);
            assert_eq!(message, "gate trouble");
        }
        other => panic!("expected Panicked, got {}", describe(&other)),
    }
    harness.expect_finished(FinishReason::Failed);
    // The model was not at fault: Start carries on.
    harness.send(Command::Start);
    let (tokens, reason) = harness.tokens_until_finished();
    assert_eq!(reason, FinishReason::MaxTokens);
    assert_eq!(tokens.len(), 4);
}

#[test]
fn errors_are_reported_and_the_worker_stays_usable() {
    let harness = Harness::new();
    harness.send(Command::Start);
    assert!(matches!(
        harness.next(),
        WorkerEvent::Error(WorkerError::NoModel)
    ));

    // No prompt set.
    harness.load(&fixture());
    harness.send(Command::Start);
    assert!(matches!(
        harness.next(),
        WorkerEvent::Error(WorkerError::Llm(LlmError::EmptyPrompt))
    ));
    harness.expect_finished(FinishReason::Failed);

    // A prompt longer than the context.
    harness.send(Command::SetPrompt {
        text: "word ".repeat(400),
        mode: PromptMode::Raw,
    });
    harness.send(Command::Start);
    assert!(matches!(
        harness.next(),
        WorkerEvent::Error(WorkerError::Llm(LlmError::PromptTooLong { .. }))
    ));
    harness.expect_finished(FinishReason::Failed);

    harness.send(Command::SetPrompt {
        text: PROMPT.to_owned(),
        mode: PromptMode::Raw,
    });
    harness.send(Command::SetMaxTokens(Some(4)));
    assert_eq!(harness.run(FinishReason::MaxTokens).len(), 4);
}

#[test]
fn load_while_generating_stops_the_run_first() {
    let harness = Harness::new();
    harness.ready(1, AtEnd::Continue, None);
    harness.send(Command::Start);
    harness.send(Command::Load(fixture()));
    // The run may or may not have got going before Load arrived.
    let mut stopped = false;
    loop {
        match harness.next() {
            WorkerEvent::PromptProcessed(_) | WorkerEvent::Token(_) => {}
            WorkerEvent::Finished(reason) => {
                assert!(
                    matches!(reason, FinishReason::Stopped | FinishReason::ContextFull),
                    "{reason:?}"
                );
                stopped = true;
            }
            WorkerEvent::Loading { .. } => break,
            other => panic!("unexpected {}", describe(&other)),
        }
    }
    assert!(stopped, "the run must end before the load begins");
    assert!(matches!(harness.next(), WorkerEvent::Loaded { .. }));
    // The new model has not run the prompt.
    harness.send(Command::SetMaxTokens(Some(5)));
    assert_eq!(harness.run(FinishReason::MaxTokens).len(), 5);
}
