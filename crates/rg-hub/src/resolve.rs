//! [`resolve_model`]: from a `--model` argument to the files of a model directory.

use std::path::Path;

use crate::cache::cached_snapshot;
use crate::{HubError, HubId, HubOptions, ModelFiles, ModelSource, ModelSpec, Result};

/// Finds the files of the model `spec` names:
///
/// - an existing directory: a Hugging Face model directory, one of our checkpoints,
///   or a training run's output directory (its newest checkpoint);
/// - otherwise a hub id (`gpt2`, `distilgpt2`, `owner/name`, `owner/name@revision`):
///   a complete snapshot in the cache is used as it is, without the network;
///   otherwise the files are downloaded with `hf-hub`, unless the hub is off limits
///   ([`HubOptions::offline`], `HF_HUB_OFFLINE`) or does not answer within
///   [`HubOptions::connect_timeout`], which is an error saying what to download.
pub fn resolve_model(spec: &str, options: &HubOptions) -> Result<ModelFiles> {
    match ModelSpec::parse(spec)? {
        ModelSpec::Local(dir) => ModelFiles::from_dir(spec, &dir, ModelSource::Local),
        ModelSpec::Hub(id) => resolve_hub(spec, &id, options),
    }
}

fn resolve_hub(spec: &str, id: &HubId, options: &HubOptions) -> Result<ModelFiles> {
    let cache = options.cache_dir();
    let mut incomplete = None;
    for repo in id.cache_candidates() {
        let Some(snapshot) = cached_snapshot(&cache, repo, &id.revision) else {
            continue;
        };
        let source = ModelSource::HubCache { id: id.clone() };
        match ModelFiles::from_dir(spec, &snapshot, source) {
            Ok(files) => return Ok(files),
            Err(e @ (HubError::MissingFile { .. } | HubError::MissingShard { .. })) => {
                incomplete.get_or_insert((snapshot, e));
            }
            Err(e) => return Err(e),
        }
    }
    let unreachable = |why: String| match &incomplete {
        Some((snapshot, missing)) => HubError::IncompleteCache {
            spec: spec.to_string(),
            repo: id.download_command_arg(),
            snapshot: snapshot.clone(),
            missing: missing_part(missing),
            why,
        },
        None => HubError::NotCached {
            spec: spec.to_string(),
            repo: id.download_command_arg(),
            cache: cache.clone(),
            why,
        },
    };
    if let Some(why) = options.offline_reason() {
        return Err(unreachable(why));
    }
    fetch(spec, id, options, &cache).map_err(|e| match e {
        Fetch::Unreachable(why) => unreachable(why),
        Fetch::Failed(e) => e,
    })
}

/// What a snapshot lacks, from the error that found it incomplete.
fn missing_part(e: &HubError) -> String {
    match e {
        HubError::MissingFile { what, .. } => format!("no {what}"),
        HubError::MissingShard { shard, .. } => format!("no shard {shard}"),
        other => other.to_string(),
    }
}

enum Fetch {
    /// The hub could not be reached; nothing was attempted.
    Unreachable(String),
    #[cfg_attr(not(feature = "download"), allow(dead_code))]
    Failed(HubError),
}

#[cfg(feature = "download")]
fn fetch(
    spec: &str,
    id: &HubId,
    options: &HubOptions,
    cache: &Path,
) -> std::result::Result<ModelFiles, Fetch> {
    crate::network::check_reachable(&options.endpoint(), options.connect_timeout())
        .map_err(Fetch::Unreachable)?;
    let snapshot = crate::download::download(spec, id, options, cache).map_err(Fetch::Failed)?;
    let source = ModelSource::Downloaded { id: id.clone() };
    ModelFiles::from_dir(spec, &snapshot, source).map_err(Fetch::Failed)
}

#[cfg(not(feature = "download"))]
fn fetch(
    _spec: &str,
    _id: &HubId,
    _options: &HubOptions,
    _cache: &Path,
) -> std::result::Result<ModelFiles, Fetch> {
    Err(Fetch::Unreachable(
        "rg-hub was built without its `download` feature".into(),
    ))
}
