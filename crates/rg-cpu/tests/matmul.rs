//! Batched matmul through strided views (transposed operands, narrowed rows, broadcast
//! batches, odd sizes) against a naive triple loop in f64.

mod common;

use common::*;
use rg_core::backend::{Backend, MatmulDims, View};
use rg_core::{DType, Layout, Shape};

/// `[batch, rows, cols]` view variants over fresh storage.
fn operand_layouts(batch: usize, rows: usize, cols: usize) -> Vec<(&'static str, usize, Layout)> {
    let n = batch * rows * cols;
    vec![
        ("contiguous", n, Layout::contiguous([batch, rows, cols])),
        // Stored as [batch, cols, rows] and transposed: unit row stride.
        (
            "transposed",
            n,
            Layout::contiguous([batch, cols, rows]).transpose(1, 2),
        ),
        // Rows padded to cols + 3 and starting at an offset.
        (
            "narrowed",
            batch * rows * (cols + 3),
            Layout::contiguous([batch, rows, cols + 3])
                .narrow("t", 2, 2, cols)
                .unwrap(),
        ),
        // One matrix repeated over the batch (batch stride 0).
        (
            "broadcast",
            rows * cols,
            Layout::contiguous([1, rows, cols])
                .broadcast_to("t", &Shape::new([batch, rows, cols]))
                .unwrap(),
        ),
        // Stored batch-last: [rows, cols, batch] permuted, neither stride unit.
        (
            "permuted",
            n,
            Layout::contiguous([rows, cols, batch])
                .permute("t", &[2, 0, 1])
                .unwrap(),
        ),
    ]
}

fn naive(a: &[f64], b: &[f64], d: MatmulDims) -> Vec<f64> {
    let mut c = vec![0.0; d.batch * d.m * d.n];
    for bi in 0..d.batch {
        for i in 0..d.m {
            for j in 0..d.n {
                let mut acc = 0.0;
                for p in 0..d.k {
                    acc += a[(bi * d.m + i) * d.k + p] * b[(bi * d.k + p) * d.n + j];
                }
                c[(bi * d.m + i) * d.n + j] = acc;
            }
        }
    }
    c
}

fn check(dims: MatmulDims, rng: &mut Lcg) {
    let b = backend();
    let MatmulDims { batch, m, n, k } = dims;
    for (ln, llen, ll) in operand_layouts(batch, m, k) {
        for (rn, rlen, rl) in operand_layouts(batch, k, n) {
            for dtype in FLOATS {
                let ad = rng.vec(llen, 1.0);
                let bd = rng.vec(rlen, 1.0);
                let (as_, bs) = (store(&ad, dtype), store(&bd, dtype));
                let out = b
                    .matmul(View::new(&*as_, &ll), View::new(&*bs, &rl), dims)
                    .unwrap();
                let want = naive(
                    &gather(&rounded(&ad, dtype), &ll),
                    &gather(&rounded(&bd, dtype), &rl),
                    dims,
                );
                let tol = if dtype == DType::F64 {
                    1e-10
                } else {
                    1e-5 * (k as f64).sqrt()
                };
                assert_close(
                    &read(&*out),
                    &want,
                    tol,
                    &format!("{dims:?} {dtype} {ln} x {rn}"),
                );
            }
        }
    }
}

#[test]
fn odd_sizes_and_layouts() {
    let mut rng = Lcg::new(30);
    for (batch, m, n, k) in [
        (1, 1, 1, 1),
        (1, 7, 5, 3),
        (3, 1, 33, 7),
        (2, 33, 1, 17),
        (4, 9, 13, 1),
        (2, 65, 31, 70),
    ] {
        check(MatmulDims { batch, m, n, k }, &mut rng);
    }
}

#[test]
fn many_small_matrices_run_in_parallel() {
    // Small matrices, large batch: the rayon-over-batches path.
    let mut rng = Lcg::new(31);
    check(
        MatmulDims {
            batch: 48,
            m: 16,
            n: 24,
            k: 20,
        },
        &mut rng,
    );
}

