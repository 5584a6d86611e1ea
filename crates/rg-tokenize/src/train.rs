//! Learning a byte-level BPE vocabulary from text.
//!
//! The algorithm and its tie-breaks are those of `tokenizers`' `BpeTrainer` with a
//! `ByteLevel` pre-tokenizer and the full byte alphabet, so for the same text and size
//! both produce the same vocabulary and merges:
//!
//! 1. ids: special tokens first, then the 256 bytes ordered by their byte-level
//!    stand-in character (GPT-2's order), then one id per merge;
//! 2. count the distinct pre-tokenized pieces ("words") of the corpus, in parallel;
//! 3. count adjacent pairs over words, weighted by word count, and keep, per pair, the
//!    words it occurs in;
//! 4. repeatedly merge the most frequent pair (ties: the smallest `(left, right)` ids)
//!    in the words that hold it, updating pair counts incrementally from the
//!    neighbours of each merged occurrence; a lazy max-heap re-queues pairs whose count
//!    went stale instead of recounting everything.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

use rayon::prelude::*;

use crate::bpe::BpeTokenizer;
use crate::byte_level::BYTE_TO_CHAR;
use crate::error::{read_text, Result, TokenizeError};
use crate::hash::{pair_key, FxHashMap};
use crate::pretokenize::{split_chunks, Pieces};
use crate::special::SpecialTokens;

/// Settings of a BPE training run.
#[derive(Clone, Debug)]
pub struct BpeTrainer {
    /// Target number of ids, special tokens and the 256 bytes included.
    pub vocab_size: usize,
    /// Reserved first ids, in this order; never produced by merges.
    pub special_tokens: Vec<String>,
    /// Pairs seen fewer times than this are not merged (training may stop early).
    pub min_frequency: u64,
}

impl BpeTrainer {
    pub fn new(vocab_size: usize, special_tokens: &[&str]) -> Self {
        BpeTrainer {
            vocab_size,
            special_tokens: special_tokens.iter().map(|s| s.to_string()).collect(),
            min_frequency: 0,
        }
    }

    /// Trains on in-memory texts (each pre-tokenized on its own).
    pub fn train(&self, texts: &[&str]) -> Result<BpeTokenizer> {
        self.train_from_counts(count_words(texts))
    }

    /// Trains on the given files, each read whole (UTF-8 required) and pre-tokenized
    /// as one text, as `encode` would see it. (`tokenizers`' `train(files)` goes line
    /// by line instead, which differs only for whitespace runs that end a line.)
    pub fn train_from_files(&self, paths: &[impl AsRef<Path>]) -> Result<BpeTokenizer> {
        let texts = paths
            .iter()
            .map(|p| read_text(p.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.train(&refs)
    }

    /// Trains from word counts (pieces of pre-tokenized text and how often they occur).
    pub(crate) fn train_from_counts(&self, counts: FxHashMap<&[u8], u64>) -> Result<BpeTokenizer> {
        let mut specials: Vec<String> = Vec::new();
        for s in &self.special_tokens {
            if s.is_empty() {
                return Err(TokenizeError::Config(
                    "a special token cannot be empty".into(),
                ));
            }
            if !specials.contains(s) {
                specials.push(s.clone());
            }
        }
        let first_merge_id = specials.len() + 256;
        if self.vocab_size < first_merge_id {
            return Err(TokenizeError::Config(format!(
                "vocab_size {} is below the {} ids of the 256 bytes and {} special tokens",
                self.vocab_size,
                first_merge_id,
                specials.len()
            )));
        }
        let mut tokens: Vec<Vec<u8>> = specials.iter().map(|s| s.as_bytes().to_vec()).collect();
        let mut byte_order: Vec<u8> = (0..=255).collect();
        byte_order.sort_by_key(|&b| BYTE_TO_CHAR[b as usize] as u32);
        let mut byte_id = [0u32; 256];
        for b in byte_order {
            byte_id[b as usize] = tokens.len() as u32;
            tokens.push(vec![b]);
        }

        // Sorted words make the internal order independent of hashing and threads
        // (the result does not depend on it, but debugging is easier).
        let mut entries: Vec<(&[u8], u64)> = counts.into_iter().collect();
        entries.sort_unstable();
        let mut words: Vec<Vec<u32>> = Vec::with_capacity(entries.len());
        let mut weights: Vec<i64> = Vec::with_capacity(entries.len());
        for (w, c) in entries {
            words.push(w.iter().map(|&b| byte_id[b as usize]).collect());
            weights.push(c as i64);
        }

        let merges = learn_merges(
            &mut words,
            &weights,
            &mut tokens,
            self.vocab_size,
            self.min_frequency.max(1),
        );
        let specials = SpecialTokens::new(
            specials
                .into_iter()
                .enumerate()
                .map(|(i, s)| (s, i as u32))
                .collect(),
        );
        BpeTokenizer::build(tokens, &merges, specials, false).map_err(TokenizeError::Config)
    }
}

/// Counts the GPT-2 pieces of `texts` on all cores.
pub(crate) fn count_words<'a>(texts: &[&'a str]) -> FxHashMap<&'a [u8], u64> {
    let parts = 4 * rayon::current_num_threads();
    let chunks: Vec<&'a [u8]> = texts
        .iter()
        .flat_map(|t| split_chunks(t.as_bytes(), parts))
        .collect();
    chunks
        .par_iter()
        .fold(
            FxHashMap::default,
            |mut counts: FxHashMap<&'a [u8], u64>, chunk| {
                for (a, b) in Pieces::new(chunk) {
                    *counts.entry(&chunk[a..b]).or_insert(0) += 1;
                }
                counts
            },
        )
        .reduce(FxHashMap::default, |mut a, mut b| {
            if a.len() < b.len() {
                std::mem::swap(&mut a, &mut b);
            }
            for (k, v) in b {
                *a.entry(k).or_insert(0) += v;
            }
            a
        })
}

