//! One piece per request: what the worker calls when a server writes the text.
//!
//! Each piece is one token asked at temperature 1 with its top alternatives, chosen here at
//! the loudness temperature ([`super::choose`]). A server that sends no alternatives is asked
//! again at that temperature with the piece's seed and chooses itself (from then on; for that
//! piece only when its own draw had ended the answer, where llama.cpp lists none); the run
//! records which pieces were the server's choice. What the worker retries, and how long it waits
//! between tries, is decided here too ([`RemoteError::retryable`], [`Retry`]).

use std::fmt;
use std::time::Duration;

use super::choose::{choose, is_end};
use super::http::{HttpClient, HttpError, Limits};
use super::settings::RemoteSettings;
use super::wire::{self, Endpoint, PieceRequest, WireError};

/// One piece of the server's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub text: String,
    /// The model ended its answer here (`text` is then not part of it).
    pub ended: bool,
    /// The alternatives it was chosen from (log-probabilities at temperature 1).
    pub top: Vec<(String, f32)>,
    /// Index into `top` of the piece; `None` when the server chose.
    pub chosen: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("the API key's environment variable {0} is not set")]
    NoKey(String),
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: HttpError,
    },
    #[error("the server answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the server lists no models; name one")]
    NoModels,
}

impl RemoteError {
    /// Worth another try after a wait: the network, a busy or failing server, a garbled
    /// answer. A refusal (a wrong key, an unknown model, a bad request) or a certificate
    /// that is not trusted fails the same way every time.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Http { source, .. } => !matches!(
                source,
                HttpError::BadUrl(_)
                    | HttpError::Tls(_)
                    | HttpError::TooLarge { .. }
                    | HttpError::Cancelled
            ),
            Self::Status { status, .. } => matches!(status, 408 | 425 | 429 | 500..=599),
            Self::Wire(_) => true,
            Self::NoKey(_) | Self::NoModels => false,
        }
    }

    pub fn cancelled(&self) -> bool {
        matches!(
            self,
            Self::Http {
                source: HttpError::Cancelled,
                ..
            }
        )
    }
}

/// The API key: kept out of every `Debug` and message.
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// A run's connection to the server.
#[derive(Debug)]
pub struct Writer {
    http: HttpClient,
    settings: RemoteSettings,
    key: Option<Secret>,
    /// The model asked for: the settings', else the first the server lists.
    model: Option<String>,
    /// The server sent no alternatives once: from then on it chooses.
    server_chooses: bool,
}

impl Writer {
    /// Reads the API key from its environment variable; nothing is sent yet.
    pub fn new(settings: RemoteSettings) -> Result<Self, RemoteError> {
        let key = match &settings.key_variable {
            Some(variable) => match std::env::var(variable) {
                Ok(key) if !key.trim().is_empty() => Some(Secret(key.trim().to_owned())),
                _ => return Err(RemoteError::NoKey(variable.clone())),
            },
            None => None,
        };
        let limits = Limits {
            response: settings.timeout,
            ..Limits::default()
        };
        let http = HttpClient::new(&settings.url, limits).map_err(|source| RemoteError::Http {
            url: settings.url.clone(),
            source,
        })?;
        Ok(Self {
            http,
            model: settings.model.clone(),
            settings,
            key,
            server_chooses: false,
        })
    }

