//! Q8_0 weights: int8 values with one f16 scale per block of [`Q8_BLOCK`] values along
//! the reduction axis, llama.cpp's `Q8_0` layout (1.0625 bytes per weight instead of 4
//! or 2). Decoding reads every weight once per token, so its speed is bandwidth over
//! weight bytes; this is the smaller weight.
//!
//! A [`Q8Matrix`] is `[rows, cols]` with `cols` the reduction axis: the product it
//! takes part in is `x · Wᵀ` (`x` `[m, cols]` → `[m, rows]`), the layout of the LM head
//! (`wte` `[vocab, c]`) and of PyTorch's `nn.Linear` (`[out, in]`, the transpose of
//! GPT-2's Conv1D). Element `(r, c)` is `values[r, c] * scales[r, c / 32]`.
//!
//! It is not a [`crate::DType`]: no backend would have anything to do with an int8
//! tensor but this one product, so instead of every backend growing match arms the
//! product is one [`crate::Backend::matmul_q8`] method whose default says the backend
//! lacks it. The values live in host memory (a memory-mapped file, zero copy).

use std::sync::Arc;

use half::f16;

use crate::{DType, Error, Result, Shape, SharedBytes, Tensor};

/// Values per scale.
pub const Q8_BLOCK: usize = 32;

/// Largest magnitude of a quantized value: symmetric quantization never produces -128,
/// so a file holding it was not written by this scheme and is refused.
pub const Q8_MAX: i8 = 127;

/// An int8 matrix with a per-block f16 scale; see the module documentation.
#[derive(Clone)]
pub struct Q8Matrix {
    rows: usize,
    cols: usize,
    values: SharedBytes,
    scales: Arc<[f16]>,
}

impl std::fmt::Debug for Q8Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Q8Matrix[{}, {}]", self.rows, self.cols)
    }
}

impl Q8Matrix {
    /// Checks and wraps stored data: `values` holds `rows * cols` int8 bytes in
    /// `-127..=127`, `scales` `rows * cols / 32` finite, non-negative f16 values, and
    /// `cols` is a positive multiple of 32. Errors name what is wrong.
    pub fn new(rows: usize, cols: usize, values: SharedBytes, scales: Vec<f16>) -> Result<Self> {
        const OP: &str = "q8_0 matrix";
        if cols == 0 || cols % Q8_BLOCK != 0 {
            return Err(Error::invalid(
                OP,
                format!(
                    "the reduction axis has {cols} values, not a positive multiple of {Q8_BLOCK}"
                ),
            ));
        }
        let count = rows.checked_mul(cols).ok_or_else(|| {
            Error::invalid(OP, format!("[{rows}, {cols}] overflows the address space"))
        })?;
        if values.len() != count {
            return Err(Error::invalid(
                OP,
                format!(
                    "{} value bytes for a [{rows}, {cols}] matrix (expected {count})",
                    values.len()
                ),
            ));
        }
        if scales.len() != count / Q8_BLOCK {
            return Err(Error::invalid(
                OP,
                format!(
                    "{} scales for a [{rows}, {cols}] matrix (expected {}, one per {Q8_BLOCK} values)",
                    scales.len(),
                    count / Q8_BLOCK
                ),
            ));
        }
        if let Some(i) = scales
            .iter()
            .position(|s| !s.is_finite() || s.is_sign_negative())
        {
            return Err(Error::invalid(
                OP,
                format!(
                    "scale {i} is {} (scales must be finite and non-negative)",
                    scales[i]
                ),
            ));
        }
        if let Some(i) = values.as_bytes().iter().position(|&b| b as i8 == i8::MIN) {
            return Err(Error::invalid(
                OP,
                format!("value {i} is -128 (values must lie in -127..=127)"),
            ));
        }
        Ok(Q8Matrix {
            rows,
            cols,
            values,
            scales: scales.into(),
        })
    }

