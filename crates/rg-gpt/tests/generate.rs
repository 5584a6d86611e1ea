//! Generation on `../shared/fixtures/gpt2-tiny`: greedy ids equal transformers', the
//! KV cache gives the full recompute's logits at every step, batches equal singles.

mod common;

use common::*;
use rg_core::{Device, Tensor};
use rg_cpu as _;
use rg_gpt::generate::{generate, generate_batch, GenerateOptions, Sampling};
use rg_gpt::KvCache;

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn greedy(n: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: n,
        sampling: Sampling::greedy(),
        stop_token: None,
        truncate: false,
        slide_context: true,
    }
}

#[test]
fn greedy_continuations_match_transformers() {
    let Some(shared) = shared_dir() else { return };
    let model = load_fixture_model(&shared);
    let expected = load_json(fixture_dir(&shared).join("expected.json"));
    let cases = expected["prompts"].as_array().unwrap();
    let mut prompts = Vec::new();
    for case in cases {
        let want = ids_of(&case["greedy_ids"]);
        let got = generate(&model, &ids_of(&case["ids"]), &greedy(want.len()), |_| {
            Ok(true)
        })
        .unwrap();
        assert_eq!(got.generated_ids, want, "prompt {:?}", case["prompt"]);
        prompts.push(ids_of(&case["ids"]));
    }
    // The batched path gives each prompt the same continuation.
    let batch = generate_batch(&model, &prompts, &greedy(16)).unwrap();
    for (case, g) in cases.iter().zip(&batch) {
        assert_eq!(g.generated_ids, ids_of(&case["greedy_ids"]));
    }
}

#[test]
fn kv_cache_logits_equal_full_recompute_at_every_step() {
    let Some(shared) = shared_dir() else { return };
    let model = load_fixture_model(&shared);
    let dev = Device::Cpu;
    let tokens: Vec<u32> = vec![
        5962, 22307, 25, 198, 8421, 356, 5120, 617, 1110, 13, 50256, 464,
    ];
    let mut cache = KvCache::new(model.config(), 1, 64, &dev).unwrap();
    // Prefill 5 tokens, then one at a time; compare each step's last logits.
    let mut fed = 0;
    for step in [5usize, 1, 1, 1, 1, 1, 1, 1] {
        let chunk = Tensor::from_vec(tokens[fed..fed + step].to_vec(), [1, step], &dev).unwrap();
        let h = model.hidden_cached(&chunk, &mut cache).unwrap();
        fed += step;
        let cached =
            rg_autograd::no_grad(|| model.lm_head(&h.narrow(1, step - 1, 1).unwrap())).unwrap();
        let full_in = Tensor::from_vec(tokens[..fed].to_vec(), [1, fed], &dev).unwrap();
        let full = rg_autograd::no_grad(|| model.forward(&full_in, None)).unwrap();
        let a = cached
            .tensor()
            .flatten_all()
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let b = full
            .tensor()
            .narrow(1, fed - 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let max_diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff <= 1e-5,
            "after {fed} tokens: max |cached - full| = {max_diff}"
        );
    }
    assert_eq!(cache.len(), fed);
}

#[test]
fn sampling_is_seeded_and_respects_top_k_and_stop_token() {
    let Some(shared) = shared_dir() else { return };
    let model = load_fixture_model(&shared);
    let prompt = vec![15496u32, 11, 616, 1438, 318];
    let opts = |seed, top_k| GenerateOptions {
        max_new_tokens: 12,
        sampling: Sampling {
            temperature: 1.0,
            top_k,
            top_p: Some(0.9),
            repetition_penalty: 1.3,
            seed,
        },
        stop_token: None,
        truncate: false,
        slide_context: true,
    };
    let a = generate(&model, &prompt, &opts(3, None), |_| Ok(true)).unwrap();
    let b = generate(&model, &prompt, &opts(3, None), |_| Ok(true)).unwrap();
    assert_eq!(a.generated_ids, b.generated_ids, "same seed, same tokens");
    // top-k 1 is greedy whatever the temperature (the penalty still applies to both).
    let k1 = generate(&model, &prompt, &opts(9, Some(1)), |_| Ok(true)).unwrap();
    let mut greedy_penalised = opts(0, None);
    greedy_penalised.sampling.temperature = 0.0;
    let g = generate(&model, &prompt, &greedy_penalised, |_| Ok(true)).unwrap();
    assert_eq!(k1.generated_ids, g.generated_ids);
    // Stop token ends generation right after it.
    let first = a.generated_ids[0];
    let mut stop = opts(3, None);
    stop.stop_token = Some(first);
    let s = generate(&model, &prompt, &stop, |_| Ok(true)).unwrap();
    assert_eq!(s.generated_ids, vec![first]);
}

#[test]
fn long_prompts_need_truncate() {
    let Some(shared) = shared_dir() else { return };
    let model = load_fixture_model(&shared);
    let long: Vec<u32> = (0..100).map(|i| 100 + i).collect();
    let err = generate(&model, &long, &greedy(2), |_| Ok(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--truncate") && err.contains("100"), "{err}");
    let mut opts = greedy(5);
    opts.truncate = true;
    let g = generate(&model, &long, &opts, |_| Ok(true)).unwrap();
    assert_eq!(g.prompt_ids, long[37..].to_vec());
    // Past the full context the window slides, so every requested token comes.
    assert_eq!(g.generated_ids.len(), 5);
    assert!(g.context_slides > 0);
    // Without sliding, 63 prompt positions + 1 fed-back token fill the context of 64:
    // two new tokens, and the result says why it stopped.
    opts.slide_context = false;
    let g = generate(&model, &long, &opts, |_| Ok(true)).unwrap();
    assert_eq!(g.generated_ids.len(), 2);
    assert!(g.stopped_at_context);
}
