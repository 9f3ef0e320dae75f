//! A server writes, the local model reads: `latent-choir render --backend openai` against
//! `latent-choir serve` (the default model writes, the tiny llama reads with its own
//! tokenizer), the plugin's offline bounce through CLAP against the same server, and a scripted
//! server in this file that fails in the ways real ones do (errors, garbage, a stall, a
//! connection dropped mid-answer, a refusal).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::bounce::{Blocks, Segment, bounce_with};
use common::cli::{command, fail, succeed};
use common::isolate::isolated;
use common::paths::fixture;
use common::serve::serve;
use common::temp::TempDir;
use latent_choir::llm::tokenizer::PromptMode;
use latent_choir::remote::settings::{Backend, RemoteSettings};
use latent_choir::worker::thread::{
    Command, FinishReason, MapSource, Pacing, SharedTemperature, WorkerEvent, WorkerHandle,
};
use serde_json::{Value, json};

const TOKENS: u64 = 24;
/// One grid step at 120 BPM and 2 tokens per beat, in samples at 48 kHz.
const STEP: u64 = 12_000;
const PROMPT: &str = "Write one line about the sea.";

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// `render` on the tiny llama with the text from `url`, into `name.{wav,mid,lcrun}`.
fn render_args(dir: &TempDir, name: &str, url: &str, extra: &[&str]) -> std::process::Command {
    let mut render = command();
    render
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .args(["render", "--prompt", PROMPT, "--bpm", "120", "--seed", "5"])
        .args(["--model", s(&fixture("tiny-llama"))])
        .args(["--tokens", &TOKENS.to_string(), "--tokens-per-beat", "2"])
        .args(["--param", "ornaments=0", "--param", "humanise=0"])
        .args(["--backend", "openai", "--url", url])
        .args(["--out", s(&dir.join(&format!("{name}.wav")))])
        .args(extra);
    render
}

fn manifest(dir: &TempDir, name: &str) -> Value {
    let file = std::fs::File::open(dir.join(&format!("{name}.lcrun"))).expect("the run file");
    let mut zip = zip::ZipArchive::new(file).expect("a run file is a zip");
    let mut json = String::new();
    zip.by_name("manifest.json")
        .expect("manifest.json")
        .read_to_string(&mut json)
        .expect("read the manifest");
    serde_json::from_str(&json).expect("manifest JSON")
}

