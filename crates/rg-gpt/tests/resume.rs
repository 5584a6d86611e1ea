//! A run stopped and resumed from its checkpoint reproduces the uninterrupted run's
//! losses bit for bit: both samplers, dropout on, gradient accumulation, and with ZeRO
//! stage 1 (here a world of one: the checkpoint carries a shard file per rank).

use rg_core::Device;
use rg_cpu as _;
use rg_gpt::checkpoint::load_model_dir;
use rg_gpt::data::{SamplerKind, TextData};
use rg_gpt::{Gpt, GptConfig, ScheduleKind, TrainConfig, Trainer};
use rg_tokenize::{CharTokenizer, Tokenizer};

const TEXT: &str = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. However little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is considered the rightful property of some one or other of their daughters.";

fn config() -> TrainConfig {
    TrainConfig {
        batch_size: 3,
        seq_len: 16,
        steps: 10,
        lr: 3e-3,
        min_lr: 3e-4,
        lr_schedule: ScheduleKind::Cosine,
        warmup: 3,
        grad_accum: 2,
        eval_every: 0,
        eval_iters: 1,
        ..TrainConfig::default()
    }
}

fn trainer(sampler: SamplerKind, out: &std::path::Path, model: Option<Gpt>, zero: bool) -> Trainer {
    let tok = CharTokenizer::from_text(TEXT, &[]);
    let cfg = GptConfig {
        vocab_size: tok.vocab_size(),
        block_size: 16,
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        layer_norm_eps: 1e-5,
        dropout: 0.1,
    };
    let model = model.unwrap_or_else(|| Gpt::init(cfg, 7, Device::Cpu).unwrap());
    let data = TextData::new(tok.encode(TEXT), 0.1, sampler, 7).unwrap();
    let t = Trainer::new(
        model,
        Box::new(data),
        Box::new(tok),
        config(),
        Some(out.to_path_buf()),
    )
    .unwrap();
    if zero {
        t.with_zero_stage_1().unwrap()
    } else {
        t
    }
}

/// The checkpoint's model with the run's dropout (checkpoints store the model's sizes).
fn reload(ckpt: &std::path::Path) -> Gpt {
    let loaded = load_model_dir(ckpt, &Device::Cpu).unwrap();
    let cfg = GptConfig {
        dropout: 0.1,
        ..loaded.model.config().clone()
    };
    Gpt::from_tensors(cfg, params_of(&loaded.model)).unwrap()
}

fn check(sampler: SamplerKind, zero: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let mut whole = trainer(sampler, &tmp.path().join("whole"), None, zero);
    let expected: Vec<f64> = (0..10).map(|_| whole.step().unwrap().loss).collect();

    let mut first = trainer(sampler, &tmp.path().join("split"), None, zero);
    let mut got: Vec<f64> = (0..5).map(|_| first.step().unwrap().loss).collect();
    let ckpt = first.save_checkpoint().unwrap().unwrap();
    drop(first);
    let shard = ckpt.join("optimizer-rank-0-of-1.safetensors");
    assert_eq!(shard.is_file(), zero);
    assert_eq!(ckpt.join("optimizer.safetensors").is_file(), !zero);
    // Nothing of the shard staging is left beside the checkpoint.
    let left: Vec<_> = std::fs::read_dir(ckpt.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("step-000005")]);

    let mut second = trainer(
        sampler,
        &tmp.path().join("split"),
        Some(reload(&ckpt)),
        zero,
    );
    second.restore(&ckpt).unwrap();
    assert_eq!(second.step_count(), 5);
    got.extend((0..5).map(|_| second.step().unwrap().loss));
    for (k, (a, b)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{sampler:?} step {k}: resumed {a} vs uninterrupted {b}"
        );
    }
}

fn params_of(model: &Gpt) -> std::collections::HashMap<String, rg_core::Tensor> {
    use rg_nn::Module;
    model
        .named_params()
        .into_iter()
        .map(|(n, v)| (n, v.tensor().copy().unwrap()))
        .collect()
}

#[test]
fn resume_is_bit_exact_with_the_sequential_sampler() {
    check(SamplerKind::Sequential, false);
}

#[test]
fn resume_is_bit_exact_with_the_random_sampler() {
    check(SamplerKind::Random, false);
}

#[test]
fn resume_is_bit_exact_with_zero_stage_1_shards() {
    check(SamplerKind::Random, true);
}

#[test]
fn a_zero_checkpoint_of_another_world_size_is_refused_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut first = trainer(SamplerKind::Random, &out, None, true);
    first.step().unwrap();
    let ckpt = first.save_checkpoint().unwrap().unwrap();
    drop(first);
    // As if written by two ranks: the world size is what the refusal reads.
    let state_path = ckpt.join("trainer_state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["world_size"] = serde_json::json!(2);
    std::fs::write(&state_path, state.to_string()).unwrap();
    for zero in [true, false] {
        let mut again = trainer(SamplerKind::Random, &out, Some(reload(&ckpt)), zero);
        let err = again.restore(&ckpt).unwrap_err().to_string();
        assert!(err.contains("--zero 1 run of 2 ranks"), "{err}");
        assert!(err.contains("this run has 1 rank"), "{err}");
        assert_eq!(again.step_count(), 0, "nothing restored");
    }
}
