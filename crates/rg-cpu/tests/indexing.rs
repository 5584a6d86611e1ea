//! index_select / index_add along every axis (repeated ids, strided sources, errors)
//! and causal_fill.

mod common;

use common::*;
use rg_core::backend::{Backend, View};
use rg_core::{DType, Error, Layout};

fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

#[test]
fn index_select_along_every_axis() {
    let b = backend();
    let mut rng = Lcg::new(50);
    for dims in [&[7usize][..], &[3, 33], &[2, 5, 7], &[50, 1000]] {
        for case in layouts(dims) {
            for axis in 0..dims.len() {
                let (outer, size, inner) = split(dims, axis);
                // Repeats and an odd count.
                let ids: Vec<f64> = (0..size * 2 + 1).map(|_| rng.below(size) as f64).collect();
                for (dtype, idtype) in [
                    (DType::F32, DType::U32),
                    (DType::F64, DType::I64),
                    (DType::BF16, DType::I64),
                ] {
                    let data = rng.vec(case.len, 5.0);
                    let s = store(&data, dtype);
                    let is = store(&ids, idtype);
                    let il = Layout::contiguous([ids.len()]);
                    let out = b
                        .index_select(View::new(&*s, &case.layout), axis, View::new(&*is, &il))
                        .unwrap();
                    let x = gather(&rounded(&data, dtype), &case.layout);
                    let mut want = vec![];
                    for o in 0..outer {
                        for &id in &ids {
                            let start = (o * size + id as usize) * inner;
                            want.extend_from_slice(&x[start..start + inner]);
                        }
                    }
                    assert_eq!(
                        read(&*out),
                        want,
                        "{dtype} {} {dims:?} axis {axis}",
                        case.name
                    );
                }
            }
        }
    }
}

#[test]
fn index_add_accumulates_repeated_ids() {
    let b = backend();
    let mut rng = Lcg::new(51);
    for dims in [&[7usize][..], &[3, 33], &[2, 5, 7], &[500, 768]] {
        for axis in 0..dims.len() {
            let (outer, size, inner) = split(dims, axis);
            let n = size * 3 + 1;
            let ids: Vec<f64> = (0..n).map(|_| rng.below(size) as f64).collect();
            let mut src_dims = dims.to_vec();
            src_dims[axis] = n;
            for case in layouts(&src_dims) {
                for dtype in FLOATS {
                    let data = rng.vec(case.len, 1.0);
                    let s = store(&data, dtype);
                    let is = store(&ids, DType::I64);
                    let il = Layout::contiguous([n]);
                    let out = b
                        .index_add(
                            dims,
                            axis,
                            View::new(&*is, &il),
                            View::new(&*s, &case.layout),
                        )
                        .unwrap();
                    let x = gather(&rounded(&data, dtype), &case.layout);
                    let mut want = vec![0.0; outer * size * inner];
                    for o in 0..outer {
                        for (i, &id) in ids.iter().enumerate() {
                            for c in 0..inner {
                                want[(o * size + id as usize) * inner + c] +=
                                    x[(o * n + i) * inner + c];
                            }
                        }
                    }
                    let what = format!("index_add {dtype} {} {dims:?} axis {axis}", case.name);
                    assert_close(&read(&*out), &want, tol(dtype) * 10.0, &what);
                }
            }
        }
    }
}

#[test]
fn index_add_assign_adds_into_existing_values() {
    let b = backend();
    let mut rng = Lcg::new(53);
    for (dims, axis) in [
        (&[7usize][..], 0),
        (&[50, 9], 0),
        (&[2, 5, 7], 1),
        (&[3, 4], 1),
    ] {
        let size = dims[axis];
        let n = size + 3;
        let ids: Vec<f64> = (0..n).map(|_| rng.below(size) as f64).collect();
        let mut src_dims = dims.to_vec();
        src_dims[axis] = n;
        let total: usize = dims.iter().product();
        for case in layouts(&src_dims) {
            for dtype in FLOATS {
                let data = rng.vec(case.len, 1.0);
                let (s, is) = (store(&data, dtype), store(&ids, DType::I64));
                let il = Layout::contiguous([n]);
                let (src, ids) = (View::new(&*s, &case.layout), View::new(&*is, &il));
                let start = rng.vec(total, 1.0);
                let mut dst = store(&start, dtype);
                b.index_add_assign(&mut *dst, dims, axis, ids, src).unwrap();
                // Exactly the existing values plus what `index_add` builds.
                let dense = read(&*b.index_add(dims, axis, ids, src).unwrap());
                let want: Vec<f64> = rounded(&start, dtype)
                    .iter()
                    .zip(&dense)
                    .map(|(a, d)| match dtype {
                        DType::F32 => (*a as f32 + *d as f32) as f64,
                        _ => a + d,
                    })
                    .collect();
                let what = format!(
                    "index_add_assign {dtype} {} {dims:?} axis {axis}",
                    case.name
                );
                assert_eq!(read(&*dst), want, "{what}");
            }
        }
    }
    // The destination must match `dst_dims` and the source's dtype.
    let s = store(&[1.0, 2.0], DType::F32);
    let is = store(&[0.0], DType::I64);
    let (sl, il) = (Layout::contiguous([1, 2]), Layout::contiguous([1]));
    let (src, ids) = (View::new(&*s, &sl), View::new(&*is, &il));
    let mut short = store(&[0.0; 3], DType::F32);
    assert!(b
        .index_add_assign(&mut *short, &[2, 2], 0, ids, src)
        .is_err());
    let mut wide = store(&[0.0; 4], DType::F64);
    assert!(b
        .index_add_assign(&mut *wide, &[2, 2], 0, ids, src)
        .is_err());
}