#[test]
fn a_large_product() {
    let mut rng = Lcg::new(32);
    let b = backend();
    let dims = MatmulDims {
        batch: 1,
        m: 200,
        n: 300,
        k: 257,
    };
    let ad = rng.vec(dims.m * dims.k, 1.0);
    let bd = rng.vec(dims.k * dims.n, 1.0);
    let ll = Layout::contiguous([dims.m, dims.k]);
    // A rank-2 rhs read transposed.
    let rl = Layout::contiguous([dims.n, dims.k]).transpose(0, 1);
    let out = b
        .matmul(
            View::new(&*store(&ad, DType::F32), &ll),
            View::new(&*store(&bd, DType::F32), &rl),
            dims,
        )
        .unwrap();
    let want = naive(
        &rounded(&ad, DType::F32),
        &gather(&rounded(&bd, DType::F32), &rl),
        dims,
    );
    assert_close(&read(&*out), &want, 1e-4, "200x257x300");
}

#[test]
fn degenerate_and_invalid_shapes() {
    let b = backend();
    // k = 0 gives zeros; m = 0 gives nothing.
    let e = store(&[], DType::F32);
    let dims = MatmulDims {
        batch: 2,
        m: 3,
        n: 4,
        k: 0,
    };
    let out = b
        .matmul(
            View::new(&*e, &Layout::contiguous([2, 3, 0])),
            View::new(&*e, &Layout::contiguous([2, 0, 4])),
            dims,
        )
        .unwrap();
    assert_eq!(read(&*out), vec![0.0; 24]);
    let dims = MatmulDims {
        batch: 1,
        m: 0,
        n: 4,
        k: 2,
    };
    let r = store(&[0.0; 8], DType::F32);
    let out = b
        .matmul(
            View::new(&*e, &Layout::contiguous([0, 2])),
            View::new(&*r, &Layout::contiguous([2, 4])),
            dims,
        )
        .unwrap();
    assert_eq!(out.len(), 0);
    // Dims that disagree with the layouts are an error, not a panic.
    let a = store(&[1.0; 6], DType::F32);
    let dims = MatmulDims {
        batch: 1,
        m: 2,
        n: 4,
        k: 3,
    };
    let bad = b.matmul(
        View::new(&*a, &Layout::contiguous([2, 3])),
        View::new(&*r, &Layout::contiguous([2, 4])),
        dims,
    );
    assert!(bad.is_err());
    let u = store(&[1.0; 6], DType::U32);
    let dims = MatmulDims {
        batch: 1,
        m: 2,
        n: 2,
        k: 3,
    };
    let l = Layout::contiguous([2, 3]);
    let lt = Layout::contiguous([2, 3]).transpose(0, 1);
    assert!(b
        .matmul(View::new(&*u, &l), View::new(&*u, &lt), dims)
        .is_err());
}

#[test]
fn attention_shaped_batches() {
    // Head-sized products, as GPT attention runs them (batch over heads).
    let mut rng = Lcg::new(33);
    for (batch, m, n, k) in [(48, 64, 64, 64), (6, 100, 64, 70), (3, 64, 129, 64)] {
        check(MatmulDims { batch, m, n, k }, &mut rng);
    }
}

