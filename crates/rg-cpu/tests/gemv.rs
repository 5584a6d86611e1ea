//! Skinny products (m <= 4 rows, the decode path that reads the weight in place)
//! against a naive f64 triple loop, over random shapes and the layout zoo, for f32 and
//! bf16 operands, on the serial, column-parallel and batch-parallel paths.

mod common;

use common::*;
use rg_core::backend::{Backend, MatmulDims, View};
use rg_core::{DType, Layout};

fn naive(a: &[f64], b: &[f64], d: MatmulDims) -> Vec<f64> {
    let mut c = vec![0.0; d.batch * d.m * d.n];
    for bi in 0..d.batch {
        for i in 0..d.m {
            for j in 0..d.n {
                c[(bi * d.m + i) * d.n + j] = (0..d.k)
                    .map(|p| a[(bi * d.m + i) * d.k + p] * b[(bi * d.k + p) * d.n + j])
                    .sum();
            }
        }
    }
    c
}

/// The layout zoo plus a view with neither stride unit (`[k, n, batch]` permuted).
fn weight_layouts(batch: usize, k: usize, n: usize) -> Vec<Case> {
    let mut cases = layouts(&[batch, k, n]);
    cases.push(Case {
        name: "permuted",
        len: batch * k * n,
        layout: Layout::contiguous([k, n, batch])
            .permute("t", &[2, 0, 1])
            .unwrap(),
    });
    cases
}

fn check(dims: MatmulDims, rng: &mut Lcg) {
    let b = backend();
    let MatmulDims { batch, m, n, k } = dims;
    for dtype in [DType::F32, DType::BF16] {
        for lhs in layouts(&[batch, m, k]) {
            for rhs in weight_layouts(batch, k, n) {
                let ad = rng.vec(lhs.len, 1.0);
                let bd = rng.vec(rhs.len, 1.0);
                let (a, w) = (store(&ad, dtype), store(&bd, dtype));
                let out = b
                    .matmul(
                        View::new(&*a, &lhs.layout),
                        View::new(&*w, &rhs.layout),
                        dims,
                    )
                    .unwrap();
                assert_eq!(out.dtype(), dtype);
                let want = naive(
                    &gather(&rounded(&ad, dtype), &lhs.layout),
                    &gather(&rounded(&bd, dtype), &rhs.layout),
                    dims,
                );
                // f32 accumulation; a bf16 product is rounded once (2^-9 relative).
                let tol = match dtype {
                    DType::BF16 => 4e-3,
                    _ => 1e-5 * (k as f64).sqrt(),
                };
                let what = format!("{dims:?} {dtype} {} x {}", lhs.name, rhs.name);
                assert_close(&read(&*out), &want, tol, &what);
            }
        }
    }
}

#[test]
fn random_skinny_shapes() {
    let mut rng = Lcg::new(60);
    for _ in 0..12 {
        let dims = MatmulDims {
            batch: 1 + rng.below(3),
            m: 1 + rng.below(4),
            n: 1 + rng.below(300),
            k: 1 + rng.below(200),
        };
        check(dims, &mut rng);
    }
}

#[test]
fn column_parallel_and_batch_parallel_paths() {
    let mut rng = Lcg::new(61);
    // One product big enough to be split by columns (with a ragged last block).
    check(
        MatmulDims {
            batch: 1,
            m: 3,
            n: 1030,
            k: 131,
        },
        &mut rng,
    );
    check(
        MatmulDims {
            batch: 1,
            m: 1,
            n: 70,
            k: 1500,
        },
        &mut rng,
    );
    // Several products (attention heads) spread over the pool.
    check(
        MatmulDims {
            batch: 5,
            m: 1,
            n: 260,
            k: 64,
        },
        &mut rng,
    );
}

#[test]
fn skinny_edge_sizes() {
    let mut rng = Lcg::new(62);
    for (batch, m, n, k) in [
        (1, 1, 1, 1),
        (1, 4, 1, 17),
        (2, 1, 16, 16),
        (1, 2, 65, 3),
        (3, 4, 5, 33),
    ] {
        check(MatmulDims { batch, m, n, k }, &mut rng);
    }
}

#[test]
fn bf16_products_of_more_rows_than_skinny() {
    // A prompt's prefill with bf16 weights: m > 4 takes the general path.
    let mut rng = Lcg::new(63);
    let b = backend();
    for dims in [
        MatmulDims {
            batch: 1,
            m: 9,
            n: 37,
            k: 70,
        },
        MatmulDims {
            batch: 2,
            m: 5,
            n: 8,
            k: 33,
        },
    ] {
        let MatmulDims { batch, m, n, k } = dims;
        for rhs in weight_layouts(batch, k, n) {
            let lhs = Layout::contiguous([batch, m, k]);
            let ad = rng.vec(batch * m * k, 1.0);
            let bd = rng.vec(rhs.len, 1.0);
            let (a, w) = (store(&ad, DType::BF16), store(&bd, DType::BF16));
            let out = b
                .matmul(View::new(&*a, &lhs), View::new(&*w, &rhs.layout), dims)
                .unwrap();
            assert_eq!(out.dtype(), DType::BF16);
            let want = naive(
                &rounded(&ad, DType::BF16),
                &gather(&rounded(&bd, DType::BF16), &rhs.layout),
                dims,
            );
            assert_close(&read(&*out), &want, 4e-3, &format!("{dims:?} {}", rhs.name));
        }
    }
}
