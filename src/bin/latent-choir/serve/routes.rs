//! The endpoints: `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions`, in
//! OpenAI's response shapes, streamed as Server-Sent Events or not.

use std::io;
use std::net::TcpStream;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use latent_choir::activation::ProjectionMap;
use latent_choir::llm::tokenizer::{ChatRole, TokenStream, Tokenizer};
use latent_choir::rng::SplitMix64;
use serde_json::{Value, json};

use super::engine::{Busy, EngineError, Finish, Generated, Job, Pool};
use super::http::{self, EventStream, Request};
use super::openai::{self, ApiError, Endpoint, GenerationRequest, Prompt, Role};
use super::stop::StopText;

/// What every request handler shares.
pub struct Server {
    pub model_id: String,
    pub created: u64,
    pub tokenizer: Tokenizer,
    pub context_length: usize,
    /// Hidden states per token (`n_layers + 1`).
    pub n_states: usize,
    pub pool: Arc<Pool>,
    /// The PCA map for the `latent_choir` extension, or why there is none.
    pub map: Result<Arc<ProjectionMap>, String>,
    pub counter: AtomicU64,
}

/// Answers `request` on `stream`; whether the connection may serve another request.
pub fn handle(server: &Server, request: Request, stream: &mut TcpStream) -> bool {
    let keep_alive = request.keep_alive;
    let path = request.path.trim_end_matches('/');
    let outcome = match (request.method.as_str(), path) {
        ("GET", "/v1/models") => Ok(models(server).to_string()),
        ("GET", p) if p.starts_with("/v1/models/") => model(server, &p["/v1/models/".len()..]),
        ("GET", "/health") => Ok(json!({"status": "ok"}).to_string()),
        ("POST", "/v1/completions") => {
            return generation(server, Endpoint::Completions, &request.body, stream, keep_alive);
        }
        ("POST", "/v1/chat/completions") => {
            return generation(server, Endpoint::Chat, &request.body, stream, keep_alive);
        }
        (_, "/v1/models" | "/health") => Err(method_not_allowed("GET")),
        (_, p) if p.starts_with("/v1/models/") => Err(method_not_allowed("GET")),
        (_, "/v1/completions" | "/v1/chat/completions") => Err(method_not_allowed("POST")),
        (_, p) => Err(ApiError::new(
            404,
            "invalid_request_error",
            format!("Unknown path {p}: this server has GET /v1/models, POST /v1/completions and POST /v1/chat/completions."),
        )
        .code("unknown_url")),
    };
    let written = match outcome {
        Ok(body) => http::write_json(stream, 200, &body, keep_alive, &[]),
        Err(error) => write_error(stream, &error, keep_alive),
    };
    written.is_ok() && keep_alive
}

fn method_not_allowed(allow: &'static str) -> ApiError {
    ApiError::new(
        405,
        "invalid_request_error",
        format!("Method not allowed here; use {allow}."),
    )
    .code("method_not_allowed")
}

pub fn write_error(stream: &mut TcpStream, error: &ApiError, keep_alive: bool) -> io::Result<()> {
    let mut headers = Vec::new();
    if error.status == 405 {
        let allow = if error.message.contains("POST") {
            "POST"
        } else {
            "GET"
        };
        headers.push(("Allow", allow.to_owned()));
    }
    if error.status == 429 || error.status == 503 {
        headers.push(("Retry-After", "1".to_owned()));
    }
    http::write_json(stream, error.status, &error.body(), keep_alive, &headers)
}

fn model_object(server: &Server) -> Value {
    json!({
        "id": server.model_id,
        "object": "model",
        "created": server.created,
        "owned_by": "latent-choir",
    })
}

fn models(server: &Server) -> Value {
    json!({"object": "list", "data": [model_object(server)]})
}

fn model(server: &Server, id: &str) -> Result<String, ApiError> {
    if id == server.model_id {
        Ok(model_object(server).to_string())
    } else {
        Err(unknown_model(server, id))
    }
}

fn unknown_model(server: &Server, id: &str) -> ApiError {
    ApiError {
        param: Some("model".into()),
        ..ApiError::new(
            404,
            "invalid_request_error",
            format!(
                "The model '{id}' does not exist; this server serves '{}'.",
                server.model_id
            ),
        )
        .code("model_not_found")
    }
}

