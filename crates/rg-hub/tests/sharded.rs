//! Sharded checkpoints: `model.safetensors.index.json` plus shards load exactly like
//! the single file; a missing shard, a tensor in two shards, an index that disagrees
//! with its shards and a malformed index are errors naming the file and the field.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use rg_core::Device;
use rg_cpu as _;
use rg_hub::{load_model, resolve_model, HubOptions, WeightFiles};

fn options() -> HubOptions {
    HubOptions::offline_cache("/nonexistent/hf-cache")
}

/// A model directory whose weights are the fixture split into two shards (the first
/// half of the tensors, then the rest); returns it and the shard names.
fn sharded_model(shared: &Path, tmp: &Path) -> (PathBuf, Vec<Entry>, Vec<String>) {
    let dir = copy_model(
        shared,
        &tmp.join("sharded"),
        &["config.json", "tokenizer.json"],
    );
    let entries = fixture_entries(shared);
    let (a, b) = entries.split_at(entries.len() / 2);
    let names = write_sharded(&dir, &[a.to_vec(), b.to_vec()], None);
    (dir, entries, names)
}

#[test]
fn two_shards_give_the_logits_of_the_single_file() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (dir, entries, names) = sharded_model(&shared, tmp.path());
    let spec = dir.to_str().unwrap();

    let files = resolve_model(spec, &options()).unwrap();
    let WeightFiles::Sharded { index, shards } = &files.weights else {
        panic!("{:?}", files.weights)
    };
    assert_eq!(index.weight_map.len(), entries.len());
    assert_eq!(
        shards,
        &names.iter().map(|n| dir.join(n)).collect::<Vec<_>>()
    );

    let sharded = load_model(spec, &Device::Cpu, &options()).unwrap().model;
    let single_dir = copy_model(&shared, &tmp.path().join("single"), ALL_FILES);
    let single = load_model(single_dir.to_str().unwrap(), &Device::Cpu, &options())
        .unwrap()
        .model;
    for ids in [&[15496u32, 11, 616][..], &[464, 2068, 7586, 21831]] {
        assert_eq!(last_logits(&sharded, ids), last_logits(&single, ids));
    }
    assert_matches_fixture(&shared, &sharded);
}

#[test]
fn a_missing_shard_is_named() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (dir, entries, names) = sharded_model(&shared, tmp.path());
    std::fs::remove_file(dir.join(&names[1])).unwrap();
    let err = err_of(resolve_model(dir.to_str().unwrap(), &options()));
    let first_of_shard_2 = entries[entries.len() / 2..]
        .iter()
        .map(|e| e.0.as_str())
        .min()
        .unwrap();
    assert!(err.contains("model.safetensors.index.json"), "{err}");
    assert!(
        err.contains(&format!(
            "shard {:?} (holding {} tensors, e.g. {first_of_shard_2:?}) does not exist",
            names[1],
            entries.len() - entries.len() / 2
        )),
        "{err}"
    );
}

#[test]
fn a_tensor_in_two_shards_is_an_error() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_model(&shared, tmp.path(), &["config.json", "tokenizer.json"]);
    let entries = fixture_entries(&shared);
    let (a, b) = entries.split_at(entries.len() / 2);
    let mut b = b.to_vec();
    b.push(a[0].clone());
    let names = write_sharded(&dir, &[a.to_vec(), b], None);
    let err = err_of(load_model(dir.to_str().unwrap(), &Device::Cpu, &options()));
    assert!(
        err.contains(&format!("tensor {:?} is stored in two shards", a[0].0))
            && err.contains(&names[0])
            && err.contains(&names[1]),
        "{err}"
    );
}

