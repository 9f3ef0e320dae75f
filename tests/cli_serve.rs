//! `latent-choir serve` as a client sees it: the built binary on a free loopback port, spoken
//! to in plain HTTP/1.1 over `TcpStream` (no HTTP library on this side, so nothing is taken on
//! trust). OpenAI's shapes, streamed and not, seeds, stop strings, logprobs, the
//! `latent_choir` extension, bad requests, a client that walks away mid-stream, and the
//! concurrency limit. Each test's server is killed when the test ends.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::paths::fixture;
use common::serve::serve;
use common::temp::TempDir;
use serde_json::{Value, json};

struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `data:` payloads of an SSE body.
    fn events(&self) -> Vec<String> {
        assert!(
            self.head.to_ascii_lowercase().contains("text/event-stream"),
            "not an event stream: {}",
            self.head
        );
        self.body
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                e.strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                    .to_owned()
            })
            .collect()
    }
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    stream
}

fn send(stream: &mut TcpStream, method: &str, path: &str, body: &[u8]) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(body).expect("send body");
}

fn read_response(stream: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn request(port: u16, method: &str, path: &str, body: &[u8]) -> Response {
    let mut stream = connect(port);
    send(&mut stream, method, path, body);
    read_response(&mut stream)
}

fn post(port: u16, path: &str, body: &Value) -> Response {
    request(port, "POST", path, body.to_string().as_bytes())
}

fn ok(port: u16, path: &str, body: &Value) -> Value {
    let response = post(port, path, body);
    assert_eq!(response.status, 200, "{body} → {}", response.body);
    response.json()
}

/// The streamed chunks (parsed) of a request, checking the `[DONE]` at the end.
fn stream_chunks(port: u16, path: &str, body: &Value) -> Vec<Value> {
    let response = post(port, path, body);
    assert_eq!(response.status, 200, "{}", response.body);
    let events = response.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{err}: {e}")))
        .collect()
}

fn streamed_completion_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect()
}

fn assert_error(response: &Response, status: u16, param: Option<&str>) -> Value {
    assert_eq!(response.status, status, "{}", response.body);
    let body = response.json();
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error["type"].is_string(), "{body}");
    assert!(
        error.get("code").is_some() && error.get("param").is_some(),
        "{body}"
    );
    if let Some(param) = param {
        assert_eq!(error["param"], json!(param), "{body}");
    }
    body
}

const PROMPT: &str = "The old lighthouse keeper opened the door and";

