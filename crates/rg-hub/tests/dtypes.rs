//! Weights stored as f32, f16 or bf16; loaded as f32 or kept in bf16; bf16 compute
//! refused where the backend has no bf16 kernels.

mod common;

use std::path::Path;

use common::*;
use rg_core::{bf16, f16, DType, Device};
use rg_cpu as _;
use rg_hub::{
    check_compute, load_model, load_model_with_dtype, load_weights, resolve_model, HubOptions,
};
use rg_io::StoredDType;

fn options() -> HubOptions {
    HubOptions::offline_cache("/nonexistent/hf-cache")
}

fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The fixture with every f32 tensor rounded to `to` and stored as `stored`
/// (`F32`: the rounded values widened back, as a reference).
fn rounded_entries(shared: &Path, to: StoredDType, stored: StoredDType) -> Vec<Entry> {
    fixture_entries(shared)
        .into_iter()
        .map(|(name, dtype, shape, bytes)| {
            assert_eq!(dtype, StoredDType::F32);
            let values = f32_values(&bytes);
            let bytes: Vec<u8> = match (to, stored) {
                (StoredDType::BF16, StoredDType::BF16) => values
                    .iter()
                    .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                    .collect(),
                (StoredDType::F16, StoredDType::F16) => values
                    .iter()
                    .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                    .collect(),
                (StoredDType::BF16, StoredDType::F32) => values
                    .iter()
                    .flat_map(|&v| bf16::from_f32(v).to_f32().to_le_bytes())
                    .collect(),
                (StoredDType::F16, StoredDType::F32) => values
                    .iter()
                    .flat_map(|&v| f16::from_f32(v).to_f32().to_le_bytes())
                    .collect(),
                other => panic!("{other:?}"),
            };
            (name, stored, shape, bytes)
        })
        .collect()
}

fn model_dir(shared: &Path, dir: &Path, entries: &[Entry]) -> String {
    copy_model(shared, dir, &["config.json", "tokenizer.json"]);
    write_safetensors(&dir.join("model.safetensors"), entries);
    dir.to_str().unwrap().to_string()
}

#[test]
fn half_precision_files_load_as_f32_exactly() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for half in [StoredDType::BF16, StoredDType::F16] {
        let stored = model_dir(
            &shared,
            &tmp.path().join(format!("{half}")),
            &rounded_entries(&shared, half, half),
        );
        let widened = model_dir(
            &shared,
            &tmp.path().join(format!("{half}-as-f32")),
            &rounded_entries(&shared, half, StoredDType::F32),
        );
        let a = load_model(&stored, &Device::Cpu, &options()).unwrap().model;
        let b = load_model(&widened, &Device::Cpu, &options())
            .unwrap()
            .model;
        let ids = [15496u32, 11, 616, 1438, 318];
        assert_eq!(last_logits(&a, &ids), last_logits(&b, &ids), "{half}");
    }
}

#[test]
fn bf16_weights_stay_bf16_when_asked() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let bf16_entries = rounded_entries(&shared, StoredDType::BF16, StoredDType::BF16);
    let bf16_dir = model_dir(&shared, &tmp.path().join("bf16"), &bf16_entries);
    let f32_dir = copy_model(&shared, &tmp.path().join("f32"), ALL_FILES);

    // A bf16 file keeps its bytes; an f32 file is rounded to the same values.
    let from_bf16 = load_weights(
        &resolve_model(&bf16_dir, &options()).unwrap(),
        &Device::Cpu,
        DType::BF16,
    )
    .unwrap();
    let from_f32 = load_weights(
        &resolve_model(f32_dir.to_str().unwrap(), &options()).unwrap(),
        &Device::Cpu,
        DType::BF16,
    )
    .unwrap();
    assert_eq!(from_bf16.len(), bf16_entries.len());
    for (name, _, shape, bytes) in &bf16_entries {
        for loaded in [&from_bf16[name], &from_f32[name]] {
            assert_eq!(loaded.dtype(), DType::BF16, "{name}");
            assert_eq!(loaded.dims(), shape.as_slice(), "{name}");
            let bits: Vec<u8> = loaded
                .to_vec::<bf16>()
                .unwrap()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            assert_eq!(&bits, bytes, "{name}");
        }
    }
    // As f32, a bf16 file is widened.
    let as_f32 = load_weights(
        &resolve_model(&bf16_dir, &options()).unwrap(),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    assert!(as_f32.values().all(|t| t.dtype() == DType::F32));
}

#[test]
fn bf16_compute_on_cpu_is_a_clear_error() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_model(&shared, tmp.path(), ALL_FILES);
    let spec = dir.to_str().unwrap();
    match check_compute(DType::BF16, &Device::Cpu) {
        Ok(()) => {
            // The CPU backend learned bf16 matmul: the model must then load and run.
            let m = load_model_with_dtype(spec, &Device::Cpu, &options(), DType::BF16).unwrap();
            assert_eq!(m.model.device(), Device::Cpu);
        }
        Err(e) => {
            assert!(
                e.to_string()
                    .starts_with("bf16 compute is not supported on cpu yet"),
                "{e}"
            );
            let err = err_of(load_model_with_dtype(
                spec,
                &Device::Cpu,
                &options(),
                DType::BF16,
            ));
            assert!(
                err.starts_with("bf16 compute is not supported on cpu yet"),
                "{err}"
            );
        }
    }
    check_compute(DType::F32, &Device::Cpu).unwrap();
}

#[test]
fn other_weight_dtypes_are_rejected() {
    let err = err_of(load_model_with_dtype(
        "/nonexistent/model",
        &Device::Cpu,
        &options(),
        DType::F16,
    ));
    assert_eq!(
        err,
        "weight dtype f16 is not supported; supported: f32, bf16"
    );
}

#[test]
fn non_finite_weights_are_named_in_either_dtype() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut entries = fixture_entries(&shared);
    let w = entries
        .iter_mut()
        .find(|e| e.0 == "transformer.h.0.attn.c_proj.weight")
        .unwrap();
    w.3[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let spec = model_dir(&shared, tmp.path(), &entries);
    let files = resolve_model(&spec, &options()).unwrap();
    for dtype in [DType::F32, DType::BF16] {
        let err = err_of(load_weights(&files, &Device::Cpu, dtype));
        assert!(
            err.contains(
                "\"transformer.h.0.attn.c_proj.weight\" holds a non-finite value at element 2"
            ),
            "{dtype}: {err}"
        );
        assert!(err.contains("model.safetensors"), "{err}");
    }
}
