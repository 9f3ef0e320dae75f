//! The OpenAI shapes one piece needs: the request for a single token with its alternatives,
//! and the answer read back from both endpoints in the shapes servers actually send.
//!
//! * `/v1/completions` answers with the legacy `logprobs` object (`top_logprobs`: one map of
//!   text → log-probability per token; OpenAI, vLLM, `latent-choir serve`) or, as llama.cpp's
//!   server does, with the chat shape below;
//! * `/v1/chat/completions` answers with `logprobs.content[i].top_logprobs`: a list of
//!   `{token, logprob, bytes}`.
//!
//! A chat answer in progress goes back as a last assistant message with
//! `continue_final_message` (vLLM's name; `latent-choir serve` takes it, llama.cpp's server
//! continues a last assistant message by itself), so the server continues it instead of
//! starting a new one.

use serde_json::{Map, Value, json};

/// Which endpoint a run talks to: raw prompts are continued as text, chat prompts are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Chat,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Self::Completions => "/completions",
            Self::Chat => "/chat/completions",
        }
    }
}

/// One piece asked for.
#[derive(Debug, Clone, Copy)]
pub struct PieceRequest<'a> {
    pub endpoint: Endpoint,
    pub model: &'a str,
    /// The prompt as the user wrote it.
    pub prompt: &'a str,
    /// What has been written of the answer so far.
    pub answer: &'a str,
    pub temperature: f32,
    /// Alternatives asked for; 0 asks for none (the server then chooses).
    pub top_logprobs: usize,
    pub seed: u64,
}

impl PieceRequest<'_> {
    pub fn body(&self) -> Vec<u8> {
        let mut body = json!({
            "model": self.model,
            "max_tokens": 1,
            "temperature": self.temperature,
            // Servers read the seed as a signed or 32-bit integer.
            "seed": self.seed & 0x7fff_ffff,
            "stream": false,
        });
        match self.endpoint {
            Endpoint::Completions => {
                body["prompt"] = json!(format!("{}{}", self.prompt, self.answer));
                if self.top_logprobs > 0 {
                    body["logprobs"] = json!(self.top_logprobs);
                }
            }
            Endpoint::Chat => {
                let mut messages = vec![json!({"role": "user", "content": self.prompt})];
                if !self.answer.is_empty() {
                    messages.push(json!({"role": "assistant", "content": self.answer}));
                    body["continue_final_message"] = json!(true);
                    body["add_generation_prompt"] = json!(false);
                }
                body["messages"] = Value::Array(messages);
                if self.top_logprobs > 0 {
                    body["logprobs"] = json!(true);
                    body["top_logprobs"] = json!(self.top_logprobs);
                }
            }
        }
        body.to_string().into_bytes()
    }
}

/// Why the server stopped after this piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The one token asked for.
    Length,
    /// The model ended its answer (or a stop string matched).
    Stop,
    /// Anything else the server said (or nothing).
    Other(String),
}

/// What the server answered for one piece.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The piece the server chose itself.
    pub text: String,
    pub finish: Finish,
    /// The alternatives for the piece, most likely first; empty when the server sent none.
    pub top: Vec<(String, f32)>,
}

