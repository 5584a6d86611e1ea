//! Loading model directories: both Hugging Face key layouts, half-precision files, and
//! clear errors for missing, unexpected, misshapen or non-finite tensors.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use rg_core::{Device, Tensor};
use rg_cpu as _;
use rg_gpt::checkpoint::load_model_dir;
use rg_io::{save_safetensors_entries, SafeTensorsFile, StoredDType, TensorEntry};

/// (name, dtype, shape, bytes) of every tensor in the fixture model.
fn fixture_entries(shared: &Path) -> Vec<(String, StoredDType, Vec<usize>, Vec<u8>)> {
    let file = SafeTensorsFile::open(fixture_dir(shared).join("model/model.safetensors")).unwrap();
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

/// A model directory with the fixture's config and tokenizer and these tensors.
fn model_dir(
    shared: &Path,
    tmp: &Path,
    entries: &[(String, StoredDType, Vec<usize>, Vec<u8>)],
) -> PathBuf {
    let dir = tmp.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture_dir(shared).join("model").join(f), dir.join(f)).unwrap();
    }
    let entries = entries
        .iter()
        .map(|(n, d, s, b)| TensorEntry::new(n.as_str(), *d, s.clone(), b.as_slice()));
    save_safetensors_entries(dir.join("model.safetensors"), entries, &BTreeMap::new()).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    match load_model_dir(dir, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn last_logits(dir: &Path) -> Vec<f32> {
    let m = load_model_dir(dir, &Device::Cpu).unwrap().model;
    let x = Tensor::from_vec(vec![15496u32, 11, 616], [1, 3], &Device::Cpu).unwrap();
    let y = rg_autograd::no_grad(|| m.forward(&x, None)).unwrap();
    y.tensor()
        .narrow(1, 2, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn missing_unexpected_misshapen_and_non_finite_tensors_are_named() {
    let Some(shared) = shared_dir() else { return };
    let all = fixture_entries(&shared);

    let tmp = tempfile::tempdir().unwrap();
    let missing: Vec<_> = all
        .iter()
        .filter(|e| e.0 != "transformer.h.1.mlp.c_fc.bias")
        .cloned()
        .collect();
    let err = load_err(&model_dir(&shared, tmp.path(), &missing));
    assert!(
        err.contains("h.1.mlp.c_fc.bias") && err.contains("[128]"),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut extra = all.clone();
    extra.push((
        "transformer.h.7.attn.c_attn.weight".into(),
        StoredDType::F32,
        vec![1],
        vec![0; 4],
    ));
    let err = load_err(&model_dir(&shared, tmp.path(), &extra));
    assert!(
        err.contains("unexpected") && err.contains("h.7.attn.c_attn.weight"),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut misshapen = all.clone();
    let ln = misshapen
        .iter_mut()
        .find(|e| e.0 == "transformer.ln_f.weight")
        .unwrap();
    ln.2 = vec![8, 4];
    let err = load_err(&model_dir(&shared, tmp.path(), &misshapen));
    assert!(
        err.contains("ln_f.weight") && err.contains("[8, 4]") && err.contains("[32]"),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut nan = all.clone();
    let w = nan
        .iter_mut()
        .find(|e| e.0 == "transformer.h.0.attn.c_proj.weight")
        .unwrap();
    w.3[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
    let err = load_err(&model_dir(&shared, tmp.path(), &nan));
    assert!(
        err.contains("h.0.attn.c_proj.weight") && err.contains("element 10"),
        "{err}"
    );
}

#[test]
fn both_hub_key_layouts_and_half_precision_give_the_same_model() {
    let Some(shared) = shared_dir() else { return };
    let all = fixture_entries(&shared);
    let reference = last_logits(&fixture_dir(&shared).join("model"));

    // No `transformer.` prefix, with the causal-mask buffers older files carry.
    let tmp = tempfile::tempdir().unwrap();
    let mut plain: Vec<_> = all
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.trim_start_matches("transformer.").to_string(),
                *d,
                s.clone(),
                b.clone(),
            )
        })
        .collect();
    for layer in 0..2 {
        let mask: Vec<u8> = (0..64 * 64)
            .flat_map(|i| if i % 64 <= i / 64 { 1f32 } else { 0f32 }.to_le_bytes())
            .collect();
        plain.push((
            format!("h.{layer}.attn.bias"),
            StoredDType::F32,
            vec![1, 1, 64, 64],
            mask,
        ));
    }
    assert_eq!(
        last_logits(&model_dir(&shared, tmp.path(), &plain)),
        reference
    );

    // f16 weights are converted to f32 on load.
    let tmp = tempfile::tempdir().unwrap();
    let half: Vec<_> = all
        .iter()
        .map(|(n, _, s, b)| {
            let h: Vec<u8> = b
                .chunks_exact(4)
                .flat_map(|c| {
                    rg_core::f16::from_f32(f32::from_le_bytes(c.try_into().unwrap())).to_le_bytes()
                })
                .collect();
            (n.clone(), StoredDType::F16, s.clone(), h)
        })
        .collect();
    let got = last_logits(&model_dir(&shared, tmp.path(), &half));
    let max_err = got
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_err < 0.05, "f16 weights drift {max_err}");
}
