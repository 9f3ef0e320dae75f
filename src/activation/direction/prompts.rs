//! The two sets of prompts a direction is fitted from, and the sets shipped with Latent Choir
//! (`assets/directions/<name>/{positive,negative}.txt`, compiled in).
//!
//! A file holds one prompt per line; surrounding whitespace is trimmed and empty lines are
//! skipped. When both sets have as many prompts, line *i* of one pairs with line *i* of the
//! other; otherwise they are two groups (see [`super::fit`]).

use std::path::Path;

use sha2::{Digest, Sha256};

use super::error::{DirectionError, Result};
use crate::activation::corpus::hex;

/// Longest prompt file read (a prompt set is a few kilobytes; this refuses a model file given
/// by mistake before it is read whole).
const MAX_FILE_BYTES: u64 = 4 << 20;

/// One set of prompts and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptSet {
    prompts: Vec<String>,
    source: String,
    sha256: String,
}

impl PromptSet {
    /// `text` as prompts; `source` names it in messages and metadata. Refuses text without a
    /// prompt and text that is not text (NUL or other control bytes).
    pub fn from_text(text: &str, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        let bad = |message: &str| DirectionError::BadPrompts {
            source_name: source.clone(),
            message: message.to_owned(),
        };
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(bad(
                "this is not a text file of prompts (it holds control bytes)",
            ));
        }
        let prompts: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if prompts.is_empty() {
            return Err(bad(
                "no prompts (the file is empty or holds only blank lines)",
            ));
        }
        let mut hasher = Sha256::new();
        for prompt in &prompts {
            hasher.update(prompt.as_bytes());
            hasher.update(b"\n");
        }
        Ok(Self {
            prompts,
            source,
            sha256: hex(&hasher.finalize()),
        })
    }

    /// A UTF-8 text file of prompts, named by its file name.
    pub fn from_file(path: &Path) -> Result<Self> {
        let io = |message: String| DirectionError::Io {
            path: path.to_path_buf(),
            message,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| io(e.to_string()))?
            .len();
        if len > MAX_FILE_BYTES {
            return Err(io(format!(
                "{len} bytes is too big for a prompt file (at most {MAX_FILE_BYTES})"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| io(e.to_string()))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let text = String::from_utf8(bytes).map_err(|_| DirectionError::BadPrompts {
            source_name: name.clone(),
            message: "this is not a UTF-8 text file of prompts".to_owned(),
        })?;
        Self::from_text(&text, name)
    }

    pub fn prompts(&self) -> &[String] {
        &self.prompts
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Hex sha256 over the prompts as read (trimmed, one per line): what a cached direction
    /// was fitted on.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// A direction's two sets: `positive` is the pole that projects higher (the tense one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptPair {
    pub name: String,
    pub positive: PromptSet,
    pub negative: PromptSet,
}

impl PromptPair {
    /// Line *i* of one set goes with line *i* of the other.
    pub fn is_paired(&self) -> bool {
        self.positive.len() == self.negative.len()
    }
}

/// The shipped sets: name, positive text, negative text.
const SHIPPED: [(&str, &str, &str); 3] = [
    (
        "refusal",
        include_str!("../../../assets/directions/refusal/positive.txt"),
        include_str!("../../../assets/directions/refusal/negative.txt"),
    ),
    (
        "doubt",
        include_str!("../../../assets/directions/doubt/positive.txt"),
        include_str!("../../../assets/directions/doubt/negative.txt"),
    ),
    (
        "grief",
        include_str!("../../../assets/directions/grief/positive.txt"),
        include_str!("../../../assets/directions/grief/negative.txt"),
    ),
];

/// Names of the shipped directions, in the order the Direction choice lists them.
pub const SHIPPED_NAMES: [&str; 3] = ["refusal", "doubt", "grief"];

/// The shipped set called `name`.
pub fn shipped(name: &str) -> Result<PromptPair> {
    let (name, positive, negative) = SHIPPED
        .iter()
        .find(|(n, ..)| n.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| DirectionError::UnknownName(name.to_owned()))?;
    Ok(PromptPair {
        name: (*name).to_owned(),
        positive: PromptSet::from_text(positive, format!("{name}/positive.txt"))?,
        negative: PromptSet::from_text(negative, format!("{name}/negative.txt"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_sets_are_paired_and_big_enough() {
        assert_eq!(SHIPPED_NAMES.len(), SHIPPED.len());
        for name in SHIPPED_NAMES {
            let pair = shipped(name).unwrap();
            assert!(pair.is_paired(), "{name}");
            let least = if name == "refusal" { 32 } else { 24 };
            assert!(
                pair.positive.len() >= least,
                "{name}: {}",
                pair.positive.len()
            );
        }
        assert!(matches!(
            shipped("nonsense"),
            Err(DirectionError::UnknownName(_))
        ));
        assert_eq!(shipped(" Refusal ").unwrap().name, "refusal");
    }

    #[test]
    fn bad_text_is_refused_with_the_reason() {
        let empty = PromptSet::from_text("\n  \n", "empty.txt").unwrap_err();
        assert!(
            empty.to_string().contains("empty.txt: no prompts"),
            "{empty}"
        );
        let binary = PromptSet::from_text("ab\0cd\n", "bin").unwrap_err();
        assert!(binary.to_string().contains("control bytes"), "{binary}");
        let set = PromptSet::from_text(" one \n\ntwo\n", "ok").unwrap();
        assert_eq!(set.prompts(), ["one", "two"]);
        let same = PromptSet::from_text("one\ntwo", "other").unwrap();
        assert_eq!(set.sha256(), same.sha256());
    }
}
