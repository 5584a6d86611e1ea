//! The GPT-2 tiny fixture written by PyTorch + the Python `safetensors` package.
//!
//! The shared fixtures live outside the repository: `RG_SHARED_DIR`, else `shared/`
//! beside the repository root. Without them these tests pass with a note, except under
//! CI (env `CI` set), where a missing fixture is a failure.

mod common;

use std::path::PathBuf;

use rg_core::{DType, Device};
use rg_cpu as _;
use rg_io::{serialize_safetensors, SafeTensorsFile, StoredDType, TensorEntry};

fn fixture(relative: &str) -> Option<PathBuf> {
    let shared = std::env::var_os("RG_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    let path = shared.join(relative);
    if path.exists() {
        return Some(path);
    }
    let reason = format!("fixture {} not found (set RG_SHARED_DIR)", path.display());
    assert!(std::env::var_os("CI").is_none(), "{reason}");
    eprintln!("skipping: {reason}");
    None
}

const MODEL: &str = "fixtures/gpt2-tiny/model/model.safetensors";

#[test]
fn names_shapes_and_metadata() {
    let Some(path) = fixture(MODEL) else { return };
    let file = SafeTensorsFile::open(&path).unwrap();
    assert_eq!(file.len(), 28, "2 blocks x 12 + ln_f x 2 + wte + wpe");
    assert_eq!(
        file.metadata().get("format").map(String::as_str),
        Some("pt")
    );
    let shape = |name: &str| file.info(name).unwrap().shape().to_vec();
    assert_eq!(shape("transformer.wte.weight"), [50257, 32]);
    assert_eq!(shape("transformer.wpe.weight"), [64, 32]);
    assert_eq!(shape("transformer.h.0.attn.c_attn.weight"), [32, 96]);
    assert_eq!(shape("transformer.h.1.mlp.c_proj.weight"), [128, 32]);
    assert_eq!(shape("transformer.ln_f.bias"), [32]);
    assert!(file.tensors().iter().all(|t| t.dtype() == StoredDType::F32));
    // The LM head is tied to wte and not stored.
    assert!(file.get("lm_head.weight").is_none());
}

#[test]
fn tensors_match_the_reference_reader() {
    let Some(path) = fixture(MODEL) else { return };
    let bytes = std::fs::read(&path).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let file = SafeTensorsFile::open(&path).unwrap();
    for (name, view) in reference.tensors() {
        let tensor = file.tensor(&name, &Device::Cpu).unwrap();
        assert_eq!(tensor.dtype(), DType::F32);
        assert_eq!(tensor.dims(), view.shape(), "{name}");
        let want: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(tensor.to_vec::<f32>().unwrap(), want, "{name}");
    }
}

#[test]
fn rewriting_the_fixture_reproduces_the_python_file_byte_for_byte() {
    let Some(path) = fixture(MODEL) else { return };
    let original = std::fs::read(&path).unwrap();
    let file = SafeTensorsFile::open(&path).unwrap();
    let entries = file.tensors().iter().map(|info| {
        TensorEntry::new(
            info.name(),
            info.dtype(),
            info.shape().to_vec(),
            file.raw_bytes(info.name()).unwrap(),
        )
    });
    let rewritten = serialize_safetensors(entries, file.metadata()).unwrap();
    assert!(
        rewritten == original,
        "our writer differs from the Python package's output"
    );
}

#[test]
fn gradients_have_the_parameters_names_and_shapes() {
    let Some(grads) = fixture("fixtures/gpt2-tiny/grads.safetensors") else {
        return;
    };
    let Some(model) = fixture(MODEL) else { return };
    let grads = SafeTensorsFile::open(&grads).unwrap();
    let model = SafeTensorsFile::open(&model).unwrap();
    assert_eq!(grads.len(), model.len());
    for info in grads.tensors() {
        assert_eq!(
            info.shape(),
            model.info(info.name()).unwrap().shape(),
            "{}",
            info.name()
        );
    }
    let g = grads.load_as(
        "transformer.h.0.attn.c_attn.weight",
        DType::F32,
        &Device::Cpu,
    );
    assert_eq!(g.unwrap().dims(), [32, 96]);
}
