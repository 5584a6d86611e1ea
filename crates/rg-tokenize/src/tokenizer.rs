//! The `Tokenizer` trait every tokenizer of the crate implements.

use std::path::Path;

use rayon::prelude::*;

use crate::error::Result;

/// Text <-> token ids. Object-safe: hold one as `Box<dyn Tokenizer>`
/// (see [`crate::load_tokenizer`]).
pub trait Tokenizer: Send + Sync + std::fmt::Debug {
    /// Short name of the implementation: `"bpe"`, `"char"` or `"hf"`.
    fn kind(&self) -> &'static str;

    /// Encodes text. Special tokens written in the text are ordinary text here, so
    /// untrusted input cannot produce them; see [`Tokenizer::encode_with_special`].
    fn encode(&self, text: &str) -> Vec<u32>;

    /// Encodes text, turning special tokens written in it (`<|endoftext|>`) into their ids.
    fn encode_with_special(&self, text: &str) -> Vec<u32> {
        self.encode(text)
    }

    /// Encodes one long text (a corpus file) on all cores; same ids as `encode`.
    fn encode_parallel(&self, text: &str) -> Vec<u32> {
        self.encode(text)
    }

    /// Encodes many texts on all cores.
    fn encode_batch(&self, texts: &[&str]) -> Vec<Vec<u32>> {
        texts.par_iter().map(|t| self.encode(t)).collect()
    }

    /// The exact bytes the ids stand for.
    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>>;

    /// The text the ids stand for; bytes that are not valid UTF-8 (a character cut
    /// between tokens) become U+FFFD. Unknown ids are an error.
    fn decode(&self, ids: &[u32]) -> Result<String> {
        self.decode_bytes(ids).map(utf8_lossy)
    }

    /// Number of ids (special tokens included).
    fn vocab_size(&self) -> usize;

    /// Id of a token as the vocabulary file spells it (`"Ġthe"` for byte-level BPE).
    fn token_to_id(&self, token: &str) -> Option<u32>;

    /// A token as the vocabulary file spells it.
    fn id_to_token(&self, id: u32) -> Option<String>;

    /// The end-of-text / document separator token, if the vocabulary has one.
    fn eot_token(&self) -> Option<u32>;

    /// Writes the tokenizer's files into `dir` (created if missing), in a form
    /// [`crate::load_tokenizer`] reads back.
    fn save(&self, dir: &Path) -> Result<()>;
}

/// Bytes as text, invalid UTF-8 replaced by U+FFFD (without copying valid input).
pub(crate) fn utf8_lossy(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}
