//! `../shared/fixtures/gpt2-tiny` on CUDA in f32 with the CPU parity test's
//! tolerances: last-position logits against transformers, step-0 gradients against
//! PyTorch, ten AdamW fine-tuning steps (loss and gradient norm per step). And the
//! same model entirely in bf16 (parameters, activations, AdamW state; every kernel in
//! its bf16 form): each of the ten losses within 0.05 of PyTorch's f32 run.

mod common;
#[path = "../../rg-gpt/tests/common/grad_parity.rs"]
mod grad_parity;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::cuda_or_skip;
use rg_core::{DType, Device, Tensor};
use rg_gpt::{Gpt, GptConfig};
use rg_io::SafeTensorsFile;
use rg_nn::Module;

fn shared_dir() -> Option<PathBuf> {
    rg_core::shared_data::shared_dir_or_skip("fixtures/gpt2-tiny")
}

fn fixture_dir(shared: &Path) -> PathBuf {
    shared.join("fixtures/gpt2-tiny")
}

fn load_json(path: PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn load_tensors(path: PathBuf, device: &Device) -> HashMap<String, Tensor> {
    let file = SafeTensorsFile::open(path).unwrap();
    file.names()
        .map(|n| (n.to_string(), file.tensor(n, device).unwrap()))
        .collect()
}

fn load_model(shared: &Path, device: &Device) -> Gpt {
    load_model_as(shared, device, DType::F32)
}

fn load_model_as(shared: &Path, device: &Device, dtype: DType) -> Gpt {
    let dir = fixture_dir(shared).join("model");
    let config = GptConfig::from_hf_json(&load_json(dir.join("config.json"))).unwrap();
    let tensors = load_tensors(dir.join("model.safetensors"), device)
        .into_iter()
        .map(|(n, t)| (n, t.to_dtype(dtype).unwrap()))
        .collect();
    let model = Gpt::from_tensors(config, tensors).unwrap();
    assert_eq!(model.device(), *device);
    model
}

fn tokens(shared: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(shared.join("data/tinyshakespeare.txt")).unwrap();
    let head: String = text.chars().take(20_000).collect();
    rg_tokenize::load_tokenizer(fixture_dir(shared).join("model"))
        .unwrap()
        .encode(&head)
}

#[test]
fn last_position_logits_match_transformers() {
    let Some(gpu) = cuda_or_skip() else { return };
    let Some(shared) = shared_dir() else { return };
    let model = load_model(&shared, &gpu);
    let expected = load_json(fixture_dir(&shared).join("expected.json"));
    for case in expected["prompts"].as_array().unwrap() {
        let ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let t = ids.len();
        let x = Tensor::from_vec(ids, [1, t], &gpu).unwrap();
        let logits = rg_autograd::no_grad(|| model.forward(&x, None)).unwrap();
        let last = logits
            .tensor()
            .narrow(1, t - 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let head: Vec<f64> = case["last_logits_head"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (i, (a, e)) in last.iter().zip(&head).enumerate() {
            assert!(
                (*a as f64 - e).abs() < 1e-4,
                "prompt {:?} logit {i}: {a} vs {e}",
                case["prompt"]
            );
        }
        let l2: f64 = last.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        let e = case["last_logits_l2"].as_f64().unwrap();
        assert!((l2 - e).abs() / e.abs().max(1.0) < 1e-5, "l2 {l2} vs {e}");
    }
}

#[test]
fn step0_gradients_match_pytorch() {
    let Some(gpu) = cuda_or_skip() else { return };
    let Some(shared) = shared_dir() else { return };
    let model = load_model(&shared, &gpu);
    let tokens = tokens(&shared);
    let (b, t) = (2, 16);
    let x: Vec<u32> = (0..b)
        .flat_map(|r| tokens[r * t..r * t + t].to_vec())
        .collect();
    let y: Vec<u32> = (0..b)
        .flat_map(|r| tokens[r * t + 1..r * t + t + 1].to_vec())
        .collect();
    let x = Tensor::from_vec(x, [b, t], &gpu).unwrap();
    let y = Tensor::from_vec(y, [b, t], &gpu).unwrap();
    let loss = model.loss(&x, &y, None, None).unwrap();
    let train = load_json(fixture_dir(&shared).join("train.json"));
    let l = loss.tensor().to_scalar::<f32>().unwrap() as f64;
    assert!(
        (l - train["losses"][0].as_f64().unwrap()).abs() < 1e-4,
        "loss {l}"
    );
    let grads = loss.backward().unwrap();
    let reference = load_tensors(fixture_dir(&shared).join("grads.safetensors"), &Device::Cpu);
    let compared: Vec<(String, Vec<f32>, Vec<f32>)> = model
        .named_params()
        .into_iter()
        .map(|(name, var)| {
            let r = reference[&format!("transformer.{name}")]
                .to_vec::<f32>()
                .unwrap();
            let g = grads
                .get(&var)
                .unwrap_or_else(|| panic!("no gradient for {name}"))
                .to_vec::<f32>()
                .unwrap();
            (name, g, r)
        })
        .collect();
    grad_parity::assert_gradients_match_reference(&compared);
}

fn train_config() -> rg_gpt::TrainConfig {
    rg_gpt::TrainConfig {
        batch_size: 2,
        seq_len: 16,
        steps: 10,
        lr: 1e-3,
        min_lr: 0.0,
        lr_schedule: rg_gpt::ScheduleKind::Constant,
        warmup: 0,
        weight_decay: 0.1,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        grad_clip: 1.0,
        grad_accum: 1,
        seed: 0,
        eval_every: 0,
        eval_iters: 1,
        save_every: 0,
        keep_last: 0,
        precision: Default::default(),
    }
}

/// Ten steps of the fixture's fine-tuning run on `gpu` with parameters in `dtype`:
/// `(loss, grad norm)` per step.
fn fine_tune(shared: &Path, gpu: Device, dtype: DType) -> Vec<(f64, f64)> {
    use rg_gpt::data::{SamplerKind, TextData};
    use rg_gpt::Trainer;
    let model = load_model_as(shared, &gpu, dtype);
    let data = TextData::new(tokens(shared), 0.1, SamplerKind::Sequential, 0).unwrap();
    let tokenizer = rg_tokenize::load_tokenizer(fixture_dir(shared).join("model")).unwrap();
    let mut trainer = Trainer::new(model, Box::new(data), tokenizer, train_config(), None).unwrap();
    (0..10)
        .map(|_| {
            let r = trainer.step().unwrap();
            (r.loss, r.grad_norm)
        })
        .collect()
}

#[test]
fn ten_fine_tuning_steps_match_pytorch() {
    let Some(gpu) = cuda_or_skip() else { return };
    let Some(shared) = shared_dir() else { return };
    let train = load_json(fixture_dir(&shared).join("train.json"));
    for (k, (loss, grad_norm)) in fine_tune(&shared, gpu, DType::F32).into_iter().enumerate() {
        let expected = train["losses"][k].as_f64().unwrap();
        let norm = train["grad_norms_before_clip"][k].as_f64().unwrap();
        assert!(
            (loss - expected).abs() < 1e-4,
            "step {k}: loss {loss} vs {expected}"
        );
        assert!(
            (grad_norm - norm).abs() < 1e-4 * norm.max(1.0),
            "step {k}: grad norm {grad_norm} vs {norm}"
        );
    }
}

#[test]
fn ten_bf16_fine_tuning_steps_stay_within_0_05_of_pytorch() {
    let Some(gpu) = cuda_or_skip() else { return };
    let Some(shared) = shared_dir() else { return };
    let train = load_json(fixture_dir(&shared).join("train.json"));
    for (k, (loss, _)) in fine_tune(&shared, gpu, DType::BF16).into_iter().enumerate() {
        let expected = train["losses"][k].as_f64().unwrap();
        assert!(
            (loss - expected).abs() <= 0.05,
            "bf16 step {k}: loss {loss} vs {expected}"
        );
    }
}
