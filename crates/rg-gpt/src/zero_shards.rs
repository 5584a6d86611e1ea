//! ZeRO optimizer shards in checkpoints. Under `--zero 1` each rank holds the AdamW
//! moments of the parameters it owns, so each rank writes its own file. To keep a
//! checkpoint complete or absent, shards are first written (each atomically) into a
//! staging directory `<name>.tmp-shards` next to the checkpoint; after a barrier rank 0
//! moves them into the checkpoint's own staging directory and renames that into place.
//! The rename is the marker: a checkpoint that exists holds every rank's shard.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rg_core::{Device, Tensor};
use rg_nn::AdamW;

use crate::{GptError, Result};

/// `optimizer-rank-R-of-N.safetensors`: the world size is in the name so that a shard
/// can never be mistaken for one of a run of another size.
pub fn shard_file_name(rank: usize, world: usize) -> String {
    format!("optimizer-rank-{rank}-of-{world}.safetensors")
}

/// Where the ranks put their shards of checkpoint `final_dir` before it is committed
/// (a `.tmp-` name, so an interrupted write is removed like any other).
pub fn staging_dir(final_dir: &Path) -> PathBuf {
    let mut name = final_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp-shards");
    final_dir.with_file_name(name)
}

/// Writes this rank's moments (`<param>.exp_avg`, `<param>.exp_avg_sq`) into `staging`.
pub fn write_shard(staging: &Path, optimizer: &AdamW, rank: usize, world: usize) -> Result<()> {
    std::fs::create_dir_all(staging)
        .map_err(|e| GptError::io(staging, "create shard directory", e))?;
    let moments = optimizer.moments();
    let names: Vec<(String, String)> = moments
        .iter()
        .map(|(n, _, _)| (format!("{n}.exp_avg"), format!("{n}.exp_avg_sq")))
        .collect();
    let mut entries: Vec<(&str, &Tensor)> = Vec::with_capacity(2 * moments.len());
    for ((m_name, v_name), (_, m, v)) in names.iter().zip(&moments) {
        entries.push((m_name, m));
        entries.push((v_name, v));
    }
    let mut meta = BTreeMap::new();
    meta.insert("rank".to_string(), rank.to_string());
    meta.insert("world_size".to_string(), world.to_string());
    rg_io::save_safetensors(staging.join(shard_file_name(rank, world)), &entries, &meta)?;
    Ok(())
}

/// Moves every rank's shard from `staging` into `into` (the checkpoint being built) and
/// removes `staging`; a missing shard is an error naming its rank.
pub fn adopt_shards(staging: &Path, into: &Path, world: usize) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(world);
    for rank in 0..world {
        let name = shard_file_name(rank, world);
        let from = staging.join(&name);
        if !from.is_file() {
            return Err(GptError::bad_file(
                &from,
                format!("rank {rank}'s optimizer shard is missing after the barrier"),
            ));
        }
        std::fs::rename(&from, into.join(&name))
            .map_err(|e| GptError::io(&from, "move optimizer shard into the checkpoint", e))?;
        names.push(name);
    }
    std::fs::remove_dir_all(staging)
        .map_err(|e| GptError::io(staging, "remove shard staging directory", e))?;
    Ok(names)
}

/// The moments in the given shard files of `checkpoint`, by tensor name.
pub fn load_shards(
    checkpoint: &Path,
    files: &[String],
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut all = HashMap::new();
    for file in files {
        all.extend(crate::checkpoint::load_tensors(
            &checkpoint.join(file),
            device,
        )?);
    }
    Ok(all)
}

/// Why a checkpoint written with ZeRO by `saved_world` ranks cannot be resumed by
/// `world` ranks, if it cannot.
pub fn world_size_mismatch(saved_world: usize, world: usize) -> Option<String> {
    let ranks = |n: usize| format!("{n} rank{}", if n == 1 { "" } else { "s" });
    (saved_world != world).then(|| {
        format!(
            "written by a --zero 1 run of {}, but this run has {}: each rank saved the \
             optimizer moments of the parameters it owned, and ownership depends on the \
             world size. Resume with {} (mpirun -n {saved_world})",
            ranks(saved_world),
            ranks(world),
            ranks(saved_world)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_rank_and_world_size() {
        assert_eq!(shard_file_name(1, 4), "optimizer-rank-1-of-4.safetensors");
        assert_eq!(
            staging_dir(Path::new("/o/checkpoints/step-000005")),
            Path::new("/o/checkpoints/step-000005.tmp-shards")
        );
    }

    #[test]
    fn a_different_world_size_is_named_in_the_refusal() {
        assert!(world_size_mismatch(2, 2).is_none());
        let msg = world_size_mismatch(2, 3).unwrap();
        assert!(msg.contains("run of 2 ranks"), "{msg}");
        assert!(msg.contains("this run has 3 ranks"), "{msg}");
    }

    #[test]
    fn adopting_reports_the_missing_rank() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = tmp.path().join("s.tmp-shards");
        let into = tmp.path().join("ckpt");
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::create_dir_all(&into).unwrap();
        std::fs::write(staging.join(shard_file_name(0, 2)), b"x").unwrap();
        let err = adopt_shards(&staging, &into, 2).unwrap_err().to_string();
        assert!(err.contains("rank 1's optimizer shard is missing"), "{err}");
    }
}
