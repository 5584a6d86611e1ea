//! The byte-level BPE tokenizer: vocabulary, merges, special tokens, encode/decode.
//!
//! Encoding is: GPT-2 pre-tokenization ([`crate::pretokenize`]) into pieces, then per
//! piece either one hash lookup (the piece is a whole token that BPE would produce
//! anyway, the common case) or the merge loop of [`crate::merge`]. A per-call cache
//! remembers each distinct piece's ids, since text repeats its words.

use crate::byte_level::{bytes_to_token_text, token_text_to_bytes};
use crate::error::{Result, TokenizeError};
use crate::hash::FxHashMap;
use crate::merge::{MergeTable, Scratch, NO_TOKEN};
use crate::piece_key::{pack, PieceMap};
use crate::pretokenize::{piece_end, split_chunks};
use crate::special::{Segment, SpecialTokens};
use crate::tokenizer::utf8_lossy;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};

/// A byte-level BPE tokenizer (GPT-2 style).
#[derive(Clone)]
pub struct BpeTokenizer {
    /// Bytes of every token, concatenated; token `i` is `bytes[offsets[i]..offsets[i+1]]`.
    bytes: Vec<u8>,
    offsets: Vec<u32>,
    /// Every token's bytes -> id.
    token_ids: PieceMap,
    /// Per token: does BPE turn the token's own bytes into this one token? Then a piece
    /// equal to it skips the merge loop. Not always so (merge order can bypass a
    /// token), and finding out costs a merge run, so it is learnt on first use.
    whole: WholeFlags,
    /// Merges in rank order, as `(left, right, merged)` ids (kept for saving).
    merge_list: Vec<(u32, u32, u32)>,
    merges: MergeTable,
    /// Token id of each single byte (`NO_TOKEN` if the vocabulary lacks it).
    byte_ids: [u32; 256],
    specials: SpecialTokens,
    /// `tokenizers`' `ignore_merges`: a piece that is a token is taken whole.
    ignore_merges: bool,
}

impl BpeTokenizer {
    /// Builds a tokenizer from token bytes (index = id), merges in rank order (each
    /// `(left, right)` must concatenate to a token) and special tokens (ids into
    /// `tokens`, whose bytes must be the special's text).
    pub fn from_parts(
        tokens: Vec<Vec<u8>>,
        merges: &[(u32, u32)],
        specials: SpecialTokens,
    ) -> Result<Self> {
        Self::build(tokens, merges, specials, false).map_err(TokenizeError::Config)
    }

