//! Fetching a model's files into the Hugging Face cache with `hf-hub` (feature
//! `download`). Only what loading needs is fetched: `config.json`, the safetensors
//! weights (one file, or the index and its shards) and one tokenizer.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::api::RepoInfo;
use hf_hub::{Cache, Repo, RepoType};
use rg_gpt::checkpoint::{CONFIG_FILE, MODEL_FILE};

use crate::index::{ShardIndex, INDEX_FILE};
use crate::{HubError, HubId, HubOptions, Result};

/// Limit on the repository listing request (downloads themselves may take longer).
const INFO_TIMEOUT: Duration = Duration::from_secs(30);

/// Downloads what `id` needs into `cache` (skipping files already there) and returns
/// the snapshot directory holding them.
pub fn download(spec: &str, id: &HubId, options: &HubOptions, cache: &Path) -> Result<PathBuf> {
    let hub_error = |msg: String| HubError::Hub {
        spec: spec.to_string(),
        repo: id.repo.clone(),
        msg,
    };
    let mut builder = ApiBuilder::from_cache(Cache::new(cache.to_path_buf()))
        .with_endpoint(options.endpoint())
        .with_progress(options.progress);
    if let Some(token) = std::env::var("HF_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        builder = builder.with_token(Some(token.trim().to_string()));
    }
    let api = builder
        .build()
        .map_err(|e| hub_error(describe(&e, "set up the client")))?;
    let repo = api.repo(Repo::with_revision(
        id.repo.clone(),
        RepoType::Model,
        id.revision.clone(),
    ));

    let info: RepoInfo = repo
        .info_request()
        .timeout(INFO_TIMEOUT)
        .call()
        .map_err(|e| hub_error(describe_request(&e, "list its files")))?
        .into_json()
        .map_err(|e| hub_error(format!("cannot read the file listing: {e}")))?;
    let listed: HashSet<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();

    let get = |file: &str| -> Result<PathBuf> {
        repo.get(file)
            .map_err(|e| hub_error(describe(&e, &format!("download {file}"))))
    };
    if !listed.contains(CONFIG_FILE) {
        return Err(hub_error(format!("the repository has no {CONFIG_FILE}")));
    }
    let config = get(CONFIG_FILE)?;
    if listed.contains(MODEL_FILE) {
        get(MODEL_FILE)?;
    } else if listed.contains(INDEX_FILE) {
        let index = ShardIndex::read(spec, &get(INDEX_FILE)?)?;
        for shard in index.shard_names() {
            get(shard)?;
        }
    } else {
        let mut found: Vec<&str> = listed
            .iter()
            .copied()
            .filter(|f| f.ends_with(".bin") || f.ends_with(".h5") || f.ends_with(".msgpack"))
            .collect();
        found.sort_unstable();
        return Err(hub_error(format!(
            "no safetensors weights ({MODEL_FILE} or {INDEX_FILE}); only safetensors are \
             supported (the repository has: {})",
            if found.is_empty() {
                "no weights".to_string()
            } else {
                found.join(", ")
            }
        )));
    }
    if listed.contains("tokenizer.json") {
        get("tokenizer.json")?;
    } else if listed.contains("vocab.json") && listed.contains("merges.txt") {
        get("vocab.json")?;
        get("merges.txt")?;
    } else {
        return Err(hub_error(
            "no tokenizer (tokenizer.json or vocab.json + merges.txt)".into(),
        ));
    }
    Ok(config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cache.to_path_buf()))
}

fn describe(e: &ApiError, action: &str) -> String {
    match e {
        ApiError::RequestError(request) => describe_request(request, action),
        other => format!("cannot {action}: {other}"),
    }
}

fn describe_request(e: &ureq::Error, action: &str) -> String {
    match e {
        ureq::Error::Status(401 | 403, _) => format!(
            "cannot {action}: access denied (a gated or private model); log in with \
             `huggingface-cli login` or set HF_TOKEN"
        ),
        ureq::Error::Status(404, _) => {
            format!("cannot {action}: no such model, revision or file on the hub")
        }
        ureq::Error::Status(code, _) => format!("cannot {action}: the hub answered HTTP {code}"),
        ureq::Error::Transport(t) => format!("cannot {action}: network error: {t}"),
    }
}
