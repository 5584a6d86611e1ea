//! Write + read round trips: bytes for every stored dtype, tensors for every dtype.

mod common;

use std::collections::BTreeMap;

use common::ScratchDir;
use proptest::prelude::*;
use rg_core::{DType, Device, HostBuffer, Tensor};
use rg_cpu as _;
use rg_io::{
    save_safetensors, save_safetensors_entries, serialize_safetensors, SafeTensorsFile,
    StoredDType, TensorEntry,
};

/// A tensor to write: name, dtype, shape and random bytes of the right length.
fn entry_strategy(
    dtypes: Vec<StoredDType>,
) -> impl Strategy<Value = (StoredDType, Vec<usize>, Vec<u8>)> {
    (
        proptest::sample::select(dtypes),
        proptest::collection::vec(0usize..5, 0..4),
    )
        .prop_flat_map(|(dtype, shape)| {
            let len = shape.iter().product::<usize>() * dtype.size_in_bytes();
            (
                Just(dtype),
                Just(shape),
                proptest::collection::vec(any::<u8>(), len),
            )
        })
}

fn files_strategy(
    dtypes: Vec<StoredDType>,
) -> impl Strategy<Value = Vec<(String, StoredDType, Vec<usize>, Vec<u8>)>> {
    proptest::collection::btree_map("[a-z.]{1,12}", entry_strategy(dtypes), 0..6).prop_map(|m| {
        m.into_iter()
            .map(|(name, (dtype, shape, bytes))| (name, dtype, shape, bytes))
            .collect()
    })
}

fn metadata_strategy() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map("\\PC{0,8}", "\\PC{0,8}", 0..3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every stored dtype, including those we only widen or keep as bytes.
    #[test]
    fn bytes_of_every_stored_dtype_round_trip(
        tensors in files_strategy(StoredDType::ALL.to_vec()),
        metadata in metadata_strategy(),
    ) {
        let entries = tensors.iter().map(|(name, dtype, shape, bytes)| {
            TensorEntry::new(name.as_str(), *dtype, shape.clone(), bytes.as_slice())
        });
        let image = serialize_safetensors(entries, &metadata).unwrap();
        // The header is padded so the data section starts 8-byte aligned.
        let header_len = u64::from_le_bytes(image[..8].try_into().unwrap());
        prop_assert_eq!(header_len % 8, 0);
        let file = SafeTensorsFile::from_vec("<memory>", image).unwrap();
        prop_assert_eq!(file.len(), tensors.len());
        prop_assert_eq!(file.metadata(), &metadata);
        for (name, dtype, shape, bytes) in &tensors {
            let info = file.info(name).unwrap();
            prop_assert_eq!(info.dtype(), *dtype);
            prop_assert_eq!(info.shape(), shape.as_slice());
            prop_assert_eq!(info.byte_len(), bytes.len());
            // Written in the reference order, every tensor is aligned to its size.
            prop_assert_eq!(info.data_offsets().0 % dtype.size_in_bytes(), 0);
            prop_assert_eq!(file.raw_bytes(name).unwrap(), bytes.as_slice());
        }
    }

    /// Every tensor dtype through `save_safetensors` on disk and `tensor()` back.
    #[test]
    fn tensors_of_every_dtype_round_trip(
        tensors in files_strategy(DType::ALL.iter().map(|&d| d.into()).collect()),
    ) {
        let dir = ScratchDir::new("roundtrip");
        let path = dir.join("t.safetensors");
        let originals: Vec<(String, Tensor)> = tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                let dtype = dtype.exact_dtype().unwrap();
                let host = HostBuffer::from_le_bytes(dtype, bytes).unwrap();
                (name.clone(), Tensor::from_host(host, shape.clone(), &Device::Cpu).unwrap())
            })
            .collect();
        let refs: Vec<(&str, &Tensor)> = originals.iter().map(|(n, t)| (n.as_str(), t)).collect();
        save_safetensors(&path, &refs, &BTreeMap::new()).unwrap();
        let file = SafeTensorsFile::open(&path).unwrap();
        for (name, original) in &originals {
            let loaded = file.tensor(name, &Device::Cpu).unwrap();
            prop_assert_eq!(loaded.dtype(), original.dtype());
            prop_assert_eq!(loaded.dims(), original.dims());
            // Compare bits: NaN payloads must survive too.
            prop_assert_eq!(
                loaded.to_host().unwrap().to_le_bytes(),
                original.to_host().unwrap().to_le_bytes()
            );
        }
    }
}

