//! Reading a model's weights: one safetensors file or a sharded set (each tensor in
//! exactly one shard, as the index says), stored as f32, f16 or bf16, loaded as f32
//! or kept in bf16.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rg_core::{DType, Device, Tensor};
use rg_io::{SafeTensorsFile, StoredDType};

use crate::index::ShardIndex;
use crate::{HubError, ModelFiles, Result, WeightFiles};

/// The dtypes weights can be loaded in.
pub const SUPPORTED_WEIGHT_DTYPES: &[DType] = &[DType::F32, DType::BF16];

/// Every tensor of the model's weights on `device`. Floating-point tensors become
/// `dtype` (f32: f32 files mapped, f16/bf16 converted; bf16: bf16 files as they are,
/// others rounded); integer tensors keep their type. A NaN or infinite weight is an
/// error naming the file, tensor and element.
pub fn load_weights(
    files: &ModelFiles,
    device: &Device,
    dtype: DType,
) -> Result<HashMap<String, Tensor>> {
    check_weight_dtype(dtype)?;
    let spec = files.spec.as_str();
    match &files.weights {
        WeightFiles::Single(path) => load_file(spec, path, device, dtype),
        WeightFiles::Sharded { index, shards } => {
            check_shards(spec, index, shards)?;
            let mut all = HashMap::with_capacity(index.weight_map.len());
            for shard in shards {
                all.extend(load_file(spec, shard, device, dtype)?);
            }
            Ok(all)
        }
    }
}

pub(crate) fn check_weight_dtype(dtype: DType) -> Result<()> {
    if SUPPORTED_WEIGHT_DTYPES.contains(&dtype) {
        Ok(())
    } else {
        Err(HubError::UnsupportedDType { dtype })
    }
}

/// Checks the shards against the index from their headers alone: no tensor in two
/// shards, every stored tensor listed under its own shard, every listed tensor stored.
fn check_shards(spec: &str, index: &ShardIndex, shards: &[PathBuf]) -> Result<()> {
    let mut owner: HashMap<String, &Path> = HashMap::new();
    for shard in shards {
        let file = SafeTensorsFile::open(shard).map_err(|e| HubError::weights(spec, e))?;
        for name in file.names() {
            if let Some(first) = owner.insert(name.to_string(), shard) {
                return Err(HubError::DuplicateTensor {
                    spec: spec.to_string(),
                    tensor: name.to_string(),
                    first: first.to_path_buf(),
                    second: shard.clone(),
                });
            }
        }
    }
    let bad = |field: String, msg: String| HubError::bad_index(spec, &index.path, field, msg);
    let file_name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut stored: Vec<(&String, &Path)> = owner.iter().map(|(n, p)| (n, *p)).collect();
    stored.sort();
    for (name, shard) in stored {
        let actual = file_name(shard).unwrap_or_default();
        match index.weight_map.get(name) {
            None => {
                return Err(bad(
                    "weight_map".into(),
                    format!("tensor {name:?} is stored in {actual} but not listed"),
                ))
            }
            Some(listed) if *listed != actual => {
                return Err(bad(
                    format!("weight_map[{name:?}]"),
                    format!("says {listed:?} but the tensor is stored in {actual}"),
                ))
            }
            Some(_) => {}
        }
    }
    for (name, shard) in &index.weight_map {
        if !owner.contains_key(name) {
            return Err(bad(
                format!("weight_map[{name:?}]"),
                format!("shard {shard:?} has no such tensor"),
            ));
        }
    }
    Ok(())
}

fn load_file(
    spec: &str,
    path: &Path,
    device: &Device,
    dtype: DType,
) -> Result<HashMap<String, Tensor>> {
    if dtype == DType::F32 {
        return rg_gpt::checkpoint::load_tensors(path, device).map_err(|e| HubError::gpt(spec, e));
    }
    let file = SafeTensorsFile::open(path).map_err(|e| HubError::weights(spec, e))?;
    let mut out = HashMap::with_capacity(file.len());
    for info in file.tensors() {
        let name = info.name();
        if rg_gpt::quantized::is_quantized_part(name) {
            continue; // read by `rg_gpt::quantized::load_quantized`
        }
        let stored = info.dtype();
        let raw = file
            .raw_bytes(name)
            .map_err(|e| HubError::weights(spec, e))?;
        if let Some(element) = first_non_finite(stored, raw) {
            return Err(HubError::bad_file(
                spec,
                path,
                format!("tensor {name:?} holds a non-finite value at element {element}"),
            ));
        }
        let tensor = match stored.load_dtype() {
            Some(d) if d.is_float() => file.load_as(name, dtype, device),
            _ => file.tensor(name, device),
        }
        .map_err(|e| HubError::weights(spec, e))?;
        out.insert(name.to_string(), tensor);
    }
    Ok(out)
}

/// Index of the first NaN or infinity (an all-ones exponent) in little-endian floats.
fn first_non_finite(dtype: StoredDType, bytes: &[u8]) -> Option<usize> {
    fn scan<const N: usize>(bytes: &[u8], special: impl Fn([u8; N]) -> bool) -> Option<usize> {
        bytes
            .chunks_exact(N)
            .position(|c| c.try_into().map(&special).unwrap_or(false))
    }
    match dtype {
        StoredDType::F32 => scan(bytes, |b: [u8; 4]| {
            u32::from_le_bytes(b) & 0x7F80_0000 == 0x7F80_0000
        }),
        StoredDType::F64 => scan(bytes, |b: [u8; 8]| {
            u64::from_le_bytes(b) & 0x7FF0_0000_0000_0000 == 0x7FF0_0000_0000_0000
        }),
        StoredDType::BF16 => scan(bytes, |b: [u8; 2]| u16::from_le_bytes(b) & 0x7F80 == 0x7F80),
        StoredDType::F16 => scan(bytes, |b: [u8; 2]| u16::from_le_bytes(b) & 0x7C00 == 0x7C00),
        _ => None,
    }
}

/// The Q8_0 weights of the model's files (`rg_gpt::quantized`), by base name.
pub fn load_quantized_weights(
    files: &ModelFiles,
) -> Result<HashMap<String, std::sync::Arc<rg_core::Q8Matrix>>> {
    let spec = files.spec.as_str();
    let paths: Vec<&PathBuf> = match &files.weights {
        WeightFiles::Single(path) => vec![path],
        WeightFiles::Sharded { shards, .. } => shards.iter().collect(),
    };
    let mut all = HashMap::new();
    for path in paths {
        all.extend(
            rg_gpt::quantized::load_quantized_file(path).map_err(|e| HubError::gpt(spec, e))?,
        );
    }
    Ok(all)
}

/// Errors unless `device` can multiply matrices of `dtype` (a 2x2 matmul), so a model
/// is never built in a precision its kernels lack.
pub fn check_compute(dtype: DType, device: &Device) -> Result<()> {
    let a = Tensor::zeros([2, 2], dtype, device)?;
    a.matmul(&a)
        .map(|_| ())
        .map_err(|e| HubError::UnsupportedCompute {
            dtype,
            device: device.to_string(),
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_scan() {
        let f32s: Vec<u8> = [1.0f32, f32::INFINITY]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(first_non_finite(StoredDType::F32, &f32s), Some(1));
        assert_eq!(first_non_finite(StoredDType::F32, &f32s[..4]), None);
        assert_eq!(
            first_non_finite(StoredDType::BF16, &[0x80, 0x3f, 0xc0, 0x7f]),
            Some(1)
        );
        assert_eq!(first_non_finite(StoredDType::U32, &[0xff; 8]), None);
    }
}