fn bytes(dir: &TempDir, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A WAV's samples, interleaved.
fn samples(dir: &TempDir, file: &str) -> Vec<f32> {
    hound::WavReader::open(dir.join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .into_samples::<f32>()
        .map(|s| s.expect("a float sample"))
        .collect()
}

/// The local model read exactly the server's text, in its own tokens: the played tokens
/// spell a prefix of the pieces (the last piece may still wait to be read; an end of the
/// answer is a line break), every piece was chosen from the alternatives the server sent, and
/// there are as many frames as steps.
fn assert_read_what_was_written(manifest: &Value) -> String {
    let remote = &manifest["remote"];
    assert_eq!(remote["server_chose"], false, "{remote}");
    let pieces = remote["pieces"].as_array().expect("pieces");
    assert!(!pieces.is_empty());
    let mut written = String::new();
    for piece in pieces {
        let top = piece["top"].as_array().expect("alternatives");
        let chosen = piece["chosen"].as_u64().expect("chosen here") as usize;
        assert_eq!(piece["text"], top[chosen][0], "{piece}");
        // An end of the answer reads as a line break: renders go on past it.
        match piece.get("ended") {
            None => written.push_str(piece["text"].as_str().expect("text")),
            Some(_) => written.push('\n'),
        }
    }
    let tokens = manifest["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len() as u64, TOKENS, "one frame per step");
    let read: String = tokens.iter().map(|t| t.as_str().expect("text")).collect();
    assert!(
        written.starts_with(&read) && read.len() + 40 > written.len(),
        "read {read:?} of written {written:?}"
    );
    read
}

#[test]
fn a_served_model_writes_the_tiny_llama_sings_it_and_it_replays_without_either() {
    isolated(
        "a_served_model_writes_the_tiny_llama_sings_it_and_it_replays_without_either",
        || {
            let dir = TempDir::new("remote-serve");
            // SAFETY: set before the plugin (and any thread reading the environment) starts;
            // the CLI children get it too, so all use the same freshly fitted map.
            unsafe { std::env::set_var("XDG_CACHE_HOME", dir.0.join("cache")) };
            let server = serve(&dir, &["--exact-prefill"]);
            let url = server.url();

            // Chat: the server continues its own answer, one piece per step.
            succeed(&mut render_args(&dir, "a", &url, &[]));
            let a = manifest(&dir, "a");
            let read = assert_read_what_was_written(&a);
            assert!(!read.trim().is_empty());
            assert_eq!(a["remote"]["url"], url.as_str());
            assert!(a["remote"]["model"].as_str().is_some_and(|m| !m.is_empty()));

            // The same seed and server numbers: the same pieces, notes and audio.
            succeed(&mut render_args(&dir, "b", &url, &[]));
            assert_eq!(manifest(&dir, "b")["remote"], a["remote"]);
            assert_eq!(bytes(&dir, "a.mid"), bytes(&dir, "b.mid"));
            assert_eq!(bytes(&dir, "a.wav"), bytes(&dir, "b.wav"));

            // Raw text goes through the completions endpoint.
            succeed(&mut render_args(&dir, "raw", &url, &["--raw"]));
            assert_read_what_was_written(&manifest(&dir, "raw"));

            // The plugin's offline bounce on the same server plays the render sample for
            // sample (with `assert_process_allocs`, an allocation on its audio thread aborts).
            let fields = [
                ("model", json!(fixture("tiny-llama").to_string_lossy())),
                ("prompt", json!(PROMPT)),
                ("seed", json!(5)),
                (
                    "text_source",
                    json!({"remote": true, "url": url, "fallback": false}),
                ),
            ];
            let setup = [("Ornaments", 0.0), ("Humanise", 0.0)];
            let piece = [Segment {
                beat: 0.0,
                tempo: 120.0,
                samples: TOKENS * STEP,
            }];
            let bounce = bounce_with(&fields, &setup, &piece, &[], Blocks::Fixed(512));
            let wav = samples(&dir, "a.wav");
            for i in 0..bounce.audio[0].len() {
                for (c, channel) in bounce.audio.iter().enumerate() {
                    assert_eq!(
                        wav[2 * i + c].to_bits(),
                        channel[i].to_bits(),
                        "sample {i} channel {c}: the plugin and the render diverge"
                    );
                }
            }

            // Neither model is needed to hear it again.
            drop(server);
            succeed(
                command()
                    .args(["replay", s(&dir.join("a.lcrun"))])
                    .args(["--out", s(&dir.join("replay.wav"))]),
            );
            let replayed = samples(&dir, "replay.wav");
            assert_eq!(replayed.len(), wav.len());
            assert!(
                replayed
                    .iter()
                    .zip(&wav)
                    .all(|(r, w)| r.to_bits() == w.to_bits())
            );
        },
    );
}

/// What the scripted server does with one request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reply {
    Piece,
    Status(u16),
    Garbage,
    /// Answers nothing for this long, then closes.
    Stall(Duration),
    /// Sends half an answer and closes, as a server killed mid-answer.
    Cut,
    /// Its own draw ended the answer and, as llama.cpp does then, it lists no alternatives.
    EndedBare,
}

/// A request the scripted server took: when, its path, body and `Authorization` header.
#[derive(Clone, Debug)]
struct Taken {
    at: Instant,
    path: String,
    body: Value,
    authorization: Option<String>,
}

/// An OpenAI-compatible server that answers request `i` with `script(i)`, always offering the
/// same three pieces, and keeps what it was sent.
struct Scripted {
    port: u16,
    taken: Arc<Mutex<Vec<Taken>>>,
}

impl Scripted {
    fn start(script: fn(usize) -> Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let taken = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&taken);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                thread::spawn(move || serve_connection(stream, &log, script));
            }
        });
        Self { port, taken }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn taken(&self) -> Vec<Taken> {
        self.taken.lock().expect("log").clone()
    }
}

