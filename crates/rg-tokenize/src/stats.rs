//! Summary figures of a tokenizer on some text (`rgrad tokenize stats`).

use std::collections::HashMap;
use std::path::Path;
use web_time::Instant;

use crate::error::{read_text, Result};
use crate::tokenizer::Tokenizer;

/// What encoding a text produced.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TokenStats {
    pub bytes: usize,
    pub chars: usize,
    pub tokens: usize,
    /// Distinct ids used.
    pub distinct_tokens: usize,
    pub vocab_size: usize,
    /// Compression: input bytes per token.
    pub bytes_per_token: f64,
    /// The most frequent ids, most frequent first: `(id, token text, count)`.
    pub top_tokens: Vec<(u32, String, usize)>,
    /// Wall time of the encode (single call to [`Tokenizer::encode`]).
    pub encode_seconds: f64,
    /// Input megabytes (10^6 bytes) per second of that encode.
    pub megabytes_per_second: f64,
    /// Whether decoding the ids gave the text back exactly.
    pub round_trips: bool,
}

/// Encodes `text` once and summarises the result; `top` is the number of most
/// frequent tokens to list.
pub fn stats(tokenizer: &dyn Tokenizer, text: &str, top: usize) -> TokenStats {
    let start = Instant::now();
    let ids = tokenizer.encode(text);
    let encode_seconds = start.elapsed().as_secs_f64();
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &id in &ids {
        *counts.entry(id).or_insert(0) += 1;
    }
    let mut by_count: Vec<(u32, usize)> = counts.iter().map(|(&id, &c)| (id, c)).collect();
    by_count.sort_unstable_by_key(|&(id, c)| (std::cmp::Reverse(c), id));
    let top_tokens = by_count
        .into_iter()
        .take(top)
        .map(|(id, c)| (id, tokenizer.id_to_token(id).unwrap_or_default(), c))
        .collect();
    let round_trips = tokenizer
        .decode_bytes(&ids)
        .is_ok_and(|b| b == text.as_bytes());
    TokenStats {
        bytes: text.len(),
        chars: text.chars().count(),
        tokens: ids.len(),
        distinct_tokens: counts.len(),
        vocab_size: tokenizer.vocab_size(),
        bytes_per_token: text.len() as f64 / ids.len().max(1) as f64,
        top_tokens,
        encode_seconds,
        megabytes_per_second: text.len() as f64 / 1e6 / encode_seconds.max(1e-12),
        round_trips,
    }
}

/// [`stats`] over the concatenation of UTF-8 files.
pub fn stats_for_files(
    tokenizer: &dyn Tokenizer,
    paths: &[impl AsRef<Path>],
    top: usize,
) -> Result<TokenStats> {
    let mut text = String::new();
    for p in paths {
        text.push_str(&read_text(p.as_ref())?);
    }
    Ok(stats(tokenizer, &text, top))
}
