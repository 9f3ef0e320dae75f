//! `TokenFrame`: what the worker learned about one token, in the form the audio thread can take.
//!
//! The frame is a fixed-size `Copy` value so it can travel through a preallocated lock-free queue
//! and be read on the audio thread without allocation. It carries projected hidden states and the
//! statistics the mapping needs, not notes: notes are made on the audio thread with the current
//! parameter values, so a Scale or Root change is heard on the very next token.

use super::markov_lstm::PhraseStep;

/// Hidden states a frame can carry: `n_layers + 1` (the embeddings plus every block's output) for
/// models of up to 64 blocks.
pub const MAX_HIDDEN_STATES: usize = 65;
/// Principal components carried per hidden state (PC1..PC16, as many as a map has by default):
/// PC1 drives pitch, PC2 shapes articulation, and the editor's heat map shows them all.
pub const FRAME_COMPONENTS: usize = 16;
/// Partials a hidden state is heard through by the Spectral instruments: its highest-variance
/// dimensions under the map, as z-scores quantised to `i8` ([`quantize_z`]) so a frame stays
/// small enough for the clip to keep thousands.
pub const SPECTRAL_PARTIALS: usize = 32;
/// The z-score a partial's `i8` full scale stands for: |z| beyond it is clamped.
pub const PARTIAL_Z_RANGE: f32 = 4.0;

/// The first principal components of a state as a frame keeps them, the rest zero (extra
/// values are dropped).
pub fn components(values: &[f32]) -> [f32; FRAME_COMPONENTS] {
    let mut coords = [0.0; FRAME_COMPONENTS];
    for (c, &v) in coords.iter_mut().zip(values) {
        *c = v;
    }
    coords
}

/// A z-score as a frame keeps it: ±[`PARTIAL_Z_RANGE`] onto ±127, rounded; NaN becomes 0.
pub fn quantize_z(z: f32) -> i8 {
    if z.is_nan() {
        return 0;
    }
    (z / PARTIAL_Z_RANGE * 127.0).round().clamp(-127.0, 127.0) as i8
}

/// The z-score a quantised partial stands for.
pub fn dequantize_z(q: i8) -> f32 {
    f32::from(q) * PARTIAL_Z_RANGE / 127.0
}
/// Bytes of token text carried for display; long tokens are cut on a character boundary.
pub const TEXT_BYTES: usize = 48;

/// One generated token as the audio thread sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenFrame {
    /// Token index since the prompt ran (0-based): orders frames, seeds the deterministic
    /// ornament choice, and lets the GUI line up text with what was played.
    pub index: u32,
    /// Which prompt run the token belongs to (a new prompt or a reset starts a new run): the
    /// audio thread starts over when it changes and drops frames of runs already left behind.
    pub run: u32,
    /// Vocabulary id of the token, for run files and the text view.
    pub token_id: u32,
    /// The token's text as UTF-8, so the GUI can show what was played without the tokenizer.
    pub text: [u8; TEXT_BYTES],
    /// Valid bytes in `text`; always on a character boundary.
    pub text_len: u8,
    /// How many entries of the per-state arrays are valid (`n_layers + 1`); the voices clamp
    /// their layer choice to it, so a smaller model than the parameters expect still plays.
    pub hidden_states: u8,
    /// Normalised PCA coordinates of each hidden state, in [-1, 1]: the melody is PC1.
    pub coords: [[f32; FRAME_COMPONENTS]; MAX_HIDDEN_STATES],
    /// L2 norm of each raw hidden state: how strongly the layer is "speaking"; becomes velocity
    /// relative to that layer's own running average.
    pub norm: [f32; MAX_HIDDEN_STATES],
    /// Attention entropy of the block that produced each hidden state, normalised to [0, 1] by
    /// ln(number of keys): focused or diffuse attention becomes legato or staccato. Entry 0 (the
    /// embeddings, produced by no block) is 0.
    pub entropy: [f32; MAX_HIDDEN_STATES],
    /// MLP sparsity of the block that produced each hidden state, in [0, 1]: becomes the chance
    /// of an ornament. Entry 0 is 0.
    pub sparsity: [f32; MAX_HIDDEN_STATES],
    /// Sampling temperature the token was drawn at, so what the loudness did can be shown and
    /// recorded next to what it caused.
    pub temperature: f32,
    /// A concept direction was projected (`tension` and the per-state values mean something).
    pub has_direction: bool,
    /// dot(h, r̂) of each hidden state with the session's concept direction.
    pub projection: [f32; MAX_HIDDEN_STATES],
    /// Each state's projection as tension, 0 at the direction's negative pole, 1 at its positive.
    pub layer_tension: [f32; MAX_HIDDEN_STATES],
    /// The token's tension, 0…1: the mean over the states the direction was fitted on. Drives
    /// the Tension voice and the dissonance.
    pub tension: f32,
    /// What each state's Markov–LSTM ([`super::markov_lstm`]) chose for this token.
    pub phrase: [PhraseStep; MAX_HIDDEN_STATES],
    /// Each state's [`SPECTRAL_PARTIALS`] highest-variance dimensions as quantised z-scores
    /// (highest variance first; all 0 without a map): what the Spectral instruments play.
    pub partials: [[i8; SPECTRAL_PARTIALS]; MAX_HIDDEN_STATES],
}

