//! The OpenAI request shapes `serve` accepts, read from JSON and checked field by field, and
//! its error body. A field of the wrong type or out of range is a 400 naming the field, in
//! OpenAI's `{"error": {"message", "type", "param", "code"}}`.

use serde_json::{Map, Value, json};

/// An error answer: status and OpenAI's error object.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// `invalid_request_error`, `not_found_error`, `server_error`, ...
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_owned()),
            ..Self::new(400, "invalid_request_error", message)
        }
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn body(&self) -> String {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
        .to_string()
    }
}

/// What the prompt is.
#[derive(Debug, Clone)]
pub enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
    /// Chat messages as (role, content).
    Chat(Vec<(Role, String)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

/// Which endpoint a request came to; it decides the defaults and the response shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Chat,
}

/// A generation request, checked.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub endpoint: Endpoint,
    pub model: Option<String>,
    pub prompt: Prompt,
    /// `None`: until the end of the answer or the context.
    pub max_tokens: Option<usize>,
    pub temperature: f32,
    pub top_p: f32,
    /// Extension (llama.cpp's name): keep only the K most likely tokens; 0 keeps all.
    pub top_k: usize,
    pub stop: Vec<String>,
    pub seed: Option<u64>,
    pub stream: bool,
    pub include_usage: bool,
    /// How many alternatives per token to report; `None`: no logprobs at all.
    pub logprobs: Option<usize>,
    /// The `latent_choir` extension: per-token hidden-state projections.
    pub states: bool,
    /// Extension (llama.cpp's name): never end on an end-of-sequence token.
    pub ignore_eos: bool,
    /// Extension (vLLM's name): a last assistant message is continued where it stops instead
    /// of being closed and answered (how a client writes one token at a time in chat).
    pub continue_final: bool,
}

/// Most alternatives per token `logprobs` / `top_logprobs` may ask for.
pub const MAX_TOP_LOGPROBS: usize = 20;
/// Highest temperature accepted.
pub const MAX_TEMPERATURE: f64 = 10.0;
/// Completions' default `max_tokens`, as OpenAI's.
pub const DEFAULT_COMPLETION_TOKENS: usize = 16;

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(
        param,
        format!(
            "Invalid type for '{param}': expected {expected}, but got {}.",
            type_name(got)
        ),
    )
    .code("invalid_type")
}

/// The field, with JSON `null` read as absent.
fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn number(
    body: &Map<String, Value>,
    name: &str,
    low: f64,
    high: f64,
) -> Result<Option<f64>, ApiError> {
    let Some(value) = field(body, name) else {
        return Ok(None);
    };
    let x = value
        .as_f64()
        .ok_or_else(|| wrong_type(name, "a number", value))?;
    if !(low..=high).contains(&x) {
        return Err(ApiError::invalid(
            name,
            format!("'{name}' must be between {low} and {high}; got {x}."),
        )
        .code("invalid_value"));
    }
    Ok(Some(x))
}

fn integer(
    body: &Map<String, Value>,
    name: &str,
    low: i64,
    high: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(value) = field(body, name) else {
        return Ok(None);
    };
    // 5.0 is accepted as 5, as JSON has one number type.
    let x = match (value.as_i64(), value.as_f64()) {
        (Some(x), _) => x,
        (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9e15 => f as i64,
        _ => return Err(wrong_type(name, "an integer", value)),
    };
    if !(low..=high).contains(&x) {
        return Err(ApiError::invalid(
            name,
            format!("'{name}' must be between {low} and {high}; got {x}."),
        )
        .code("invalid_value"));
    }
    Ok(Some(x))
}

fn boolean(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(name, "a boolean", other)),
    }
}