#[test]
fn narrow_integers_and_bools_widen_on_load() {
    let entries = vec![
        TensorEntry::new("bool", StoredDType::Bool, vec![3], vec![0u8, 1, 1]),
        TensorEntry::new("u8", StoredDType::U8, vec![2], vec![0u8, 255]),
        TensorEntry::new("i8", StoredDType::I8, vec![2], vec![0x80u8, 0x7f]),
        TensorEntry::new(
            "u16",
            StoredDType::U16,
            vec![1],
            65535u16.to_le_bytes().to_vec(),
        ),
        TensorEntry::new(
            "i16",
            StoredDType::I16,
            vec![1],
            (-300i16).to_le_bytes().to_vec(),
        ),
        TensorEntry::new(
            "i32",
            StoredDType::I32,
            vec![2],
            [i32::MIN, i32::MAX]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        ),
    ];
    let image = serialize_safetensors(entries, &BTreeMap::new()).unwrap();
    let file = SafeTensorsFile::from_vec("<memory>", image).unwrap();
    let cpu = Device::Cpu;
    let u32s = |name: &str| file.tensor(name, &cpu).unwrap().to_vec::<u32>().unwrap();
    let i64s = |name: &str| file.tensor(name, &cpu).unwrap().to_vec::<i64>().unwrap();
    assert_eq!(u32s("bool"), [0, 1, 1]);
    assert_eq!(u32s("u8"), [0, 255]);
    assert_eq!(u32s("u16"), [65535]);
    assert_eq!(i64s("i8"), [-128, 127]);
    assert_eq!(i64s("i16"), [-300]);
    assert_eq!(i64s("i32"), [i32::MIN as i64, i32::MAX as i64]);
}

#[test]
fn eight_bit_floats_and_u64_are_refused_with_a_reason_but_readable_as_bytes() {
    let entries = vec![
        TensorEntry::new("scale", StoredDType::F8E4M3, vec![2], vec![1u8, 2]),
        TensorEntry::new(
            "count",
            StoredDType::U64,
            vec![1],
            u64::MAX.to_le_bytes().to_vec(),
        ),
    ];
    let image = serialize_safetensors(entries, &BTreeMap::new()).unwrap();
    let file = SafeTensorsFile::from_vec("fp8.safetensors", image).unwrap();
    let msg = file.tensor("scale", &Device::Cpu).unwrap_err().to_string();
    assert!(msg.contains("fp8.safetensors"), "{msg}");
    assert!(
        msg.contains("unsupported dtype F8_E4M3 for tensor \"scale\""),
        "{msg}"
    );
    let msg = file
        .load_as("count", DType::I64, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("unsupported dtype U64 for tensor \"count\""),
        "{msg}"
    );
    assert_eq!(file.raw_bytes("scale").unwrap(), [1, 2]);
}

#[test]
fn half_precision_loads_as_f32() {
    let values = [
        0.0f32,
        -1.5,
        3.140625,
        65504.0,
        f32::INFINITY,
        6.1035156e-5,
        5.9604645e-8,
    ];
    let bf16: Vec<u8> = values
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let f16: Vec<u8> = values
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let entries = vec![
        TensorEntry::new("b", DType::BF16, vec![values.len()], bf16),
        TensorEntry::new("h", DType::F16, vec![values.len()], f16),
    ];
    let image = serialize_safetensors(entries, &BTreeMap::new()).unwrap();
    let file = SafeTensorsFile::from_vec("<memory>", image).unwrap();
    let b = file.load_as("b", DType::F32, &Device::Cpu).unwrap();
    let h = file.load_as("h", DType::F32, &Device::Cpu).unwrap();
    assert_eq!(b.dtype(), DType::F32);
    let want_b: Vec<f32> = values
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_f32())
        .collect();
    let want_h: Vec<f32> = values
        .iter()
        .map(|&v| half::f16::from_f32(v).to_f32())
        .collect();
    assert_eq!(b.to_vec::<f32>().unwrap(), want_b);
    assert_eq!(h.to_vec::<f32>().unwrap(), want_h);
    // Without a requested dtype they stay half precision.
    assert_eq!(file.tensor("b", &Device::Cpu).unwrap().dtype(), DType::BF16);
}

