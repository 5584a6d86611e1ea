//! cuBLAS through a small table of entry points loaded from the library that
//! `libs::open_cublas` found (CUDA 12 or 13; the entry points used here have the same
//! signatures in both). Matrix products use `cublasGemmStridedBatchedEx`: f32 (TF32
//! tensor cores only when asked for), bf16 with f32 accumulation, f64.

use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::sys::CUstream;
use rg_core::{DType, Device, Error, Result};

use crate::alloc::{DeviceBuffer, Pool};

type Handle = *mut c_void;
type Status = i32;

type CreateFn = unsafe extern "C" fn(*mut Handle) -> Status;
type DestroyFn = unsafe extern "C" fn(Handle) -> Status;
type SetStreamFn = unsafe extern "C" fn(Handle, CUstream) -> Status;
type SetWorkspaceFn = unsafe extern "C" fn(Handle, *mut c_void, usize) -> Status;
type GetVersionFn = unsafe extern "C" fn(Handle, *mut i32) -> Status;
#[allow(clippy::type_complexity)]
type GemmStridedBatchedExFn = unsafe extern "C" fn(
    Handle,
    i32,           // transa
    i32,           // transb
    i32,           // m
    i32,           // n
    i32,           // k
    *const c_void, // alpha
    *const c_void, // A
    i32,           // Atype
    i32,           // lda
    i64,           // strideA
    *const c_void, // B
    i32,           // Btype
    i32,           // ldb
    i64,           // strideB
    *const c_void, // beta
    *mut c_void,   // C
    i32,           // Ctype
    i32,           // ldc
    i64,           // strideC
    i32,           // batchCount
    i32,           // computeType
    i32,           // algo
) -> Status;

// cublas_api.h / library_types.h values (stable across CUDA 11-13).
const OP_N: i32 = 0;
const OP_T: i32 = 1;
const R_32F: i32 = 0;
const R_64F: i32 = 1;
const R_16BF: i32 = 14;
const COMPUTE_32F: i32 = 68;
const COMPUTE_32F_FAST_TF32: i32 = 77;
const COMPUTE_64F: i32 = 70;
const GEMM_DEFAULT: i32 = -1;

/// cuBLAS's workspace, taken from our pool so cuBLAS allocates nothing itself.
const WORKSPACE_BYTES: usize = 32 << 20;

struct Table {
    destroy: DestroyFn,
    gemm: GemmStridedBatchedExFn,
}

struct HandleBox(Handle);
// SAFETY: the handle is only used under the mutex.
unsafe impl Send for HandleBox {}

pub struct Blas {
    device: Device,
    table: Table,
    handle: Mutex<HandleBox>,
    tf32: AtomicBool,
    pub path: PathBuf,
    pub version: i32,
    _workspace: DeviceBuffer,
    // Keep the libraries loaded while the function pointers live.
    _libs: crate::libs::LoadedCublas,
}

/// One operand of a GEMM as cuBLAS takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmOperand {
    /// Stored column-major relative to the row-major view (i.e. needs `OP_T`).
    pub transposed: bool,
    pub ld: usize,
}

