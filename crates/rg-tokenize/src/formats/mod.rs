//! Tokenizer files: GPT-2's `vocab.json` + `merges.txt`, Hugging Face's
//! `tokenizer.json`, our char-tokenizer JSON, and [`load_tokenizer`] that picks one.

pub(crate) mod tokenizer_json;
pub(crate) mod vocab_merges;

use std::path::Path;

use crate::bpe::BpeTokenizer;
use crate::byte_level::token_text_to_bytes;
use crate::char::CharTokenizer;
use crate::error::{read_text, Result, TokenizeError};
use crate::hash::FxHashMap;
use crate::special::SpecialTokens;
use crate::tokenizer::Tokenizer;

/// File name of the char tokenizer inside a directory.
pub const CHAR_TOKENIZER_FILE: &str = "char_tokenizer.json";

/// Loads any tokenizer this crate reads:
///
/// - a `tokenizer.json` (Hugging Face; byte-level BPE models run on our engine, other
///   models are an error naming what is unsupported, or run on the `tokenizers` crate
///   when the `hf` feature is on),
/// - a char-tokenizer file written by [`CharTokenizer::save`],
/// - a directory holding `tokenizer.json`, or `vocab.json` + `merges.txt`, or
///   `char_tokenizer.json` (tried in that order).
pub fn load_tokenizer(path: impl AsRef<Path>) -> Result<Box<dyn Tokenizer>> {
    let path = path.as_ref();
    if path.is_dir() {
        let tj = path.join("tokenizer.json");
        if tj.is_file() {
            return load_tokenizer_json(&tj);
        }
        let (vocab, merges) = (path.join("vocab.json"), path.join("merges.txt"));
        if vocab.is_file() && merges.is_file() {
            return Ok(Box::new(vocab_merges::read(&vocab, &merges)?));
        }
        let char_file = path.join(CHAR_TOKENIZER_FILE);
        if char_file.is_file() {
            return Ok(Box::new(CharTokenizer::load(&char_file)?));
        }
        return Err(TokenizeError::invalid(
            path,
            format!("no tokenizer.json, vocab.json + merges.txt or {CHAR_TOKENIZER_FILE} in this directory"),
        ));
    }
    let text = read_text(path)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| TokenizeError::json(path, &e))?;
    if value.get("model").is_some() {
        load_tokenizer_json(path)
    } else if value.get("type").and_then(|t| t.as_str()) == Some(crate::char::CHAR_FORMAT_TYPE) {
        Ok(Box::new(CharTokenizer::from_json_value(&value, path)?))
    } else {
        Err(TokenizeError::invalid(
            path,
            "neither a tokenizer.json (no \"model\") nor a char tokenizer (no \"type\": \"char\")",
        ))
    }
}

/// The contents of a model directory's tokenizer files, for callers without a file
/// system (a browser): whichever the directory has, as text.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokenizerTexts<'a> {
    pub tokenizer_json: Option<&'a str>,
    pub vocab_json: Option<&'a str>,
    pub merges_txt: Option<&'a str>,
    pub char_tokenizer_json: Option<&'a str>,
}

/// [`load_tokenizer`] over file contents: `tokenizer.json`, else `vocab.json` +
/// `merges.txt`, else `char_tokenizer.json` (the order a directory is tried in). Errors
/// name the file as it would be named in a directory.
pub fn tokenizer_from_texts(texts: &TokenizerTexts<'_>) -> Result<Box<dyn Tokenizer>> {
    if let Some(text) = texts.tokenizer_json {
        return Ok(Box::new(tokenizer_json::parse(
            text,
            Path::new("tokenizer.json"),
        )?));
    }
    if let (Some(vocab), Some(merges)) = (texts.vocab_json, texts.merges_txt) {
        return Ok(Box::new(vocab_merges::parse(
            vocab,
            Path::new("vocab.json"),
            merges,
            Path::new("merges.txt"),
        )?));
    }
    if let Some(text) = texts.char_tokenizer_json {
        let path = Path::new(CHAR_TOKENIZER_FILE);
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| TokenizeError::json(path, &e))?;
        return Ok(Box::new(CharTokenizer::from_json_value(&value, path)?));
    }
    Err(TokenizeError::invalid(
        Path::new("(tokenizer files)"),
        format!(
            "none given: expected tokenizer.json, vocab.json + merges.txt or {CHAR_TOKENIZER_FILE}"
        ),
    ))
}

fn load_tokenizer_json(path: &Path) -> Result<Box<dyn Tokenizer>> {
    match tokenizer_json::read(path) {
        Ok(t) => Ok(Box::new(t)),
        #[cfg(feature = "hf")]
        Err(TokenizeError::Unsupported { .. }) => {
            Ok(Box::new(crate::hf::HfTokenizer::from_file(path)?))
        }
        Err(e) => Err(e),
    }
}

