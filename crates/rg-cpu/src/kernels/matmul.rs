//! Batched matrix product `[b, m, k] x [b, k, n] -> [b, m, n]` over strided views.
//!
//! Operands are read through their strides (a transposed view is just swapped
//! strides), so nothing is copied; a batch stride of 0 (a broadcast operand) works the
//! same way. The output is contiguous.
//!
//! Engines ([`engine`] picks one per call, the same for every product of the batch):
//! - bf16 on CPUs with AMX or AVX512_BF16: the bf16 GEMM of [`super::gemm::bf16`]
//!   (bf16 packing, f32 accumulation, a bf16 result rounded to nearest even by the
//!   GEMM's last depth block, tile by tile);
//!   on aarch64 with the BF16 extension, the packed GEMM of [`super::gemm`] with its
//!   `bfdot` kernel (operands packed as bf16 depth pairs).
//! - f32 on x86 CPUs with AVX-512 or AVX2+FMA and on aarch64 (NEON), and bf16 on the
//!   others: the packed GEMM of [`super::gemm`] (f32 accumulation; bf16 operands are
//!   widened while packing). Both GEMMs thread on the global rayon pool.
//! - f32 elsewhere (x86 without AVX2+FMA), and f64: `matrixmultiply`; with the `blas` feature, system
//!   OpenBLAS takes f32 and f64 whenever both operands have a unit stride in one axis.
//!
//! Threading. The packed GEMM splits a batch over the rayon pool (each product on one
//! thread, its packing amortised over the product) when the products are small or
//! divide evenly among the threads; otherwise the products run one after another,
//! each split across the pool. `matrixmultiply` (and OpenBLAS) run their own threads
//! inside one GEMM, and only for matrices big enough to pay for them:
//! `matrixmultiply` uses one thread while `m*k + k*n < 2^15` (its
//! `MATMUL_NUM_THREADS` environment variable caps the count, default the number of
//! physical cores, at most 4), OpenBLAS while `m*n*k <= 2^18`. So a batch on those
//! engines is spread over the rayon pool only when its matrices are below those sizes,
//! where each GEMM is single-threaded; larger matrices run one after another, each
//! using the library's threads while the rayon pool is idle. The library threads and
//! the pool never run at once, and the machine is never oversubscribed.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use half::bf16;
use rayon::prelude::*;
use rg_core::backend::{BoxStorage, MatmulDims, View};
use rg_core::{DType, Device, Error, Layout, Result, Shape};

use super::gemm::{self, Kernel, Mat, Rounded};
use super::map::map1;
use crate::aligned::AlignedVec;
use crate::math::Real;
use crate::simd::multiversion;
use crate::strided::Walk;
use crate::view::{boxed, common_dtype, typed, unsupported, Typed};

const OP: &str = "matmul";

/// Below this many multiply-adds a whole batch stays on the calling thread.
const PAR_MIN_FLOPS: usize = 1 << 17;

pub fn matmul(lhs: View<'_>, rhs: View<'_>, dims: MatmulDims) -> Result<BoxStorage> {
    product(lhs, rhs, None, dims, Output::OperandDtype)
}

/// `lhs @ rhs (+ bias)` in f32 whatever the operands' dtype: the engines accumulate
/// in f32, so a bf16 product is the accumulator itself, not rounded to bf16 (an
/// autocast product). `bias` is f32.
pub fn matmul_f32(
    lhs: View<'_>,
    rhs: View<'_>,
    bias: Option<View<'_>>,
    dims: MatmulDims,
) -> Result<BoxStorage> {
    if let Some(bias) = bias {
        dims.bias_rows(Device::Cpu, bias.layout)?;
    }
    product(lhs, rhs, bias, dims, Output::F32)
}

/// The dtype of a product's result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    /// The operands' (bf16 rounded to nearest even from the f32 accumulator).
    OperandDtype,
    /// f32, the accumulator as it is (f64 products stay f64 and are then narrowed).
    F32,
}

