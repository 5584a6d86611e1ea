//! [`ModelFiles`]: the files of one model directory, found and checked for presence
//! (nothing is parsed but the shard index).

use std::path::{Path, PathBuf};

use rg_gpt::checkpoint::{CONFIG_FILE, MODEL_FILE};
use rg_tokenize::CHAR_TOKENIZER_FILE;

use crate::index::{ShardIndex, INDEX_FILE};
use crate::{HubError, HubId, Result};

/// Where a model's directory came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A directory the user named (a Hugging Face layout or one of our checkpoints).
    Local,
    /// The newest complete checkpoint of a training run's output directory.
    LatestCheckpoint { run_dir: PathBuf },
    /// A snapshot already in the Hugging Face cache.
    HubCache { id: HubId },
    /// A snapshot this call downloaded into the cache.
    Downloaded { id: HubId },
}

/// The weights: one safetensors file, or shards listed by an index.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightFiles {
    Single(PathBuf),
    Sharded {
        index: ShardIndex,
        /// Every distinct shard, sorted by name; all exist.
        shards: Vec<PathBuf>,
    },
}

/// The tokenizer files, in the order `rg_tokenize::load_tokenizer` prefers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerFiles {
    /// Hugging Face's `tokenizer.json`.
    TokenizerJson(PathBuf),
    /// GPT-2's `vocab.json` + `merges.txt`.
    VocabMerges { vocab: PathBuf, merges: PathBuf },
    /// Our character tokenizer.
    Char(PathBuf),
}

/// A model directory whose config, weights and tokenizer files all exist.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    /// The `--model` argument this was resolved from (used in error messages).
    pub spec: String,
    pub source: ModelSource,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub weights: WeightFiles,
    pub tokenizer: TokenizerFiles,
}

impl ModelFiles {
    /// Finds the files of the model directory `dir`. A training run's output
    /// directory (no `config.json`, a `checkpoints/` folder) stands for its newest
    /// complete checkpoint. Optimizer and trainer state files are ignored.
    pub fn from_dir(spec: &str, dir: &Path, source: ModelSource) -> Result<ModelFiles> {
        if !dir.join(CONFIG_FILE).is_file() {
            if let Some(checkpoint) = latest_checkpoint(spec, dir)? {
                let source = ModelSource::LatestCheckpoint {
                    run_dir: dir.to_path_buf(),
                };
                return ModelFiles::from_dir(spec, &checkpoint, source);
            }
        }
        let missing = |what: &str| HubError::MissingFile {
            spec: spec.to_string(),
            dir: dir.to_path_buf(),
            what: what.to_string(),
        };
        let config = dir.join(CONFIG_FILE);
        if !config.is_file() {
            return Err(missing("config.json"));
        }
        let weights = weight_files(spec, dir).map_err(|e| match e {
            WeightLookup::Missing(what) => missing(&what),
            WeightLookup::Other(e) => e,
        })?;
        let tokenizer = tokenizer_files(dir).ok_or_else(|| {
            missing(&format!(
                "tokenizer (tokenizer.json, vocab.json + merges.txt, or {CHAR_TOKENIZER_FILE})"
            ))
        })?;
        Ok(ModelFiles {
            spec: spec.to_string(),
            source,
            dir: dir.to_path_buf(),
            config,
            weights,
            tokenizer,
        })
    }

    /// Every file the model is read from.
    pub fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.config.as_path()];
        match &self.weights {
            WeightFiles::Single(p) => paths.push(p),
            WeightFiles::Sharded { index, shards } => {
                paths.push(&index.path);
                paths.extend(shards.iter().map(PathBuf::as_path));
            }
        }
        match &self.tokenizer {
            TokenizerFiles::TokenizerJson(p) | TokenizerFiles::Char(p) => paths.push(p),
            TokenizerFiles::VocabMerges { vocab, merges } => {
                paths.push(vocab);
                paths.push(merges);
            }
        }
        paths
    }
}

enum WeightLookup {
    Missing(String),
    Other(HubError),
}

fn weight_files(spec: &str, dir: &Path) -> std::result::Result<WeightFiles, WeightLookup> {
    let single = dir.join(MODEL_FILE);
    if single.is_file() {
        return Ok(WeightFiles::Single(single));
    }
    let index_path = dir.join(INDEX_FILE);
    if index_path.is_file() {
        let index = ShardIndex::read(spec, &index_path).map_err(WeightLookup::Other)?;
        let shards = index.shard_paths(spec).map_err(WeightLookup::Other)?;
        return Ok(WeightFiles::Sharded { index, shards });
    }
    let other_formats: Vec<&str> = ["pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"]
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect();
    let mut what = format!("weights ({MODEL_FILE} or {INDEX_FILE})");
    if !other_formats.is_empty() {
        what.push_str(&format!(
            "; only safetensors weights are supported, found {}",
            other_formats.join(", ")
        ));
    }
    Err(WeightLookup::Missing(what))
}

fn tokenizer_files(dir: &Path) -> Option<TokenizerFiles> {
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return Some(TokenizerFiles::TokenizerJson(json));
    }
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    if vocab.is_file() && merges.is_file() {
        return Some(TokenizerFiles::VocabMerges { vocab, merges });
    }
    let char_file = dir.join(CHAR_TOKENIZER_FILE);
    char_file
        .is_file()
        .then_some(TokenizerFiles::Char(char_file))
}

fn latest_checkpoint(spec: &str, dir: &Path) -> Result<Option<PathBuf>> {
    rg_gpt::retention::latest_checkpoint(dir).map_err(|e| HubError::gpt(spec, e))
}
