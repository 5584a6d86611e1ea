//! Q8_0 model files: how quantized weights are stored in `model.safetensors`, read
//! back and validated. Only the matrices that matmuls read are quantized (`wte`, which
//! is also the tied LM head, and every Linear weight); everything else stays f32.
//!
//! Storage, for a weight whose f32 tensor would be called `NAME`
//! (e.g. `transformer.h.0.attn.c_attn.weight`):
//!
//! - `NAME.q8_0`: `I8` `[rows, cols]`, values in `-127..=127`;
//! - `NAME.q8_0_scales`: `F16` `[rows, cols / 32]`, finite and non-negative;
//!
//! with `cols` the reduction axis, so `w[r, c] = values[r, c] * scales[r, c / 32]`.
//! For `wte` that is its own `[vocab, n_embd]` layout; a Linear (Conv1D `[in, out]`)
//! weight is stored transposed, `[out, in]`, as PyTorch's `nn.Linear` stores it. The
//! file's metadata says so: `quantization = "q8_0"`, `q8_0.block_size = "32"`,
//! `q8_0.layout` (a one-line description of the above).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use rg_core::{f16, Q8Matrix, Q8_BLOCK};
use rg_io::{SafeTensorsFile, StoredDType, TensorEntry};

use crate::{GptError, Result};

pub const VALUES_SUFFIX: &str = ".q8_0";
pub const SCALES_SUFFIX: &str = ".q8_0_scales";

/// The metadata a q8_0 `model.safetensors` carries.
pub fn metadata() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("quantization".to_string(), "q8_0".to_string()),
        ("q8_0.block_size".to_string(), Q8_BLOCK.to_string()),
        (
            "q8_0.layout".to_string(),
            "NAME.q8_0: I8 [rows, cols]; NAME.q8_0_scales: F16 [rows, cols/32]; w[r, c] = q8_0[r, c] * scales[r, c/32]; cols is the reduction axis (Linear weights stored [out, in])".to_string(),
        ),
    ])
}

/// Whether a stored tensor is half of a quantized weight (its values or scales).
pub fn is_quantized_part(name: &str) -> bool {
    name.ends_with(VALUES_SUFFIX) || name.ends_with(SCALES_SUFFIX)
}

/// The two entries storing `data` (`[rows, cols]` f32, reduction axis last) as
/// Q8_0 under `name`.
pub fn quantized_entries(
    name: &str,
    data: &[f32],
    rows: usize,
    cols: usize,
) -> rg_core::Result<[TensorEntry<'static>; 2]> {
    let q = Q8Matrix::quantize(data, rows, cols)?;
    let values: Vec<u8> = q.values().iter().map(|&v| v as u8).collect();
    let scales: Vec<u8> = q
        .scales()
        .iter()
        .flat_map(|s| s.to_bits().to_le_bytes())
        .collect();
    Ok([
        TensorEntry::new(
            format!("{name}{VALUES_SUFFIX}"),
            StoredDType::I8,
            vec![rows, cols],
            values,
        ),
        TensorEntry::new(
            format!("{name}{SCALES_SUFFIX}"),
            StoredDType::F16,
            vec![rows, cols / Q8_BLOCK],
            scales,
        ),
    ])
}