/// Pair counts and the words each pair occurs in, kept up to date while merging.
struct PairStats {
    counts: FxHashMap<u64, i64>,
    /// Words holding each pair; may list words that no longer do (checked on merge).
    words: FxHashMap<u64, Vec<u32>>,
    /// Pairs that gained occurrences in the current merge step, to be queued.
    touched: Vec<u64>,
}

impl PairStats {
    #[inline]
    fn add(&mut self, pair: u64, delta: i64, word: u32) {
        *self.counts.entry(pair).or_insert(0) += delta;
        if delta > 0 {
            let list = self.words.entry(pair).or_default();
            if list.last() != Some(&word) {
                list.push(word);
            }
            self.touched.push(pair);
        }
    }
}

/// The merge loop; appends merged tokens to `tokens` and returns the merges.
fn learn_merges(
    words: &mut [Vec<u32>],
    weights: &[i64],
    tokens: &mut Vec<Vec<u8>>,
    vocab_size: usize,
    min_frequency: u64,
) -> Vec<(u32, u32)> {
    let mut stats = PairStats {
        counts: FxHashMap::default(),
        words: FxHashMap::default(),
        touched: Vec::new(),
    };
    for (w, (word, &weight)) in words.iter().zip(weights).enumerate() {
        for pair in word.windows(2) {
            stats.add(pair_key(pair[0], pair[1]), weight, w as u32);
        }
    }
    stats.touched.clear();
    // Max-heap on count; on equal counts the smaller pair comes first.
    let mut queue: BinaryHeap<(i64, Reverse<u64>)> = stats
        .counts
        .iter()
        .filter(|(_, &c)| c > 0)
        .map(|(&p, &c)| (c, Reverse(p)))
        .collect();

    // Existing tokens by bytes: a merge spelling one reuses its id (as `tokenizers`
    // does). Specials are left out so merges never produce them.
    let mut ids: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
    let first_byte = tokens.len() - 256;
    for (id, t) in tokens.iter().enumerate().skip(first_byte) {
        ids.insert(t.clone(), id as u32);
    }
    let mut merges = Vec::with_capacity(vocab_size.saturating_sub(tokens.len()));
    while tokens.len() < vocab_size {
        let Some((count, Reverse(pair))) = queue.pop() else {
            break;
        };
        let current = stats.counts.get(&pair).copied().unwrap_or(0);
        if count != current {
            if current > 0 {
                queue.push((current, Reverse(pair)));
            }
            continue;
        }
        if (count as u64) < min_frequency {
            break;
        }
        let (a, b) = ((pair >> 32) as u32, pair as u32);
        let bytes = [tokens[a as usize].as_slice(), tokens[b as usize].as_slice()].concat();
        let merged = *ids.entry(bytes).or_insert_with_key(|bytes| {
            tokens.push(bytes.clone());
            tokens.len() as u32 - 1
        });
        merges.push((a, b));

        let mut holders = stats.words.remove(&pair).unwrap_or_default();
        holders.sort_unstable();
        holders.dedup();
        for &w in &holders {
            merge_in_word(
                &mut words[w as usize],
                a,
                b,
                merged,
                weights[w as usize],
                w,
                &mut stats,
            );
        }
        let mut touched = std::mem::take(&mut stats.touched);
        touched.sort_unstable();
        touched.dedup();
        for &p in &touched {
            let c = stats.counts[&p];
            if c > 0 {
                queue.push((c, Reverse(p)));
            }
        }
        touched.clear();
        stats.touched = touched;
    }
    merges
}

/// Replaces each `a b` in `word` (left to right, not overlapping) by `merged`, and
/// moves the counts of the neighbouring pairs: `(prev, a)` -> `(prev, merged)`,
/// `(b, next)` -> `(merged, next)`.
fn merge_in_word(
    word: &mut Vec<u32>,
    a: u32,
    b: u32,
    merged: u32,
    weight: i64,
    w: u32,
    stats: &mut PairStats,
) {
    let n = word.len();
    let (mut read, mut write) = (0, 0);
    while read < n {
        if read + 1 < n && word[read] == a && word[read + 1] == b {
            if write > 0 {
                // The previous symbol as already rewritten (it may be `merged` itself).
                let prev = word[write - 1];
                stats.add(pair_key(prev, a), -weight, w);
                stats.add(pair_key(prev, merged), weight, w);
            }
            if read + 2 < n {
                let next = word[read + 2];
                stats.add(pair_key(b, next), -weight, w);
                stats.add(pair_key(merged, next), weight, w);
            }
            word[write] = merged;
            read += 2;
        } else {
            word[write] = word[read];
            read += 1;
        }
        write += 1;
    }
    word.truncate(write);
}

/// Trains a byte-level BPE of `vocab_size` ids on the given UTF-8 files.
pub fn train_bpe_from_files(
    paths: &[impl AsRef<Path>],
    vocab_size: usize,
    special_tokens: &[&str],
) -> Result<BpeTokenizer> {
    BpeTrainer::new(vocab_size, special_tokens).train_from_files(paths)
}

/// Trains a byte-level BPE of `vocab_size` ids on in-memory texts.
pub fn train_bpe(
    texts: &[&str],
    vocab_size: usize,
    special_tokens: &[&str],
) -> Result<BpeTokenizer> {
    BpeTrainer::new(vocab_size, special_tokens).train(texts)
}