    /// As [`Self::from_parts`], with errors as messages for the format readers to place.
    pub(crate) fn build(
        tokens: Vec<Vec<u8>>,
        merges: &[(u32, u32)],
        specials: SpecialTokens,
        ignore_merges: bool,
    ) -> Result<Self, String> {
        let n = tokens.len();
        if n >= u32::MAX as usize {
            return Err(format!("vocabulary too large ({n} tokens)"));
        }
        let mut bytes = Vec::with_capacity(tokens.iter().map(Vec::len).sum());
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0u32);
        let special_ids: std::collections::HashSet<u32> =
            specials.iter().map(|(_, id)| id).collect();
        let mut token_ids = PieceMap::default();
        let mut byte_ids = [NO_TOKEN; 256];
        for (id, t) in tokens.into_iter().enumerate() {
            let id = id as u32;
            let special = special_ids.contains(&id);
            bytes.extend_from_slice(&t);
            offsets.push(bytes.len() as u32);
            if let ([b], false) = (t.as_slice(), special) {
                byte_ids[*b as usize] = id;
            }
            // Two ids may share bytes only when one is a special token spelling an
            // ordinary token; byte-level lookups then keep the ordinary one.
            if let Some(prev) = token_ids.insert(&t, id) {
                let prev_special = special_ids.contains(&prev);
                if !special && !prev_special {
                    return Err(format!("tokens {prev} and {id} have the same bytes"));
                }
                if special && !prev_special {
                    token_ids.insert(&t, prev);
                }
            }
        }
        for (content, id) in specials.iter() {
            match token_bytes_checked(&bytes, &offsets, id) {
                Some(b) if b == content.as_bytes() => {}
                Some(_) => {
                    return Err(format!(
                        "special token {content:?} has id {id}, whose text differs"
                    ))
                }
                None => {
                    return Err(format!(
                        "special token {content:?} has id {id}, outside the vocabulary ({n})"
                    ))
                }
            }
        }
        let mut table = MergeTable::with_capacity(merges.len());
        let mut merge_list = Vec::with_capacity(merges.len());
        let mut joined = Vec::new();
        for (rank, &(left, right)) in merges.iter().enumerate() {
            let (Some(a), Some(b)) = (
                token_bytes_checked(&bytes, &offsets, left),
                token_bytes_checked(&bytes, &offsets, right),
            ) else {
                return Err(format!(
                    "merge {rank} ({left}, {right}) names an id outside the vocabulary ({n})"
                ));
            };
            joined.clear();
            joined.extend_from_slice(a);
            joined.extend_from_slice(b);
            let Some(merged) = token_ids.get_bytes(&joined) else {
                return Err(format!(
                    "merge {rank} ({:?} {:?}) makes {:?}, which is not in the vocabulary",
                    bytes_to_token_text(a),
                    bytes_to_token_text(b),
                    bytes_to_token_text(&joined)
                ));
            };
            table.insert(left, right, rank as u32, merged);
            merge_list.push((left, right, merged));
        }
        // Specials never come out of ordinary text; with `ignore_merges` every other
        // token is taken whole.
        let whole = WholeFlags::new(n, |id| {
            if special_ids.contains(&id) {
                WholeFlags::NO
            } else if ignore_merges || offsets[id as usize + 1] - offsets[id as usize] == 1 {
                WholeFlags::YES
            } else {
                WholeFlags::UNKNOWN
            }
        });
        Ok(BpeTokenizer {
            bytes,
            offsets,
            token_ids,
            whole,
            merge_list,
            merges: table,
            byte_ids,
            specials,
            ignore_merges,
        })
    }

    /// Number of ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn specials(&self) -> &SpecialTokens {
        &self.specials
    }

    /// Merges in rank order as `(left, right, merged)` ids.
    pub fn merges(&self) -> &[(u32, u32, u32)] {
        &self.merge_list
    }

    pub(crate) fn ignore_merges(&self) -> bool {
        self.ignore_merges
    }

    /// The bytes of token `id`.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        token_bytes_checked(&self.bytes, &self.offsets, id)
    }

    /// The token's text as files store it: byte-level stand-ins (`"Ġthe"`), or the
    /// literal text of a special token.
    pub fn token_text(&self, id: u32) -> Option<String> {
        match self.specials.content(id) {
            Some(s) => Some(s.to_owned()),
            None => self.token_bytes(id).map(bytes_to_token_text),
        }
    }

    /// Id of a token given as file text (`"Ġthe"`) or as a special token's text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        if let Some(id) = self.specials.id(text) {
            return Some(id);
        }
        let bytes = token_text_to_bytes(text)?;
        self.token_ids.get_bytes(&bytes)
    }

    /// Encodes text; special tokens in it are treated as ordinary text.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_bytes(text.as_bytes())
    }

    /// Encodes arbitrary bytes (invalid UTF-8 included); `decode_bytes` gives them back.
    pub fn encode_bytes(&self, bytes: &[u8]) -> Vec<u32> {
        // About 4 bytes per token on English text; reserving avoids most regrowth.
        let mut out = Vec::with_capacity(bytes.len() / 4 + 1);
        self.encode_into(bytes, &mut out, &mut EncodeState::new(bytes.len()));
        out
    }

    /// Encodes text, turning occurrences of special tokens into their ids.
    pub fn encode_with_special(&self, text: &str) -> Vec<u32> {
        if self.specials.is_empty() {
            return self.encode(text);
        }
        let mut out = Vec::with_capacity(text.len() / 4 + 1);
        // One state for all segments: the piece cache carries across special tokens.
        let mut state = EncodeState::new(text.len());
        for segment in self.specials.split(text) {
            match segment {
                Segment::Text(t) => self.encode_into(t.as_bytes(), &mut out, &mut state),
                Segment::Special(id) => out.push(id),
            }
        }
        out
    }

    /// Encodes one long text on all cores. The text is cut where a piece boundary is
    /// certain, so the ids equal [`Self::encode`]'s.
    pub fn encode_parallel(&self, text: &str) -> Vec<u32> {
        // Each chunk warms its own piece cache, which costs CPU: a few large chunks
        // (two per thread, for balance) beat many small ones.
        const MIN_CHUNK: usize = 128 * 1024;
        let parts = (text.len() / MIN_CHUNK).clamp(1, 2 * rayon::current_num_threads());
        if parts == 1 {
            return self.encode(text);
        }
        let chunks = split_chunks(text.as_bytes(), parts);
        let encoded: Vec<Vec<u32>> = chunks.par_iter().map(|c| self.encode_bytes(c)).collect();
        encoded.concat()
    }

    /// Encodes many texts on all cores.
    pub fn encode_batch(&self, texts: &[&str]) -> Vec<Vec<u32>> {
        texts.par_iter().map(|t| self.encode(t)).collect()
    }

    fn encode_into(&self, s: &[u8], out: &mut Vec<u32>, state: &mut EncodeState) {
        const SINGLE: u32 = u32::MAX;
        let mut start = 0;
        while start < s.len() {
            let end = piece_end(s, start);
            let piece = &s[start..end];
            let key = pack(s, start, end);
            start = end;
            let cache_key = key.filter(|_| state.use_cache);
            if let Some(k) = cache_key {
                if let Some(&(a, b)) = state.cache.get(&k) {
                    if b == SINGLE {
                        out.push(a);
                    } else {
                        out.extend_from_slice(&state.cached_ids[a as usize..(a + b) as usize]);
                    }
                    continue;
                }
            }
            let token = self.token_ids.get(key, piece);
            if let Some(id) = token.filter(|&id| self.whole.get(id) == WholeFlags::YES) {
                out.push(id);
                if let Some(k) = cache_key {
                    state.cache.insert(k, (id, SINGLE));
                }
                continue;
            }
            let before = out.len();
            state.symbols.clear();
            state
                .symbols
                .extend(piece.iter().map(|&b| self.byte_ids[b as usize]));
            self.merges.apply(&state.symbols, out, &mut state.scratch);
            if let Some(id) = token {
                // The merge run just answered whether this token comes out whole.
                self.whole.learn(id, out[before..] == [id]);
            }
            if let Some(k) = cache_key {
                let span = (state.cached_ids.len() as u32, (out.len() - before) as u32);
                state.cache.insert(k, span);
                state.cached_ids.extend_from_slice(&out[before..]);
            }
        }
    }

    /// The bytes of `ids`, concatenated.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            match self.token_bytes(id) {
                Some(b) => out.extend_from_slice(b),
                None => {
                    return Err(TokenizeError::UnknownId {
                        id,
                        vocab_size: self.vocab_size(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Decodes to text; bytes that are not valid UTF-8 (a multi-byte character cut
    /// between tokens) become U+FFFD, as in `tokenizers` and tiktoken.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.decode_bytes(ids).map(utf8_lossy)
    }
}

/// Working memory of one encode call.
struct EncodeState {
    /// Each distinct short piece's ids, by packed key: a single id as `(id, u32::MAX)`,
    /// else a span of `cached_ids`. Text repeats its words, so most pieces hit this
    /// small, hot table instead of the vocabulary-sized one (a cache miss each) or the
    /// merge loop.
    cache: FxHashMap<u128, (u32, u32)>,
    cached_ids: Vec<u32>,
    /// Not worth building for short inputs.
    use_cache: bool,
    symbols: Vec<u32>,
    scratch: Scratch,
}

impl EncodeState {
    fn new(input_len: usize) -> Self {
        EncodeState {
            cache: FxHashMap::default(),
            cached_ids: Vec::new(),
            use_cache: input_len >= 512,
            symbols: Vec::new(),
            scratch: Scratch::default(),
        }
    }
}

#[inline]
fn token_bytes_checked<'a>(bytes: &'a [u8], offsets: &[u32], id: u32) -> Option<&'a [u8]> {
    let i = id as usize;
    if i + 1 >= offsets.len() {
        return None;
    }
    Some(&bytes[offsets[i] as usize..offsets[i + 1] as usize])
}

impl crate::Tokenizer for BpeTokenizer {
    fn kind(&self) -> &'static str {
        "bpe"
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        BpeTokenizer::encode(self, text)
    }

    fn encode_with_special(&self, text: &str) -> Vec<u32> {
        BpeTokenizer::encode_with_special(self, text)
    }

    fn encode_batch(&self, texts: &[&str]) -> Vec<Vec<u32>> {
        BpeTokenizer::encode_batch(self, texts)
    }

    fn encode_parallel(&self, text: &str) -> Vec<u32> {
        BpeTokenizer::encode_parallel(self, text)
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        BpeTokenizer::decode_bytes(self, ids)
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        BpeTokenizer::decode(self, ids)
    }

    fn vocab_size(&self) -> usize {
        BpeTokenizer::vocab_size(self)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.token_id(token)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.token_text(id)
    }

    fn eot_token(&self) -> Option<u32> {
        self.specials.eot()
    }

    /// Writes `tokenizer.json` and, for tools that want GPT-2's layout, `vocab.json` +
    /// `merges.txt` (which cannot mark special tokens; they are re-inferred on load).
    fn save(&self, dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| TokenizeError::io(dir, e))?;
        crate::formats::tokenizer_json::write(self, dir)?;
        crate::formats::vocab_merges::write(self, dir)
    }
}