#[test]
fn a_final_assistant_message_is_continued_where_it_stops() {
    let dir = TempDir::new("serve-continue");
    let server = serve(&dir, &[]);
    let port = server.port;
    let user = json!({"role": "user", "content": "Name three colours."});
    // The greedy answer, token by token.
    let whole = ok(
        port,
        "/v1/chat/completions",
        &json!({"messages": [user], "max_tokens": 8, "temperature": 0, "logprobs": true}),
    );
    let tokens: Vec<&str> = whole["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("logprobs")
        .iter()
        .map(|t| t["token"].as_str().expect("token"))
        .collect();
    assert_eq!(tokens.len(), 8, "{whole}");
    // Its first three tokens given back as the answer so far: the server goes on from there.
    let so_far: String = tokens[..3].concat();
    let continued = ok(
        port,
        "/v1/chat/completions",
        &json!({"messages": [user, {"role": "assistant", "content": so_far}],
                "continue_final_message": true, "add_generation_prompt": false,
                "max_tokens": 5, "temperature": 0}),
    );
    assert_eq!(
        continued["choices"][0]["message"]["content"],
        json!(tokens[3..].concat()),
        "continuing {so_far:?} of {tokens:?}"
    );
    // Only an assistant message can be continued.
    let refused = post(
        port,
        "/v1/chat/completions",
        &json!({"messages": [user], "continue_final_message": true, "max_tokens": 1}),
    );
    assert_error(&refused, 400, Some("continue_final_message"));
}

#[test]
fn openai_shapes_streaming_seeds_stop_and_logprobs() {
    let dir = TempDir::new("serve-shapes");
    let server = serve(&dir, &[]);
    let port = server.port;

    let models = request(port, "GET", "/v1/models", b"");
    assert_eq!(models.status, 200);
    let models = models.json();
    assert_eq!(models["object"], "list");
    let model = models["data"][0]["id"]
        .as_str()
        .expect("a model id")
        .to_owned();
    assert_eq!(models["data"][0]["object"], "model");

    // Non-streamed and streamed, same seed: the same text.
    let body =
        json!({"model": model, "prompt": PROMPT, "max_tokens": 12, "temperature": 0.9, "seed": 7});
    let plain = ok(port, "/v1/completions", &body);
    assert_eq!(plain["object"], "text_completion");
    let text = plain["choices"][0]["text"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(!text.is_empty());
    let usage = &plain["usage"];
    let completion_tokens = usage["completion_tokens"].as_u64().expect("usage");
    assert!((1..=12).contains(&completion_tokens), "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().expect("prompt tokens") + completion_tokens)
    );
    if completion_tokens == 12 {
        assert_eq!(plain["choices"][0]["finish_reason"], "length");
    }
    let again = ok(port, "/v1/completions", &body);
    assert_eq!(
        again["choices"][0]["text"],
        json!(text),
        "same seed, same text"
    );
    let other = ok(
        port,
        "/v1/completions",
        &json!({"prompt": PROMPT, "max_tokens": 12, "temperature": 0.9, "seed": 8}),
    );
    assert_ne!(
        other["choices"][0]["text"],
        json!(text),
        "another seed, another text"
    );

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let chunks = stream_chunks(port, "/v1/completions", &streamed);
    assert_eq!(
        streamed_completion_text(&chunks),
        text,
        "stream == non-stream"
    );
    let last_choice = chunks
        .iter()
        .rev()
        .find(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty()))
        .expect("a choice");
    assert_eq!(
        last_choice["choices"][0]["finish_reason"],
        plain["choices"][0]["finish_reason"]
    );
    let usage_chunk = chunks.last().expect("chunks");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"],
        json!(completion_tokens)
    );

    // max_tokens, and a stop string cut out of the greedy answer.
    let greedy = ok(
        port,
        "/v1/completions",
        &json!({"prompt": PROMPT, "max_tokens": 16, "temperature": 0}),
    );
    let greedy_text = greedy["choices"][0]["text"]
        .as_str()
        .expect("text")
        .to_owned();
    assert_eq!(greedy["choices"][0]["finish_reason"], "length");
    assert_eq!(greedy["usage"]["completion_tokens"], 16);
    let one = ok(
        port,
        "/v1/completions",
        &json!({"prompt": PROMPT, "max_tokens": 1, "temperature": 0}),
    );
    assert_eq!(one["usage"]["completion_tokens"], 1);
    assert!(greedy_text.starts_with(one["choices"][0]["text"].as_str().expect("text")));
    let words: Vec<&str> = greedy_text.split_whitespace().collect();
    assert!(words.len() >= 3, "{greedy_text:?}");
    let stop = words[2];
    let cut = ok(
        port,
        "/v1/completions",
        &json!({"prompt": PROMPT, "max_tokens": 16, "temperature": 0, "stop": [stop, "\u{1}never"]}),
    );
    let expected = &greedy_text[..greedy_text.find(stop).expect("the stop word")];
    assert_eq!(cut["choices"][0]["text"], json!(expected));
    assert_eq!(cut["choices"][0]["finish_reason"], "stop");
    let mut cut_streamed =
        json!({"prompt": PROMPT, "max_tokens": 16, "temperature": 0, "stop": stop, "stream": true});
    let chunks = stream_chunks(port, "/v1/completions", &cut_streamed);
    assert_eq!(streamed_completion_text(&chunks), expected);
    cut_streamed["stream"] = json!(false);

    // A prompt that continues the cached one runs only its new tokens.
    let continued = format!(
        "{PROMPT}{}",
        one["choices"][0]["text"].as_str().expect("text")
    );
    let next = ok(
        port,
        "/v1/completions",
        &json!({"prompt": continued, "max_tokens": 1, "temperature": 0}),
    );
    let details = &next["usage"]["prompt_tokens_details"];
    assert!(
        details["cached_tokens"].as_u64().expect("cached tokens") > 0,
        "{}",
        next["usage"]
    );

    // Completion logprobs: log-probabilities, most likely first, the greedy token on top.
    let scored = ok(
        port,
        "/v1/completions",
        &json!({"prompt": PROMPT, "max_tokens": 4, "temperature": 0, "logprobs": 3}),
    );
    let logprobs = &scored["choices"][0]["logprobs"];
    let tokens = logprobs["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 4);
    let token_logprobs = logprobs["token_logprobs"]
        .as_array()
        .expect("token_logprobs");
    let tops = logprobs["top_logprobs"].as_array().expect("top_logprobs");
    assert_eq!(logprobs["text_offset"].as_array().map(Vec::len), Some(4));
    for ((token, lp), top) in tokens.iter().zip(token_logprobs).zip(tops) {
        let lp = lp.as_f64().expect("a number");
        assert!(lp <= 0.0, "{lp}");
        let top = top.as_object().expect("an object");
        assert!(!top.is_empty() && top.len() <= 3, "{top:?}");
        let best = top
            .values()
            .filter_map(Value::as_f64)
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(top.values().all(|v| v.as_f64().is_some_and(|x| x <= 0.0)));
        assert!(
            (best - lp).abs() < 1e-5,
            "greedy picks the most likely: {best} vs {lp}"
        );
        assert_eq!(
            top.get(token.as_str().expect("token text"))
                .and_then(Value::as_f64),
            Some(lp)
        );
        let total: f64 = top.values().filter_map(Value::as_f64).map(f64::exp).sum();
        assert!(total <= 1.0 + 1e-4, "{total}");
    }

    // Chat, non-streamed and streamed, with chat logprobs.
    let chat_body = json!({
        "model": model,
        "messages": [{"role": "system", "content": "You answer in one short sentence."}, {"role": "user", "content": "What colour is the sea?"}],
        "max_tokens": 10, "seed": 3, "temperature": 0.7, "logprobs": true, "top_logprobs": 2,
    });
    let chat = ok(port, "/v1/chat/completions", &chat_body);
    assert_eq!(chat["object"], "chat.completion");
    let message = &chat["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    let answer = message["content"].as_str().expect("content").to_owned();
    assert!(!answer.is_empty());
    let content = chat["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("logprobs.content");
    assert_eq!(
        content.len() as u64,
        chat["usage"]["completion_tokens"].as_u64().expect("usage")
    );
    for entry in content {
        let lp = entry["logprob"].as_f64().expect("logprob");
        assert!(lp <= 0.0);
        assert!(entry["bytes"].is_array() && entry["token"].is_string());
        let top: Vec<f64> = entry["top_logprobs"]
            .as_array()
            .expect("top")
            .iter()
            .map(|t| t["logprob"].as_f64().expect("lp"))
            .collect();
        assert_eq!(top.len(), 2);
        assert!(top[0] >= top[1] && top[0] <= 0.0, "{top:?}");
        assert!(lp <= top[0] + 1e-6);
    }
    let mut chat_streamed = chat_body.clone();
    chat_streamed["stream"] = json!(true);
    let chunks = stream_chunks(port, "/v1/chat/completions", &chat_streamed);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed_answer: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed_answer, answer);
    let streamed_lps: usize = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["logprobs"]["content"].as_array())
        .map(Vec::len)
        .sum();
    assert_eq!(streamed_lps, content.len());
    assert!(chunks.last().expect("chunks")["choices"][0]["finish_reason"].is_string());
}

#[test]
fn bad_requests_get_clear_errors_and_the_extension_says_why_it_has_no_map() {
    let dir = TempDir::new("serve-errors");
    let server = serve(&dir, &["--max-request-bytes", "4096"]);
    let port = server.port;

    let big = json!({"prompt": "x".repeat(5000)}).to_string();
    assert_error(
        &request(port, "POST", "/v1/completions", big.as_bytes()),
        413,
        None,
    );
    let body = assert_error(
        &request(port, "POST", "/v1/completions", b"{\"prompt\": "),
        400,
        None,
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_error(
        &post(
            port,
            "/v1/completions",
            &json!({"prompt": "hi", "temperature": "hot"}),
        ),
        400,
        Some("temperature"),
    );
    assert_error(
        &post(
            port,
            "/v1/completions",
            &json!({"prompt": "hi", "max_tokens": -3}),
        ),
        400,
        Some("max_tokens"),
    );
    assert_error(
        &post(port, "/v1/completions", &json!({"prompt": "hi", "n": 2})),
        400,
        Some("n"),
    );
    assert_error(
        &post(port, "/v1/completions", &json!({"temperature": 0.5})),
        400,
        Some("prompt"),
    );
    assert_error(
        &post(port, "/v1/chat/completions", &json!({"messages": "hi"})),
        400,
        Some("messages"),
    );
    assert_error(
        &post(
            port,
            "/v1/chat/completions",
            &json!({"messages": [{"role": "robot", "content": "hi"}]}),
        ),
        400,
        Some("messages[0].role"),
    );
    assert_error(
        &post(
            port,
            "/v1/completions",
            &json!({"model": "gpt-17", "prompt": "hi"}),
        ),
        404,
        Some("model"),
    );
    assert_error(&request(port, "GET", "/v1/nothing", b""), 404, None);
    let wrong_method = request(port, "GET", "/v1/completions", b"");
    assert_error(&wrong_method, 405, None);
    assert!(
        wrong_method.head.contains("Allow: POST"),
        "{}",
        wrong_method.head
    );
    let garbage = {
        let mut stream = connect(port);
        stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").expect("send");
        read_response(&mut stream)
    };
    assert_eq!(garbage.status, 400);

    // Without a map the extension still answers, with the reason instead of coordinates.
    let with_states = ok(
        port,
        "/v1/completions",
        &json!({"prompt": PROMPT, "max_tokens": 2, "temperature": 0, "latent_choir": {"states": true}}),
    );
    let ext = &with_states["choices"][0]["latent_choir"];
    assert!(
        ext["map_error"].as_str().is_some_and(|m| m.contains("map")),
        "{ext}"
    );
    let tokens = ext["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 2);
    let states = tokens[0]["states"].as_array().expect("states");
    assert_eq!(
        states.len() as u64,
        ext["n_states"].as_u64().expect("n_states")
    );
    assert!(
        states
            .iter()
            .all(|s| s["coords"].is_null() && s["norm"].as_f64().is_some_and(|n| n > 0.0))
    );

    // Still serving after all that, with keep-alive: two requests on one connection.
    let mut stream = connect(port);
    for _ in 0..2 {
        let head = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
        stream.write_all(head.as_bytes()).expect("send");
        let mut reader = BufReader::new(&mut stream);
        let mut status = String::new();
        reader.read_line(&mut status).expect("status");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
    }
}

#[test]
fn the_extension_carries_map_coordinates_norms_and_entropy() {
    let dir = TempDir::new("serve-states");
    let model = fixture("tiny-llama");
    let server = serve(
        &dir,
        &["--model", model.to_str().expect("UTF-8 path"), "--fit-map"],
    );
    let port = server.port;
    let body = json!({"prompt": "The forest was silent.", "max_tokens": 3, "temperature": 0, "latent_choir": {"states": true}});
    let plain = ok(port, "/v1/completions", &body);
    let ext = &plain["choices"][0]["latent_choir"];
    assert!(ext["map_error"].is_null(), "{ext}");
    let components = ext["components"].as_u64().expect("components") as usize;
    let n_states = ext["n_states"].as_u64().expect("n_states") as usize;
    let tokens = ext["tokens"].as_array().expect("tokens");
    assert_eq!(
        tokens.len() as u64,
        plain["usage"]["completion_tokens"].as_u64().expect("usage")
    );
    for token in tokens {
        assert!(token["id"].is_u64() && token["token"].is_string());
        let states = token["states"].as_array().expect("states");
        assert_eq!(states.len(), n_states);
        for (i, state) in states.iter().enumerate() {
            let coords = state["coords"].as_array().expect("coords");
            assert_eq!(coords.len(), components);
            assert!(
                coords
                    .iter()
                    .all(|c| c.as_f64().is_some_and(|c| (-1.0..=1.0).contains(&c)))
            );
            assert!(state["norm"].as_f64().is_some_and(|n| n > 0.0));
            if i == 0 {
                assert!(
                    state["attention_entropy"].is_null(),
                    "the embeddings have no attention"
                );
            } else {
                assert!(
                    state["attention_entropy"]
                        .as_f64()
                        .is_some_and(|e| e >= 0.0)
                );
            }
        }
    }
    // Streamed: one token per chunk, the same numbers.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let chunks = stream_chunks(port, "/v1/completions", &streamed);
    let per_chunk: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["latent_choir"]["tokens"].as_array())
        .flatten()
        .collect();
    assert_eq!(per_chunk.len(), tokens.len());
    for (a, b) in per_chunk.iter().zip(tokens) {
        assert_eq!(a["id"], b["id"]);
        let (a, b) = (&a["states"][1]["norm"], &b["states"][1]["norm"]);
        assert!(
            (a.as_f64().expect("norm") - b.as_f64().expect("norm")).abs() < 1e-3,
            "{a} vs {b}"
        );
    }
}

#[test]
fn a_client_gone_mid_stream_frees_its_engine_and_a_full_queue_is_refused() {
    let dir = TempDir::new("serve-busy");
    let server = serve(&dir, &["--max-concurrency", "1", "--queue", "0"]);
    let port = server.port;
    let long = json!({"prompt": PROMPT, "max_tokens": 4000, "temperature": 1.0, "seed": 1, "stream": true, "ignore_eos": true});

    // A stream that holds the only engine: the next request is refused at once.
    let mut holder = connect(port);
    send(
        &mut holder,
        "POST",
        "/v1/completions",
        long.to_string().as_bytes(),
    );
    let mut reader = BufReader::new(holder.try_clone().expect("clone"));
    let mut seen = String::new();
    while !seen.contains("data: {") {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("the stream's first lines");
        assert!(!line.is_empty(), "the stream ended early: {seen}");
        seen.push_str(&line);
    }
    let refused = post(
        port,
        "/v1/completions",
        &json!({"prompt": "hi", "max_tokens": 1}),
    );
    let body = assert_error(&refused, 429, None);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    // The client walks away; its generation stops and the engine serves the next request.
    drop(reader);
    drop(holder);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let response = post(
            port,
            "/v1/completions",
            &json!({"prompt": "hi", "max_tokens": 1}),
        );
        if response.status == 200 {
            break;
        }
        assert_eq!(response.status, 429, "{}", response.body);
        assert!(Instant::now() < deadline, "the engine was never freed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM (and Ctrl-C's SIGINT, same default) ends the server, also mid-stream.
#[cfg(target_os = "linux")]
#[test]
fn sigterm_ends_the_server_mid_stream() {
    let dir = TempDir::new("serve-term");
    let mut server = serve(&dir, &[]);
    let mut stream = connect(server.port);
    let body = json!({"prompt": PROMPT, "max_tokens": 2000, "stream": true, "ignore_eos": true});
    send(
        &mut stream,
        "POST",
        "/v1/completions",
        body.to_string().as_bytes(),
    );
    let mut first = [0u8; 64];
    let n = stream.read(&mut first).expect("the stream starts");
    assert!(n > 0);
    let pid = i32::try_from(server.child.id()).expect("a pid");
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            assert!(!status.success(), "ended by the signal");
            break;
        }
        assert!(Instant::now() < deadline, "serve did not end on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}