fn serve_connection(stream: TcpStream, log: &Mutex<Vec<Taken>>, script: fn(usize) -> Reply) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
        let (mut length, mut authorization) = (0, None);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let index = {
            let mut log = log.lock().expect("log");
            log.push(Taken {
                at: Instant::now(),
                path,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                authorization,
            });
            log.len() - 1
        };
        let answer = |status: u16, body: &str| {
            format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let reply = match script(index) {
            Reply::Piece => answer(200, &piece_json()),
            Reply::Status(status) => answer(
                status,
                r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#,
            ),
            Reply::Garbage => answer(200, "<html>Bad gateway</html>"),
            Reply::EndedBare => answer(
                200,
                r#"{"choices":[{"message":{"content":""},"finish_reason":"stop","logprobs":{"content":[]}}]}"#,
            ),
            Reply::Stall(wait) => {
                thread::sleep(wait);
                return;
            }
            Reply::Cut => {
                let whole = answer(200, &piece_json());
                let _ = stream.write_all(&whole.as_bytes()[..whole.len() - 40]);
                return;
            }
        };
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A chat answer offering " la", " da" and " dum".
fn piece_json() -> String {
    let top: Vec<Value> = [(" la", -0.3), (" da", -1.6), (" dum", -2.5)]
        .iter()
        .map(|(t, lp)| json!({"token": t, "logprob": lp, "bytes": t.as_bytes()}))
        .collect();
    json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": " la"},
        "finish_reason": "length",
        "logprobs": {"content": [{"token": " la", "logprob": -0.3, "top_logprobs": top}]}}]})
    .to_string()
}

#[test]
fn a_failing_server_is_retried_and_the_piece_still_arrives() {
    // Every other request fails, each in its own way; the one after it succeeds.
    fn script(i: usize) -> Reply {
        match i {
            1 => Reply::Status(503),
            3 => Reply::Garbage,
            5 => Reply::Stall(Duration::from_secs(4)),
            7 => Reply::Cut,
            9 => Reply::Status(429),
            _ => Reply::Piece,
        }
    }
    let server = Scripted::start(script);
    let dir = TempDir::new("remote-flaky");
    let out = succeed(
        render_args(
            &dir,
            "flaky",
            &server.url(),
            &[
                "--remote-model",
                "big",
                "--remote-timeout",
                "1",
                "--api-key-env",
                "LC_TEST_KEY",
            ],
        )
        .env("LC_TEST_KEY", "sk-test-secret-123"),
    );
    let manifest = manifest(&dir, "flaky");
    let read = assert_read_what_was_written(&manifest);
    assert!(
        read.split_whitespace()
            .all(|w| ["la", "da", "dum"].contains(&w)),
        "{read:?}"
    );
    assert_eq!(manifest["remote"]["model"], "big");

    let taken = server.taken();
    assert!(taken.len() > 10, "{} requests", taken.len());
    for (i, request) in taken.iter().enumerate() {
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(request.body["model"], "big");
        assert_eq!(request.body["max_tokens"], 1);
        assert_eq!(request.body["top_logprobs"], 20);
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer sk-test-secret-123"),
            "request {i}"
        );
    }
    // Each retry waited: 0.5 s after a failure (the stall's 1 s timeout came first).
    for failed in [1, 3, 5, 7, 9] {
        let gap = taken[failed + 1].at - taken[failed].at;
        let least = if failed == 5 { 1500 } else { 500 };
        assert!(
            gap >= Duration::from_millis(least),
            "request {failed} was retried after {gap:?}"
        );
    }
    // The answer so far goes back each time, so the server continues it.
    let last = &taken[taken.len() - 1].body;
    assert_eq!(last["continue_final_message"], true);
    assert_eq!(last["messages"][1]["role"], "assistant");
    // The key is never written down or shown.
    let run = bytes(&dir, "flaky.lcrun");
    let secret = b"sk-test-secret-123";
    assert!(!run.windows(secret.len()).any(|w| w == secret));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sk-test"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("sk-test"));
}

#[test]
fn an_end_drawn_without_alternatives_is_drawn_again_at_the_runs_temperature() {
    let server = Scripted::start(|i| {
        if i == 0 {
            Reply::EndedBare
        } else {
            Reply::Piece
        }
    });
    let dir = TempDir::new("remote-ended");
    succeed(&mut render_args(
        &dir,
        "ended",
        &server.url(),
        &["--remote-model", "big"],
    ));
    let taken = server.taken();
    let (asked, again, next) = (&taken[0].body, &taken[1].body, &taken[2].body);
    assert_eq!(
        (
            asked["temperature"].as_f64(),
            asked["top_logprobs"].as_u64()
        ),
        (Some(1.0), Some(20))
    );
    // The same piece again, drawn by the server at the run's temperature with the same seed.
    assert!(
        again.get("top_logprobs").is_none() && again.get("logprobs").is_none(),
        "{again}"
    );
    assert_ne!(again["temperature"].as_f64(), Some(1.0), "{again}");
    assert_eq!(again["seed"], asked["seed"]);
    assert_eq!(again["messages"], asked["messages"]);
    // Then alternatives are asked for again.
    assert_eq!(next["top_logprobs"], 20);
    let manifest = manifest(&dir, "ended");
    let remote = &manifest["remote"];
    assert_eq!(remote["server_chose"], true);
    let pieces = remote["pieces"].as_array().expect("pieces");
    assert_eq!(pieces[0]["text"], " la");
    assert!(pieces[0].get("chosen").is_none() && pieces[0].get("top").is_none());
    assert!(pieces[1..].iter().all(|p| p.get("chosen").is_some()));
}