impl BpeTokenizer {
    /// Loads GPT-2-style `vocab.json` + `merges.txt`.
    pub fn from_vocab_merges(
        vocab: impl AsRef<std::path::Path>,
        merges: impl AsRef<std::path::Path>,
    ) -> Result<Self> {
        crate::formats::vocab_merges::read(vocab.as_ref(), merges.as_ref())
    }

    /// Loads a byte-level BPE `tokenizer.json`.
    pub fn from_tokenizer_json(path: impl AsRef<std::path::Path>) -> Result<Self> {
        crate::formats::tokenizer_json::read(path.as_ref())
    }

    /// The `tokenizer.json` text of this tokenizer.
    pub fn to_tokenizer_json(&self) -> String {
        crate::formats::tokenizer_json::to_json(self)
    }
}

impl std::fmt::Debug for BpeTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpeTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("merges", &self.merge_list.len())
            .field("specials", &self.specials)
            .finish_non_exhaustive()
    }
}

/// One flag per token, written at most once per token from any thread (all writers
/// store the same answer, so relaxed atomics suffice).
struct WholeFlags(Vec<AtomicU8>);

impl WholeFlags {
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;

    fn new(n: usize, init: impl Fn(u32) -> u8) -> Self {
        WholeFlags((0..n as u32).map(|id| AtomicU8::new(init(id))).collect())
    }

    #[inline(always)]
    fn get(&self, id: u32) -> u8 {
        self.0[id as usize].load(Ordering::Relaxed)
    }

    #[inline]
    fn learn(&self, id: u32, whole: bool) {
        let _ = self.0[id as usize].compare_exchange(
            Self::UNKNOWN,
            if whole { Self::YES } else { Self::NO },
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

impl Clone for WholeFlags {
    fn clone(&self) -> Self {
        WholeFlags(
            self.0
                .iter()
                .map(|f| AtomicU8::new(f.load(Ordering::Relaxed)))
                .collect(),
        )
    }
}