impl Answer {
    /// The server's own choice ended the answer.
    pub fn ended(&self) -> bool {
        self.finish == Finish::Stop && self.text.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the server's answer is not an OpenAI {what}: {detail}")]
pub struct WireError {
    pub what: &'static str,
    pub detail: String,
}

fn malformed(what: &'static str, detail: impl Into<String>) -> WireError {
    WireError {
        what,
        detail: detail.into(),
    }
}

/// Reads one piece's answer from either endpoint.
pub fn parse_answer(endpoint: Endpoint, body: &[u8]) -> Result<Answer, WireError> {
    const WHAT: &str = "completion";
    let value: Value =
        serde_json::from_slice(body).map_err(|e| malformed(WHAT, format!("not JSON ({e})")))?;
    let choice = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(Value::as_object)
        .ok_or_else(|| malformed(WHAT, "no choices[0]"))?;
    let text = match endpoint {
        Endpoint::Completions => choice.get("text"),
        Endpoint::Chat => choice.get("message").and_then(|m| m.get("content")),
    };
    let text = match text {
        Some(Value::String(text)) => text.clone(),
        // A chat answer that ended at once may carry no content at all.
        Some(Value::Null) | None if endpoint == Endpoint::Chat => String::new(),
        _ => return Err(malformed(WHAT, "no text in choices[0]")),
    };
    let finish = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("length") => Finish::Length,
        Some("stop") => Finish::Stop,
        other => Finish::Other(other.unwrap_or_default().to_owned()),
    };
    let top = match choice.get("logprobs") {
        None | Some(Value::Null) => Vec::new(),
        Some(logprobs) => top_logprobs(logprobs)?,
    };
    Ok(Answer { text, finish, top })
}

/// The first token's alternatives in either shape, most likely first (ties by text, so the
/// order does not depend on how the server ordered its map).
fn top_logprobs(logprobs: &Value) -> Result<Vec<(String, f32)>, WireError> {
    const WHAT: &str = "logprobs object";
    let mut top = if let Some(content) = logprobs.get("content") {
        let Some(first) = content.as_array().and_then(|c| c.first()) else {
            return Ok(Vec::new());
        };
        let list = first
            .get("top_logprobs")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(WHAT, "content[0] has no top_logprobs list"))?;
        list.iter()
            .map(|entry| {
                let logprob = number(entry.get("logprob"))?;
                Ok((entry_text(entry)?, logprob))
            })
            .collect::<Result<Vec<_>, WireError>>()?
    } else if let Some(list) = logprobs.get("top_logprobs") {
        let Some(first) = list.as_array().and_then(|l| l.first()) else {
            return Ok(Vec::new());
        };
        let map: &Map<String, Value> = first
            .as_object()
            .ok_or_else(|| malformed(WHAT, "top_logprobs[0] is not an object"))?;
        map.iter()
            .map(|(text, logprob)| Ok((text.clone(), number(Some(logprob))?)))
            .collect::<Result<Vec<_>, WireError>>()?
    } else {
        return Err(malformed(WHAT, "neither content nor top_logprobs"));
    };
    top.retain(|(_, lp)| lp.is_finite());
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.dedup_by(|a, b| a.0 == b.0);
    Ok(top)
}

fn number(value: Option<&Value>) -> Result<f32, WireError> {
    value
        .and_then(Value::as_f64)
        .map(|v| v as f32)
        .ok_or_else(|| malformed("logprobs object", "a log-probability is not a number"))
}

/// A listed alternative's text: its bytes when they are whole UTF-8 (the `token` string may
/// escape them), else the `token` string.
fn entry_text(entry: &Value) -> Result<String, WireError> {
    if let Some(bytes) = entry.get("bytes").and_then(Value::as_array) {
        let bytes: Option<Vec<u8>> = bytes
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect();
        if let Some(text) = bytes.and_then(|b| String::from_utf8(b).ok()) {
            return Ok(text);
        }
    }
    entry
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| malformed("logprobs object", "an alternative has no token"))
}

/// The model ids a server lists at `/models`.
pub fn parse_models(body: &[u8]) -> Result<Vec<String>, WireError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| malformed("model list", format!("not JSON ({e})")))?;
    let data = value
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("model list", "no data list"))?;
    Ok(data
        .iter()
        .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect())
}