#[test]
fn load_as_casts_other_pairs_through_the_tensor() {
    let values = [1.0f32, -2.5, 1e-3];
    let entries = vec![TensorEntry::new(
        "w",
        DType::F32,
        vec![3],
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )];
    let image = serialize_safetensors(entries, &BTreeMap::new()).unwrap();
    let file = SafeTensorsFile::from_vec("<memory>", image).unwrap();
    let same = file.load_as("w", DType::F32, &Device::Cpu).unwrap();
    assert_eq!(same.to_vec::<f32>().unwrap(), values);
    let wide = file.load_as("w", DType::F64, &Device::Cpu).unwrap();
    assert_eq!(wide.dtype(), DType::F64);
    assert_eq!(
        wide.to_vec::<f64>().unwrap(),
        values.iter().map(|&v| v as f64).collect::<Vec<_>>()
    );
}

#[test]
fn unaligned_f32_data_still_loads() {
    // A header of 65 bytes puts the data section at file offset 73: not 4-aligned, so
    // the CPU backend must copy instead of borrowing.
    let mut header = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.to_string();
    while header.len() < 65 {
        header.push(' ');
    }
    let data: Vec<u8> = [1.5f32, -7.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let file = SafeTensorsFile::from_vec("<memory>", common::image(&header, &data)).unwrap();
    let t = file.tensor("w", &Device::Cpu).unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap(), [1.5, -7.0]);
}

#[test]
fn a_loaded_tensor_outlives_its_file() {
    let dir = ScratchDir::new("outlive");
    let path = dir.join("w.safetensors");
    let t = Tensor::from_vec(vec![1f32, 2., 3., 4.], [2, 2], &Device::Cpu).unwrap();
    save_safetensors(&path, &[("w", &t)], &BTreeMap::new()).unwrap();
    let loaded = {
        let file = SafeTensorsFile::open(&path).unwrap();
        file.tensor("w", &Device::Cpu).unwrap()
    };
    // The map is kept alive by the tensor's shared bytes.
    assert_eq!(loaded.to_vec::<f32>().unwrap(), [1., 2., 3., 4.]);
}

#[test]
fn writing_a_transposed_view_stores_row_major_data() {
    let dir = ScratchDir::new("view");
    let path = dir.join("t.safetensors");
    let t = Tensor::from_vec(vec![1f32, 2., 3., 4., 5., 6.], [2, 3], &Device::Cpu).unwrap();
    let tt = t.t().unwrap();
    save_safetensors(&path, &[("tt", &tt)], &BTreeMap::new()).unwrap();
    let file = SafeTensorsFile::open(&path).unwrap();
    let loaded = file.tensor("tt", &Device::Cpu).unwrap();
    assert_eq!(loaded.dims(), [3, 2]);
    assert_eq!(loaded.to_vec::<f32>().unwrap(), [1., 4., 2., 5., 3., 6.]);
}

#[test]
fn entries_with_metadata_land_on_disk() {
    let dir = ScratchDir::new("entries");
    let path = dir.join("e.safetensors");
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let entries = [TensorEntry::new(
        "x",
        DType::U32,
        vec![1],
        7u32.to_le_bytes().to_vec(),
    )];
    save_safetensors_entries(&path, entries, &metadata).unwrap();
    let file = SafeTensorsFile::open(&path).unwrap();
    assert_eq!(file.metadata(), &metadata);
    assert_eq!(
        file.tensor("x", &Device::Cpu)
            .unwrap()
            .to_vec::<u32>()
            .unwrap(),
        [7]
    );
}