/// The prompt's token ids.
fn prompt_ids(
    server: &Server,
    prompt: &Prompt,
    continue_final: bool,
) -> Result<Vec<u32>, ApiError> {
    let tokenizer = &server.tokenizer;
    let failed = |param: &str, e: &dyn std::fmt::Display| {
        ApiError::invalid(param, format!("The prompt cannot be tokenized: {e}"))
    };
    let ids = match prompt {
        Prompt::Text(text) => tokenizer
            .encode(text, true)
            .map_err(|e| failed("prompt", &e))?,
        Prompt::Tokens(ids) => {
            let vocab = tokenizer.vocab_size();
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ApiError::invalid(
                    "prompt",
                    format!("Token id {bad} is outside the {vocab}-token vocabulary."),
                )
                .code("invalid_value"));
            }
            ids.clone()
        }
        Prompt::Chat(messages) => {
            // A continued answer: the conversation before it, then its text as it stands.
            let (messages, open) = match messages.split_last() {
                Some(((Role::Assistant, text), before)) if continue_final => {
                    (before, text.as_str())
                }
                _ => (messages.as_slice(), ""),
            };
            let turns: Vec<(ChatRole, &str)> = messages
                .iter()
                .map(|(role, text)| {
                    let role = match role {
                        Role::System => ChatRole::System,
                        Role::User => ChatRole::User,
                        Role::Assistant => ChatRole::Assistant,
                    };
                    (role, text.as_str())
                })
                .collect();
            match tokenizer.chat_conversation(&turns) {
                Some(text) => tokenizer.encode(&format!("{text}{open}"), false),
                // No chat format: the messages as plain lines.
                None => {
                    let text: String = messages.iter().map(|(_, t)| format!("{t}\n")).collect();
                    tokenizer.encode(&format!("{text}{open}"), true)
                }
            }
            .map_err(|e| failed("messages", &e))?
        }
    };
    if ids.is_empty() {
        let param = if matches!(prompt, Prompt::Chat(_)) {
            "messages"
        } else {
            "prompt"
        };
        return Err(ApiError::invalid(param, "The prompt has no tokens.").code("invalid_value"));
    }
    Ok(ids)
}

/// Per-token numbers collected for a non-streamed answer.
struct Collected {
    id: u32,
    logprob: f32,
    top: Vec<(u32, f32)>,
    states: Option<Value>,
}

fn generation(
    server: &Server,
    endpoint: Endpoint,
    body: &[u8],
    stream: &mut TcpStream,
    keep_alive: bool,
) -> bool {
    match run_generation(server, endpoint, body, stream, keep_alive) {
        Ok(keep) => keep && keep_alive,
        Err(error) => write_error(stream, &error, keep_alive).is_ok() && keep_alive,
    }
}

