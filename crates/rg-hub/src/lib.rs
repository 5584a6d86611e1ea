//! `rg-hub`: turns a `--model` argument into a loaded GPT-2 model and its tokenizer.
//!
//! A model is named by a local directory (Hugging Face layout: `config.json`,
//! `model.safetensors` or a sharded `model.safetensors.index.json` with its shards,
//! `tokenizer.json` or `vocab.json` + `merges.txt`), by one of our checkpoints or a
//! training run's output directory, or by a Hugging Face Hub id (`gpt2`,
//! `gpt2-medium`, `gpt2-large`, `gpt2-xl`, `distilgpt2`, `owner/name[@revision]`).
//! An existing directory wins over a hub id.
//!
//! - [`resolve_model`] finds the files ([`ModelFiles`]). Hub models come from the
//!   Hugging Face cache (`HF_HUB_CACHE`, `HF_HOME`, `~/.cache/huggingface/hub`), read
//!   directly; a model not cached is downloaded with `hf-hub` (feature `download`,
//!   on by default) unless [`HubOptions::offline`] / `HF_HUB_OFFLINE` forbid it or the
//!   hub does not answer within a few seconds, in which case the error says what to
//!   download.
//! - [`load_model`] / [`load_model_with_dtype`] build the [`rg_gpt::Gpt`] and the
//!   tokenizer, as [`LoadedModel`]; [`load_weights`] reads the tensors alone.
//!   Weights may be stored in f32, f16 or bf16 and loaded as f32 or kept in bf16
//!   (when the device can compute in bf16).
//! - Every failure is a [`HubError`] naming the spec, the file and the field.
//!
//! Files: `spec.rs` (what an argument names), `options.rs`, `cache.rs` (cache layout),
//! `files.rs` (a model directory's files), `index.rs` (shard index), `resolve.rs`,
//! `network.rs` (reachability check) and `download.rs` (hf-hub), `weights.rs`,
//! `load.rs`, `error.rs`.

mod cache;
#[cfg(feature = "download")]
mod download;
mod error;
mod files;
mod index;
mod load;
#[cfg(feature = "download")]
mod network;
mod options;
mod resolve;
mod spec;
mod weights;

pub use cache::{cached_snapshot, repo_folder};
pub use error::{HubError, Result};
pub use files::{ModelFiles, ModelSource, TokenizerFiles, WeightFiles};
pub use index::{ShardIndex, INDEX_FILE};
pub use load::{load_model, load_model_files, load_model_with_dtype};
pub use options::{HubOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_ENDPOINT};
pub use resolve::resolve_model;
pub use rg_gpt::checkpoint::LoadedModel;
pub use spec::{HubId, ModelSpec, HUB_ALIASES};
pub use weights::{check_compute, load_weights, SUPPORTED_WEIGHT_DTYPES};
