//! Sum, Max, Min and ArgMax along every axis of strided views, against a naive loop.

mod common;

use common::*;
use rg_core::backend::{Backend, View};
use rg_core::{DType, Layout, ReduceOp};

/// Reduces `x` (row-major over `dims`) along `axis` the obvious way.
fn reference(op: ReduceOp, x: &[f64], dims: &[usize], axis: usize) -> Vec<f64> {
    let outer: usize = dims[..axis].iter().product();
    let len = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let vals: Vec<f64> = (0..len).map(|j| x[(o * len + j) * inner + i]).collect();
            out.push(match op {
                ReduceOp::Sum => vals.iter().sum(),
                ReduceOp::Max => vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                ReduceOp::Min => vals.iter().cloned().fold(f64::INFINITY, f64::min),
                ReduceOp::ArgMax => {
                    let mut best = 0;
                    for j in 1..len {
                        if vals[j] > vals[best] {
                            best = j;
                        }
                    }
                    best as f64
                }
            });
        }
    }
    out
}

#[test]
fn every_op_every_axis_every_layout() {
    let b = backend();
    let mut rng = Lcg::new(20);
    let ops = [
        ReduceOp::Sum,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::ArgMax,
    ];
    for dims in [
        &[1usize][..],
        &[7],
        &[1000],
        &[3, 33],
        &[2, 5, 7],
        &[33, 1, 9],
        &[64, 1030],
    ] {
        for case in layouts(dims) {
            for dtype in FLOATS {
                let data = rng.vec(case.len, 10.0);
                let s = store(&data, dtype);
                let x = gather(&rounded(&data, dtype), &case.layout);
                for axis in 0..dims.len() {
                    for op in ops {
                        let out = b.reduce(op, View::new(&*s, &case.layout), axis).unwrap();
                        let want = reference(op, &x, dims, axis);
                        let what = format!("{op:?} axis {axis} {dtype} {} {dims:?}", case.name);
                        if op == ReduceOp::ArgMax {
                            assert_eq!(out.dtype(), DType::U32, "{what}");
                            assert_eq!(read(&*out), want, "{what}");
                        } else {
                            assert_eq!(out.dtype(), dtype);
                            assert_close(&read(&*out), &want, tol(dtype) * 10.0, &what);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn long_axes_reduce_in_parallel_chunks() {
    let b = backend();
    let mut rng = Lcg::new(21);
    let n = 300_000;
    let data = rng.vec(n, 1.0);
    for dtype in FLOATS {
        let s = store(&data, dtype);
        let x = rounded(&data, dtype);
        let l = Layout::contiguous([n]);
        let sum = read(&*b.reduce(ReduceOp::Sum, View::new(&*s, &l), 0).unwrap());
        assert_close(&sum, &[x.iter().sum()], 1e-3, "sum");
        let max = read(&*b.reduce(ReduceOp::Max, View::new(&*s, &l), 0).unwrap());
        assert_eq!(
            max,
            vec![x.iter().cloned().fold(f64::NEG_INFINITY, f64::max)]
        );
        // Column sums of a tall matrix: few outputs, long axis.
        let l = Layout::contiguous([n / 3, 3]);
        let cols = read(&*b.reduce(ReduceOp::Sum, View::new(&*s, &l), 0).unwrap());
        let want: Vec<f64> = (0..3).map(|c| x.iter().skip(c).step_by(3).sum()).collect();
        assert_close(&cols, &want, 1e-3, "column sums");
    }
}

#[test]
fn argmax_first_wins_and_nan_propagates() {
    let b = backend();
    let l = Layout::contiguous([2, 4]);
    let s = store(&[1.0, 3.0, 3.0, 2.0, 5.0, 5.0, 5.0, 5.0], DType::F32);
    let v = View::new(&*s, &l);
    assert_eq!(
        read(&*b.reduce(ReduceOp::ArgMax, v, 1).unwrap()),
        vec![1.0, 0.0]
    );
    // Down the columns (the across-outputs loop order).
    assert_eq!(
        read(&*b.reduce(ReduceOp::ArgMax, v, 0).unwrap()),
        vec![1.0, 1.0, 1.0, 1.0]
    );
    let s = store(&[1.0, f64::NAN, 3.0, 2.0], DType::F64);
    let l = Layout::contiguous([4]);
    let v = View::new(&*s, &l);
    assert!(read(&*b.reduce(ReduceOp::Max, v, 0).unwrap())[0].is_nan());
    assert!(read(&*b.reduce(ReduceOp::Min, v, 0).unwrap())[0].is_nan());
    assert_eq!(read(&*b.reduce(ReduceOp::ArgMax, v, 0).unwrap()), vec![1.0]);
}

#[test]
fn empty_axes_and_bad_axes() {
    let b = backend();
    let s = store(&[], DType::F32);
    let l = Layout::contiguous([3, 0]);
    let v = View::new(&*s, &l);
    assert_eq!(read(&*b.reduce(ReduceOp::Sum, v, 1).unwrap()), vec![0.0; 3]);
    assert!(b.reduce(ReduceOp::Max, v, 1).is_err());
    assert_eq!(b.reduce(ReduceOp::Max, v, 0).unwrap().len(), 0);
    assert!(b.reduce(ReduceOp::Sum, v, 2).is_err());
    let s = store(&[1.0], DType::U32);
    assert!(b
        .reduce(ReduceOp::Sum, View::new(&*s, &Layout::contiguous([1])), 0)
        .is_err());
}