/// `Err` only before anything was written.
fn run_generation(
    server: &Server,
    endpoint: Endpoint,
    body: &[u8],
    stream: &mut TcpStream,
    keep_alive: bool,
) -> Result<bool, ApiError> {
    let request = openai::parse(endpoint, body)?;
    if let Some(model) = &request.model
        && *model != server.model_id
    {
        return Err(unknown_model(server, model));
    }
    let ids = prompt_ids(server, &request.prompt, request.continue_final)?;
    if ids.len() >= server.context_length {
        let param = if endpoint == Endpoint::Chat {
            "messages"
        } else {
            "prompt"
        };
        return Err(ApiError::invalid(
            param,
            format!(
                "The prompt has {} tokens; the model's context is {} tokens.",
                ids.len(),
                server.context_length
            ),
        )
        .code("context_length_exceeded"));
    }
    let room = server.context_length - ids.len();
    let count = server.counter.fetch_add(1, Ordering::Relaxed);
    let seed = request.seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        SplitMix64(nanos ^ count.rotate_left(32)).next_u64()
    });
    let job = Job {
        max_tokens: request.max_tokens.unwrap_or(room).min(room),
        ids,
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k,
        seed,
        logprobs: request.logprobs,
        states: request.states,
        ignore_eos: request.ignore_eos,
    };
    let mut lent = server.pool.acquire(&job.ids).map_err(|busy| match busy {
        Busy::QueueFull => ApiError::new(
            429,
            "server_busy",
            "Every engine is generating and the queue is full; try again shortly.",
        )
        .code("rate_limit_exceeded"),
        Busy::TimedOut => ApiError::new(
            503,
            "server_busy",
            "No engine came free in time; try again shortly.",
        )
        .code("queue_timeout"),
    })?;
    let map = match (&server.map, request.states) {
        (Ok(map), true) => Some(Arc::clone(map)),
        _ => None,
    };
    let prefix = match endpoint {
        Endpoint::Completions => "cmpl",
        Endpoint::Chat => "chatcmpl",
    };
    let shape = Shape {
        server,
        request: &request,
        id: format!("{prefix}-{seed:016x}{count:04x}"),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let mut text = server.tokenizer.stream();
    let mut stop = StopText::new(request.stop.clone());
    if request.stream {
        let Ok(mut events) = EventStream::start(stream) else {
            return Ok(false);
        };
        if endpoint == Endpoint::Chat
            && events
                .send(
                    &shape
                        .chunk(
                            json!({"role": "assistant", "content": ""}),
                            None,
                            Value::Null,
                            None,
                        )
                        .to_string(),
                )
                .is_err()
        {
            return Ok(false);
        }
        let mut offset = 0;
        let mut sink = |token: Generated| {
            let (piece, stopped) = stop.push(&piece_of(&mut text, token.id));
            let logprobs = shape.logprobs_of(&[&token], &mut offset);
            let states = shape.states_of(&[(token.id, token.states.as_deref())]);
            let chunk = shape.chunk(shape.delta(&piece), None, logprobs, states);
            if events.send(&chunk.to_string()).is_err() {
                return ControlFlow::Break(Finish::Cancelled);
            }
            if stopped {
                ControlFlow::Break(Finish::Stop)
            } else {
                ControlFlow::Continue(())
            }
        };
        let result = lent.run(&job, map.as_deref(), &mut sink);
        drop(lent);
        match result {
            Ok((Finish::Cancelled, ..)) => return Ok(false),
            Ok((finish, generated, prefill)) => {
                let tail = {
                    let (rest, _) = stop.push(&text.finish().unwrap_or_default());
                    rest + &stop.finish()
                };
                if !tail.is_empty() {
                    let _ = events.send(
                        &shape
                            .chunk(shape.delta(&tail), None, Value::Null, None)
                            .to_string(),
                    );
                }
                let empty = match endpoint {
                    Endpoint::Chat => json!({}),
                    Endpoint::Completions => json!(""),
                };
                let _ = events.send(
                    &shape
                        .chunk(empty, Some(finish), Value::Null, None)
                        .to_string(),
                );
                if request.include_usage {
                    let mut usage = shape.chunk(Value::Null, None, Value::Null, None);
                    usage["choices"] = json!([]);
                    usage["usage"] = usage_of(job.ids.len(), generated, prefill);
                    let _ = events.send(&usage.to_string());
                }
            }
            Err(error) => {
                let _ = events.send(&engine_error(error).body());
            }
        }
        let _ = events.send("[DONE]");
        return Ok(false);
    }
    let mut collected: Vec<Collected> = Vec::new();
    let mut sink = |token: Generated| {
        let (_, stopped) = stop.push(&piece_of(&mut text, token.id));
        collected.push(Collected {
            id: token.id,
            logprob: token.logprob,
            top: token.top,
            states: token.states.as_deref().map(state_values),
        });
        if stopped {
            ControlFlow::Break(Finish::Stop)
        } else {
            ControlFlow::Continue(())
        }
    };
    let result = lent.run(&job, map.as_deref(), &mut sink);
    drop(lent);
    let (finish, generated, prefill) = result.map_err(engine_error)?;
    let _ = stop.push(&text.finish().unwrap_or_default());
    let _ = stop.finish();
    let answer = stop.text().to_owned();
    let generated_tokens: Vec<Generated> = collected
        .iter()
        .map(|c| Generated {
            id: c.id,
            logprob: c.logprob,
            top: c.top.clone(),
            states: None,
        })
        .collect();
    let refs: Vec<&Generated> = generated_tokens.iter().collect();
    let logprobs = shape.logprobs_of(&refs, &mut 0);
    let states = request.states.then(|| {
        shape.states_json(
            collected
                .iter()
                .map(|c| token_state_json(server, c.id, c.states.clone()))
                .collect(),
        )
    });
    let mut choice = match endpoint {
        Endpoint::Completions => json!({
            "index": 0,
            "text": answer,
            "logprobs": logprobs,
            "finish_reason": finish_name(finish),
        }),
        Endpoint::Chat => json!({
            "index": 0,
            "message": {"role": "assistant", "content": answer, "refusal": null},
            "logprobs": logprobs,
            "finish_reason": finish_name(finish),
        }),
    };
    if let Some(states) = states {
        choice["latent_choir"] = states;
    }
    let response = json!({
        "id": shape.id,
        "object": match endpoint {
            Endpoint::Completions => "text_completion",
            Endpoint::Chat => "chat.completion",
        },
        "created": shape.created,
        "model": server.model_id,
        "system_fingerprint": Value::Null,
        "choices": [choice],
        "usage": usage_of(job.ids.len(), generated, prefill),
    });
    let written = http::write_json(stream, 200, &response.to_string(), keep_alive, &[]);
    Ok(written.is_ok())
}

fn piece_of(stream: &mut TokenStream, id: u32) -> String {
    stream.push(id).unwrap_or_default()
}

fn engine_error(error: EngineError) -> ApiError {
    let message = match error {
        EngineError::Model(m) => format!("The model failed: {m}"),
        EngineError::Panicked(m) => {
            format!("The engine failed ({m}); it has been restarted. Try again.")
        }
    };
    ApiError::new(500, "server_error", message).code("engine_error")
}