/// `lhs @ rhs + bias`, `bias` `[n]` added to every row (a linear layer's forward). On
/// the packed GEMMs the bias is where each output tile starts, so adding it costs no
/// pass over the output; the other engines add it to their product afterwards.
pub fn matmul_bias(
    lhs: View<'_>,
    rhs: View<'_>,
    bias: View<'_>,
    dims: MatmulDims,
) -> Result<BoxStorage> {
    dims.bias_rows(Device::Cpu, bias.layout)?;
    product(lhs, rhs, Some(bias), dims, Output::OperandDtype)
}

fn product(
    lhs: View<'_>,
    rhs: View<'_>,
    bias: Option<View<'_>>,
    dims: MatmulDims,
    output: Output,
) -> Result<BoxStorage> {
    let dtype = common_dtype(OP, &[lhs, rhs])?;
    match dtype {
        DType::F32 | DType::F64 | DType::BF16 => {}
        other => return Err(unsupported(OP, other, "f32, f64 or bf16")),
    }
    if dtype == DType::F64 && output == Output::F32 {
        let product = product(lhs, rhs, None, dims, Output::OperandDtype)?;
        let out = Layout::contiguous([dims.batch, dims.m, dims.n]);
        let wide = super::cast::cast(View::new(&*product, &out), DType::F32)?;
        return add_bias_rows(wide, bias, dims);
    }
    let bias_dtype = match output {
        Output::OperandDtype => dtype,
        Output::F32 => DType::F32,
    };
    // The f32 and bf16 engines accumulate in f32 and start from an f32 bias.
    let bias32: Option<Cow<'_, [f32]>> = match bias.map(|c| (c, c.dtype())) {
        Some((c, d)) if d != bias_dtype => {
            return Err(Error::DTypeMismatch {
                op: OP,
                lhs: bias_dtype,
                rhs: c.dtype(),
            })
        }
        Some((c, DType::F32)) => Some(typed::<f32>(c, OP)?.contiguous()),
        Some((c, DType::BF16)) => {
            let c = typed::<bf16>(c, OP)?.contiguous();
            Some(Cow::Owned(c.iter().map(|v| v.to_f32()).collect()))
        }
        _ => None,
    };
    // A bf16 product's result is rounded unless f32 was asked for.
    let round = dtype == DType::BF16 && output == Output::OperandDtype;
    let finish = |out: AlignedVec<f32>| {
        if round {
            boxed(round_to_bf16(out))
        } else {
            boxed(out)
        }
    };
    let finish_packed = |out: Results| match out {
        Results::F32(out) => finish(out),
        Results::Bf16(out) => boxed(out),
    };
    // Decoding's few-row products are bandwidth-bound: read the weight in place.
    if let Some(out) = super::gemv::matmul(lhs, rhs, bias32.as_deref(), dims) {
        return out.map(finish);
    }
    let MatmulDims { batch, m, n, k } = dims;
    let (a, b) = (
        Operand::new(lhs.layout, batch, m, k, "lhs")?,
        Operand::new(rhs.layout, batch, k, n, "rhs")?,
    );
    let plan = Plan::new(m, n, k, &a, &b);
    match (dtype, engine(dtype, &plan)) {
        (DType::F32, Engine::Packed(kern)) => {
            let (x, y) = (typed::<f32>(lhs, OP)?.data, typed::<f32>(rhs, OP)?.data);
            let out = run_packed(
                kern,
                &plan,
                batch,
                (x, &a),
                (y, &b),
                bias32.as_deref(),
                false,
            );
            Ok(finish_packed(out))
        }
        (DType::BF16, Engine::Packed(kern)) => {
            let (x, y) = (typed::<bf16>(lhs, OP)?.data, typed::<bf16>(rhs, OP)?.data);
            let bias = bias32.as_deref();
            let widened = kern
                .reads_f32_lhs_in_place()
                .then(|| widened_lhs(x, &a, &plan, batch))
                .flatten();
            let out = match widened {
                Some((wide, a)) => {
                    let out = run_packed(kern, &plan, batch, (&wide[..], &a), (y, &b), bias, round);
                    crate::pool::recycle(wide);
                    out
                }
                None => run_packed(kern, &plan, batch, (x, &a), (y, &b), bias, round),
            };
            Ok(finish_packed(out))
        }
        #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
        (DType::BF16, Engine::Bf16(kern)) => {
            let (x, y) = (typed::<bf16>(lhs, OP)?.data, typed::<bf16>(rhs, OP)?.data);
            let bias = bias32.as_deref();
            let out = run_packed(kern, &plan, batch, (x, &a), (y, &b), bias, round);
            Ok(finish_packed(out))
        }
        (DType::F64, _) => {
            let out = run_library::<f64>(lhs, rhs, &plan, batch, (&a, &b))?;
            add_bias_rows(out, bias, dims)
        }
        _ => {
            let out = run_library::<f32>(lhs, rhs, &plan, batch, (&a, &b))?;
            add_bias_rows(out, bias, dims)
        }
    }
}