#[test]
fn an_index_that_disagrees_with_its_shards_is_an_error() {
    let Some(shared) = shared_dir() else { return };
    let entries = fixture_entries(&shared);
    let (a, b) = entries.split_at(entries.len() / 2);
    let shard = |k: usize| format!("model-0000{k}-of-00002.safetensors");
    let base: BTreeMap<String, String> = a
        .iter()
        .map(|e| (e.0.clone(), shard(1)))
        .chain(b.iter().map(|e| (e.0.clone(), shard(2))))
        .collect();

    let mut listed_absent = base.clone();
    listed_absent.insert("transformer.h.9.mlp.c_fc.weight".into(), shard(2));
    let mut wrong_shard = base.clone();
    wrong_shard.insert(a[1].0.clone(), shard(2));
    let mut unlisted = base.clone();
    unlisted.remove(&b[0].0);
    let cases = [
        (
            listed_absent,
            "weight_map[\"transformer.h.9.mlp.c_fc.weight\"]: shard \"model-00002-of-00002.safetensors\" has no such tensor".to_string(),
        ),
        (
            wrong_shard,
            format!("weight_map[{:?}]: says \"model-00002-of-00002.safetensors\" but the tensor is stored in model-00001-of-00002.safetensors", a[1].0),
        ),
        (
            unlisted,
            format!("weight_map: tensor {:?} is stored in model-00002-of-00002.safetensors but not listed", b[0].0),
        ),
    ];
    for (map, want) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_model(&shared, tmp.path(), &["config.json", "tokenizer.json"]);
        write_sharded(&dir, &[a.to_vec(), b.to_vec()], Some(&map));
        let spec = dir.to_str().unwrap();
        let err = err_of(load_model(spec, &Device::Cpu, &options()));
        assert!(
            err.starts_with(&format!(
                "model {spec:?}: {}: ",
                dir.join("model.safetensors.index.json").display()
            )),
            "{err}"
        );
        assert!(err.contains(&want), "{err}\nwanted: {want}");
    }
}

#[test]
fn malformed_indexes_name_the_field() {
    let Some(shared) = shared_dir() else { return };
    let cases = [
        ("{\"weight_map\": {", "(file): invalid JSON"),
        ("{\"metadata\": {}}", "weight_map: missing"),
        ("{\"weight_map\": [1, 2]}", "weight_map: not an object"),
        ("{\"weight_map\": {}}", "weight_map: is empty"),
        (
            "{\"weight_map\": {\"wte.weight\": 7}}",
            "weight_map[\"wte.weight\"]: not a string",
        ),
        (
            "{\"weight_map\": {\"wte.weight\": \"../model.safetensors\"}}",
            "weight_map[\"wte.weight\"]: \"../model.safetensors\" is not a file name",
        ),
    ];
    for (text, want) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_model(&shared, tmp.path(), &["config.json", "tokenizer.json"]);
        let index = dir.join("model.safetensors.index.json");
        std::fs::write(&index, text).unwrap();
        let spec = dir.to_str().unwrap();
        let err = err_of(resolve_model(spec, &options()));
        assert!(
            err.starts_with(&format!("model {spec:?}: {}: {want}", index.display())),
            "{err}\nwanted: {want}"
        );
    }
}

#[test]
fn sharded_hub_snapshot_resolves_from_the_cache() {
    let Some(shared) = shared_dir() else { return };
    let cache = tempfile::tempdir().unwrap();
    let snapshot = fake_cache(
        &shared,
        cache.path(),
        "me/sharded",
        &["config.json", "tokenizer.json"],
    );
    let entries = fixture_entries(&shared);
    let (a, b) = entries.split_at(entries.len() / 2);
    write_sharded(&snapshot, &[a.to_vec(), b.to_vec()], None);
    let options = HubOptions::offline_cache(cache.path());
    let loaded = load_model("me/sharded", &Device::Cpu, &options).unwrap();
    assert_matches_fixture(&shared, &loaded.model);

    // Without its second shard the snapshot is incomplete, and offline says so.
    std::fs::remove_file(snapshot.join("model-00002-of-00002.safetensors")).unwrap();
    let err = err_of(resolve_model("me/sharded", &options));
    assert!(
        err.contains("is incomplete (no shard model-00002-of-00002.safetensors)"),
        "{err}"
    );
}
