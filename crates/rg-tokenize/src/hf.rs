//! The Hugging Face `tokenizers` crate behind our [`Tokenizer`] trait (feature `hf`).
//!
//! For the tokenizer.json files our own engine does not run (WordPiece, Unigram,
//! normalizers, ...). It is an adapter, not the engine: byte-level BPE files load on
//! [`crate::BpeTokenizer`] unless this type is asked for explicitly.

use std::path::{Path, PathBuf};

use crate::error::{Result, TokenizeError};
use crate::special::ENDOFTEXT;
use crate::tokenizer::Tokenizer;

pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl HfTokenizer {
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| TokenizeError::Hf(format!("{}: {e}", path.display())))?;
        Ok(HfTokenizer {
            inner,
            path: path.to_path_buf(),
        })
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn encode_ids(&self, text: &str) -> Vec<u32> {
        match self.inner.encode_fast(text, false) {
            Ok(enc) => enc.get_ids().to_vec(),
            // The trait's encode cannot fail; `tokenizers` only fails on broken models
            // (e.g. a missing unk token), which loading would have shown already.
            Err(_) => Vec::new(),
        }
    }
}

impl Tokenizer for HfTokenizer {
    fn kind(&self) -> &'static str {
        "hf"
    }

    /// `tokenizers` always recognises its added tokens; so does this adapter.
    fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_ids(text)
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        self.decode(ids).map(String::into_bytes)
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        let n = self.vocab_size();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= n) {
            return Err(TokenizeError::UnknownId { id, vocab_size: n });
        }
        self.inner
            .decode(ids, false)
            .map_err(|e| TokenizeError::Hf(e.to_string()))
    }

    fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    fn eot_token(&self) -> Option<u32> {
        self.inner.token_to_id(ENDOFTEXT)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| TokenizeError::io(dir, e))?;
        let out = dir.join("tokenizer.json");
        self.inner.save(&out, true).map_err(|e| {
            TokenizeError::Hf(format!(
                "{} (from {}): {e}",
                out.display(),
                self.path.display()
            ))
        })
    }
}