/// Reads a request body for `endpoint`.
pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<GenerationRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_request_error",
            format!("The request body is not valid JSON: {e}"),
        )
        .code("invalid_json")
    })?;
    let Value::Object(body) = value else {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            format!(
                "The request body must be a JSON object, not {}.",
                type_name(&value)
            ),
        )
        .code("invalid_json"));
    };
    let model = match field(&body, "model") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(wrong_type("model", "a string", other)),
    };
    let prompt = match endpoint {
        Endpoint::Completions => completion_prompt(&body)?,
        Endpoint::Chat => chat_messages(&body)?,
    };
    if let Some(n) = integer(&body, "n", 1, 128)?
        && n != 1
    {
        return Err(ApiError::invalid(
            "n",
            format!("Only n = 1 is supported; got {n}. Send n requests instead."),
        )
        .code("unsupported_value"));
    }
    if let Some(best_of) = integer(&body, "best_of", 1, 128)?
        && best_of != 1
    {
        return Err(
            ApiError::invalid("best_of", "Only best_of = 1 is supported.")
                .code("unsupported_value"),
        );
    }
    if boolean(&body, "echo")? == Some(true) {
        return Err(ApiError::invalid("echo", "echo is not supported.").code("unsupported_value"));
    }
    if field(&body, "suffix").is_some() {
        return Err(
            ApiError::invalid("suffix", "suffix is not supported.").code("unsupported_value")
        );
    }
    let mut max_tokens = integer(&body, "max_tokens", 1, i64::from(u32::MAX))?;
    if endpoint == Endpoint::Chat
        && let Some(n) = integer(&body, "max_completion_tokens", 1, i64::from(u32::MAX))?
    {
        max_tokens = Some(n);
    }
    let max_tokens = match (max_tokens, endpoint) {
        (Some(n), _) => Some(n as usize),
        (None, Endpoint::Completions) => Some(DEFAULT_COMPLETION_TOKENS),
        (None, Endpoint::Chat) => None,
    };
    let temperature = number(&body, "temperature", 0.0, MAX_TEMPERATURE)?.unwrap_or(1.0) as f32;
    let top_p = number(&body, "top_p", 0.0, 1.0)?.unwrap_or(1.0) as f32;
    let top_k = integer(&body, "top_k", 0, i64::from(u32::MAX))?.unwrap_or(0) as usize;
    for penalty in ["presence_penalty", "frequency_penalty"] {
        number(&body, penalty, -2.0, 2.0)?;
    }
    let stop = match field(&body, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            if items.len() > 4 {
                return Err(
                    ApiError::invalid("stop", "At most 4 stop sequences.").code("invalid_value")
                );
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(wrong_type("stop", "a string or an array of strings", other)),
                })
                .collect::<Result<_, _>>()?
        }
        Some(other) => return Err(wrong_type("stop", "a string or an array of strings", other)),
    };
    let stop = stop.into_iter().filter(|s| !s.is_empty()).collect();
    let seed = match field(&body, "seed") {
        None => None,
        Some(value) => Some(match (value.as_i64(), value.as_u64()) {
            (Some(x), _) => x as u64,
            (None, Some(x)) => x,
            _ => return Err(wrong_type("seed", "an integer", value)),
        }),
    };
    let stream = boolean(&body, "stream")?.unwrap_or(false);
    let include_usage = match field(&body, "stream_options") {
        None => false,
        Some(Value::Object(options)) => boolean(options, "include_usage")
            .map_err(|mut e| {
                e.param = Some("stream_options.include_usage".into());
                e
            })?
            .unwrap_or(false),
        Some(other) => return Err(wrong_type("stream_options", "an object", other)),
    };
    let logprobs = match endpoint {
        Endpoint::Completions => {
            integer(&body, "logprobs", 0, MAX_TOP_LOGPROBS as i64)?.map(|n| n as usize)
        }
        Endpoint::Chat => {
            let on = boolean(&body, "logprobs")?.unwrap_or(false);
            let top = integer(&body, "top_logprobs", 0, MAX_TOP_LOGPROBS as i64)?;
            if top.is_some() && !on {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    "top_logprobs needs logprobs set to true.",
                )
                .code("invalid_value"));
            }
            on.then_some(top.unwrap_or(0) as usize)
        }
    };
    let states = match field(&body, "latent_choir") {
        None => false,
        Some(Value::Object(ext)) => boolean(ext, "states")
            .map_err(|mut e| {
                e.param = Some("latent_choir.states".into());
                e
            })?
            .unwrap_or(false),
        Some(other) => return Err(wrong_type("latent_choir", "an object", other)),
    };
    let ignore_eos = boolean(&body, "ignore_eos")?.unwrap_or(false);
    let continue_final = boolean(&body, "continue_final_message")?.unwrap_or(false);
    if continue_final
        && !matches!(&prompt, Prompt::Chat(m) if m.last().is_some_and(|(r, _)| *r == Role::Assistant))
    {
        return Err(ApiError::invalid(
            "continue_final_message",
            "continue_final_message needs the last message to be the assistant's.",
        ));
    }
    Ok(GenerationRequest {
        endpoint,
        model,
        prompt,
        max_tokens,
        temperature,
        top_p,
        top_k,
        stop,
        seed,
        stream,
        include_usage,
        logprobs,
        states,
        ignore_eos,
        continue_final,
    })
}