/// `product + bias` on every row, for the library engines (f64, and f32 where the
/// packed GEMM does not run), which cannot start from the bias.
fn add_bias_rows(
    product: BoxStorage,
    bias: Option<View<'_>>,
    dims: MatmulDims,
) -> Result<BoxStorage> {
    let Some(bias) = bias else {
        return Ok(product);
    };
    let rows = dims.bias_rows(Device::Cpu, bias.layout)?;
    let out = Layout::contiguous(rows.shape().clone());
    super::binary::binary(
        rg_core::ops::BinaryOp::Add,
        View::new(&*product, &out),
        View::new(bias.storage, &rows),
    )
}

/// How the products of one call are computed (see the module docs).
#[derive(Clone, Copy)]
enum Engine {
    /// [`super::gemm`] with this micro-kernel.
    Packed(Kernel),
    /// [`super::gemm::bf16`]: bf16 operands on AMX or AVX512_BF16.
    #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
    Bf16(gemm::bf16::Bf16Kernel),
    /// `matrixmultiply`, or OpenBLAS under the `blas` feature.
    Library,
}

/// The one place a call picks its engine. Skinny products (decode steps, `m <= 4`)
/// plug in here: a GEMV engine gets its branch ahead of the packed GEMM.
fn engine(dtype: DType, plan: &Plan) -> Engine {
    match dtype {
        DType::BF16 => bf16_engine(),
        DType::F32 if !f32::uses_blas(plan) => {
            Kernel::native().map_or(Engine::Library, Engine::Packed)
        }
        _ => Engine::Library,
    }
}

/// The engine a large row-major product of `dtype` runs on (what benchmarks label
/// their matmul rows with): `"rg-gemm-avx512"`, `"rg-gemm-neon"`,
/// `"rg-gemm-neon-bfdot"`, `"rg-gemm-simd128"`, `"rg-gemm-portable"`, `"rg-gemm-amx-bf16"`,
/// `"rg-gemm-avx512bf16"`, `"openblas"` or `"matrixmultiply"`.
pub fn engine_name(dtype: DType) -> &'static str {
    let n = 1024;
    let plan = Plan {
        m: n,
        n,
        k: n,
        a: (n, 1),
        b: (n, 1),
    };
    match engine(dtype, &plan) {
        Engine::Packed(kern) => kern.name(),
        #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
        Engine::Bf16(kern) => kern.name(),
        Engine::Library if dtype == DType::F32 && f32::uses_blas(&plan) => "openblas",
        Engine::Library if dtype == DType::F64 && f64::uses_blas(&plan) => "openblas",
        Engine::Library => "matrixmultiply",
    }
}

