//! The four pieces a model's weights are composed into, each a [`Score`] written only from
//! [`WeightStats`]: no randomness, so the same model always gives the same piece, and every
//! track's `source` names the tensors and the statistic its notes came from.
//!
//! * [`Style::Opera`]: four acts for orchestra at 66 BPM in the model's own key;
//! * [`Style::House`]: intro → buildup → drop → outro at 128 BPM, one mode per section;
//! * [`Style::Acid`]: one TB-303 pattern per layer at 138 BPM;
//! * [`Style::Dna`]: five movements through the model's anatomy, slowing to silence.

mod acid;
mod common;
mod dna;
mod house;
mod opera;
#[cfg(test)]
pub(crate) mod test_stats;
#[cfg(test)]
mod tests;

use crate::music::score::Score;
use crate::weights::WeightStats;

/// Which piece to compose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    Opera,
    House,
    Acid,
    Dna,
}

impl Style {
    pub const ALL: [Style; 4] = [Style::Opera, Style::House, Style::Acid, Style::Dna];

    /// The name on the command line and in file names.
    pub const fn name(self) -> &'static str {
        match self {
            Style::Opera => "opera",
            Style::House => "house",
            Style::Acid => "acid",
            Style::Dna => "dna",
        }
    }

    /// The style named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Style> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|style| style.name().eq_ignore_ascii_case(name))
    }

    /// The piece's title, shown before the model's name.
    pub const fn title(self) -> &'static str {
        match self {
            Style::Opera => "Opera in Four Acts",
            Style::House => "Weight House",
            Style::Acid => "Acid Layers",
            Style::Dna => "DNA in Five Movements",
        }
    }
}

/// What the caller may change about a piece.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ComposeOptions {
    /// Total length in bars, shared among the sections in proportion; `None` = the style's
    /// natural length.
    pub bars: Option<u32>,
}

/// Composes `style` from `stats`.
pub fn compose(style: Style, stats: &WeightStats, options: &ComposeOptions) -> Score {
    let title = format!("{}: {}", style.title(), model_name(stats));
    match style {
        Style::Opera => opera::compose(stats, options.bars, title),
        Style::House => house::compose(stats, options.bars, title),
        Style::Acid => acid::compose(stats, options.bars, title),
        Style::Dna => dna::compose(stats, options.bars, title),
    }
}

/// The model's file or directory name, or its family when the path is empty.
fn model_name(stats: &WeightStats) -> String {
    let path = stats.model.path.trim_end_matches(['/', '\\']);
    match path.rsplit(['/', '\\']).next() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => stats.model.family.clone(),
    }
}