/// How a `rows x cols` matrix with row stride `rs` and column stride `cs` can be handed
/// to cuBLAS without a copy: row-major (`cs == 1`) or column-major (`rs == 1`), with
/// a leading dimension covering the other axis. `None` when neither holds.
pub fn gemm_operand(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<GemmOperand> {
    if (cs == 1 || cols <= 1) && (rows <= 1 || rs >= cols.max(1)) {
        let ld = if rows <= 1 { cols.max(1) } else { rs };
        return Some(GemmOperand {
            transposed: false,
            ld,
        });
    }
    if (rs == 1 || rows <= 1) && (cols <= 1 || cs >= rows.max(1)) {
        let ld = if cols <= 1 { rows.max(1) } else { cs };
        return Some(GemmOperand {
            transposed: true,
            ld,
        });
    }
    None
}

/// A strided batched product `out[b] = lhs[b] (m x k) . rhs[b] (k x n)`, row-major out.
pub struct Gemm {
    pub dtype: DType,
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lhs: u64,
    pub lhs_op: GemmOperand,
    pub lhs_batch_stride: usize,
    pub rhs: u64,
    pub rhs_op: GemmOperand,
    pub rhs_batch_stride: usize,
    pub out: u64,
}

impl Blas {
    pub fn open(device: Device, pool: &Arc<Pool>, stream: CUstream) -> Result<Blas> {
        const OP: &str = "open";
        let libs = crate::libs::open_cublas().map_err(|e| Error::backend(device, OP, e))?;
        let sym = |name: &str| -> Result<*const c_void> {
            // SAFETY: looking up a symbol; its type is fixed by the caller below.
            unsafe { libs.cublas.get::<*const c_void>(name.as_bytes()) }
                .map(|s| *s)
                .map_err(|e| {
                    Error::backend(
                        device,
                        OP,
                        format!("{}: missing {name}: {e}", libs.path.display()),
                    )
                })
        };
        // SAFETY: each symbol is cast to its documented C signature.
        let (create, destroy, set_stream, set_workspace, get_version, gemm) = unsafe {
            (
                std::mem::transmute::<*const c_void, CreateFn>(sym("cublasCreate_v2")?),
                std::mem::transmute::<*const c_void, DestroyFn>(sym("cublasDestroy_v2")?),
                std::mem::transmute::<*const c_void, SetStreamFn>(sym("cublasSetStream_v2")?),
                std::mem::transmute::<*const c_void, SetWorkspaceFn>(sym("cublasSetWorkspace_v2")?),
                std::mem::transmute::<*const c_void, GetVersionFn>(sym("cublasGetVersion_v2")?),
                std::mem::transmute::<*const c_void, GemmStridedBatchedExFn>(sym(
                    "cublasGemmStridedBatchedEx",
                )?),
            )
        };
        let check = |what: &str, s: Status| -> Result<()> {
            if s == 0 {
                Ok(())
            } else {
                Err(Error::backend(
                    device,
                    OP,
                    format!(
                        "{what} failed with cuBLAS status {s} ({})",
                        libs.path.display()
                    ),
                ))
            }
        };
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: out-pointer to a handle.
        check("cublasCreate", unsafe { create(&mut handle) })?;
        let workspace =
            DeviceBuffer::new(pool, WORKSPACE_BYTES).map_err(|e| Error::backend(device, OP, e))?;
        let mut version = 0;
        // SAFETY: a live handle, our stream and a workspace of the stated size.
        unsafe {
            check("cublasSetStream", set_stream(handle, stream))?;
            check(
                "cublasSetWorkspace",
                set_workspace(handle, workspace.ptr() as *mut c_void, WORKSPACE_BYTES),
            )?;
            check("cublasGetVersion", get_version(handle, &mut version))?;
        }
        let tf32 = std::env::var("RG_CUDA_TF32").is_ok_and(|v| v == "1");
        Ok(Blas {
            device,
            table: Table { destroy, gemm },
            handle: Mutex::new(HandleBox(handle)),
            tf32: AtomicBool::new(tf32),
            path: libs.path.clone(),
            version,
            _workspace: workspace,
            _libs: libs,
        })
    }

    pub fn set_tf32(&self, on: bool) {
        self.tf32.store(on, Ordering::Relaxed);
    }

    pub fn tf32(&self) -> bool {
        self.tf32.load(Ordering::Relaxed)
    }

    /// Runs `g`. cuBLAS is column-major: the row-major `out = lhs . rhs` is computed as
    /// the column-major `out^T = rhs^T . lhs^T`, so rhs is cuBLAS's A and lhs its B.
    pub fn gemm(&self, op: &'static str, g: &Gemm) -> Result<()> {
        let int = |v: usize, what: &str| {
            i32::try_from(v).map_err(|_| {
                Error::backend(
                    self.device,
                    op,
                    format!("{what} = {v} exceeds cuBLAS's 32-bit sizes"),
                )
            })
        };
        let (m, n, k, batch) = (
            int(g.n, "n")?,
            int(g.m, "m")?,
            int(g.k, "k")?,
            int(g.batch, "batch")?,
        );
        let (lda, ldb, ldc) = (
            int(g.rhs_op.ld, "ld")?,
            int(g.lhs_op.ld, "ld")?,
            int(g.n.max(1), "ld")?,
        );
        let transa = if g.rhs_op.transposed { OP_T } else { OP_N };
        let transb = if g.lhs_op.transposed { OP_T } else { OP_N };
        let (ty, compute) = match g.dtype {
            DType::F32 => (
                R_32F,
                if self.tf32() {
                    COMPUTE_32F_FAST_TF32
                } else {
                    COMPUTE_32F
                },
            ),
            DType::BF16 => (R_16BF, COMPUTE_32F),
            DType::F64 => (R_64F, COMPUTE_64F),
            other => {
                return Err(Error::UnsupportedDType {
                    op,
                    dtype: other,
                    expected: "f32, bf16 or f64",
                })
            }
        };
        let (one_f, zero_f, one_d, zero_d) = (1f32, 0f32, 1f64, 0f64);
        let (alpha, beta) = if g.dtype == DType::F64 {
            (
                &one_d as *const f64 as *const c_void,
                &zero_d as *const f64 as *const c_void,
            )
        } else {
            (
                &one_f as *const f32 as *const c_void,
                &zero_f as *const f32 as *const c_void,
            )
        };
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: pointers are live device buffers covering the strided batch (checked
        // by the caller), scalars are host values of the compute type.
        let status = unsafe {
            (self.table.gemm)(
                handle.0,
                transa,
                transb,
                m,
                n,
                k,
                alpha,
                g.rhs as *const c_void,
                ty,
                lda,
                g.rhs_batch_stride as i64,
                g.lhs as *const c_void,
                ty,
                ldb,
                g.lhs_batch_stride as i64,
                beta,
                g.out as *mut c_void,
                ty,
                ldc,
                (g.m * g.n) as i64,
                batch,
                compute,
                GEMM_DEFAULT,
            )
        };
        if status != 0 {
            return Err(Error::backend(
                self.device,
                op,
                format!(
                    "cublasGemmStridedBatchedEx failed with status {status} ({}x{}x{} x{}, {})",
                    g.m, g.n, g.k, g.batch, g.dtype
                ),
            ));
        }
        Ok(())
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        let h = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the handle was created in `open` and is destroyed once.
        unsafe { (self.table.destroy)(h.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_and_column_major_operands() {
        // A contiguous 3x4 matrix: row-major, ld 4.
        assert_eq!(
            gemm_operand(3, 4, 4, 1),
            Some(GemmOperand {
                transposed: false,
                ld: 4
            })
        );
        // Its transpose view (4x3, strides [1, 4]): column-major, ld 4.
        assert_eq!(
            gemm_operand(4, 3, 1, 4),
            Some(GemmOperand {
                transposed: true,
                ld: 4
            })
        );
        // A row of a wider matrix (narrowed columns): row-major, ld the full width.
        assert_eq!(
            gemm_operand(3, 2, 10, 1),
            Some(GemmOperand {
                transposed: false,
                ld: 10
            })
        );
        // Single rows and columns take any stride on the unit axis.
        assert_eq!(
            gemm_operand(1, 5, 0, 1),
            Some(GemmOperand {
                transposed: false,
                ld: 5
            })
        );
        assert_eq!(
            gemm_operand(5, 1, 1, 0),
            Some(GemmOperand {
                transposed: false,
                ld: 1
            })
        );
        // Neither axis unit-stride, or a broadcast row: needs a copy.
        assert_eq!(gemm_operand(3, 4, 8, 2), None);
        assert_eq!(gemm_operand(3, 4, 0, 1), None);
    }
}
