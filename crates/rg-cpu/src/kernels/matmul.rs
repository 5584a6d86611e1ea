//! Batched matrix product `[b, m, k] x [b, k, n] -> [b, m, n]` over strided views.
//!
//! Operands are read through their strides (a transposed view is just swapped
//! strides), so nothing is copied; a batch stride of 0 (a broadcast operand) works the
//! same way. The GEMM itself is `matrixmultiply`, or system OpenBLAS with the `blas`
//! feature when both operands have a unit stride in one of their two axes.
//!
//! Threading. `matrixmultiply` (and OpenBLAS) run their own threads inside one GEMM,
//! and only for matrices big enough to pay for them: `matrixmultiply` uses one thread
//! while `m*k + k*n < 2^15` (its `MATMUL_NUM_THREADS` environment variable caps the
//! count, default the number of physical cores, at most 4), OpenBLAS while
//! `m*n*k <= 2^18`. So a batch is spread over the rayon pool only when its matrices are
//! below those sizes, where each GEMM is single-threaded; larger matrices run one after
//! another, each using the library's threads while the rayon pool is idle. The two
//! never run at once, and the machine is never oversubscribed.

use rayon::prelude::*;
use rg_core::backend::{BoxStorage, MatmulDims, View};
use rg_core::{DType, Device, Error, Layout, Result, Shape};

use crate::math::Real;
use crate::strided::Walk;
use crate::view::{boxed, common_dtype, typed, unsupported};

const OP: &str = "matmul";

/// Below this many multiply-adds a whole batch stays on the calling thread.
const PAR_MIN_FLOPS: usize = 1 << 17;

pub fn matmul(lhs: View<'_>, rhs: View<'_>, dims: MatmulDims) -> Result<BoxStorage> {
    // Decoding's few-row products are bandwidth-bound: read the weight in place.
    if let Some(out) = super::gemv::matmul(lhs, rhs, dims) {
        return out;
    }
    match common_dtype(OP, &[lhs, rhs])? {
        DType::F32 => run::<f32>(lhs, rhs, dims),
        DType::F64 => run::<f64>(lhs, rhs, dims),
        DType::BF16 => super::matmul_bf16::via_f32(lhs, rhs, dims, run::<f32>),
        other => Err(unsupported(OP, other, "f32 or f64")),
    }
}

/// One operand: where each batch's matrix starts, and its row and column strides.
struct Operand {
    starts: Vec<usize>,
    row_stride: usize,
    col_stride: usize,
}

impl Operand {
    /// Reads `layout` as `[.., rows, cols]` whose leading axes hold `batch` matrices
    /// (or one matrix repeated `batch` times).
    fn new(layout: &Layout, batch: usize, rows: usize, cols: usize, what: &str) -> Result<Self> {
        let dims = layout.dims();
        let strides = layout.strides();
        let rank = dims.len();
        let mismatch = || {
            Error::backend(
                Device::Cpu,
                OP,
                format!("{what} has shape {dims:?}, expected [{batch}, {rows}, {cols}] (or a broadcast of [{rows}, {cols}])"),
            )
        };
        if rank < 2 || dims[rank - 2] != rows || dims[rank - 1] != cols {
            return Err(mismatch());
        }
        let batch_layout = Layout::new(
            Shape::new(&dims[..rank - 2]),
            strides[..rank - 2].to_vec(),
            layout.offset(),
        );
        let count = batch_layout.elem_count();
        let starts = if count == batch {
            let walk = Walk::new([&batch_layout]);
            let [s] = walk.inner_strides();
            let mut starts = Vec::with_capacity(batch);
            walk.for_runs(0, count, |_, [b], run| {
                starts.extend((0..run).map(|i| b + i * s))
            });
            starts
        } else if count == 1 {
            vec![layout.offset(); batch]
        } else {
            return Err(mismatch());
        };
        Ok(Operand {
            starts,
            row_stride: strides[rank - 2],
            col_stride: strides[rank - 1],
        })
    }
}