    /// Quantizes row-major f32 `data` `[rows, cols]` per block: scale = max |x| / 127,
    /// value = round(x / scale). Non-finite input is an error naming the element.
    pub fn quantize(data: &[f32], rows: usize, cols: usize) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::invalid(
                "q8_0 quantize",
                format!("{} values for a [{rows}, {cols}] matrix", data.len()),
            ));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "q8_0 quantize",
                format!(
                    "element {i} is {} (only finite weights can be quantized)",
                    data[i]
                ),
            ));
        }
        if cols % Q8_BLOCK != 0 {
            // `new` words this error; quantizing nothing first costs nothing.
            return Q8Matrix::new(rows, cols, SharedBytes::from_vec(Vec::new()), Vec::new());
        }
        let mut values = Vec::with_capacity(data.len());
        let mut scales = Vec::with_capacity(data.len() / Q8_BLOCK);
        for block in data.chunks_exact(Q8_BLOCK) {
            let (scale, inverse) = block_scale(block);
            scales.push(scale);
            values.extend(block.iter().map(|&v| quantize_value(v, inverse) as u8));
        }
        Q8Matrix::new(rows, cols, SharedBytes::from_vec(values), scales)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Length of the reduction axis.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Values row-major `[rows, cols]`.
    pub fn values(&self) -> &[i8] {
        let bytes = self.values.as_bytes();
        // SAFETY: i8 and u8 have the same size, alignment and validity.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
    }

    /// Scales row-major `[rows, cols / 32]`.
    pub fn scales(&self) -> &[f16] {
        &self.scales
    }

    /// Bytes held: values and scales.
    pub fn byte_len(&self) -> usize {
        self.values.len() + 2 * self.scales.len()
    }

    /// Row `r` widened to f32 into `out` (`cols` long).
    pub fn dequantize_row_into(&self, r: usize, out: &mut [f32]) {
        let blocks = self.cols / Q8_BLOCK;
        let values = &self.values()[r * self.cols..(r + 1) * self.cols];
        let scales = &self.scales[r * blocks..(r + 1) * blocks];
        for ((o, v), s) in out
            .chunks_exact_mut(Q8_BLOCK)
            .zip(values.chunks_exact(Q8_BLOCK))
            .zip(scales)
        {
            let s = s.to_f32();
            for (o, &v) in o.iter_mut().zip(v) {
                *o = v as f32 * s;
            }
        }
    }

    /// The whole matrix widened to f32, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, row) in out.chunks_exact_mut(self.cols.max(1)).enumerate() {
            self.dequantize_row_into(r, row);
        }
        out
    }

    /// Rows `ids` as an f32 tensor `[ids.len(), cols]` on `device` (an embedding
    /// lookup in a quantized table); an id out of range is an error.
    pub fn gather_rows(&self, ids: &[u32], device: &crate::Device) -> Result<Tensor> {
        let mut out = vec![0f32; ids.len() * self.cols];
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(self.cols)) {
            if id as usize >= self.rows {
                return Err(Error::IndexOutOfRange {
                    op: "q8_0 embedding",
                    index: id as i64,
                    size: self.rows,
                });
            }
            self.dequantize_row_into(id as usize, row);
        }
        Tensor::from_vec(out, [ids.len(), self.cols], device)
    }
}

/// The f16 scale of one block and the inverse the values are computed with (0 for an
/// all-zero block).
fn block_scale(block: &[f32]) -> (f16, f32) {
    let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = f16::from_f32(amax / Q8_MAX as f32);
    // Quantize with the rounded scale, so value * scale is what the kernels compute.
    let s = scale.to_f32();
    (scale, if s > 0.0 { 1.0 / s } else { 0.0 })
}

fn quantize_value(v: f32, inverse: f32) -> i8 {
    (v * inverse).round().clamp(-(Q8_MAX as f32), Q8_MAX as f32) as i8
}

impl Tensor {
    /// `self · wᵀ` for `self` `[m, w.cols()]` (f32) and a Q8_0 matrix `w`: an f32
    /// `[m, w.rows()]`. The backend may round `self` per block to int8 (its decode
    /// kernel) or to bf16 (its prefill path); accumulation is f32.
    pub fn matmul_q8(&self, w: &Q8Matrix) -> Result<Tensor> {
        const OP: &str = "matmul_q8";
        if self.dtype() != DType::F32 {
            return Err(Error::UnsupportedDType {
                op: OP,
                dtype: self.dtype(),
                expected: "f32 activations",
            });
        }
        if self.rank() != 2 || self.dims()[1] != w.cols() {
            return Err(Error::invalid(
                OP,
                format!(
                    "activations of shape {} do not match a q8_0 weight of [{}, {}] (expected [m, {}])",
                    self.shape(),
                    w.rows(),
                    w.cols(),
                    w.cols()
                ),
            ));
        }
        let m = self.dims()[0];
        let storage = Tensor::with_views(OP, [self], |b, [x]| b.matmul_q8(x, w))?;
        Ok(self.wrap(storage, Shape::new([m, w.rows()])))
    }
}
