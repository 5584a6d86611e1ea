//! `model.safetensors.index.json`: the `weight_map` of a sharded checkpoint, from
//! tensor name to the shard file that holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{HubError, Result};

/// The file naming the shards of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

#[derive(Debug, Clone, PartialEq)]
pub struct ShardIndex {
    /// The index file.
    pub path: PathBuf,
    /// Tensor name -> shard file name (a plain name in the index's directory).
    pub weight_map: BTreeMap<String, String>,
}

impl ShardIndex {
    /// Reads and checks the index at `path`: valid JSON, a non-empty `weight_map`
    /// object whose values are plain file names.
    pub fn read(spec: &str, path: &Path) -> Result<ShardIndex> {
        let text =
            std::fs::read_to_string(path).map_err(|e| HubError::io(spec, path, "read", e))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| HubError::bad_index(spec, path, "(file)", format!("invalid JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .ok_or_else(|| HubError::bad_index(spec, path, "weight_map", "missing"))?
            .as_object()
            .ok_or_else(|| {
                HubError::bad_index(spec, path, "weight_map", "not an object of tensor -> shard")
            })?;
        if map.is_empty() {
            return Err(HubError::bad_index(spec, path, "weight_map", "is empty"));
        }
        let mut weight_map = BTreeMap::new();
        for (tensor, shard) in map {
            let field = || format!("weight_map[{tensor:?}]");
            let shard = shard.as_str().ok_or_else(|| {
                HubError::bad_index(spec, path, field(), "not a string (a shard file name)")
            })?;
            if !is_plain_file_name(shard) {
                return Err(HubError::bad_index(
                    spec,
                    path,
                    field(),
                    format!("{shard:?} is not a file name in the index's directory"),
                ));
            }
            weight_map.insert(tensor.clone(), shard.to_string());
        }
        Ok(ShardIndex {
            path: path.to_path_buf(),
            weight_map,
        })
    }

    /// The distinct shard names, sorted.
    pub fn shard_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.weight_map.values().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The shard files beside the index; a shard that does not exist is an error
    /// naming it and one of its tensors.
    pub fn shard_paths(&self, spec: &str) -> Result<Vec<PathBuf>> {
        let dir = self.path.parent().unwrap_or(Path::new(""));
        self.shard_names()
            .into_iter()
            .map(|shard| {
                let path = dir.join(shard);
                if path.is_file() {
                    return Ok(path);
                }
                let mut tensors = self.weight_map.iter().filter(|(_, s)| *s == shard);
                Err(HubError::MissingShard {
                    spec: spec.to_string(),
                    index: self.path.clone(),
                    shard: shard.to_string(),
                    example: tensors.next().map(|(t, _)| t.clone()).unwrap_or_default(),
                    count: 1 + tensors.count(),
                })
            })
            .collect()
    }
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !Path::new(name).is_absolute()
}