/// bf16 products: AMX, else AVX512_BF16, else (aarch64) `bfdot` on pairs, else
/// widened to f32 for the packed GEMM
/// (`RG_CPU_BF16` caps the choice, see [`crate::simd::bf16_level`]).
fn bf16_engine() -> Engine {
    #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
    if let Some(kern) = gemm::bf16::Bf16Kernel::best() {
        return Engine::Bf16(kern);
    }
    Engine::Packed(Kernel::neon_bfdot().unwrap_or_else(Kernel::best))
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

/// One GEMM over element type `E`: the packed f32 GEMM with a micro-kernel, or the
/// bf16 GEMM.
trait Product<A, B>: Copy + Sync {
    /// Whether [`Product::product`] can round its result to bf16 as it goes.
    const ROUNDS: bool;

    /// `c = a * b (+ bias on every row)`; with `rounded` (only where `ROUNDS`), the
    /// result rounded to bf16 goes there instead and `c` is scratch.
    ///
    /// # Safety
    /// As [`gemm::gemm`]; `rounded`, when given, as `c`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn product(
        self,
        dims: (usize, usize, usize),
        a: Mat<A>,
        b: Mat<B>,
        bias: Option<&[f32]>,
        c: *mut f32,
        rounded: Option<Rounded>,
        ldc: usize,
        parallel: bool,
    );
}

impl<A: gemm::Elem, B: gemm::Elem> Product<A, B> for Kernel {
    const ROUNDS: bool = false;

    unsafe fn product(
        self,
        dims: (usize, usize, usize),
        a: Mat<A>,
        b: Mat<B>,
        bias: Option<&[f32]>,
        c: *mut f32,
        rounded: Option<Rounded>,
        ldc: usize,
        parallel: bool,
    ) {
        debug_assert!(rounded.is_none(), "the f32 GEMM does not round");
        // SAFETY: forwarded from the caller.
        unsafe { gemm::gemm(self, dims, a, b, bias, c, ldc, parallel) }
    }
}

#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
impl Product<bf16, bf16> for gemm::bf16::Bf16Kernel {
    const ROUNDS: bool = true;

    unsafe fn product(
        self,
        dims: (usize, usize, usize),
        a: Mat<bf16>,
        b: Mat<bf16>,
        bias: Option<&[f32]>,
        c: *mut f32,
        rounded: Option<Rounded>,
        ldc: usize,
        parallel: bool,
    ) {
        // SAFETY: forwarded from the caller; `best` only returns available kernels.
        unsafe { gemm::bf16::gemm(self, dims, a, b, bias, (c, ldc), rounded, parallel) }
    }
}

/// A packed product's results: the f32 accumulators, or already rounded to bf16.
enum Results {
    F32(AlignedVec<f32>),
    Bf16(AlignedVec<bf16>),
}

