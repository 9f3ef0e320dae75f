//! Text from an OpenAI-compatible server, for the worker: a bigger model writes one piece at a
//! time while the local model reads it (teacher-forced) and its states become the music.
//!
//! * `http` — a blocking HTTP/1.1 client (rustls for HTTPS) whose every wait can be cancelled;
//! * `wire` — the OpenAI request and response shapes a piece needs, both endpoints;
//! * `choose` — the piece chosen from the server's top log-probabilities at the loudness
//!   temperature, with the run's seed;
//! * `writer` — one piece per request, the API key, what is retried and how long to wait;
//! * `settings` — which backend writes the text and how to reach the server.

pub mod choose;
pub mod http;
pub mod settings;
pub mod wire;
pub mod writer;
