//! Our reader and writer against the reference implementation (the `safetensors`
//! crate, which the Python package wraps): identical bytes written, identical views
//! read, and no file the reference accepts is refused by us.

mod common;

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use rg_io::{serialize_safetensors, SafeTensorsFile, StoredDType, TensorEntry};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

fn reference_dtype(dtype: StoredDType) -> Dtype {
    match dtype {
        StoredDType::Bool => Dtype::BOOL,
        StoredDType::U8 => Dtype::U8,
        StoredDType::I8 => Dtype::I8,
        StoredDType::F8E5M2 => Dtype::F8_E5M2,
        StoredDType::F8E4M3 => Dtype::F8_E4M3,
        StoredDType::I16 => Dtype::I16,
        StoredDType::U16 => Dtype::U16,
        StoredDType::F16 => Dtype::F16,
        StoredDType::BF16 => Dtype::BF16,
        StoredDType::I32 => Dtype::I32,
        StoredDType::U32 => Dtype::U32,
        StoredDType::F32 => Dtype::F32,
        StoredDType::F64 => Dtype::F64,
        StoredDType::I64 => Dtype::I64,
        StoredDType::U64 => Dtype::U64,
    }
}

type Tensors = Vec<(String, StoredDType, Vec<usize>, Vec<u8>)>;

fn tensors_strategy() -> impl Strategy<Value = Tensors> {
    let entry = (
        proptest::sample::select(StoredDType::ALL.to_vec()),
        proptest::collection::vec(0usize..4, 0..4),
    )
        .prop_flat_map(|(dtype, shape)| {
            let len = shape.iter().product::<usize>() * dtype.size_in_bytes();
            (
                Just(dtype),
                Just(shape),
                proptest::collection::vec(any::<u8>(), len),
            )
        });
    // Names include quotes, backslashes and non-ASCII to exercise JSON escaping.
    proptest::collection::btree_map("[a-z0-9.\"\\\\é_]{0,10}", entry, 0..6).prop_map(|m| {
        m.into_iter()
            .map(|(name, (dtype, shape, bytes))| (name, dtype, shape, bytes))
            .collect()
    })
}

/// Asserts our reader sees exactly what the reference reader sees in `image`.
fn assert_readers_agree(image: &[u8]) -> Result<(), TestCaseError> {
    let theirs = SafeTensors::deserialize(image).unwrap();
    let ours = SafeTensorsFile::from_vec("<memory>", image.to_vec()).unwrap();
    prop_assert_eq!(ours.len(), theirs.len());
    for (name, view) in theirs.tensors() {
        let info = ours.info(&name).unwrap();
        prop_assert_eq!(reference_dtype(info.dtype()), view.dtype());
        prop_assert_eq!(info.shape(), view.shape());
        prop_assert_eq!(ours.raw_bytes(&name).unwrap(), view.data());
    }
    let (_, meta) = SafeTensors::read_metadata(image).unwrap();
    let theirs_meta: BTreeMap<String, String> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    prop_assert_eq!(ours.metadata(), &theirs_meta);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn our_writer_matches_the_reference_byte_for_byte(
        tensors in tensors_strategy(),
        with_metadata in any::<bool>(),
    ) {
        // One metadata key at most: the reference keeps metadata in a HashMap, so
        // its order among several keys is not deterministic.
        let metadata: BTreeMap<String, String> = if with_metadata {
            BTreeMap::from([("format".into(), "pt".into())])
        } else {
            BTreeMap::new()
        };
        let ours = serialize_safetensors(
            tensors
                .iter()
                .map(|(n, d, s, b)| TensorEntry::new(n.as_str(), *d, s.clone(), b.as_slice())),
            &metadata,
        )
        .unwrap();
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(reference_dtype(*d), s.clone(), b).unwrap()))
            .collect();
        let reference_meta: Option<HashMap<String, String>> =
            with_metadata.then(|| metadata.clone().into_iter().collect());
        let theirs = safetensors::serialize(views, &reference_meta).unwrap();
        prop_assert_eq!(&ours, &theirs);
        assert_readers_agree(&ours)?;
    }

    /// Files whose data section the reference writer did not lay out: tensors in any
    /// order. Whatever the reference accepts, we accept and read the same.
    #[test]
    fn readers_agree_on_reordered_headers(tensors in tensors_strategy(), seed in any::<u64>()) {
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        // A cheap deterministic shuffle from the seed.
        order.sort_by_key(|&i| (i as u64 + 1).wrapping_mul(seed | 1).rotate_left(17));
        let mut header = Vec::new();
        let mut data = Vec::new();
        for &i in &order {
            let (name, dtype, shape, bytes) = &tensors[i];
            header.push(format!(
                "{}:{{\"dtype\":\"{}\",\"shape\":{:?},\"data_offsets\":[{},{}]}}",
                serde_json::to_string(name).unwrap(),
                dtype.name(),
                shape,
                data.len(),
                data.len() + bytes.len()
            ));
            data.extend_from_slice(bytes);
        }
        let image = common::image(&format!("{{{}}}", header.join(",")), &data);
        assert_readers_agree(&image)?;
    }

    /// Random corruptions of a valid file: we may refuse more (duplicate names), but
    /// never accept something the reference refuses for a reason we also check, and
    /// never panic.
    #[test]
    fn readers_agree_on_corrupted_files(
        tensors in tensors_strategy(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut image = serialize_safetensors(
            tensors
                .iter()
                .map(|(n, d, s, b)| TensorEntry::new(n.as_str(), *d, s.clone(), b.as_slice())),
            &BTreeMap::new(),
        )
        .unwrap();
        for (at, byte) in flips {
            let i = at.index(image.len());
            image[i] = byte;
        }
        let ours = SafeTensorsFile::from_vec("<memory>", image.clone());
        let theirs = SafeTensors::deserialize(&image);
        if theirs.is_ok() && !has_duplicate_keys(&image) {
            prop_assert!(ours.is_ok(), "reference accepts, we refuse: {}", ours.unwrap_err());
            assert_readers_agree(&image)?;
        }
    }
}

/// Whether the header names a key twice (the reference silently keeps the last).
fn has_duplicate_keys(image: &[u8]) -> bool {
    let n = u64::from_le_bytes(image[..8].try_into().unwrap()) as usize;
    let Ok(text) = std::str::from_utf8(&image[8..8 + n]) else {
        return false;
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    // serde_json collapses duplicates: count the top-level keys another way.
    let mut de = serde_json::Deserializer::from_str(text);
    let keys = count_top_level_keys(&mut de);
    keys != map.len()
}

fn count_top_level_keys(de: &mut serde_json::Deserializer<serde_json::de::StrRead>) -> usize {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
    }
    de.deserialize_map(Count).unwrap_or(0)
}

#[test]
fn duplicate_names_the_reference_accepts_are_refused() {
    let header = r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
    let image = common::image(header, &[9]);
    assert!(SafeTensors::deserialize(&image).is_ok());
    assert!(SafeTensorsFile::from_vec("<memory>", image).is_err());
}
