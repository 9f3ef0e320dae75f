//! Which model writes the text, and how to reach a server that does.

use std::time::Duration;

/// The environment variable the API key is read from when none is named.
pub const DEFAULT_KEY_VARIABLE: &str = "OPENAI_API_KEY";

/// How many alternatives each piece is chosen among (the most any common server returns).
pub const DEFAULT_TOP_LOGPROBS: usize = 20;

/// The longest a server may take over one piece before it counts as stalled.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Who writes the text the choir sings.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Backend {
    /// The local model samples its own tokens.
    #[default]
    Local,
    /// A server writes; the local model reads what it wrote.
    Remote(RemoteSettings),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSettings {
    /// The API's base, as servers document it: `http://127.0.0.1:8080/v1`.
    pub url: String,
    /// The model to ask for; `None` takes the first the server lists at `/models`.
    pub model: Option<String>,
    /// The environment variable holding the API key; `None` sends no key. The key itself is
    /// never stored: not in the project, the run file or any message.
    pub key_variable: Option<String>,
    /// When the server fails for good (after the retries, or at once for a refusal such as a
    /// wrong key), the local model goes on writing instead of the run ending.
    pub fallback: bool,
    pub top_logprobs: usize,
    pub timeout: Duration,
}

impl RemoteSettings {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: None,
            key_variable: None,
            fallback: false,
            top_logprobs: DEFAULT_TOP_LOGPROBS,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}
