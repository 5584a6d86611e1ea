//! Text that a tokenizer cannot represent: a char vocabulary silently drops characters
//! it lacks, so they are named (an error) or dropped with a warning (`--skip-unknown`).

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use rusty_gradients::tokenize::Tokenizer;

/// Distinct characters of `text` that encode to no token, in order of first use.
pub fn unknown_chars(tokenizer: &dyn Tokenizer, text: &str) -> Vec<char> {
    let mut seen = BTreeSet::new();
    let mut unknown = Vec::new();
    for c in text.chars() {
        if seen.insert(c) && tokenizer.encode(c.encode_utf8(&mut [0; 4])).is_empty() {
            unknown.push(c);
        }
    }
    unknown
}

/// `'ü' (U+00FC), '{'`: printable ASCII as itself, anything else with its code point.
pub fn describe(chars: &[char]) -> String {
    chars
        .iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == ' ' {
                format!("'{c}'")
            } else {
                format!("'{}' (U+{:04X})", c.escape_debug(), c as u32)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` if every character has a token; else an error naming those that do not,
/// or (with `skip_unknown`) the text without them and a warning on stderr.
pub fn checked_text(
    flag: &str,
    tokenizer: &dyn Tokenizer,
    text: &str,
    skip_unknown: bool,
) -> Result<String> {
    let unknown = unknown_chars(tokenizer, text);
    if unknown.is_empty() {
        return Ok(text.to_string());
    }
    if !skip_unknown {
        bail!(
            "{flag}: characters not in the model's vocabulary: {} (pass --skip-unknown to drop them)",
            describe(&unknown)
        );
    }
    let dropped = text.chars().filter(|c| unknown.contains(c)).count();
    eprintln!(
        "warning: {flag}: dropped {dropped} characters not in the model's vocabulary: {}",
        describe(&unknown)
    );
    Ok(text.chars().filter(|c| !unknown.contains(c)).collect())
}
