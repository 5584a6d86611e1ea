//! The `blas` feature's GEMM: system OpenBLAS through `cblas_sgemm`/`cblas_dgemm`.
//!
//! CBLAS takes a matrix as row-major with a leading dimension, optionally transposed,
//! so an operand qualifies when one of its axes has unit stride: unit column stride is
//! `NoTrans` with `ld` = row stride, unit row stride is `Trans` with `ld` = column
//! stride. Anything else (both strides > 1, a broadcast row) goes to `matrixmultiply`.

use std::ffi::c_int;

use cblas_sys::{
    cblas_dgemm, cblas_sgemm, CblasNoTrans, CblasRowMajor, CblasTrans, CBLAS_TRANSPOSE,
};

use super::matmul::Plan;

// cblas-sys only declares the functions; the library providing them is OpenBLAS.
#[link(name = "openblas")]
extern "C" {}

/// A GEMM the plan allows CBLAS to compute.
#[derive(Clone, Copy)]
pub struct BlasCall {
    m: c_int,
    n: c_int,
    k: c_int,
    a: (CBLAS_TRANSPOSE, c_int),
    b: (CBLAS_TRANSPOSE, c_int),
}

impl BlasCall {
    pub fn new(plan: &Plan) -> Option<Self> {
        let int = |x: usize| c_int::try_from(x).ok();
        Some(BlasCall {
            m: int(plan.m)?,
            n: int(plan.n)?,
            k: int(plan.k)?,
            a: operand(plan.m, plan.k, plan.a)?,
            b: operand(plan.k, plan.n, plan.b)?,
        })
    }

    /// # Safety
    /// As [`super::matmul::Gemm::gemm`].
    pub unsafe fn run<T: BlasElement>(&self, a: *const T, b: *const T, c: *mut T) {
        // SAFETY: forwarded from the caller.
        unsafe { T::gemm(self, a, b, c) }
    }
}

/// `(transpose, leading dimension)` for a `rows x cols` matrix with `(row, col)`
/// strides. The stride of an axis of size 1 is never used, so it is normalised first.
fn operand(rows: usize, cols: usize, (rs, cs): (usize, usize)) -> Option<(CBLAS_TRANSPOSE, c_int)> {
    let (rows1, cols1) = (rows.max(1), cols.max(1));
    // Row-major: unit column stride, rows at least `cols` apart.
    let (r, c) = (
        if rows == 1 { cols1 } else { rs },
        if cols == 1 { 1 } else { cs },
    );
    if c == 1 && r >= cols1 {
        return Some((CblasNoTrans, c_int::try_from(r).ok()?));
    }
    // Column-major, i.e. the transpose of a row-major `cols x rows` matrix.
    let (r, c) = (
        if rows == 1 { 1 } else { rs },
        if cols == 1 { rows1 } else { cs },
    );
    if r == 1 && c >= rows1 {
        return Some((CblasTrans, c_int::try_from(c).ok()?));
    }
    None
}

pub trait BlasElement: Sized {
    /// # Safety
    /// As [`super::matmul::Gemm::gemm`].
    unsafe fn gemm(call: &BlasCall, a: *const Self, b: *const Self, c: *mut Self);
}

macro_rules! blas_element {
    ($ty:ty, $f:ident) => {
        impl BlasElement for $ty {
            unsafe fn gemm(call: &BlasCall, a: *const Self, b: *const Self, c: *mut Self) {
                // SAFETY: forwarded from the caller; the leading dimensions were checked
                // against the matrix sizes in `operand`.
                unsafe {
                    $f(
                        CblasRowMajor,
                        call.a.0,
                        call.b.0,
                        call.m,
                        call.n,
                        call.k,
                        1.0,
                        a,
                        call.a.1,
                        b,
                        call.b.1,
                        0.0,
                        c,
                        call.n.max(1),
                    )
                }
            }
        }
    };
}

blas_element!(f32, cblas_sgemm);
blas_element!(f64, cblas_dgemm);

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(rows: usize, cols: usize, strides: (usize, usize)) -> Option<(bool, c_int)> {
        operand(rows, cols, strides).map(|(t, ld)| (matches!(t, CBLAS_TRANSPOSE::CblasTrans), ld))
    }

    #[test]
    fn operands_map_to_cblas_transposes() {
        // Row-major, padded rows, transposed, and single rows/columns.
        assert_eq!(kind(4, 3, (3, 1)), Some((false, 3)));
        assert_eq!(kind(4, 3, (8, 1)), Some((false, 8)));
        assert_eq!(kind(4, 3, (1, 4)), Some((true, 4)));
        assert_eq!(kind(1, 3, (0, 1)), Some((false, 3)));
        assert_eq!(kind(4, 1, (1, 0)), Some((false, 1)));
        // Neither axis unit-stride, or a broadcast row: matrixmultiply instead.
        assert_eq!(kind(4, 3, (6, 2)), None);
        assert_eq!(kind(4, 3, (0, 1)), None);
        assert_eq!(kind(4, 3, (2, 1)), None);
    }
}