#[test]
fn a_refusing_server_ends_the_render_clearly_or_the_local_model_writes_on() {
    let server = Scripted::start(|_| Reply::Status(401));
    let dir = TempDir::new("remote-refused");
    let started = Instant::now();
    let stderr = fail(&mut render_args(
        &dir,
        "no",
        &server.url(),
        &["--remote-model", "big"],
    ));
    assert!(
        stderr.contains("401") && stderr.contains("Incorrect API key provided"),
        "{stderr}"
    );
    // A refusal is not retried.
    assert_eq!(server.taken().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(!dir.join("no.wav").exists());

    // With fallback the local model writes the whole piece, and the run says no server did.
    succeed(&mut render_args(
        &dir,
        "yes",
        &server.url(),
        &["--remote-model", "big", "--fallback"],
    ));
    let manifest = manifest(&dir, "yes");
    assert!(manifest.get("remote").is_none(), "{manifest}");
    assert_eq!(
        manifest["tokens"].as_array().map(Vec::len),
        Some(TOKENS as usize)
    );

    // A key variable that is not set is named before anything is sent.
    let stderr = fail(
        render_args(
            &dir,
            "nokey",
            &server.url(),
            &["--api-key-env", "LC_TEST_UNSET_KEY"],
        )
        .env_remove("LC_TEST_UNSET_KEY"),
    );
    assert!(stderr.contains("LC_TEST_UNSET_KEY"), "{stderr}");
    assert_eq!(
        server.taken().len(),
        2,
        "only the fallback run's one request more"
    );
}

/// The next event that `wanted` picks out, skipping others; fails after 30 s.
fn wait_for<T>(
    events: &Receiver<WorkerEvent>,
    mut wanted: impl FnMut(WorkerEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events.recv_timeout(left).expect("the worker went quiet");
        if let Some(found) = wanted(event) {
            return found;
        }
    }
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn stop_and_shutdown_cut_a_stalled_request_short() {
    // The first piece arrives; every later request stalls for a minute.
    let server = Scripted::start(|i| {
        if i == 0 {
            Reply::Piece
        } else {
            Reply::Stall(Duration::from_secs(60))
        }
    });
    let (sender, events) = mpsc::channel();
    let worker = WorkerHandle::spawn(SharedTemperature::new(0.8), Pacing::Free, move |event| {
        let _ = sender.send(event);
    })
    .expect("spawn the worker");
    let mut settings = RemoteSettings::new(server.url());
    settings.model = Some("big".to_owned());
    settings.timeout = Duration::from_secs(60);
    for command in [
        Command::SetMapSource(MapSource::Off),
        Command::Load(fixture("tiny-llama")),
        Command::SetPrompt {
            text: PROMPT.to_owned(),
            mode: PromptMode::Chat,
        },
        Command::SetBackend(Backend::Remote(settings)),
        Command::Start,
    ] {
        worker.send(command).expect("the worker is alive");
    }
    let (url, model) = wait_for(&events, |event| match event {
        WorkerEvent::RemoteReady { url, model, .. } => Some((url, model)),
        _ => None,
    });
    assert_eq!(
        (url.as_str(), model.as_str()),
        (server.url().as_str(), "big")
    );
    wait_until("the stalled request", || server.taken().len() == 2);

    let stopping = Instant::now();
    worker.send(Command::Stop).expect("the worker is alive");
    let reason = wait_for(&events, |event| match event {
        WorkerEvent::Finished(reason) => Some(reason),
        _ => None,
    });
    assert_eq!(reason, FinishReason::Stopped);
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopping.elapsed()
    );

    // Resumed, it asks again (and stalls again); closing does not wait for the server.
    worker.send(Command::Start).expect("the worker is alive");
    wait_until("the second stalled request", || server.taken().len() == 3);
    let closing = Instant::now();
    drop(worker);
    assert!(
        closing.elapsed() < Duration::from_secs(2),
        "{:?}",
        closing.elapsed()
    );
}