#[test]
fn bf16_products_round_an_f32_accumulation() {
    let b = backend();
    let mut rng = Lcg::new(34);
    for dims in [
        MatmulDims {
            batch: 1,
            m: 1,
            n: 1,
            k: 1,
        },
        MatmulDims {
            batch: 3,
            m: 17,
            n: 65,
            k: 33,
        },
        MatmulDims {
            batch: 2,
            m: 64,
            n: 100,
            k: 300,
        },
        MatmulDims {
            batch: 1,
            m: 130,
            n: 70,
            k: 0,
        },
    ] {
        let MatmulDims { batch, m, n, k } = dims;
        for (ln, llen, ll) in operand_layouts(batch, m, k) {
            for (rn, rlen, rl) in operand_layouts(batch, k, n) {
                let ad = rng.vec(llen, 1.0);
                let bd = rng.vec(rlen, 1.0);
                let (x, y) = (store(&ad, DType::BF16), store(&bd, DType::BF16));
                let out = b
                    .matmul(View::new(&*x, &ll), View::new(&*y, &rl), dims)
                    .unwrap();
                assert_eq!(out.dtype(), DType::BF16);
                let want = naive(
                    &gather(&rounded(&ad, DType::BF16), &ll),
                    &gather(&rounded(&bd, DType::BF16), &rl),
                    dims,
                );
                // The f32 sum is exact to ~1e-6 here; rounding it to bf16 (8 significant
                // bits, to nearest) moves it by at most 2^-8 relative.
                let got = read(&*out);
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= w.abs() / 256.0 + 1e-5 * (k as f64).sqrt(),
                        "{dims:?} {ln} x {rn} [{i}]: got {g}, want {w}"
                    );
                }
            }
        }
    }
}

/// `matmul_bias` against the naive product plus the bias on every row, for every
/// engine: the packed GEMM's whole and edge tiles, several depth blocks (the bias is
/// added once), batches split over the pool, few-row (GEMV) products, an empty depth,
/// f64 (the library engine) and bf16; the bias contiguous or strided.
#[test]
fn matmul_bias_adds_the_bias_to_every_row_once() {
    let b = backend();
    let mut rng = Lcg::new(35);
    for (batch, m, n, k) in [
        (1, 1, 1, 1),
        (1, 3, 40, 17),
        (2, 33, 1, 17),
        (2, 65, 31, 70),
        (1, 96, 80, 600),
        (48, 16, 24, 20),
        (1, 130, 70, 0),
    ] {
        let dims = MatmulDims { batch, m, n, k };
        let bias_layouts = [
            ("bias", n, Layout::contiguous([n])),
            (
                "strided bias",
                2 * n + 1,
                Layout::new(Shape::new([n]), vec![2], 1),
            ),
        ];
        // Every operand layout on the small shapes; row-major and transposed on the
        // large ones (the layouts themselves are the other tests' subject, and CI runs
        // this under qemu too).
        let layouts = if m * n * k < 10_000 { 5 } else { 2 };
        for dtype in [DType::F32, DType::F64, DType::BF16] {
            for (ln, llen, ll) in operand_layouts(batch, m, k).into_iter().take(layouts) {
                for (rn, rlen, rl) in operand_layouts(batch, k, n).into_iter().take(layouts) {
                    for (cn, clen, cl) in &bias_layouts {
                        let (ad, bd, cd) =
                            (rng.vec(llen, 1.0), rng.vec(rlen, 1.0), rng.vec(*clen, 1.0));
                        let (x, y, c) = (store(&ad, dtype), store(&bd, dtype), store(&cd, dtype));
                        let out = b
                            .matmul_bias(
                                View::new(&*x, &ll),
                                View::new(&*y, &rl),
                                View::new(&*c, cl),
                                dims,
                            )
                            .unwrap();
                        assert_eq!(out.dtype(), dtype);
                        let bias = gather(&rounded(&cd, dtype), cl);
                        let mut want = naive(
                            &gather(&rounded(&ad, dtype), &ll),
                            &gather(&rounded(&bd, dtype), &rl),
                            dims,
                        );
                        for (i, w) in want.iter_mut().enumerate() {
                            *w += bias[i % n];
                        }
                        let what = format!("{dims:?} {dtype} {ln} x {rn} + {cn}");
                        let exact = 1e-5 * (k as f64).sqrt() + 1e-6;
                        for (i, (&g, &w)) in read(&*out).iter().zip(&want).enumerate() {
                            // bf16 results are the f32 sum rounded (2^-8 relative).
                            let tol = match dtype {
                                DType::F64 => 1e-10,
                                DType::BF16 => w.abs() / 256.0 + exact,
                                _ => exact,
                            };
                            assert!((g - w).abs() <= tol, "{what} [{i}]: got {g}, want {w}");
                        }
                    }
                }
            }
        }
    }
    // A bias of the wrong length is an error naming it.
    let dims = MatmulDims {
        batch: 1,
        m: 2,
        n: 3,
        k: 2,
    };
    let ones = store(&[1.0; 6], DType::F32);
    let err = b
        .matmul_bias(
            View::new(&*ones, &Layout::contiguous([2, 2])),
            View::new(&*ones, &Layout::contiguous([2, 3])),
            View::new(&*ones, &Layout::contiguous([2])),
            dims,
        )
        .unwrap_err();
    assert!(err.to_string().contains("bias"), "{err}");
}

