#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use rg_core::{Device, Tensor};
use rg_gpt::{Gpt, GptConfig};
use rg_io::SafeTensorsFile;

pub mod grad_parity;

/// `../shared` (or `$RG_SHARED_DIR`); `None` with a printed reason when it is absent,
/// a failure when `CI` is set.
pub fn shared_dir() -> Option<PathBuf> {
    rg_core::shared_data::shared_dir_or_skip("fixtures/gpt2-tiny")
}

pub fn fixture_dir(shared: &std::path::Path) -> PathBuf {
    shared.join("fixtures/gpt2-tiny")
}

pub fn load_json(path: PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

pub fn load_tensors(path: PathBuf) -> HashMap<String, Tensor> {
    let file = SafeTensorsFile::open(path).unwrap();
    file.names()
        .map(|n| (n.to_string(), file.tensor(n, &Device::Cpu).unwrap()))
        .collect()
}

pub fn load_fixture_model(shared: &std::path::Path) -> Gpt {
    let dir = fixture_dir(shared).join("model");
    let config = GptConfig::from_hf_json(&load_json(dir.join("config.json"))).unwrap();
    Gpt::from_tensors(config, load_tensors(dir.join("model.safetensors"))).unwrap()
}

/// The first 20,000 characters of Tiny Shakespeare in GPT-2 tokens.
pub fn fixture_tokens(shared: &std::path::Path) -> Vec<u32> {
    let text = std::fs::read_to_string(shared.join("data/tinyshakespeare.txt")).unwrap();
    let head: String = text.chars().take(20_000).collect();
    let tok = rg_tokenize::load_tokenizer(fixture_dir(shared).join("model")).unwrap();
    tok.encode(&head)
}
