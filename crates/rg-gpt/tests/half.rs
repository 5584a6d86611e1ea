//! bf16 weights with f32 compute on `../shared/fixtures/gpt2-tiny`: the matmul weights
//! stay bf16, the rest is widened; logits stay within bf16 rounding of f32's, greedy
//! continuations equal transformers' (f32) ones, prefill and cached decode agree.

mod common;

use std::collections::HashMap;

use common::*;
use rg_core::{DType, Device, Tensor};
use rg_cpu as _;
use rg_gpt::generate::{generate, GenerateOptions, Sampling};
use rg_gpt::{Gpt, GptConfig, KvCache};

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn bf16_model(shared: &std::path::Path) -> Gpt {
    let dir = fixture_dir(shared).join("model");
    let config = GptConfig::from_hf_json(&load_json(dir.join("config.json"))).unwrap();
    let tensors: HashMap<String, Tensor> = load_tensors(dir.join("model.safetensors"))
        .into_iter()
        .map(|(n, t)| (n, t.to_dtype(DType::BF16).unwrap()))
        .collect();
    Gpt::from_tensors(config, tensors).unwrap()
}

fn last_logits(model: &Gpt, ids: &[u32]) -> Vec<f32> {
    let dev = Device::Cpu;
    let mut cache = KvCache::new(model.config(), 1, ids.len(), &dev).unwrap();
    let t = Tensor::from_vec(ids.to_vec(), [1, ids.len()], &dev).unwrap();
    let h = model.hidden_cached(&t, &mut cache).unwrap();
    let logits =
        rg_autograd::no_grad(|| model.lm_head(&h.narrow(1, ids.len() - 1, 1).unwrap())).unwrap();
    assert_eq!(logits.dtype(), DType::F32);
    logits
        .tensor()
        .flatten_all()
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn matmul_weights_stay_bf16_and_the_rest_is_f32() {
    let Some(shared) = shared_dir() else { return };
    let model = bf16_model(&shared);
    let mut seen = 0;
    rg_nn::Module::visit_params(&model, &mut |name, var| {
        let big = name == "wte.weight"
            || name.ends_with("c_attn.weight")
            || name.ends_with("c_proj.weight")
            || name.ends_with("c_fc.weight");
        let want = if big { DType::BF16 } else { DType::F32 };
        assert_eq!(var.dtype(), want, "{name}");
        seen += 1;
    });
    assert!(seen > 10);
}

#[test]
fn bf16_logits_are_close_to_f32_and_greedy_ids_match() {
    let Some(shared) = shared_dir() else { return };
    let f32_model = load_fixture_model(&shared);
    let model = bf16_model(&shared);
    let expected = load_json(fixture_dir(&shared).join("expected.json"));
    for case in expected["prompts"].as_array().unwrap() {
        let ids = ids_of(&case["ids"]);
        let (a, b) = (last_logits(&model, &ids), last_logits(&f32_model, &ids));
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        // Weights, activations and each product are rounded to bf16 (8 bits of
        // mantissa); a few roundings compound through two layers.
        assert!(
            worst <= 0.02 * scale,
            "max |bf16 - f32| = {worst}, logits up to {scale}"
        );
        let want = ids_of(&case["greedy_ids"]);
        let options = GenerateOptions {
            max_new_tokens: want.len(),
            sampling: Sampling::greedy(),
            stop_token: None,
            truncate: false,
            slide_context: true,
        };
        let got = generate(&model, &ids, &options, |_| Ok(true)).unwrap();
        assert_eq!(got.generated_ids, want, "prompt {:?}", case["prompt"]);
    }
}

#[test]
fn bf16_training_is_refused_not_silently_wrong() {
    let Some(shared) = shared_dir() else { return };
    let model = bf16_model(&shared);
    let ids = Tensor::from_vec(vec![1u32, 2, 3], [1, 3], &Device::Cpu).unwrap();
    let err = model.forward(&ids, None).unwrap_err().to_string();
    assert!(err.contains("inference only"), "{err}");
    // Without gradients the full forward works and is f32.
    let logits = rg_autograd::no_grad(|| model.forward(&ids, None)).unwrap();
    assert_eq!(logits.dtype(), DType::F32);
}
