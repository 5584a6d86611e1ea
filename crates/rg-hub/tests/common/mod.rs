//! Shared helpers: the `gpt2-tiny` fixture (copied into temporary directories at test
//! time, never into the repository), fake Hugging Face caches and logits.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rg_core::{Device, Tensor};
use rg_gpt::Gpt;
use rg_io::{save_safetensors_entries, SafeTensorsFile, StoredDType, TensorEntry};

/// `../shared` (or `$RG_SHARED_DIR`) when it holds the fixture; `None` with a
/// printed reason when absent, a failure when `CI` is set.
pub fn shared_dir() -> Option<PathBuf> {
    rg_core::shared_data::shared_dir_or_skip("fixtures/gpt2-tiny/model")
}

/// Proxy variables, as `ureq` (which `hf-hub` uses) reads them. It does not read
/// `NO_PROXY`, so with any of these set a request to loopback goes to the proxy.
const PROXY_VARS: &[&str] = &[
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

/// Runs `body`, which must reach 127.0.0.1 directly, so that it runs whatever the
/// environment: here when no proxy variable is set, else in a child run of this test
/// binary (`--exact test`) with those variables removed. A child, because changing the
/// variables in this process would race with tests running on other threads.
pub fn without_proxies(test: &str, body: impl FnOnce()) {
    if !PROXY_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
        body();
        return;
    }
    let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
    command.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for var in PROXY_VARS {
        command.env_remove(var);
    }
    let out = command.output().expect("running the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{test} without proxy variables failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A name that matches no test runs nothing and still succeeds.
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{test} did not run in the child:\n{stdout}"
    );
}

/// The fixture's Hugging Face model directory.
pub fn fixture_model(shared: &Path) -> PathBuf {
    shared.join("fixtures/gpt2-tiny/model")
}

pub const ALL_FILES: &[&str] = &[
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
];

/// Copies `files` of the fixture model into a new directory `dest`.
pub fn copy_model(shared: &Path, dest: &Path, files: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dest).unwrap();
    for f in files {
        std::fs::copy(fixture_model(shared).join(f), dest.join(f)).unwrap();
    }
    dest.to_path_buf()
}

/// A Hugging Face cache under `cache` holding `files` of the fixture as `repo` at
/// `refs/main`, laid out as `hf-hub` and `huggingface_hub` write it: content in
/// `blobs/`, the snapshot made of symlinks. Returns the snapshot directory.
pub fn fake_cache(shared: &Path, cache: &Path, repo: &str, files: &[&str]) -> PathBuf {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let root = cache.join(format!("models--{}", repo.replace('/', "--")));
    let snapshot = root.join("snapshots").join(commit);
    for d in [root.join("blobs"), root.join("refs"), snapshot.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(root.join("refs/main"), commit).unwrap();
    for (i, f) in files.iter().enumerate() {
        let blob = root.join("blobs").join(format!("blob{i:04}"));
        std::fs::copy(fixture_model(shared).join(f), &blob).unwrap();
        link(&blob, &snapshot.join(f));
    }
    snapshot
}

#[cfg(unix)]
fn link(target: &Path, at: &Path) {
    std::os::unix::fs::symlink(target, at).unwrap();
}

#[cfg(not(unix))]
fn link(target: &Path, at: &Path) {
    std::fs::copy(target, at).unwrap();
}

/// (name, dtype, shape, bytes) of every fixture tensor, in file order.
pub type Entry = (String, StoredDType, Vec<usize>, Vec<u8>);

pub fn fixture_entries(shared: &Path) -> Vec<Entry> {
    let file = SafeTensorsFile::open(fixture_model(shared).join("model.safetensors")).unwrap();
    file.tensors()
        .iter()
        .map(|i| {
            (
                i.name().to_string(),
                i.dtype(),
                i.shape().to_vec(),
                file.raw_bytes(i.name()).unwrap().to_vec(),
            )
        })
        .collect()
}

pub fn write_safetensors(path: &Path, entries: &[Entry]) {
    let entries = entries
        .iter()
        .map(|(n, d, s, b)| TensorEntry::new(n.as_str(), *d, s.clone(), b.as_slice()));
    save_safetensors_entries(path, entries, &BTreeMap::new()).unwrap();
}

/// Writes `shards` as `model-0000k-of-0000n.safetensors` and an index listing
/// `weight_map` (or, when `None`, each tensor under the shard holding it).
pub fn write_sharded(
    dir: &Path,
    shards: &[Vec<Entry>],
    weight_map: Option<&BTreeMap<String, String>>,
) -> Vec<String> {
    let n = shards.len();
    let names: Vec<String> = (1..=n)
        .map(|k| format!("model-{k:05}-of-{n:05}.safetensors"))
        .collect();
    let mut map = BTreeMap::new();
    let mut total = 0;
    for (name, entries) in names.iter().zip(shards) {
        write_safetensors(&dir.join(name), entries);
        for e in entries {
            map.insert(e.0.clone(), name.clone());
            total += e.3.len();
        }
    }
    let map = weight_map.cloned().unwrap_or(map);
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&index).unwrap(),
    )
    .unwrap();
    names
}

/// Logits of the last position for `ids`.
pub fn last_logits(model: &Gpt, ids: &[u32]) -> Vec<f32> {
    let x = Tensor::from_vec(ids.to_vec(), [1, ids.len()], &Device::Cpu).unwrap();
    let y = rg_autograd::no_grad(|| model.forward(&x, None)).unwrap();
    y.tensor()
        .narrow(1, ids.len() - 1, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

pub fn expected(shared: &Path) -> serde_json::Value {
    let path = shared.join("fixtures/gpt2-tiny/expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks `model` against PyTorch's logits for every fixture prompt.
pub fn assert_matches_fixture(shared: &Path, model: &Gpt) {
    let expected = expected(shared);
    for prompt in expected["prompts"].as_array().unwrap() {
        let ids: Vec<u32> = prompt["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let logits = last_logits(model, &ids);
        let head = prompt["last_logits_head"].as_array().unwrap();
        for (i, want) in head.iter().enumerate() {
            let want = want.as_f64().unwrap() as f32;
            assert!(
                (logits[i] - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "prompt {:?}: logit {i} = {} vs {want}",
                prompt["prompt"],
                logits[i]
            );
        }
        let sum: f64 = logits.iter().map(|&v| v as f64).sum();
        let want = prompt["last_logits_sum"].as_f64().unwrap();
        assert!(
            (sum - want).abs() <= 1e-4 * (1.0 + want.abs()),
            "sum {sum} vs {want}"
        );
    }
}

/// The error message of a failed call.
pub fn err_of<T>(result: rg_hub::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}