fn completion_prompt(body: &Map<String, Value>) -> Result<Prompt, ApiError> {
    let expected = "a string, an array of one string, or an array of token ids";
    let Some(value) = field(body, "prompt") else {
        return Err(
            ApiError::invalid("prompt", "'prompt' is required.").code("missing_required_parameter")
        );
    };
    let prompt = match value {
        Value::String(s) => Prompt::Text(s.clone()),
        Value::Array(items) => match items.as_slice() {
            [Value::String(s)] => Prompt::Text(s.clone()),
            [Value::Array(ids)] => Prompt::Tokens(token_ids(ids, expected)?),
            items if items.iter().all(Value::is_number) && !items.is_empty() => {
                Prompt::Tokens(token_ids(items, expected)?)
            }
            items if items.len() > 1 => {
                return Err(ApiError::invalid(
                    "prompt",
                    "Only one prompt per request is supported.",
                )
                .code("unsupported_value"));
            }
            _ => return Err(wrong_type("prompt", expected, value)),
        },
        other => return Err(wrong_type("prompt", expected, other)),
    };
    match &prompt {
        Prompt::Text(s) if s.is_empty() => {
            Err(ApiError::invalid("prompt", "'prompt' is empty.").code("invalid_value"))
        }
        Prompt::Tokens(ids) if ids.is_empty() => {
            Err(ApiError::invalid("prompt", "'prompt' is empty.").code("invalid_value"))
        }
        _ => Ok(prompt),
    }
}

fn token_ids(items: &[Value], expected: &str) -> Result<Vec<u32>, ApiError> {
    items
        .iter()
        .map(|v| {
            v.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| wrong_type("prompt", expected, v))
        })
        .collect()
}

fn chat_messages(body: &Map<String, Value>) -> Result<Prompt, ApiError> {
    let Some(value) = field(body, "messages") else {
        return Err(ApiError::invalid("messages", "'messages' is required.")
            .code("missing_required_parameter"));
    };
    let Value::Array(items) = value else {
        return Err(wrong_type("messages", "an array", value));
    };
    if items.is_empty() {
        return Err(ApiError::invalid("messages", "'messages' is empty.").code("invalid_value"));
    }
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let param = |name: &str| format!("messages[{i}].{name}");
        let Value::Object(message) = item else {
            return Err(wrong_type(&format!("messages[{i}]"), "an object", item));
        };
        let role = match message.get("role") {
            Some(Value::String(role)) => match role.as_str() {
                "system" | "developer" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(ApiError::invalid(
                        &param("role"),
                        format!(
                            "Unsupported role '{other}': system, developer, user and assistant are."
                        ),
                    )
                    .code("invalid_value"));
                }
            },
            Some(other) => return Err(wrong_type(&param("role"), "a string", other)),
            None => {
                return Err(
                    ApiError::invalid(&param("role"), "Each message needs a role.")
                        .code("missing_required_parameter"),
                );
            }
        };
        let content = match message.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None if role == Role::Assistant => String::new(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.get("type"), part.get("text")) {
                        (Some(Value::String(kind)), Some(Value::String(t))) if kind == "text" => {
                            text.push_str(t)
                        }
                        _ => {
                            return Err(ApiError::invalid(
                                &param("content"),
                                "Only text content parts ({\"type\": \"text\", \"text\": ...}) are supported.",
                            )
                            .code("unsupported_value"));
                        }
                    }
                }
                text
            }
            Some(other) => {
                return Err(wrong_type(
                    &param("content"),
                    "a string or an array of text parts",
                    other,
                ));
            }
            None => {
                return Err(
                    ApiError::invalid(&param("content"), "The message has no content.")
                        .code("missing_required_parameter"),
                );
            }
        };
        messages.push((role, content));
    }
    Ok(Prompt::Chat(messages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_name_the_field() {
        let e = parse(
            Endpoint::Completions,
            br#"{"prompt": "hi", "temperature": "hot"}"#,
        )
        .unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("temperature")));
        let e = parse(
            Endpoint::Chat,
            br#"{"messages": [{"role": "user", "content": 3}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        let e = parse(Endpoint::Completions, b"{nope").unwrap_err();
        assert_eq!((e.status, e.code), (400, Some("invalid_json")));
    }

    #[test]
    fn defaults_and_shapes() {
        let r = parse(
            Endpoint::Completions,
            br#"{"prompt": [1, 2, 3], "stop": "x", "logprobs": 2, "seed": -1}"#,
        )
        .expect("valid");
        assert!(matches!(r.prompt, Prompt::Tokens(ref ids) if ids == &[1, 2, 3]));
        assert_eq!(r.max_tokens, Some(DEFAULT_COMPLETION_TOKENS));
        assert_eq!(r.stop, vec!["x".to_owned()]);
        assert_eq!(r.logprobs, Some(2));
        assert_eq!(r.seed, Some(u64::MAX));
        let r = parse(
            Endpoint::Chat,
            br#"{"messages": [{"role": "user", "content": "hi"}], "logprobs": true, "top_logprobs": 3}"#,
        )
        .expect("valid");
        assert_eq!((r.max_tokens, r.logprobs), (None, Some(3)));
    }
}