/// Every quantized weight of a safetensors file, by its base name (`NAME`), the
/// values mapped from the file without a copy. Each pair is checked: both halves
/// present, `I8` values `[rows, cols]` with `cols` a multiple of 32, `F16` scales
/// `[rows, cols / 32]`, and the values and scales themselves ([`Q8Matrix::new`]).
pub fn load_quantized(
    file: &SafeTensorsFile,
    path: &Path,
) -> Result<HashMap<String, Arc<Q8Matrix>>> {
    let bad = |msg: String| GptError::bad_file(path, msg);
    let mut out = HashMap::new();
    for info in file.tensors() {
        let name = info.name();
        if let Some(base) = name.strip_suffix(SCALES_SUFFIX) {
            if file.get(&format!("{base}{VALUES_SUFFIX}")).is_none() {
                return Err(bad(format!(
                    "q8_0 scales {name:?} have no values tensor {base}{VALUES_SUFFIX:?}"
                )));
            }
            continue;
        }
        let Some(base) = name.strip_suffix(VALUES_SUFFIX) else {
            continue;
        };
        let scales_name = format!("{base}{SCALES_SUFFIX}");
        let scales = file.get(&scales_name).ok_or_else(|| {
            bad(format!(
                "q8_0 values {name:?} have no scales tensor {scales_name:?}"
            ))
        })?;
        if info.dtype() != StoredDType::I8 {
            return Err(bad(format!(
                "q8_0 values {name:?} have dtype {}, expected I8",
                info.dtype()
            )));
        }
        if scales.dtype() != StoredDType::F16 {
            return Err(bad(format!(
                "q8_0 scales {scales_name:?} have dtype {}, expected F16",
                scales.dtype()
            )));
        }
        let &[rows, cols] = info.shape() else {
            return Err(bad(format!(
                "q8_0 values {name:?} have shape {:?}, expected [rows, cols]",
                info.shape()
            )));
        };
        if cols == 0 || cols % Q8_BLOCK != 0 {
            return Err(bad(format!(
                "q8_0 values {name:?} have {cols} columns, not a positive multiple of {Q8_BLOCK}"
            )));
        }
        let want = [rows, cols / Q8_BLOCK];
        if scales.shape() != want {
            return Err(bad(format!(
                "q8_0 scales {scales_name:?} have shape {:?}, expected {want:?} for values of [{rows}, {cols}]",
                scales.shape()
            )));
        }
        let scale_values: Vec<f16> = file
            .raw_bytes(&scales_name)?
            .chunks_exact(2)
            .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])))
            .collect();
        let q = Q8Matrix::new(rows, cols, file.shared_bytes(name)?, scale_values)
            .map_err(|e| bad(format!("tensor {base:?}: {e}")))?;
        out.insert(base.to_string(), Arc::new(q));
    }
    Ok(out)
}

/// [`load_quantized`] of the file at `path` (mapped once more; the map is shared by
/// the pages the OS caches, not copied).
pub fn load_quantized_file(path: &Path) -> Result<HashMap<String, Arc<Q8Matrix>>> {
    let file = SafeTensorsFile::open(path)?;
    load_quantized(&file, path)
}

/// `model` with `wte` and every Linear weight quantized to Q8_0 in memory (what
/// loading a converted q8_0 directory gives, without the file); the other tensors
/// are kept in f32. For benchmarks and quality checks.
pub fn quantize_model(model: &crate::Gpt) -> Result<crate::Gpt> {
    let mut tensors = HashMap::new();
    let mut quantized = HashMap::new();
    for (name, var) in rg_nn::Module::named_params(model) {
        let t = var.tensor().to_dtype(rg_core::DType::F32)?;
        if !crate::precision::keeps_half(&name) {
            tensors.insert(name, t);
            continue;
        }
        let (rows, cols) = (t.dims()[0], t.dims()[1]);
        let values = t.to_vec::<f32>()?;
        let q = if name == "wte.weight" {
            Q8Matrix::quantize(&values, rows, cols)?
        } else {
            // Conv1D `[in, out]` -> `[out, in]`, the reduction axis last.
            let mut t = vec![0f32; values.len()];
            for (i, row) in values.chunks_exact(cols).enumerate() {
                for (o, &v) in row.iter().enumerate() {
                    t[o * rows + i] = v;
                }
            }
            Q8Matrix::quantize(&t, cols, rows)?
        };
        quantized.insert(name, Arc::new(q));
    }
    Ok(crate::Gpt::from_weights(
        model.config().clone(),
        tensors,
        quantized,
    )?)
}