/// The packed GEMM over the batch, into a fresh `[batch, m, n]`, every row starting
/// from `bias` when given: rounded to bf16 if `round` and the kernel can, else f32.
fn run_packed<A: gemm::Elem, B: gemm::Elem, K: Product<A, B>>(
    kern: K,
    plan: &Plan,
    batch: usize,
    (a, lhs): (&[A], &Operand),
    (b, rhs): (&[B], &Operand),
    bias: Option<&[f32]>,
    round: bool,
) -> Results {
    let (m, n, k) = (plan.m, plan.n, plan.k);
    let len = batch * m * n;
    // Left uninitialised: the GEMM writes every output (zeroing a large fresh buffer
    // first costs as much as a small batch's arithmetic).
    let mut out = crate::pool::with_capacity::<f32>(len);
    let mut rounded = (round && K::ROUNDS).then(|| crate::pool::for_overwrite::<bf16>(len));
    if len == 0 {
        return match rounded {
            Some(r) => Results::Bf16(r),
            None => Results::F32(out),
        };
    }
    let rounded_at = rounded.as_mut().map(|r| Rounded(r.as_mut_ptr()));
    let by_batch = batch > 1
        && rayon::current_num_threads() > 1
        && batch.saturating_mul(m * n).saturating_mul(k) >= PAR_MIN_FLOPS
        && (!gemm::worth_threads(m, n, k)
            || batch % rayon::current_num_threads() == 0
            || batch >= 4 * rayon::current_num_threads());
    let one = |i: usize, c: &mut [MaybeUninit<f32>], parallel: bool| {
        fn mat<E>(data: &[E], start: usize, (rs, cs): (usize, usize)) -> Mat<E> {
            Mat {
                // SAFETY: `start` is an index the checked layout reaches (see `Operand`).
                ptr: unsafe { data.as_ptr().add(start) },
                rs,
                cs,
            }
        }
        // SAFETY: `typed` checked that both layouts stay inside their slices, and the
        // starts and strides come from those layouts with the checked dims, so every
        // element the GEMM reads is in bounds; `c` holds exactly the `m * n` outputs, and
        // so does the rounded result `i * m * n` values in.
        unsafe {
            kern.product(
                (m, n, k),
                mat(a, lhs.starts[i], plan.a),
                mat(b, rhs.starts[i], plan.b),
                bias,
                c.as_mut_ptr().cast::<f32>(),
                rounded_at.map(|r| r.at(i * m * n)),
                n,
                parallel,
            )
        }
    };
    let spare = out.spare(len);
    if by_batch {
        spare
            .par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, c)| one(i, c, false));
    } else {
        let parallel = gemm::worth_threads(m, n, k);
        spare
            .chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, c)| one(i, c, parallel));
    }
    match rounded {
        Some(r) => {
            crate::pool::recycle(out);
            Results::Bf16(r)
        }
        None => {
            // SAFETY: each chunk went to one GEMM, which writes all of its `m * n` outputs.
            unsafe { out.assume_init(len) };
            Results::F32(out)
        }
    }
}

/// A bf16 lhs with unit column stride widened to f32 once, with its operand moved to
/// index the copy: the f32 kernels then read it in place, where packing would convert
/// it panel by panel (bf16 products on CPUs that widen them to the f32 GEMM: Intel
/// without AMX, x86 without AVX512_BF16). `None` when the lhs is not row-major, or its
/// matrices are views into a buffer more than twice their size (the span copied).
fn widened_lhs(
    x: &[bf16],
    lhs: &Operand,
    plan: &Plan,
    batch: usize,
) -> Option<(AlignedVec<f32>, Operand)> {
    let (m, k, (rs, cs)) = (plan.m, plan.k, plan.a);
    if cs != 1 || m == 0 || k == 0 {
        return None;
    }
    let lo = *lhs.starts.iter().min()?;
    let hi = lhs.starts.iter().max()? + (m - 1) * rs + k;
    let matrices = if lhs.starts.iter().all(|&s| s == lo) {
        1
    } else {
        batch
    };
    if hi - lo > 2 * matrices * m * k {
        return None;
    }
    let span = Layout::new(Shape::new([hi - lo]), vec![1], lo);
    let wide = map1(
        Typed {
            data: x,
            layout: &span,
        },
        super::cast::bf16_to_f32,
    );
    let starts = lhs.starts.iter().map(|s| s - lo).collect();
    Some((
        wide,
        Operand {
            starts,
            row_stride: lhs.row_stride,
            col_stride: lhs.col_stride,
        },
    ))
}

/// f32 results rounded to bf16 (nearest, ties to even); the f32 buffer goes back to
/// the pool, since the next product of the same shape wants it again.
fn round_to_bf16(src: AlignedVec<f32>) -> AlignedVec<bf16> {
    let mut out = crate::pool::for_overwrite(src.len());
    crate::parallel::for_rows(&mut out, 1, |first, dst| {
        round_slice(dst, &src[first..first + dst.len()]);
    });
    crate::pool::recycle(src);
    out
}

multiversion! {
    /// `dst[i] = bf16(src[i])`, rounded to nearest even, NaN kept quiet: the same
    /// result as `bf16::from_f32`, written as integer arithmetic on the bits so it
    /// vectorises (it is a full pass over every bf16 product's output).
    fn round_slice(dst: &mut [bf16], src: &[f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = bf16::from_bits(super::cast::bf16_bits(*s));
        }
    }
}

