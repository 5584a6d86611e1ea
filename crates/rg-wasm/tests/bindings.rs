//! The JavaScript API, in a real browser under `wasm-bindgen-test` (and natively as
//! plain tests): a model built from bytes generates what `rg_gpt::generate` generates
//! for the same model, settings are checked, and the addition trainer trains.
//!
//! Browser: `cargo test -p rg-wasm --target wasm32-unknown-unknown` with
//! `wasm-bindgen-test-runner` as the runner and `CHROMEDRIVER` set (see `.ci/run`).

use std::collections::BTreeMap;

use rg_core::Device;
use rg_gpt::generate::{generate, GenerateOptions, Sampling};
use rg_gpt::{Gpt, GptConfig};
use rg_io::{serialize_safetensors, StoredDType, TensorEntry};
use rg_nn::Module;
use rg_tokenize::CharTokenizer;
use rg_wasm::{AdditionTrainer, GenerateSettings, WasmModel};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const TEXT: &str = "the quick brown fox jumps over the lazy dog.\n";

/// A small random model and its char tokenizer, as `config.json`, safetensors bytes
/// (Hugging Face names) and `char_tokenizer.json`.
fn tiny_model_files() -> (String, Vec<u8>, String, Gpt) {
    rg_cpu::register();
    let tokenizer = CharTokenizer::from_text(TEXT, &[]);
    let config = GptConfig {
        vocab_size: rg_tokenize::Tokenizer::vocab_size(&tokenizer),
        block_size: 24,
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        layer_norm_eps: 1e-5,
        dropout: 0.0,
    };
    let model = Gpt::init(config.clone(), 7, Device::Cpu).unwrap();
    let params = model.named_params();
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .iter()
        .map(|(name, var)| {
            let t = var.tensor();
            let bytes = t
                .to_f64_vec()
                .unwrap()
                .into_iter()
                .flat_map(|v| (v as f32).to_le_bytes())
                .collect();
            (format!("transformer.{name}"), t.dims().to_vec(), bytes)
        })
        .collect();
    let entries = data
        .iter()
        .map(|(n, s, b)| TensorEntry::new(n.as_str(), StoredDType::F32, s.clone(), b.as_slice()));
    let bytes = serialize_safetensors(entries, &BTreeMap::new()).unwrap();
    (
        config.to_hf_json().to_string(),
        bytes,
        tokenizer.to_json(),
        model,
    )
}

fn load(config: &str, bytes: Vec<u8>, char_json: &str, dtype: &str) -> WasmModel {
    WasmModel::new(
        config,
        bytes,
        None,
        None,
        None,
        Some(char_json.to_string()),
        dtype,
    )
    .unwrap_or_else(|_| panic!("loading the {dtype} model failed"))
}

#[wasm_bindgen_test]
fn streamed_greedy_ids_equal_the_library_generate() {
    let (config, bytes, char_json, reference) = tiny_model_files();
    let model = load(&config, bytes, &char_json, "f32");
    let prompt = "the lazy ";
    let mut settings = GenerateSettings::new();
    settings.temperature = 0.0;
    settings.max_new_tokens = 30; // past the context of 24: the window slides
    let mut session = model
        .generate(prompt, &settings)
        .unwrap_or_else(|_| panic!("generate"));
    let mut streamed = Vec::new();
    while let Some(id) = session
        .next_token()
        .unwrap_or_else(|_| panic!("next_token"))
    {
        streamed.push(id);
    }
    let prompt_ids = model.encode(prompt);
    let options = GenerateOptions {
        max_new_tokens: 30,
        sampling: Sampling::greedy(),
        ..GenerateOptions::default()
    };
    let expected = generate(&reference, &prompt_ids, &options, |_| Ok(true)).unwrap();
    assert_eq!(session.prompt_ids(), prompt_ids);
    assert_eq!(streamed, expected.generated_ids);
    assert_eq!(session.generated_ids(), streamed);
    assert_eq!(streamed.len(), 30);
    assert!(session.decode_tokens_per_s() > 0.0);
    let text = session.text().unwrap_or_else(|_| panic!("text"));
    assert_eq!(
        text.chars().count(),
        30,
        "one character per token: {text:?}"
    );
}

