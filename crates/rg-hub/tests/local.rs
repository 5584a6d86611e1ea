//! Local model directories: Hugging Face layout, our checkpoints and run directories,
//! and clear errors for what is missing or unsupported.

mod common;

use common::*;
use rg_core::Device;
use rg_cpu as _;
use rg_hub::{load_model, resolve_model, HubOptions, ModelSource, TokenizerFiles, WeightFiles};

/// Options that would fail loudly if anything reached for the network.
fn no_network() -> HubOptions {
    HubOptions::offline_cache("/nonexistent/hf-cache")
}

#[test]
fn local_directory_loads_the_fixture() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_model(&shared, &tmp.path().join("m"), ALL_FILES);
    let spec = dir.to_str().unwrap();

    let files = resolve_model(spec, &no_network()).unwrap();
    assert_eq!(files.source, ModelSource::Local);
    assert_eq!(files.dir, dir);
    assert_eq!(
        files.weights,
        WeightFiles::Single(dir.join("model.safetensors"))
    );
    assert_eq!(
        files.tokenizer,
        TokenizerFiles::TokenizerJson(dir.join("tokenizer.json"))
    );

    let loaded = load_model(spec, &Device::Cpu, &no_network()).unwrap();
    assert_eq!(loaded.model.config().n_layer, 2);
    assert_eq!(loaded.dir, dir);
    assert_matches_fixture(&shared, &loaded.model);
    let prompt = &expected(&shared)["prompts"][0];
    let ids: Vec<u64> = loaded
        .tokenizer
        .encode(prompt["prompt"].as_str().unwrap())
        .into_iter()
        .map(u64::from)
        .collect();
    let want: Vec<u64> = prompt["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(ids, want);
}

#[test]
fn vocab_and_merges_are_enough_for_the_tokenizer() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_model(
        &shared,
        tmp.path(),
        &[
            "config.json",
            "model.safetensors",
            "vocab.json",
            "merges.txt",
        ],
    );
    let files = resolve_model(dir.to_str().unwrap(), &no_network()).unwrap();
    assert!(matches!(
        files.tokenizer,
        TokenizerFiles::VocabMerges { .. }
    ));
    let loaded = load_model(dir.to_str().unwrap(), &Device::Cpu, &no_network()).unwrap();
    assert_eq!(
        loaded.tokenizer.encode("Hello, my name is"),
        [15496, 11, 616, 1438, 318]
    );
}

#[test]
fn checkpoints_and_run_directories_load() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let old = copy_model(
        &shared,
        &run.join("checkpoints/step-000010"),
        &["config.json"],
    );
    let ckpt = copy_model(&shared, &run.join("checkpoints/step-000020"), ALL_FILES);
    // Training state beside the model is ignored.
    std::fs::write(ckpt.join("trainer_state.json"), "{\"step\": 20}").unwrap();
    std::fs::write(ckpt.join("optimizer.safetensors"), b"not read").unwrap();

    let files = resolve_model(run.to_str().unwrap(), &no_network()).unwrap();
    assert_eq!(
        files.dir,
        ckpt,
        "the newest checkpoint, not {}",
        old.display()
    );
    assert_eq!(
        files.source,
        ModelSource::LatestCheckpoint {
            run_dir: run.clone()
        }
    );

    let loaded = load_model(ckpt.to_str().unwrap(), &Device::Cpu, &no_network()).unwrap();
    assert_matches_fixture(&shared, &loaded.model);
}

#[test]
fn missing_files_are_named() {
    let Some(shared) = shared_dir() else { return };
    let cases: &[(&[&str], &str)] = &[
        (&["model.safetensors", "tokenizer.json"], "no config.json"),
        (
            &["config.json", "tokenizer.json"],
            "no weights (model.safetensors or model.safetensors.index.json)",
        ),
        (
            &["config.json", "model.safetensors", "vocab.json"],
            "no tokenizer",
        ),
    ];
    for (files, want) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_model(&shared, tmp.path(), files);
        let spec = dir.to_str().unwrap();
        let err = err_of(resolve_model(spec, &no_network()));
        assert!(err.contains(want), "{err}");
        assert!(
            err.starts_with(&format!("model {spec:?}: {}", dir.display())),
            "{err}"
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_model(&shared, tmp.path(), &["config.json", "tokenizer.json"]);
    std::fs::write(dir.join("pytorch_model.bin"), b"pickle").unwrap();
    let err = err_of(resolve_model(dir.to_str().unwrap(), &no_network()));
    assert!(
        err.contains("only safetensors weights are supported, found pytorch_model.bin"),
        "{err}"
    );

    let err = err_of(resolve_model(
        tmp.path().join("absent").to_str().unwrap(),
        &no_network(),
    ));
    assert!(err.contains("does not exist"), "{err}");
    let err = err_of(resolve_model(
        dir.join("config.json").to_str().unwrap(),
        &no_network(),
    ));
    assert!(err.contains("is a file"), "{err}");
}

#[test]
fn unsupported_model_type_is_rejected_listing_the_supported_ones() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_model(&shared, tmp.path(), ALL_FILES);
    let config_path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["model_type"] = "llama".into();
    std::fs::write(&config_path, config.to_string()).unwrap();

    let spec = dir.to_str().unwrap();
    let err = err_of(load_model(spec, &Device::Cpu, &no_network()));
    assert!(err.contains(&format!("model {spec:?}")), "{err}");
    assert!(err.contains(&config_path.display().to_string()), "{err}");
    assert!(
        err.contains("model_type \"llama\" is not supported; supported: \"gpt2\""),
        "{err}"
    );

    config["model_type"] = "gpt2".into();
    config["activation_function"] = "relu".into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let err = err_of(load_model(spec, &Device::Cpu, &no_network()));
    assert!(err.contains("activation_function \"relu\""), "{err}");
    assert!(err.contains("supported: \"gelu_new\""), "{err}");

    std::fs::write(&config_path, "{\"model_type\": \"gpt2\"").unwrap();
    let err = err_of(load_model(spec, &Device::Cpu, &no_network()));
    assert!(err.contains("invalid JSON"), "{err}");
}

#[test]
fn weights_that_do_not_fit_the_config_name_the_file() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_model(&shared, tmp.path(), ALL_FILES);
    let config_path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["n_layer"] = 3.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let err = err_of(load_model(
        dir.to_str().unwrap(),
        &Device::Cpu,
        &no_network(),
    ));
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(err.contains("h.2."), "{err}");
}

/// distilgpt2's `config.json` as published on the hub: GPT-2 with 6 layers, plus
/// fields we ignore (labels, summary head, task parameters).
#[test]
fn distilgpt2_config_is_gpt2_with_six_layers() {
    let config = serde_json::json!({
        "_num_labels": 1,
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "id2label": {"0": "LABEL_0"},
        "initializer_range": 0.02,
        "label2id": {"LABEL_0": 0},
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": 1024,
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 6,
        "n_positions": 1024,
        "resid_pdrop": 0.1,
        "summary_activation": null,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": true,
        "summary_type": "cls_index",
        "summary_use_proj": true,
        "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
        "vocab_size": 50257
    });
    let c = rg_gpt::GptConfig::from_hf_json(&config).unwrap();
    assert_eq!(
        (c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size),
        (6, 12, 768, 1024, 50257)
    );
    assert_eq!(c.dropout, 0.0, "inference loads without dropout");
}