fn finish_name(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop | Finish::Cancelled => "stop",
        Finish::Length => "length",
    }
}

fn usage_of(prompt: usize, completion: usize, prefill: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": prompt.saturating_sub(prefill)},
    })
}

fn state_values(states: &[super::engine::StateNumbers]) -> Value {
    Value::Array(
        states
            .iter()
            .map(|s| {
                json!({
                    "coords": if s.coords.is_empty() { Value::Null } else { json!(s.coords) },
                    "norm": s.norm,
                    "attention_entropy": s.attention_entropy,
                    "mlp_sparsity": s.mlp_sparsity,
                })
            })
            .collect(),
    )
}

fn token_state_json(server: &Server, id: u32, states: Option<Value>) -> Value {
    json!({
        "id": id,
        "token": server.tokenizer.token_text(id).unwrap_or_default(),
        "states": states.unwrap_or(Value::Array(Vec::new())),
    })
}

/// Builds the response pieces of one request.
struct Shape<'a> {
    server: &'a Server,
    request: &'a GenerationRequest,
    id: String,
    created: u64,
}

impl Shape<'_> {
    fn delta(&self, text: &str) -> Value {
        match self.request.endpoint {
            Endpoint::Chat => json!({"content": text}),
            Endpoint::Completions => json!(text),
        }
    }

    /// One streamed chunk; `content` is the chat delta or the completion text.
    fn chunk(
        &self,
        content: Value,
        finish: Option<Finish>,
        logprobs: Value,
        states: Option<Value>,
    ) -> Value {
        let mut choice = match self.request.endpoint {
            Endpoint::Chat => json!({
                "index": 0,
                "delta": content,
                "logprobs": logprobs,
                "finish_reason": finish.map(finish_name),
            }),
            Endpoint::Completions => json!({
                "index": 0,
                "text": content,
                "logprobs": logprobs,
                "finish_reason": finish.map(finish_name),
            }),
        };
        if let Some(states) = states {
            choice["latent_choir"] = states;
        }
        json!({
            "id": self.id,
            "object": match self.request.endpoint {
                Endpoint::Chat => "chat.completion.chunk",
                Endpoint::Completions => "text_completion",
            },
            "created": self.created,
            "model": self.server.model_id,
            "system_fingerprint": Value::Null,
            "choices": [choice],
        })
    }

    /// The `logprobs` of `tokens` in the endpoint's shape (`null` when not asked for).
    /// `offset` is the completion text's length before them (completions' `text_offset`).
    fn logprobs_of(&self, tokens: &[&Generated], offset: &mut usize) -> Value {
        if self.request.logprobs.is_none() {
            return Value::Null;
        }
        let tokenizer = &self.server.tokenizer;
        let text = |id: u32| tokenizer.token_text(id).unwrap_or_default();
        let bytes = |id: u32| tokenizer.token_bytes(id).unwrap_or_default();
        match self.request.endpoint {
            Endpoint::Completions => {
                let mut offsets = Vec::with_capacity(tokens.len());
                for t in tokens {
                    offsets.push(*offset);
                    *offset += text(t.id).chars().count();
                }
                json!({
                    "tokens": tokens.iter().map(|t| text(t.id)).collect::<Vec<_>>(),
                    "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
                    "top_logprobs": tokens.iter().map(|t| {
                        let mut top = serde_json::Map::new();
                        for &(id, lp) in &t.top {
                            top.entry(text(id)).or_insert(json!(lp));
                        }
                        Value::Object(top)
                    }).collect::<Vec<_>>(),
                    "text_offset": offsets,
                })
            }
            Endpoint::Chat => json!({
                "content": tokens.iter().map(|t| json!({
                    "token": text(t.id),
                    "logprob": t.logprob,
                    "bytes": bytes(t.id),
                    "top_logprobs": t.top.iter().map(|&(id, lp)| json!({
                        "token": text(id),
                        "logprob": lp,
                        "bytes": bytes(id),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "refusal": null,
            }),
        }
    }

    /// The `latent_choir` object of a streamed chunk (`None` when not asked for).
    fn states_of(&self, tokens: &[(u32, Option<&[super::engine::StateNumbers]>)]) -> Option<Value> {
        if !self.request.states {
            return None;
        }
        Some(
            self.states_json(
                tokens
                    .iter()
                    .map(|&(id, states)| {
                        token_state_json(self.server, id, states.map(state_values))
                    })
                    .collect(),
            ),
        )
    }

    fn states_json(&self, tokens: Vec<Value>) -> Value {
        let (components, map_error) = match &self.server.map {
            Ok(map) => (json!(map.components()), Value::Null),
            Err(reason) => (Value::Null, json!(reason)),
        };
        json!({
            "n_states": self.server.n_states,
            "components": components,
            "map_error": map_error,
            "tokens": tokens,
        })
    }
}
