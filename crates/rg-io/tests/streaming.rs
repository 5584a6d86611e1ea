//! `save_safetensors` copies tensor data to the file a chunk at a time: tensors larger
//! than one chunk, views that are not contiguous and bf16 data come back exactly, and
//! the file is byte-identical to writing the same data from host bytes.

mod common;

use std::collections::BTreeMap;

use common::ScratchDir;
use rg_core::{DType, Device, Tensor};
use rg_cpu as _;
use rg_io::{
    save_safetensors, serialize_safetensors, SafeTensorsFile, TensorEntry, STREAM_CHUNK_ELEMS,
};

#[test]
fn tensors_larger_than_a_chunk_and_strided_views_round_trip_exactly() {
    let dir = ScratchDir::new("streaming");
    let cpu = Device::Cpu;
    // Two and a half chunks, so the last chunk is partial.
    let n = STREAM_CHUNK_ELEMS * 5 / 2 + 3;
    let big: Vec<f32> = (0..n).map(|i| (i as f32).sin()).collect();
    let big = Tensor::from_vec(big, [n], &cpu).unwrap();
    // A transposed view: its row-major order differs from its memory order.
    let m: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let transposed = Tensor::from_vec(m, [3, 4], &cpu)
        .unwrap()
        .transpose(0, 1)
        .unwrap();
    let half = Tensor::from_vec(vec![1.5f32, -2.25, 3.0], [3], &cpu)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let path = dir.join("stream.safetensors");
    let tensors = [("big", &big), ("t", &transposed), ("h", &half)];
    save_safetensors(&path, &tensors, &BTreeMap::new()).unwrap();

    let file = SafeTensorsFile::open(&path).unwrap();
    for (name, want) in tensors {
        let got = file.tensor(name, &cpu).unwrap();
        assert_eq!(got.dims(), want.dims(), "{name}");
        assert_eq!(got.dtype(), want.dtype(), "{name}");
        assert_eq!(
            got.to_host().unwrap().to_le_bytes(),
            want.to_host().unwrap().to_le_bytes(),
            "{name}"
        );
    }
    // The same file as written from host bytes in one piece.
    let entries: Vec<TensorEntry> = tensors
        .iter()
        .map(|(name, t)| {
            TensorEntry::new(
                *name,
                t.dtype(),
                t.dims(),
                t.to_host().unwrap().to_le_bytes(),
            )
        })
        .collect();
    let reference = serialize_safetensors(entries, &BTreeMap::new()).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), reference);
}