    /// The model asked for, once known.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    pub fn url(&self) -> &str {
        &self.settings.url
    }

    /// Whether the server, not the run's seed, chose the pieces so far.
    pub fn server_chooses(&self) -> bool {
        self.server_chooses
    }

    /// The next piece after `answer` at `temperature`. `cancel` is asked at least every
    /// 100 ms while waiting; when it says so the request is dropped.
    pub fn piece(
        &mut self,
        endpoint: Endpoint,
        prompt: &str,
        answer: &str,
        temperature: f32,
        seed: u64,
        cancel: &mut dyn FnMut() -> bool,
    ) -> Result<Piece, RemoteError> {
        let model = self.ensure_model(cancel)?;
        // The server draws this one piece (at `temperature`, with the piece's seed).
        let mut server_draws = false;
        loop {
            let top_logprobs = if self.server_chooses || server_draws {
                0
            } else {
                self.settings.top_logprobs
            };
            let request = PieceRequest {
                endpoint,
                model: &model,
                prompt,
                answer,
                // The alternatives are wanted as the model's own distribution.
                temperature: if top_logprobs > 0 { 1.0 } else { temperature },
                top_logprobs,
                seed,
            };
            let body = self.send(endpoint.path(), Some(&request.body()), cancel)?;
            let answer = wire::parse_answer(endpoint, &body)?;
            if top_logprobs == 0 {
                return Ok(Piece {
                    ended: answer.ended(),
                    text: answer.text,
                    top: Vec::new(),
                    chosen: None,
                });
            }
            if answer.top.is_empty() {
                if answer.ended() {
                    // llama.cpp lists no alternatives when its own draw ended the answer:
                    // whether it ends is drawn again at the run's temperature, by the server.
                    server_draws = true;
                } else {
                    // No alternatives at all: the server chooses, now and from now on.
                    self.server_chooses = true;
                }
                continue;
            }
            let chosen = choose(&answer.top, temperature, seed).unwrap_or(0);
            let text = answer.top[chosen].0.clone();
            return Ok(Piece {
                ended: is_end(&text),
                text,
                top: answer.top,
                chosen: Some(chosen),
            });
        }
    }

    fn ensure_model(&mut self, cancel: &mut dyn FnMut() -> bool) -> Result<String, RemoteError> {
        if let Some(model) = &self.model {
            return Ok(model.clone());
        }
        let body = self.send("/models", None, cancel)?;
        let model = wire::parse_models(&body)?
            .into_iter()
            .next()
            .ok_or(RemoteError::NoModels)?;
        self.model = Some(model.clone());
        Ok(model)
    }

    /// The body of a 2xx answer; anything else as [`RemoteError::Status`].
    fn send(
        &mut self,
        path: &str,
        body: Option<&[u8]>,
        cancel: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<u8>, RemoteError> {
        let bearer = self.key.as_ref().map(|k| k.0.as_str());
        let response = match body {
            Some(body) => self.http.post_json(path, body, bearer, cancel),
            None => self.http.get(path, bearer, cancel),
        }
        .map_err(|source| RemoteError::Http {
            url: format!("{}{path}", self.settings.url.trim_end_matches('/')),
            source,
        })?;
        if (200..300).contains(&response.status) {
            return Ok(response.body);
        }
        let message = wire::error_message(&response.body).unwrap_or_else(|| {
            String::from_utf8_lossy(&response.body)
                .chars()
                .take(200)
                .collect()
        });
        Err(RemoteError::Status {
            status: response.status,
            message,
        })
    }
}

/// Waits between tries of one piece: 0.5 s, doubling to 8 s, six tries in all (about 24 s)
/// before the server counts as down.
#[derive(Debug, Clone, Default)]
pub struct Retry {
    failures: u32,
}

impl Retry {
    pub const TRIES: u32 = 6;

    /// The wait before the next try, or `None` when the tries are used up.
    pub fn after_failure(&mut self) -> Option<Duration> {
        self.failures += 1;
        (self.failures < Self::TRIES)
            .then(|| Duration::from_millis(500 << (self.failures - 1).min(4)))
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_then_give_up() {
        let mut retry = Retry::default();
        let waits: Vec<Option<Duration>> = (0..6).map(|_| retry.after_failure()).collect();
        let ms = |m| Some(Duration::from_millis(m));
        assert_eq!(
            waits,
            [ms(500), ms(1000), ms(2000), ms(4000), ms(8000), None]
        );
    }

    #[test]
    fn refusals_are_not_retried() {
        let status = |status| RemoteError::Status {
            status,
            message: String::new(),
        };
        assert!(status(503).retryable());
        assert!(status(429).retryable());
        assert!(!status(401).retryable());
        assert!(!status(404).retryable());
        assert!(!RemoteError::NoKey("K".into()).retryable());
        let http = |source| RemoteError::Http {
            url: String::new(),
            source,
        };
        assert!(http(HttpError::Closed).retryable());
        assert!(!http(HttpError::Tls("untrusted".into())).retryable());
        assert!(http(HttpError::Cancelled).cancelled());
    }

    #[test]
    fn a_missing_key_variable_is_named_and_a_key_never_shows() {
        let mut settings = RemoteSettings::new("http://127.0.0.1:9/v1");
        settings.key_variable = Some("LATENT_CHOIR_TEST_NO_SUCH_KEY".into());
        let error = Writer::new(settings.clone()).unwrap_err();
        assert!(error.to_string().contains("LATENT_CHOIR_TEST_NO_SUCH_KEY"));
        assert!(!error.retryable());
        let writer = Writer {
            key: Some(Secret("sk-very-secret".into())),
            ..Writer::new(RemoteSettings::new("http://127.0.0.1:9/v1")).unwrap()
        };
        assert!(!format!("{writer:?}").contains("sk-very-secret"));
    }
}
