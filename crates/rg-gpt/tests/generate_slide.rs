//! Generation past the context window: the streaming `Generator` slides its window
//! (keeps the newest half, re-prefills it) and its tokens equal a full recompute
//! over exactly that window; with sliding off it stops at the full window and says so.

use rg_core::{Device, Tensor};
use rg_cpu as _;
use rg_gpt::generate::{generate, slide_keep, GenerateOptions, Generator, Sampling};
use rg_gpt::{Gpt, GptConfig};

const CONTEXT: usize = 8;

fn tiny_model() -> Gpt {
    let config = GptConfig {
        vocab_size: 17,
        block_size: CONTEXT,
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        layer_norm_eps: 1e-5,
        dropout: 0.0,
    };
    Gpt::init(config, 7, Device::Cpu).unwrap()
}

fn greedy(max_new_tokens: usize, slide_context: bool) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        sampling: Sampling::greedy(),
        stop_token: None,
        truncate: false,
        slide_context,
    }
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// The documented semantics, without a cache: the window grows until it holds
/// `CONTEXT` tokens; feeding one more restarts it with the newest `slide_keep` tokens.
fn reference(model: &Gpt, prompt: &[u32], n: usize) -> (Vec<u32>, usize) {
    let mut seq = prompt.to_vec();
    let mut start = 0;
    let mut slides = 0;
    let mut out = Vec::new();
    for _ in 0..n {
        if seq.len() - start > CONTEXT {
            start = seq.len() - slide_keep(CONTEXT);
            slides += 1;
        }
        let window = &seq[start..];
        let ids = Tensor::from_vec(window.to_vec(), [1, window.len()], &Device::Cpu).unwrap();
        let logits = rg_autograd::no_grad(|| model.forward(&ids, None)).unwrap();
        let last = logits
            .tensor()
            .narrow(1, window.len() - 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let next = argmax(&last);
        out.push(next);
        seq.push(next);
    }
    (out, slides)
}

#[test]
fn sliding_generates_every_requested_token_as_a_full_recompute_of_its_window() {
    let model = tiny_model();
    let prompt = [3u32, 1, 4];
    let got = generate(&model, &prompt, &greedy(40, true), |_| Ok(true)).unwrap();
    let (want, slides) = reference(&model, &prompt, 40);
    assert_eq!(got.generated_ids.len(), 40);
    assert_eq!(got.generated_ids, want);
    assert_eq!(got.context_slides, slides);
    assert!(
        slides >= 6,
        "40 tokens through a window of 8 slide often: {slides}"
    );
    assert!(!got.stopped_at_context);
}

#[test]
fn without_sliding_generation_stops_at_the_full_window_and_says_so() {
    let model = tiny_model();
    let prompt = [3u32, 1, 4];
    let got = generate(&model, &prompt, &greedy(40, false), |_| Ok(true)).unwrap();
    // The prompt and all but the last new token fill the window.
    assert_eq!(got.generated_ids.len(), CONTEXT - prompt.len() + 1);
    assert!(got.stopped_at_context);
    assert_eq!(got.context_slides, 0);
    let (want, _) = reference(&model, &prompt, got.generated_ids.len());
    assert_eq!(got.generated_ids, want);
}

#[test]
fn streaming_is_one_token_per_call_and_batches_slide_together() {
    let model = tiny_model();
    let mut generator = Generator::new(&model, greedy(12, true)).unwrap();
    assert!(generator.next_token().is_err(), "tokens before the prompt");
    generator.prefill(&[5, 6]).unwrap();
    let mut streamed = Vec::new();
    while let Some(id) = generator.next_token().unwrap() {
        streamed.push(id);
    }
    assert_eq!(streamed, reference(&model, &[5, 6], 12).0);

    let prompts = vec![vec![5u32, 6], vec![9, 2]];
    let mut batch = Generator::batched(&model, greedy(12, true), 2).unwrap();
    batch.prefill_batch(&prompts).unwrap();
    while batch.next_tokens().unwrap().is_some() {}
    let rows = batch.finish();
    for (row, prompt) in rows.iter().zip(&prompts) {
        assert_eq!(row.generated_ids, reference(&model, prompt, 12).0);
        assert!(row.context_slides > 0);
    }
}