impl TokenFrame {
    /// A frame with no text and no valid hidden states; the start point for building one
    /// without allocation.
    pub const EMPTY: TokenFrame = TokenFrame {
        index: 0,
        run: 0,
        token_id: 0,
        text: [0; TEXT_BYTES],
        text_len: 0,
        hidden_states: 0,
        coords: [[0.0; FRAME_COMPONENTS]; MAX_HIDDEN_STATES],
        norm: [0.0; MAX_HIDDEN_STATES],
        entropy: [0.0; MAX_HIDDEN_STATES],
        sparsity: [0.0; MAX_HIDDEN_STATES],
        temperature: 0.0,
        has_direction: false,
        projection: [0.0; MAX_HIDDEN_STATES],
        layer_tension: [0.0; MAX_HIDDEN_STATES],
        tension: 0.0,
        phrase: [PhraseStep::REST; MAX_HIDDEN_STATES],
        partials: [[0; SPECTRAL_PARTIALS]; MAX_HIDDEN_STATES],
    };

    /// A frame for one token with its text set and all per-state values zero; fill the states
    /// with [`TokenFrame::set_state`]. `hidden_states` is clamped to [`MAX_HIDDEN_STATES`].
    pub fn new(
        index: u32,
        token_id: u32,
        text: &str,
        hidden_states: usize,
        temperature: f32,
    ) -> Self {
        let mut frame = Self::EMPTY;
        frame.index = index;
        frame.token_id = token_id;
        frame.set_text(text);
        frame.hidden_states = hidden_states.min(MAX_HIDDEN_STATES) as u8;
        frame.temperature = temperature;
        frame
    }

    /// Store the values of hidden state `state`; out-of-range states are ignored (the frame is
    /// fixed-size, a bigger model simply does not fit).
    pub fn set_state(
        &mut self,
        state: usize,
        coords: [f32; FRAME_COMPONENTS],
        norm: f32,
        entropy: f32,
        sparsity: f32,
    ) {
        if state < MAX_HIDDEN_STATES {
            self.coords[state] = coords;
            self.norm[state] = norm;
            self.entropy[state] = entropy;
            self.sparsity[state] = sparsity;
        }
    }

    /// Valid hidden states, never more than the arrays hold even if the field was set by hand.
    pub fn hidden_states(&self) -> usize {
        usize::from(self.hidden_states).min(MAX_HIDDEN_STATES)
    }

    /// The stored text. Exactly what `set_text` kept; if the bytes were filled in by hand and are
    /// not valid UTF-8, the longest valid prefix.
    pub fn text(&self) -> &str {
        let bytes = &self.text[..usize::from(self.text_len).min(TEXT_BYTES)];
        match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => {
                // The prefix up to `valid_up_to` is valid UTF-8 by definition.
                std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default()
            }
        }
    }

    /// Store `text`, cut to at most [`TEXT_BYTES`] bytes on a character boundary so the stored
    /// bytes are always valid UTF-8.
    pub fn set_text(&mut self, text: &str) {
        let mut len = text.len().min(TEXT_BYTES);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        self.text = [0; TEXT_BYTES];
        self.text[..len].copy_from_slice(&text.as_bytes()[..len]);
        self.text_len = len as u8;
    }
}

impl Default for TokenFrame {
    fn default() -> Self {
        Self::EMPTY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_round_trips() {
        let frame = TokenFrame::new(3, 42, " hello", 31, 0.7);
        assert_eq!(frame.text(), " hello");
        assert_eq!(frame.text_len, 6);
        assert_eq!(frame.hidden_states(), 31);
        assert_eq!(frame.index, 3);
        assert_eq!(frame.token_id, 42);
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        // 47 ASCII bytes then a 3-byte character: it does not fit and must be dropped whole.
        let text = format!("{}€tail", "a".repeat(47));
        let mut frame = TokenFrame::EMPTY;
        frame.set_text(&text);
        assert_eq!(frame.text(), "a".repeat(47));
        assert_eq!(frame.text_len, 47);

        let exact = "é".repeat(24); // 48 bytes exactly
        frame.set_text(&exact);
        assert_eq!(frame.text(), exact);

        // Shorter text replaces longer text completely.
        frame.set_text("ok");
        assert_eq!(frame.text(), "ok");
        assert!(frame.text[2..].iter().all(|&b| b == 0));
    }

    #[test]
    fn invalid_bytes_give_the_valid_prefix() {
        let mut frame = TokenFrame::EMPTY;
        frame.text[..4].copy_from_slice(&[b'a', b'b', 0xff, b'c']);
        frame.text_len = 4;
        assert_eq!(frame.text(), "ab");
        frame.text_len = 200;
        assert_eq!(frame.text(), "ab");
    }

    #[test]
    fn states_clamp_to_capacity() {
        let mut frame = TokenFrame::new(0, 0, "", 1000, 1.0);
        assert_eq!(frame.hidden_states(), MAX_HIDDEN_STATES);
        frame.set_state(MAX_HIDDEN_STATES, [1.0; FRAME_COMPONENTS], 1.0, 1.0, 1.0);
        let mut coords = [0.0; FRAME_COMPONENTS];
        coords[..2].copy_from_slice(&[0.5, -0.5]);
        frame.set_state(2, coords, 3.0, 0.25, 0.125);
        assert_eq!(frame.coords[2], coords);
        assert_eq!(frame.norm[2], 3.0);
        assert_eq!(frame.entropy[2], 0.25);
        assert_eq!(frame.sparsity[2], 0.125);
        assert_eq!(TokenFrame::default(), TokenFrame::EMPTY);
    }

    #[test]
    fn z_scores_quantise_within_half_a_step() {
        let step = PARTIAL_Z_RANGE / 127.0;
        for i in -400..=400 {
            let z = i as f32 * 0.01;
            assert!(
                (dequantize_z(quantize_z(z)) - z).abs() <= step / 2.0 + 1e-6,
                "{z}"
            );
        }
        assert_eq!(quantize_z(100.0), 127);
        assert_eq!(quantize_z(-100.0), -127);
        assert_eq!(quantize_z(f32::NAN), 0);
        assert_eq!(dequantize_z(127), PARTIAL_Z_RANGE);
    }
}
