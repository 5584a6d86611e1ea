//! `rg-tokenize`: the tokenizers of RustyGradients. Stands alone (no tensors).
//!
//! - [`BpeTokenizer`]: byte-level BPE with GPT-2's exact behaviour (same ids as
//!   `tokenizers` and tiktoken on any text), on our own engine: a hand-written
//!   pre-tokenization scanner, merges by rank with a heap for long pieces, and all-core
//!   encoding ([`BpeTokenizer::encode_parallel`], [`BpeTokenizer::encode_batch`]).
//!   Arbitrary bytes round-trip through [`BpeTokenizer::encode_bytes`] /
//!   [`BpeTokenizer::decode_bytes`].
//! - [`BpeTrainer`] / [`train_bpe_from_files`]: learn a vocabulary (same result as
//!   `tokenizers`' `BpeTrainer` with a byte-level alphabet).
//! - [`CharTokenizer`]: one id per character (nanoGPT's `shakespeare_char`).
//! - Files: `vocab.json` + `merges.txt`, `tokenizer.json`, our char JSON; read any with
//!   [`load_tokenizer`], write with [`Tokenizer::save`].
//! - Feature `hf`: `HfTokenizer`, the `tokenizers` crate behind the same
//!   [`Tokenizer`] trait, used by [`load_tokenizer`] for models our engine lacks.
//!
//! Layout: `pretokenize.rs` (GPT-2 pattern scanner) over `classify.rs` +
//! `unicode_tables.rs` (character classes), `byte_level.rs` (byte <-> stand-in
//! characters), `merge.rs` (applying merges), `bpe.rs` (the tokenizer), `train.rs`,
//! `char.rs`, `special.rs`, `formats/` (files), `stats.rs`, `error.rs`.

mod bpe;
mod byte_level;
mod char;
mod classify;
mod error;
mod formats;
mod hash;
#[cfg(feature = "hf")]
mod hf;
mod merge;
mod piece_key;
mod pretokenize;
mod special;
mod stats;
mod tokenizer;
mod train;
mod unicode_tables;

pub use bpe::BpeTokenizer;
pub use byte_level::{bytes_to_token_text, token_text_to_bytes};
pub use char::CharTokenizer;
pub use error::{Result, TokenizeError};
pub use formats::{load_tokenizer, tokenizer_from_texts, TokenizerTexts, CHAR_TOKENIZER_FILE};
#[cfg(feature = "hf")]
pub use hf::HfTokenizer;
pub use pretokenize::pretokenize;
pub use special::{SpecialTokens, ENDOFTEXT};
pub use stats::{stats, stats_for_files, TokenStats};
pub use tokenizer::Tokenizer;
pub use train::{train_bpe, train_bpe_from_files, BpeTrainer};
