//! Stop strings over text that arrives piece by piece: what may be sent now, what is held
//! back because it could be the start of a stop string, and where the text ends when one
//! appears (the stop string itself is never sent, as OpenAI does).

#[derive(Debug, Default)]
pub struct StopText {
    stops: Vec<String>,
    /// Everything generated so far (up to a stop string, once one is found).
    text: String,
    /// Bytes of `text` already handed out.
    sent: usize,
    stopped: bool,
}

impl StopText {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops,
            ..Self::default()
        }
    }

    /// Adds `piece`; returns the text that can be sent now and whether a stop string ended it.
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        // A stop string may begin in text held back earlier.
        let search_from = self.sent;
        self.text.push_str(piece);
        let found = self
            .stops
            .iter()
            .filter_map(|stop| {
                self.text[search_from..]
                    .find(stop.as_str())
                    .map(|at| search_from + at)
            })
            .min();
        if let Some(at) = found {
            self.text.truncate(at);
            self.stopped = true;
            return (self.take(at), true);
        }
        let safe = self.text.len() - self.held_back();
        (self.take(safe), false)
    }

    /// Whatever was held back, at the end of generation.
    pub fn finish(&mut self) -> String {
        self.take(self.text.len())
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    fn take(&mut self, end: usize) -> String {
        let out = self.text[self.sent..end].to_owned();
        self.sent = end;
        out
    }

    /// Bytes at the end of the unsent text that could begin a stop string.
    fn held_back(&self) -> usize {
        let unsent = &self.text[self.sent..];
        let mut longest = 0;
        for stop in &self.stops {
            for (at, _) in unsent.char_indices() {
                let tail = &unsent[at..];
                if tail.len() < stop.len() && stop.starts_with(tail) {
                    longest = longest.max(tail.len());
                    break;
                }
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_a_possible_stop_and_cuts_at_it() {
        let mut s = StopText::new(vec!["\n\n".into(), "END".into()]);
        assert_eq!(s.push("Hello"), ("Hello".into(), false));
        assert_eq!(s.push(" E"), (" ".into(), false));
        assert_eq!(s.push("x"), ("Ex".into(), false));
        assert_eq!(s.push("\n"), (String::new(), false));
        assert_eq!(s.push("\nmore"), (String::new(), true));
        assert_eq!(s.text(), "Hello Ex");
        let mut s = StopText::new(vec!["END".into()]);
        assert_eq!(s.push("aEN"), ("a".into(), false));
        assert_eq!(s.finish(), "EN");
    }
}
