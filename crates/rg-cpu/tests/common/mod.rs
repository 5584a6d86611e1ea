//! Shared helpers for the kernel tests: a deterministic generator, storages built from
//! f64 reference data, a zoo of strided layouts, and tolerant comparison.

#![allow(dead_code)]

use rg_core::backend::{Backend, BackendStorage, BoxStorage, View};
use rg_core::{DType, HostBuffer, Layout, Shape};
use rg_cpu::CpuBackend;

pub fn backend() -> CpuBackend {
    CpuBackend::new()
}

/// A tiny linear congruential generator: reproducible data without a dependency.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }

    /// Uniform in `[-1, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn vec(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }
}

/// Host data of `dtype` holding `values` (rounded for narrower types).
pub fn host(values: &[f64], dtype: DType) -> HostBuffer {
    match dtype {
        DType::F32 => HostBuffer::F32(values.iter().map(|&v| v as f32).collect()),
        DType::F64 => HostBuffer::F64(values.to_vec()),
        DType::BF16 => HostBuffer::BF16(values.iter().map(|&v| half::bf16::from_f64(v)).collect()),
        DType::F16 => HostBuffer::F16(values.iter().map(|&v| half::f16::from_f64(v)).collect()),
        DType::U32 => HostBuffer::U32(values.iter().map(|&v| v as u32).collect()),
        DType::I64 => HostBuffer::I64(values.iter().map(|&v| v as i64).collect()),
    }
}

pub fn store(values: &[f64], dtype: DType) -> BoxStorage {
    backend().from_host(host(values, dtype)).unwrap()
}

/// The values as the storage really holds them (after rounding to its dtype).
pub fn rounded(values: &[f64], dtype: DType) -> Vec<f64> {
    host(values, dtype).to_f64_vec()
}

/// Every element of contiguous storage as f64.
pub fn read(storage: &dyn BackendStorage) -> Vec<f64> {
    let layout = Layout::contiguous([storage.len()]);
    backend()
        .to_host(View::new(storage, &layout))
        .unwrap()
        .to_f64_vec()
}

/// Row-major elements of a strided view of `data`, the slow obvious way.
pub fn gather(data: &[f64], layout: &Layout) -> Vec<f64> {
    layout.storage_indices().map(|i| data[i]).collect()
}

/// A strided view of logical shape `dims` over storage of `len` elements.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub len: usize,
    pub layout: Layout,
}

/// The same logical shape seen through different layouts: contiguous, offset,
/// transposed (last two axes), narrowed (offset and padded rows), broadcast (first
/// axis repeated with stride 0).
pub fn layouts(dims: &[usize]) -> Vec<Case> {
    let shape = Shape::new(dims);
    let rank = dims.len();
    let n = shape.elem_count();
    let mut cases = vec![
        Case {
            name: "contiguous",
            len: n,
            layout: Layout::contiguous(shape.clone()),
        },
        Case {
            name: "offset",
            len: n + 5,
            layout: Layout::contiguous_with_offset(shape.clone(), 5),
        },
    ];
    if rank >= 2 {
        let mut swapped = dims.to_vec();
        swapped.swap(rank - 2, rank - 1);
        cases.push(Case {
            name: "transposed",
            len: n,
            layout: Layout::contiguous(swapped).transpose(rank - 2, rank - 1),
        });
    }
    if rank >= 1 {
        let mut big = dims.to_vec();
        let layout = if rank == 1 {
            big[0] += 4;
            Layout::contiguous(big.clone())
                .narrow("test", 0, 2, dims[0])
                .unwrap()
        } else {
            big[0] += 1;
            big[rank - 1] += 3;
            Layout::contiguous(big.clone())
                .narrow("test", 0, 1, dims[0])
                .unwrap()
                .narrow("test", rank - 1, 2, dims[rank - 1])
                .unwrap()
        };
        cases.push(Case {
            name: "narrowed",
            len: big.iter().product(),
            layout,
        });
        let mut one = dims.to_vec();
        one[0] = 1;
        let layout = Layout::contiguous(one.clone())
            .broadcast_to("test", &shape)
            .unwrap();
        cases.push(Case {
            name: "broadcast",
            len: one.iter().product(),
            layout,
        });
    }
    cases
}

/// Asserts `|got - want| <= tol * (1 + |want|)` elementwise (NaNs must match).
#[track_caller]
pub fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: got {g}, want NaN");
            continue;
        }
        if w.is_infinite() {
            assert_eq!(g, w, "{what}[{i}]");
            continue;
        }
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w} (tol {tol})"
        );
    }
}

/// Comparison tolerance for results computed in `dtype`.
pub fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-10,
        _ => 2e-5,
    }
}

pub const FLOATS: [DType; 2] = [DType::F32, DType::F64];