/// `matmul_f32` (autocast products): the f32 accumulator itself, for bf16 operands
/// too — within the f32 sum's error of the exact product of the rounded operands,
/// where a result rounded to bf16 would be off by up to 2^-8 relative — with and
/// without an f32 bias, on the GEMV (few rows), whole-tile, edge-tile and several
/// depth-block paths; f64 operands come back narrowed to f32.
#[test]
fn matmul_f32_returns_the_unrounded_accumulator() {
    let b = backend();
    let mut rng = Lcg::new(36);
    for (batch, m, n, k) in [
        (1, 1, 70, 33),
        (2, 3, 40, 17),
        (1, 64, 96, 64),
        (2, 65, 31, 70),
        (1, 96, 80, 600),
        (1, 130, 70, 0),
    ] {
        let dims = MatmulDims { batch, m, n, k };
        for dtype in [DType::BF16, DType::F32, DType::F64] {
            for (ln, llen, ll) in operand_layouts(batch, m, k).into_iter().take(2) {
                for (rn, rlen, rl) in operand_layouts(batch, k, n).into_iter().take(2) {
                    for with_bias in [false, true] {
                        let (ad, bd, cd) =
                            (rng.vec(llen, 1.0), rng.vec(rlen, 1.0), rng.vec(n, 1.0));
                        let (x, y, c) =
                            (store(&ad, dtype), store(&bd, dtype), store(&cd, DType::F32));
                        let bias_layout = Layout::contiguous([n]);
                        let bias = with_bias.then(|| View::new(&*c, &bias_layout));
                        let out = b
                            .matmul_f32(View::new(&*x, &ll), View::new(&*y, &rl), bias, dims)
                            .unwrap();
                        assert_eq!(out.dtype(), DType::F32);
                        let mut want = naive(
                            &gather(&rounded(&ad, dtype), &ll),
                            &gather(&rounded(&bd, dtype), &rl),
                            dims,
                        );
                        if with_bias {
                            let bias = rounded(&cd, DType::F32);
                            for (i, w) in want.iter_mut().enumerate() {
                                *w += bias[i % n];
                            }
                        }
                        let what = format!("{dims:?} {dtype} {ln} x {rn} bias {with_bias}");
                        let tol = 1e-5 * (k as f64).sqrt() + 1e-6;
                        for (i, (&g, &w)) in read(&*out).iter().zip(&want).enumerate() {
                            assert!((g - w).abs() <= tol, "{what} [{i}]: got {g}, want {w}");
                        }
                    }
                }
            }
        }
    }
    // The bias is f32 whatever the operands are: a bf16 one is an error naming both.
    let dims = MatmulDims {
        batch: 1,
        m: 2,
        n: 2,
        k: 2,
    };
    let ones = store(&[1.0; 4], DType::BF16);
    let err = b
        .matmul_f32(
            View::new(&*ones, &Layout::contiguous([2, 2])),
            View::new(&*ones, &Layout::contiguous([2, 2])),
            Some(View::new(&*ones, &Layout::contiguous([2]))),
            dims,
        )
        .unwrap_err();
    assert!(err.to_string().contains("bf16"), "{err}");
}