/// The message of an OpenAI error body (`{"error": {"message": …}}`, or llama.cpp's and
/// others' plain `{"error": "…"}`), cut to a readable length.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())?;
    Some(message.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(endpoint: Endpoint, answer: &str) -> Value {
        let request = PieceRequest {
            endpoint,
            model: "m",
            prompt: "Sing.",
            answer,
            temperature: 0.75,
            top_logprobs: 20,
            seed: u64::MAX,
        };
        serde_json::from_slice(&request.body()).unwrap()
    }

    #[test]
    fn completions_ask_for_one_token_after_the_answer_so_far() {
        let body = request(Endpoint::Completions, " La la");
        assert_eq!(body["prompt"], "Sing. La la");
        assert_eq!(body["max_tokens"], 1);
        assert_eq!(body["logprobs"], 20);
        assert_eq!(body["temperature"], 0.75);
        assert_eq!(body["seed"], 0x7fff_ffff);
        assert!(body.get("messages").is_none());
    }

    #[test]
    fn chat_continues_the_assistant_message_once_there_is_one() {
        let first = request(Endpoint::Chat, "");
        assert_eq!(first["messages"].as_array().unwrap().len(), 1);
        assert!(first.get("continue_final_message").is_none());
        assert_eq!(first["logprobs"], true);
        assert_eq!(first["top_logprobs"], 20);
        let later = request(Endpoint::Chat, "La la");
        assert_eq!(later["messages"][1]["role"], "assistant");
        assert_eq!(later["messages"][1]["content"], "La la");
        assert_eq!(later["continue_final_message"], true);
        assert_eq!(later["add_generation_prompt"], false);
    }

    #[test]
    fn the_legacy_completion_shape_is_read_most_likely_first() {
        let body = br#"{"choices":[{"text":" la","finish_reason":"length","logprobs":{
            "tokens":[" la"],"token_logprobs":[-0.5],
            "top_logprobs":[{" da":-1.5," la":-0.5," ba":-1.5}]}}]}"#;
        let answer = parse_answer(Endpoint::Completions, body).unwrap();
        assert_eq!(answer.text, " la");
        assert_eq!(answer.finish, Finish::Length);
        let texts: Vec<&str> = answer.top.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, [" la", " ba", " da"]);
        assert_eq!(answer.top[0].1, -0.5);
    }

    #[test]
    fn the_content_shape_is_read_from_bytes_when_they_are_whole() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":"\u00e9"},
            "finish_reason":"length","logprobs":{"content":[{"token":"\u00e9","logprob":-0.1,
            "top_logprobs":[{"token":"\u00e9","logprob":-0.1,"bytes":[195,169]},
                            {"token":"\\xc3","logprob":-3.0,"bytes":[195]},
                            {"token":"e","logprob":-2.0}]}]}}]}"#;
        let answer = parse_answer(Endpoint::Chat, body).unwrap();
        assert_eq!(
            answer.top,
            vec![
                ("é".to_owned(), -0.1),
                ("e".to_owned(), -2.0),
                ("\\xc3".to_owned(), -3.0)
            ]
        );
        // llama.cpp's completions answer in the content shape too.
        let body = br#"{"choices":[{"text":"","finish_reason":"stop","logprobs":{"content":[
            {"token":"","logprob":-0.2,"top_logprobs":[{"token":"","logprob":-0.2}]}]}}]}"#;
        let answer = parse_answer(Endpoint::Completions, body).unwrap();
        assert!(answer.ended());
        assert_eq!(answer.top, vec![(String::new(), -0.2)]);
    }

    #[test]
    fn answers_without_logprobs_carry_the_servers_choice() {
        let body = br#"{"choices":[{"message":{"content":" hum"},"finish_reason":"length"}]}"#;
        let answer = parse_answer(Endpoint::Chat, body).unwrap();
        assert_eq!(answer.text, " hum");
        assert!(answer.top.is_empty());
        assert!(!answer.ended());
    }

    #[test]
    fn malformed_answers_say_what_is_wrong() {
        for (body, needle) in [
            (&b"<html>502</html>"[..], "not JSON"),
            (b"{}", "no choices[0]"),
            (b"{\"choices\":[{\"text\":7}]}", "no text"),
            (
                b"{\"choices\":[{\"text\":\"a\",\"logprobs\":{\"top_logprobs\":[{\"a\":\"x\"}]}}]}",
                "not a number",
            ),
            (
                b"{\"choices\":[{\"text\":\"a\",\"logprobs\":{\"other\":1}}]}",
                "neither content",
            ),
        ] {
            let error = parse_answer(Endpoint::Completions, body).unwrap_err();
            assert!(error.to_string().contains(needle), "{error}");
        }
    }

    #[test]
    fn model_lists_and_error_bodies() {
        let models = parse_models(br#"{"object":"list","data":[{"id":"a"},{"id":"b"}]}"#);
        assert_eq!(models.unwrap(), ["a", "b"]);
        assert!(parse_models(b"[]").is_err());
        assert_eq!(
            error_message(br#"{"error":{"message":"The model 'x' does not exist."}}"#).unwrap(),
            "The model 'x' does not exist."
        );
        assert_eq!(error_message(br#"{"error":"busy"}"#).unwrap(), "busy");
        assert_eq!(error_message(b"oops"), None);
    }
}
