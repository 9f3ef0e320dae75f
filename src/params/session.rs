//! What a run starts from (prompt, seed, model) and the SoundFont the voices play: the session
//! settings the project keeps, read and written here only.

use std::path::PathBuf;
use std::time::Duration;

use crate::activation::direction::DirectionChoice;
use crate::llm::discovery;
use crate::llm::tokenizer::PromptMode;
use crate::remote::settings::{Backend, DEFAULT_TIMEOUT, RemoteSettings};

use super::LatentChoirParams;

/// The seed a fresh instance starts with.
pub const DEFAULT_SEED: u64 = 1;

/// The concept direction a fresh instance's tension follows (fitted for the model on first use).
pub const DEFAULT_DIRECTION: &str = "refusal";

/// The prompt a fresh instance starts with.
pub const DEFAULT_PROMPT: &str = "The forest was silent.";

#[derive(Clone, Debug, PartialEq)]
pub struct SessionSettings {
    pub prompt: String,
    /// Continue the prompt as raw text instead of answering it through the chat template.
    pub raw: bool,
    pub seed: u64,
    /// As typed; empty means the default model.
    pub model: String,
    /// As typed: `none`, a shipped direction's name, or a direction file.
    pub direction: String,
    pub text_source: TextSource,
}

/// Who writes a run's text, as the project keeps it: the key appears only as the name of the
/// environment variable that holds it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TextSource {
    /// An OpenAI-compatible server writes; else the local model.
    pub remote: bool,
    /// The server's API base, as typed (`http://127.0.0.1:8080/v1`).
    pub url: String,
    /// As typed; empty takes the first model the server lists.
    pub model: String,
    /// The environment variable holding the API key; empty sends none.
    pub key_variable: String,
    /// The local model writes on when the server fails for good.
    pub fallback: bool,
    /// The longest one piece may take before the server counts as stalled.
    pub timeout_seconds: f32,
}

impl Default for TextSource {
    fn default() -> Self {
        Self {
            remote: false,
            url: "http://127.0.0.1:8080/v1".to_owned(),
            model: String::new(),
            key_variable: String::new(),
            fallback: true,
            timeout_seconds: DEFAULT_TIMEOUT.as_secs_f32(),
        }
    }
}

impl TextSource {
    pub fn backend(&self) -> Backend {
        if !self.remote {
            return Backend::Local;
        }
        let typed = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let mut settings = RemoteSettings::new(self.url.trim());
        settings.model = typed(&self.model);
        settings.key_variable = typed(&self.key_variable);
        settings.fallback = self.fallback;
        settings.timeout = Duration::try_from_secs_f32(self.timeout_seconds)
            .ok()
            .filter(|t| !t.is_zero())
            .unwrap_or(DEFAULT_TIMEOUT);
        Backend::Remote(settings)
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            prompt: DEFAULT_PROMPT.to_owned(),
            raw: false,
            seed: DEFAULT_SEED,
            model: String::new(),
            direction: DEFAULT_DIRECTION.to_owned(),
            text_source: TextSource::default(),
        }
    }
}

impl SessionSettings {
    /// The model file or folder to load: the typed path, or the default model if it is there.
    pub fn model_path(&self) -> Option<PathBuf> {
        let typed = self.model.trim();
        if typed.is_empty() {
            discovery::default_model_path()
        } else {
            Some(PathBuf::from(typed))
        }
    }

    pub fn direction_choice(&self) -> DirectionChoice {
        DirectionChoice::parse(&self.direction)
    }

    pub fn prompt_mode(&self) -> PromptMode {
        if self.raw {
            PromptMode::Raw
        } else {
            PromptMode::Chat
        }
    }
}

impl LatentChoirParams {
    /// The session as the project keeps it (a poisoned lock reads as the default).
    pub fn session(&self) -> SessionSettings {
        let fallback = SessionSettings::default();
        SessionSettings {
            prompt: self.prompt.read().map_or(fallback.prompt, |p| p.clone()),
            raw: self.raw_prompt.read().map_or(fallback.raw, |r| *r),
            seed: self.seed.read().map_or(fallback.seed, |s| *s),
            model: self.model.read().map_or(fallback.model, |m| m.clone()),
            direction: self
                .direction
                .read()
                .map_or(fallback.direction, |d| d.clone()),
            text_source: self
                .text_source
                .read()
                .map_or(fallback.text_source, |t| t.clone()),
        }
    }

    /// Keeps `session` with the project.
    pub fn set_session(&self, session: &SessionSettings) {
        if let Ok(mut prompt) = self.prompt.write() {
            prompt.clone_from(&session.prompt);
        }
        if let Ok(mut raw) = self.raw_prompt.write() {
            *raw = session.raw;
        }
        if let Ok(mut seed) = self.seed.write() {
            *seed = session.seed;
        }
        if let Ok(mut model) = self.model.write() {
            model.clone_from(&session.model);
        }
        if let Ok(mut direction) = self.direction.write() {
            direction.clone_from(&session.direction);
        }
        if let Ok(mut text_source) = self.text_source.write() {
            text_source.clone_from(&session.text_source);
        }
    }

    /// The SoundFont path as typed (empty: none).
    pub fn soundfont(&self) -> String {
        self.soundfont.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The SoundFont to load, if one is set.
    pub fn soundfont_path(&self) -> Option<PathBuf> {
        let path = self.soundfont();
        let path = path.trim();
        (!path.is_empty()).then(|| PathBuf::from(path))
    }

    /// Keeps the SoundFont path with the project.
    pub fn set_soundfont(&self, path: &str) {
        if let Ok(mut soundfont) = self.soundfont.write() {
            path.clone_into(&mut soundfont);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_round_trips_through_the_params() {
        let params = LatentChoirParams::default();
        assert_eq!(params.session(), SessionSettings::default());
        let session = SessionSettings {
            prompt: "Rain on the roof.".to_owned(),
            raw: true,
            seed: 99,
            model: "/models/m.gguf".to_owned(),
            direction: "none".to_owned(),
            text_source: TextSource {
                remote: true,
                url: "https://example.org/v1".to_owned(),
                model: " big ".to_owned(),
                key_variable: "MY_KEY".to_owned(),
                fallback: false,
                timeout_seconds: 2.5,
            },
        };
        params.set_session(&session);
        assert_eq!(params.session(), session);
        assert_eq!(session.prompt_mode(), PromptMode::Raw);
        assert_eq!(session.model_path(), Some(PathBuf::from("/models/m.gguf")));
        let Backend::Remote(remote) = session.text_source.backend() else {
            panic!("a remote text source is a remote backend");
        };
        assert_eq!(remote.model.as_deref(), Some("big"));
        assert_eq!(remote.key_variable.as_deref(), Some("MY_KEY"));
        assert!(!remote.fallback);
        assert_eq!(remote.timeout, Duration::from_millis(2500));
        assert_eq!(TextSource::default().backend(), Backend::Local);
        assert_eq!(params.soundfont_path(), None);
        params.set_soundfont(" /fonts/gm.sf2 ");
        assert_eq!(
            params.soundfont_path(),
            Some(PathBuf::from("/fonts/gm.sf2"))
        );
    }
}