#[wasm_bindgen_test]
fn sampling_with_a_seed_repeats_and_matches_the_library() {
    let (config, bytes, char_json, reference) = tiny_model_files();
    let model = load(&config, bytes, &char_json, "f32");
    let mut settings = GenerateSettings::new();
    settings.temperature = 0.9;
    settings.top_k = Some(5);
    settings.top_p = Some(0.9);
    settings.repetition_penalty = 1.2;
    settings.seed = 42.0;
    settings.max_new_tokens = 12;
    let run = |model: &WasmModel| {
        let mut s = model
            .generate("fox", &settings)
            .unwrap_or_else(|_| panic!("generate"));
        while s.next_token().unwrap_or_else(|_| panic!("next")).is_some() {}
        s.generated_ids()
    };
    let first = run(&model);
    assert_eq!(first, run(&model));
    let options = GenerateOptions {
        max_new_tokens: 12,
        sampling: Sampling {
            temperature: 0.9,
            top_k: Some(5),
            top_p: Some(0.9),
            repetition_penalty: 1.2,
            seed: 42,
        },
        ..GenerateOptions::default()
    };
    let expected = generate(&reference, &model.encode("fox"), &options, |_| Ok(true)).unwrap();
    assert_eq!(first, expected.generated_ids);
}

#[wasm_bindgen_test]
fn bf16_weights_load_and_generate() {
    let (config, bytes, char_json, _) = tiny_model_files();
    let model = load(&config, bytes, &char_json, "bf16");
    let mut settings = GenerateSettings::new();
    settings.temperature = 0.0;
    settings.max_new_tokens = 5;
    let mut s = model
        .generate("dog", &settings)
        .unwrap_or_else(|_| panic!("generate"));
    let mut n = 0;
    while s.next_token().unwrap_or_else(|_| panic!("next")).is_some() {
        n += 1;
    }
    assert_eq!(n, 5);
    assert!(model.param_count() > 0.0);
    assert_eq!(model.context_length(), 24);
}

#[wasm_bindgen_test]
fn addition_trainer_lowers_the_loss_and_answers() {
    let mut trainer = AdditionTrainer::new(20, 1337).unwrap_or_else(|_| panic!("trainer"));
    let losses: Vec<f64> = (0..20)
        .map(|_| trainer.train_step().unwrap_or_else(|_| panic!("step")))
        .collect();
    assert!(losses.iter().all(|l| l.is_finite()));
    // 13 symbols: an untrained model is near ln 13 = 2.56.
    assert!(
        (losses[0] - 13f64.ln()).abs() < 0.5,
        "first loss {}",
        losses[0]
    );
    assert!(losses[19] < losses[0] - 0.3, "{losses:?}");
    assert_eq!(trainer.step_count(), 20);
    let answer = trainer
        .answer(123, 456)
        .unwrap_or_else(|_| panic!("answer"));
    assert!(
        answer.len() <= 4 && answer.chars().all(|c| c.is_ascii_digit()),
        "{answer:?}"
    );
}

/// Errors reach JavaScript as exceptions naming what is wrong (JsError needs a
/// JavaScript engine, so this runs in the browser only).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test]
fn bad_input_is_a_named_error() {
    use wasm_bindgen::JsValue;
    let message = |e: wasm_bindgen::JsError| js_sys_message(JsValue::from(e));
    let (config, bytes, char_json, _) = tiny_model_files();
    let e = WasmModel::new(
        &config,
        bytes.clone(),
        None,
        None,
        None,
        Some(char_json.clone()),
        "f16",
    )
    .err()
    .expect("f16 is refused");
    assert!(message(e).contains("dtype"));
    let e = WasmModel::new(
        &config,
        bytes[..100].to_vec(),
        None,
        None,
        None,
        Some(char_json.clone()),
        "f32",
    )
    .err()
    .expect("truncated weights are refused");
    assert!(message(e).contains("model.safetensors"));
    let e = WasmModel::new(&config, bytes, None, None, None, None, "f32")
        .err()
        .expect("no tokenizer is refused");
    assert!(message(e).contains("tokenizer"));
    let mut trainer = AdditionTrainer::new(1, 1).unwrap_or_else(|_| panic!("trainer"));
    trainer.train_step().unwrap_or_else(|_| panic!("step"));
    assert!(message(trainer.train_step().expect_err("past the steps")).contains("steps"));
}

/// The `message` of a JavaScript Error value.
#[cfg(target_arch = "wasm32")]
fn js_sys_message(v: wasm_bindgen::JsValue) -> String {
    #[wasm_bindgen::prelude::wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_name = String)]
        fn js_string(v: &wasm_bindgen::JsValue) -> String;
    }
    js_string(&v)
}