fn run<T: Real + Gemm>(lhs: View<'_>, rhs: View<'_>, dims: MatmulDims) -> Result<BoxStorage> {
    let MatmulDims { batch, m, n, k } = dims;
    let a = typed::<T>(lhs, OP)?;
    let b = typed::<T>(rhs, OP)?;
    let lhs_op = Operand::new(a.layout, batch, m, k, "lhs")?;
    let rhs_op = Operand::new(b.layout, batch, k, n, "rhs")?;
    let mut out = vec![T::zero(); batch * m * n];
    if out.is_empty() || k == 0 {
        return Ok(boxed(out));
    }
    let plan = Plan::new(m, n, k, &lhs_op, &rhs_op);
    let one = |i: usize, c: &mut [T]| {
        // SAFETY: `typed` checked that both layouts stay inside their slices, and the
        // starts and strides come from those layouts with the checked dims, so every
        // element GEMM reads is in bounds; `c` holds exactly the `m * n` outputs.
        unsafe {
            T::gemm(
                &plan,
                a.data.as_ptr().add(lhs_op.starts[i]),
                b.data.as_ptr().add(rhs_op.starts[i]),
                c.as_mut_ptr(),
            )
        }
    };
    let small = plan.single_threaded::<T>();
    let worth = batch.saturating_mul(m * n).saturating_mul(k) >= PAR_MIN_FLOPS;
    if batch > 1 && small && worth && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, c)| one(i, c));
    } else {
        out.chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, c)| one(i, c));
    }
    Ok(boxed(out))
}

/// The per-matrix shape and strides of one batched product, shared by every batch.
pub struct Plan {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Row and column strides of the lhs `[m, k]` and rhs `[k, n]`.
    pub a: (usize, usize),
    pub b: (usize, usize),
}

impl Plan {
    fn new(m: usize, n: usize, k: usize, lhs: &Operand, rhs: &Operand) -> Self {
        Plan {
            m,
            n,
            k,
            a: (lhs.row_stride, lhs.col_stride),
            b: (rhs.row_stride, rhs.col_stride),
        }
    }

    /// Whether the GEMM `T::gemm` would pick runs on one thread (see the module docs).
    fn single_threaded<T: Gemm>(&self) -> bool {
        if T::uses_blas(self) {
            self.m * self.n * self.k <= 1 << 18
        } else {
            self.m * self.k + self.k * self.n < 1 << 15
        }
    }
}

/// A GEMM for one element type: `c = a * b` for one matrix of the plan, `c` row-major
/// `[m, n]` and overwritten.
pub trait Gemm: Sized {
    /// # Safety
    /// `a` and `b` must be valid for every element the plan's dims and strides reach,
    /// and `c` for `m * n` writes, not aliasing `a` or `b`.
    unsafe fn gemm(plan: &Plan, a: *const Self, b: *const Self, c: *mut Self);

    /// Whether [`Gemm::gemm`] will hand this plan to BLAS.
    fn uses_blas(plan: &Plan) -> bool;
}

macro_rules! gemm_impl {
    ($ty:ty, $mm:ident) => {
        impl Gemm for $ty {
            unsafe fn gemm(plan: &Plan, a: *const Self, b: *const Self, c: *mut Self) {
                #[cfg(feature = "blas")]
                if let Some(call) = super::matmul_blas::BlasCall::new(plan) {
                    // SAFETY: forwarded from the caller.
                    unsafe { call.run(a, b, c) };
                    return;
                }
                let s = |x: usize| x as isize;
                // SAFETY: forwarded from the caller; strides fit in isize because they
                // index an allocated slice.
                unsafe {
                    matrixmultiply::$mm(
                        plan.m,
                        plan.k,
                        plan.n,
                        1.0,
                        a,
                        s(plan.a.0),
                        s(plan.a.1),
                        b,
                        s(plan.b.0),
                        s(plan.b.1),
                        0.0,
                        c,
                        s(plan.n),
                        1,
                    )
                }
            }

            fn uses_blas(_plan: &Plan) -> bool {
                #[cfg(feature = "blas")]
                return super::matmul_blas::BlasCall::new(_plan).is_some();
                #[cfg(not(feature = "blas"))]
                false
            }
        }
    };
}

gemm_impl!(f32, sgemm);
gemm_impl!(f64, dgemm);
