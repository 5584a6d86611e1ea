//! Special tokens (`<|endoftext|>`, ...): literal strings with reserved ids.
//!
//! They are only recognised in text when the caller allows it
//! ([`crate::Tokenizer::encode_with_special`]); plain `encode` treats them as ordinary
//! text, so user text cannot inject control tokens (tiktoken's `encode_ordinary`).

/// GPT-2's end-of-text token.
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// A set of special tokens and their ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    tokens: Vec<(String, u32)>,
}

/// A segment of text cut around special tokens.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    Text(&'a str),
    Special(u32),
}

impl SpecialTokens {
    pub fn new(tokens: Vec<(String, u32)>) -> Self {
        SpecialTokens { tokens }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.tokens.iter().map(|(s, id)| (s.as_str(), *id))
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn id(&self, content: &str) -> Option<u32> {
        self.tokens
            .iter()
            .find(|(s, _)| s == content)
            .map(|(_, id)| *id)
    }

    pub fn content(&self, id: u32) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(s, _)| s.as_str())
    }

    /// The end-of-text id: `<|endoftext|>` if present, else the only special token if
    /// there is exactly one.
    pub fn eot(&self) -> Option<u32> {
        self.id(ENDOFTEXT).or(match self.tokens.as_slice() {
            [(_, id)] => Some(*id),
            _ => None,
        })
    }

    /// Cuts `text` at every occurrence of a special token: leftmost first, the longest
    /// token when several start at the same place (as `tokenizers`' added-token matcher).
    pub(crate) fn split<'a>(&self, text: &'a str) -> Vec<Segment<'a>> {
        // Next occurrence of each token at or after `cursor` (None: no more), refreshed
        // only when passed, so text with many specials is still scanned linearly.
        let mut next: Vec<Option<usize>> = self
            .tokens
            .iter()
            .map(|(s, _)| find_from(text, s, 0))
            .collect();
        let mut out = Vec::new();
        let mut cursor = 0;
        loop {
            let best = (0..self.tokens.len())
                .filter_map(|k| next[k].map(|at| (at, self.tokens[k].0.len(), k)))
                .min_by_key(|&(at, len, _)| (at, std::cmp::Reverse(len)));
            let Some((at, len, k)) = best else { break };
            if at > cursor {
                out.push(Segment::Text(&text[cursor..at]));
            }
            out.push(Segment::Special(self.tokens[k].1));
            cursor = at + len;
            for (j, (s, _)) in self.tokens.iter().enumerate() {
                if next[j].is_some_and(|p| p < cursor) {
                    next[j] = find_from(text, s, cursor);
                }
            }
        }
        if cursor < text.len() {
            out.push(Segment::Text(&text[cursor..]));
        }
        out
    }
}

fn find_from(text: &str, token: &str, from: usize) -> Option<usize> {
    if token.is_empty() {
        return None;
    }
    text[from..].find(token).map(|at| from + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_leftmost_longest() {
        let sp = SpecialTokens::new(vec![("<|a|>".into(), 7), ("<|a|><|b|>".into(), 8)]);
        assert_eq!(
            sp.split("x<|a|><|b|>y<|a|>"),
            [
                Segment::Text("x"),
                Segment::Special(8),
                Segment::Text("y"),
                Segment::Special(7)
            ]
        );
        assert_eq!(sp.split("plain"), [Segment::Text("plain")]);
    }
}