/// `matrixmultiply` (or OpenBLAS) over the batch.
fn run_library<T: Real + Gemm>(
    lhs: View<'_>,
    rhs: View<'_>,
    plan: &Plan,
    batch: usize,
    (lhs_op, rhs_op): (&Operand, &Operand),
) -> Result<BoxStorage> {
    let (m, n, k) = (plan.m, plan.n, plan.k);
    let a = typed::<T>(lhs, OP)?;
    let b = typed::<T>(rhs, OP)?;
    let mut out = crate::pool::zeroed(batch * m * n);
    if out.is_empty() || k == 0 {
        return Ok(boxed(out));
    }
    let one = |i: usize, c: &mut [T]| {
        // SAFETY: `typed` checked that both layouts stay inside their slices, and the
        // starts and strides come from those layouts with the checked dims, so every
        // element GEMM reads is in bounds; `c` holds exactly the `m * n` outputs.
        unsafe {
            T::gemm(
                plan,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16s(len: usize, seed: u32) -> Vec<bf16> {
        (0..len)
            .map(|i| {
                let v = ((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001;
                bf16::from_f32(v as f32 / 1000.0 - 1.0)
            })
            .collect()
    }

    /// Widening a row-major bf16 lhs first must give the packed GEMM's result bit for
    /// bit (the kernel sums the same f32 values in the same order), for a batch of
    /// matrices inside a wider buffer (row stride above the depth) and a broadcast one.
    #[test]
    fn widened_lhs_gives_the_packed_result() {
        let kern = Kernel::best();
        if !kern.reads_f32_lhs_in_place() {
            eprintln!("skipped: this CPU's kernel packs every lhs");
            return;
        }
        let (batch, m, n, k) = (3, 13, 19, 37);
        let rs = k + 5;
        let x = bf16s(batch * m * rs + 7, 1);
        let y = bf16s(k * n, 2);
        let rhs = Operand {
            starts: vec![0; batch],
            row_stride: n,
            col_stride: 1,
        };
        for starts in [vec![7, 7 + m * rs, 7 + 2 * m * rs], vec![4; batch]] {
            let lhs = Operand {
                starts,
                row_stride: rs,
                col_stride: 1,
            };
            let plan = Plan::new(m, n, k, &lhs, &rhs);
            let (wide, wide_op) = widened_lhs(&x, &lhs, &plan, batch).expect("row-major lhs");
            assert!(
                wide.len() <= 2 * batch * m * rs,
                "copied span {}",
                wide.len()
            );
            let bias: Vec<f32> = (0..n).map(|j| j as f32 / 8.0).collect();
            let f32s = |out: Results| match out {
                Results::F32(v) => v,
                Results::Bf16(_) => panic!("asked for f32"),
            };
            let packed = f32s(run_packed(
                kern,
                &plan,
                batch,
                (&x[..], &lhs),
                (&y[..], &rhs),
                Some(&bias),
                false,
            ));
            let widened = f32s(run_packed(
                kern,
                &plan,
                batch,
                (&wide[..], &wide_op),
                (&y[..], &rhs),
                Some(&bias),
                false,
            ));
            assert_eq!(packed.len(), batch * m * n);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&packed), bits(&widened));
        }
        // A view into a buffer more than twice its matrices' size is packed instead.
        let sparse = Operand {
            starts: vec![0],
            row_stride: 3 * k,
            col_stride: 1,
        };
        let plan = Plan::new(m, n, k, &sparse, &rhs);
        assert!(widened_lhs(&bf16s(m * 3 * k, 3), &sparse, &plan, 1).is_none());
        // A transposed lhs is packed too.
        let transposed = Operand {
            starts: vec![0],
            row_stride: 1,
            col_stride: m,
        };
        let plan = Plan::new(m, n, k, &transposed, &rhs);
        assert!(widened_lhs(&bf16s(m * k, 4), &transposed, &plan, 1).is_none());
    }
}
