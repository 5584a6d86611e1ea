//! GPT-2's pre-tokenization, as a hand-written scanner instead of a regex engine.
//!
//! The pattern is
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
//! applied leftmost-first and repeatedly. Each alternative is a run of one character
//! class, optionally led by one ASCII space, so a scanner reproduces it exactly:
//!
//! - a contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`, case-sensitive) wins;
//! - otherwise an optional `' '` followed by a run of letters, numbers or "other";
//! - a whitespace run that reaches the end of the text is taken whole; one followed by
//!   a non-space gives back its last character (`\s+(?!\S)` backtracks one character),
//!   which then leads the next piece (`" world"`), unless the run is one character
//!   long, when `\s+` takes it alone.
//!
//! Works on bytes: invalid UTF-8 (only reachable through the bytes API) counts as
//! "other", one byte at a time, so every input splits into pieces covering it exactly.

use crate::classify::{ascii_class, class_at, CharClass};

/// Returns the end of the piece that starts at `start` (`start < s.len()`).
#[inline]
pub(crate) fn piece_end(s: &[u8], start: usize) -> usize {
    let n = s.len();
    let b = s[start];
    if b == b'\'' {
        if let Some(len) = contraction_len(&s[start + 1..]) {
            return start + 1 + len;
        }
    }
    if b == b' ' && start + 1 < n {
        let (next, len) = class_at(s, start + 1);
        if next != CharClass::Space {
            return run_end(s, start + 1 + len, next);
        }
    }
    let (class, len) = class_at(s, start);
    match class {
        CharClass::Space => whitespace_end(s, start, len),
        _ => run_end(s, start + len, class),
    }
}

/// Length after the apostrophe of a contraction at the start of `rest`, if any.
#[inline]
fn contraction_len(rest: &[u8]) -> Option<usize> {
    match rest {
        [b's' | b't' | b'm' | b'd', ..] => Some(1),
        [b'r', b'e', ..] | [b'v', b'e', ..] | [b'l', b'l', ..] => Some(2),
        _ => None,
    }
}

/// Extends a run of `class` characters from `i`.
#[inline]
fn run_end(s: &[u8], mut i: usize, class: CharClass) -> usize {
    let n = s.len();
    while i < n {
        let b = s[i];
        if b < 0x80 {
            // ASCII dominates most text: no decoding, one table read.
            if ascii_class(b) != class {
                break;
            }
            i += 1;
        } else {
            let (c, len) = class_at(s, i);
            if c != class {
                break;
            }
            i += len;
        }
    }
    i
}

/// The `\s+(?!\S)|\s+` alternatives for a whitespace run starting at `start`.
#[inline]
fn whitespace_end(s: &[u8], start: usize, first_len: usize) -> usize {
    let n = s.len();
    let mut last_start = start;
    let mut i = start + first_len;
    while i < n {
        let (c, len) = class_at(s, i);
        if c != CharClass::Space {
            break;
        }
        last_start = i;
        i += len;
    }
    if i == n || last_start == start {
        // Runs to the end, or a lone whitespace character before a non-space.
        i
    } else {
        // Leave the last whitespace character to lead the next piece.
        last_start
    }
}

/// Iterator over the pieces of `s` as `(start, end)` byte ranges.
pub(crate) struct Pieces<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Pieces<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        Pieces { s, pos: 0 }
    }
}

impl Iterator for Pieces<'_> {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.pos >= self.s.len() {
            return None;
        }
        let start = self.pos;
        self.pos = piece_end(self.s, start);
        Some((start, self.pos))
    }
}

/// Splits `text` into GPT-2 pre-tokenization pieces (public for inspection and tests).
pub fn pretokenize(text: &str) -> Vec<&str> {
    Pieces::new(text.as_bytes())
        .map(|(a, b)| &text[a..b])
        .collect()
}

/// Whether a piece boundary is certain at `i` without scanning from the start: the
/// previous character is not whitespace and the one at `i` is. No piece can hold a
/// non-space followed by a space, and the scan after a boundary depends only on the
/// text after it, so chunks cut here encode independently (parallel encode, training).
pub(crate) fn is_safe_split(s: &[u8], i: usize) -> bool {
    if i == 0 || i >= s.len() {
        return true;
    }
    let (here, _) = class_at(s, i);
    if here != CharClass::Space {
        return false;
    }
    // Find the start of the previous character (skip UTF-8 continuation bytes).
    let mut p = i - 1;
    while p > 0 && i - p < 4 && s[p] & 0xC0 == 0x80 {
        p -= 1;
    }
    let (prev, len) = class_at(s, p);
    // An invalid sequence decodes as one-byte units; only trust a character that ends at i.
    p + len == i && prev != CharClass::Space
}

/// Cuts `s` into about `parts` chunks at safe boundaries (see [`is_safe_split`]).
pub(crate) fn split_chunks(s: &[u8], parts: usize) -> Vec<&[u8]> {
    let target = s.len() / parts.max(1);
    let mut chunks = Vec::with_capacity(parts + 1);
    let mut start = 0;
    while start < s.len() {
        let mut cut = (start + target.max(1)).min(s.len());
        while cut < s.len() && !is_safe_split(s, cut) {
            cut += 1;
        }
        chunks.push(&s[start..cut]);
        start = cut;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_examples() {
        assert_eq!(pretokenize("Hello world"), ["Hello", " world"]);
        assert_eq!(
            pretokenize("I'm don't we'll 'S"),
            ["I", "'m", " don", "'t", " we", "'ll", " '", "S"]
        );
        assert_eq!(pretokenize("a  b"), ["a", " ", " b"]);
        assert_eq!(pretokenize("a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(pretokenize("a   "), ["a", "   "]);
        assert_eq!(pretokenize("x \t y"), ["x", " \t", " y"]);
        assert_eq!(pretokenize("12abc!!? 3"), ["12", "abc", "!!?", " 3"]);
        assert_eq!(pretokenize(" !!"), [" !!"]);
        assert_eq!(pretokenize("\u{a0}word"), ["\u{a0}", "word"]);
        assert_eq!(pretokenize("''s"), ["''", "s"]);
        assert_eq!(pretokenize(""), Vec::<&str>::new());
    }

    #[test]
    fn safe_splits_do_not_change_pieces() {
        let text = "The  quick\n\n brown 'fox' — 12 jumps\t over  the\u{3000}lazy 😀 dog.\r\n";
        let whole = pretokenize(text);
        for parts in 1..12 {
            let mut joined = Vec::new();
            for chunk in split_chunks(text.as_bytes(), parts) {
                let chunk = std::str::from_utf8(chunk).unwrap();
                joined.extend(pretokenize(chunk));
            }
            assert_eq!(joined, whole, "parts={parts}");
        }
    }
}
