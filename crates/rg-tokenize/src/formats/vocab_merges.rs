//! GPT-2's original files: `vocab.json` (token text -> id) and `merges.txt`
//! (`#version: 0.2` then one `left right` merge per line, in rank order).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::bpe::BpeTokenizer;
use crate::error::{read_text, write_atomic, Result, TokenizeError};
use crate::formats::{token_texts, RawBpe};

/// Reads `vocab.json` + `merges.txt` into a tokenizer.
pub(crate) fn read(vocab_path: &Path, merges_path: &Path) -> Result<BpeTokenizer> {
    parse(
        &read_text(vocab_path)?,
        vocab_path,
        &read_text(merges_path)?,
        merges_path,
    )
}

/// The two files held in memory; the paths name them in error messages.
pub(crate) fn parse(
    vocab_text: &str,
    vocab_path: &Path,
    merges_text: &str,
    merges_path: &Path,
) -> Result<BpeTokenizer> {
    let vocab = parse_vocab(vocab_text, vocab_path)?;
    let merges = parse_merges(merges_text, merges_path)?;
    let raw = RawBpe {
        vocab,
        merges,
        merges_by_line: true,
        added: Vec::new(),
        ignore_merges: false,
    };
    raw.into_tokenizer(vocab_path, merges_path)
}

fn parse_vocab(text: &str, path: &Path) -> Result<Vec<(String, u32)>> {
    let map: HashMap<String, u32> =
        serde_json::from_str(text).map_err(|e| TokenizeError::json(path, &e))?;
    Ok(map.into_iter().collect())
}

/// Parses merges, each with its line number for later error messages.
fn parse_merges(text: &str, path: &Path) -> Result<Vec<(String, String, usize)>> {
    let mut merges = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if i == 0 && line.starts_with("#version") {
            continue;
        }
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
                merges.push((a.to_owned(), b.to_owned(), i + 1));
            }
            _ => {
                return Err(TokenizeError::Syntax {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: format!("expected two tokens separated by one space, found {line:?}"),
                })
            }
        }
    }
    Ok(merges)
}

/// `vocab.json` text, one entry per line in id order (as GPT-2's file, but readable).
pub(crate) fn vocab_json(tok: &BpeTokenizer) -> String {
    let mut out = String::from("{");
    for (id, text) in token_texts(tok).iter().enumerate() {
        let sep = if id == 0 { "\n  " } else { ",\n  " };
        let key = serde_json::to_string(text).expect("strings always serialize");
        let _ = write!(out, "{sep}{key}: {id}");
    }
    out.push_str("\n}\n");
    out
}

pub(crate) fn merges_txt(tok: &BpeTokenizer) -> String {
    let texts = token_texts(tok);
    let mut out = String::from("#version: 0.2\n");
    for &(a, b, _) in tok.merges() {
        let _ = writeln!(out, "{} {}", texts[a as usize], texts[b as usize]);
    }
    out
}

pub(crate) fn write(tok: &BpeTokenizer, dir: &Path) -> Result<()> {
    write_atomic(&dir.join("vocab.json"), vocab_json(tok).as_bytes())?;
    write_atomic(&dir.join("merges.txt"), merges_txt(tok).as_bytes())
}