/// A vocabulary as read from a file, before it becomes a [`BpeTokenizer`].
pub(crate) struct RawBpe {
    /// `(token text, id)` as listed.
    pub vocab: Vec<(String, u32)>,
    /// Merges as token texts, each with its line in `merges.txt` or index in
    /// `tokenizer.json` (see `merges_by_line`), for error messages.
    pub merges: Vec<(String, String, usize)>,
    pub merges_by_line: bool,
    /// Tokens declared special by the file (`tokenizer.json`'s `added_tokens`).
    pub added: Vec<(String, u32)>,
    pub ignore_merges: bool,
}

impl RawBpe {
    /// Checks ids (no gaps, no duplicates), resolves merges, decodes byte-level text.
    ///
    /// Special tokens are those the file declares plus those it implies: tokens that are
    /// neither a single byte nor the result of a merge, such as GPT-2's `<|endoftext|>`,
    /// which `vocab.json` lists like any other token (`<s>` and the like for RoBERTa).
    pub(crate) fn into_tokenizer(self, path: &Path, merges_path: &Path) -> Result<BpeTokenizer> {
        let by_line = self.merges_by_line;
        let merge_error = |at: usize, message: String| {
            if by_line {
                TokenizeError::Syntax {
                    path: merges_path.to_path_buf(),
                    line: at,
                    message,
                }
            } else {
                TokenizeError::invalid(merges_path, format!("model.merges[{at}]: {message}"))
            }
        };
        let n = self.vocab.len();
        let mut texts: Vec<Option<String>> = vec![None; n];
        for (text, id) in self.vocab {
            let slot = texts.get_mut(id as usize).ok_or_else(|| {
                TokenizeError::invalid(path, format!("token {text:?} has id {id}, but with {n} tokens ids must run from 0 to {} without gaps", n.saturating_sub(1)))
            })?;
            if let Some(other) = slot {
                return Err(TokenizeError::invalid(
                    path,
                    format!("id {id} is used by both {other:?} and {text:?}"),
                ));
            }
            *slot = Some(text);
        }
        // n distinct ids, all below n: every slot is filled.
        let texts: Vec<String> = texts.into_iter().map(Option::unwrap_or_default).collect();
        let mut ids: FxHashMap<&str, u32> = FxHashMap::default();
        ids.reserve(texts.len());
        for (id, t) in texts.iter().enumerate() {
            ids.insert(t.as_str(), id as u32);
        }
        let mut merges = Vec::with_capacity(self.merges.len());
        let mut merge_results = vec![false; texts.len()];
        let mut joined = String::new();
        for (left, right, at) in &self.merges {
            let id = |t: &str| {
                ids.get(t)
                    .copied()
                    .ok_or_else(|| merge_error(*at, format!("merge names unknown token {t:?}")))
            };
            let (a, b) = (id(left)?, id(right)?);
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            let merged = ids.get(joined.as_str()).copied().ok_or_else(|| {
                merge_error(
                    *at,
                    format!("merge result {joined:?} is not in the vocabulary"),
                )
            })?;
            merge_results[merged as usize] = true;
            merges.push((a, b));
        }
        drop(ids);
        let mut specials: FxHashMap<u32, String> = self
            .added
            .into_iter()
            .map(|(content, id)| (id, content))
            .collect();
        for (id, t) in texts.iter().enumerate() {
            // Only when reading it literally changes nothing (`<|endoftext|>`, `<s>`) or
            // it is not byte-level text at all: an ordinary token that no merge makes
            // stays ordinary, so decoding it still goes through the byte mapping.
            let literal = match token_text_to_bytes(t) {
                Some(b) => b == t.as_bytes(),
                None => true,
            };
            if !merge_results[id] && t.chars().count() > 1 && literal {
                specials.entry(id as u32).or_insert_with(|| t.clone());
            }
        }
        // Added tokens are literal text; the rest is byte-level text.
        let mut tokens = Vec::with_capacity(texts.len());
        for (id, t) in texts.iter().enumerate() {
            let bytes = match specials.get(&(id as u32)) {
                Some(content) => content.as_bytes().to_vec(),
                None => token_text_to_bytes(t).ok_or_else(|| {
                    TokenizeError::invalid(path, format!("token {t:?} (id {id}) is not byte-level text: not a byte-level BPE vocabulary"))
                })?,
            };
            tokens.push(bytes);
        }
        let mut specials: Vec<(String, u32)> = specials
            .into_iter()
            .map(|(id, content)| (content, id))
            .collect();
        specials.sort_by_key(|&(_, id)| id);
        BpeTokenizer::build(
            tokens,
            &merges,
            SpecialTokens::new(specials),
            self.ignore_merges,
        )
        .map_err(|m| TokenizeError::invalid(path, m))
    }
}

/// Byte-level text of each token of `tok`, by id.
pub(crate) fn token_texts(tok: &BpeTokenizer) -> Vec<String> {
    (0..tok.vocab_size() as u32)
        .map(|id| tok.token_text(id).unwrap_or_default())
        .collect()
}