#[test]
fn embedding_backward_shape() {
    // The GPT case: ids [B*T] into a [vocab, d] table, many repeats.
    let b = backend();
    let mut rng = Lcg::new(52);
    let (vocab, d, n) = (65, 64, 4096);
    let ids: Vec<f64> = (0..n).map(|_| rng.below(vocab) as f64).collect();
    let g = rng.vec(n * d, 1.0);
    let out = b
        .index_add(
            &[vocab, d],
            0,
            View::new(&*store(&ids, DType::U32), &Layout::contiguous([n])),
            View::new(&*store(&g, DType::F64), &Layout::contiguous([n, d])),
        )
        .unwrap();
    let mut want = vec![0.0; vocab * d];
    for (i, &id) in ids.iter().enumerate() {
        for c in 0..d {
            want[id as usize * d + c] += g[i * d + c];
        }
    }
    assert_close(&read(&*out), &want, 1e-12, "embedding backward");
}

#[test]
fn out_of_range_ids_are_errors() {
    let b = backend();
    let s = store(&[1.0; 6], DType::F32);
    let l = Layout::contiguous([2, 3]);
    let il = Layout::contiguous([2]);
    for (ids, dtype, bad) in [
        (vec![0.0, 2.0], DType::U32, 2),
        (vec![-1.0, 0.0], DType::I64, -1),
    ] {
        let is = store(&ids, dtype);
        let err = b
            .index_select(View::new(&*s, &l), 0, View::new(&*is, &il))
            .err()
            .unwrap();
        assert_eq!(
            err,
            Error::IndexOutOfRange {
                op: "index_select",
                index: bad,
                size: 2
            }
        );
        let src = store(&[1.0; 6], DType::F32);
        let err = b
            .index_add(&[2, 3], 0, View::new(&*is, &il), View::new(&*src, &l))
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                Error::IndexOutOfRange {
                    op: "index_add",
                    ..
                }
            ),
            "{err}"
        );
    }
    let is = store(&[0.0, 1.0], DType::F32);
    assert!(b
        .index_select(View::new(&*s, &l), 0, View::new(&*is, &il))
        .is_err());
    let is = store(&[0.0, 1.0], DType::U32);
    assert!(b
        .index_select(View::new(&*s, &l), 2, View::new(&*is, &il))
        .is_err());
    // Source shape that does not match dst_dims with ids.len() along the axis.
    assert!(b
        .index_add(
            &[2, 3],
            0,
            View::new(&*is, &Layout::contiguous([1])),
            View::new(&*s, &l)
        )
        .is_err());
}

#[test]
fn causal_fill_masks_future_positions() {
    let b = backend();
    let mut rng = Lcg::new(53);
    // (t, s): square (no cache), with cached positions (s > t), and t > s.
    for (batch, t, s) in [(1, 1, 1), (3, 5, 5), (2, 3, 7), (2, 6, 4), (4, 64, 200)] {
        for case in layouts(&[batch, t, s]) {
            let data = rng.vec(case.len, 1.0);
            let st = store(&data, DType::F32);
            let out = b
                .causal_fill(View::new(&*st, &case.layout), f64::NEG_INFINITY)
                .unwrap();
            let x = gather(&rounded(&data, DType::F32), &case.layout);
            let want: Vec<f64> = x
                .iter()
                .enumerate()
                .map(|(idx, &v)| {
                    let (i, j) = ((idx / s) % t, idx % s);
                    if j as i64 > i as i64 + s as i64 - t as i64 {
                        f64::NEG_INFINITY
                    } else {
                        v
                    }
                })
                .collect();
            assert_eq!(read(&*out), want, "{batch}x{t}x{s} {}", case.name);
        }
    }
    let one = store(&[1.0], DType::F32);
    assert!(b
        .causal_fill(View::new(&*one, &Layout::contiguous([1])), 0.0)
        .is_err());
}
