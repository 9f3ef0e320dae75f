//! The reference corpus a map is fitted on: plain text, one sentence per line, each line run as
//! its own sequence. The default corpus is compiled into the binary so the plugin and the CLI
//! fit the same map from anywhere, with no files beside them.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::error::{MapError, Result};

/// `assets/corpus/sentences.txt` (provenance and licence in the README beside it).
pub const EMBEDDED_TEXT: &str = include_str!("../../assets/corpus/sentences.txt");

/// What [`Corpus::source`] says for the embedded corpus.
pub const EMBEDDED_SOURCE: &str = "embedded";

/// Corpus text and where it came from. Clones share the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    text: Arc<str>,
    source: String,
}

impl Corpus {
    /// The corpus compiled into the binary.
    pub fn embedded() -> Self {
        Self {
            text: Arc::from(EMBEDDED_TEXT),
            source: EMBEDDED_SOURCE.to_owned(),
        }
    }

    /// `text` as a corpus; `source` names it in map metadata (a file name, `test`, ...).
    pub fn from_text(text: impl Into<Arc<str>>, source: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            source: source.into(),
        }
    }

    /// A UTF-8 text file, named by its file name in the map's metadata.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| MapError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(Self::from_text(text, name))
    }

    /// The sequences: every line with surrounding whitespace trimmed; empty lines skipped.
    /// (`tools/reference/pca_reference.py` reads corpora the same way.)
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.lines().map(str::trim).filter(|l| !l.is_empty())
    }

    pub fn line_count(&self) -> usize {
        self.lines().count()
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether this is the corpus compiled into this binary (same source name and text).
    pub fn is_embedded(&self) -> bool {
        self.source == EMBEDDED_SOURCE && *self.text == *EMBEDDED_TEXT
    }

    /// sha256 of the text as given (hex), recorded in every map fitted on it.
    pub fn sha256(&self) -> String {
        hex(&Sha256::digest(self.text.as_bytes()))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_trimmed_and_empty_ones_skipped() {
        let corpus = Corpus::from_text("  One.\r\n\n \t\nTwo words.\n", "test");
        assert_eq!(corpus.lines().collect::<Vec<_>>(), ["One.", "Two words."]);
        assert_eq!(corpus.line_count(), 2);
        assert!(!corpus.is_embedded());
        assert_eq!(corpus.sha256().len(), 64);
    }

    #[test]
    fn the_embedded_corpus_is_there() {
        let corpus = Corpus::embedded();
        assert!(corpus.is_embedded());
        assert!(corpus.line_count() > 0);
    }
}
