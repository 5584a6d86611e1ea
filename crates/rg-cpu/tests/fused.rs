//! Fused ops: softmax/log-softmax, layer norm, cross-entropy (forward and backward) and
//! AdamW, against straightforward f64 references.

mod common;

use common::*;
use rg_core::backend::{AdamWParams, Backend, View};
use rg_core::{DType, Error, Layout, Shape};

const ROW_SHAPES: [&[usize]; 5] = [&[1, 1], &[7], &[3, 33], &[2, 5, 7], &[64, 1030]];

fn softmax_ref(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

#[test]
fn softmax_and_log_softmax_forward() {
    let b = backend();
    let mut rng = Lcg::new(40);
    for dims in ROW_SHAPES {
        let cols = *dims.last().unwrap();
        for case in layouts(dims) {
            for dtype in FLOATS {
                // Large logits: subtracting the max must keep exp from overflowing.
                let data = rng.vec(case.len, 60.0);
                let s = store(&data, dtype);
                let x = gather(&rounded(&data, dtype), &case.layout);
                let v = View::new(&*s, &case.layout);
                let y = read(&*b.softmax_last(v, false).unwrap());
                let want: Vec<f64> = x.chunks(cols).flat_map(softmax_ref).collect();
                let what = format!("softmax {dtype} {} {dims:?}", case.name);
                assert_close(&y, &want, tol(dtype), &what);
                for row in y.chunks(cols) {
                    assert!(
                        (row.iter().sum::<f64>() - 1.0).abs() < 1e-5,
                        "{what}: row sums to 1"
                    );
                }
                let ly = read(&*b.softmax_last(v, true).unwrap());
                let want: Vec<f64> = want.iter().map(|p| p.ln()).collect();
                // Tiny probabilities underflow in f32; compare log-probs loosely there.
                let tol = if dtype == DType::F32 { 1e-4 } else { 1e-9 };
                assert_close(&ly, &want, tol, &format!("log_{what}"));
            }
        }
    }
}

#[test]
fn softmax_backward_matches_jacobian() {
    let b = backend();
    let mut rng = Lcg::new(41);
    // The reference builds each row's full Jacobian: keep rows short-ish.
    for dims in [&[1usize, 1][..], &[7], &[3, 33], &[2, 5, 7], &[3, 1030]] {
        let cols = *dims.last().unwrap();
        let shape = Shape::new(dims);
        let n = shape.elem_count();
        for dtype in FLOATS {
            let x = rng.vec(n, 3.0);
            let dy = rng.vec(n, 1.0);
            let l = Layout::contiguous(shape.clone());
            for log in [false, true] {
                let xs = store(&x, dtype);
                let y = b.softmax_last(View::new(&*xs, &l), log).unwrap();
                // dy read through a transposed-then-copied layout would be contiguous;
                // use an offset layout to exercise the gather path.
                let mut padded = vec![0.0; 3];
                padded.extend_from_slice(&dy);
                let dys = store(&padded, dtype);
                let dyl = Layout::contiguous_with_offset(shape.clone(), 3);
                let dx = read(
                    &*b.softmax_last_backward(View::new(&*y, &l), View::new(&*dys, &dyl), log)
                        .unwrap(),
                );
                let xr = rounded(&x, dtype);
                let dyr = rounded(&dy, dtype);
                let mut want = Vec::with_capacity(n);
                for (xrow, grow) in xr.chunks(cols).zip(dyr.chunks(cols)) {
                    let p = softmax_ref(xrow);
                    for i in 0..cols {
                        // J[j][i] = d out_j / d x_i.
                        let mut acc = 0.0;
                        for j in 0..cols {
                            let delta = (i == j) as u8 as f64;
                            let jac = if log {
                                delta - p[i]
                            } else {
                                p[j] * (delta - p[i])
                            };
                            acc += grow[j] * jac;
                        }
                        want.push(acc);
                    }
                }
                assert_close(
                    &dx,
                    &want,
                    tol(dtype) * 5.0,
                    &format!("softmax_backward log={log} {dtype} {dims:?}"),
                );
            }
        }
    }
}

/// Two-pass reference: returns (y, mean, rstd).
fn layer_norm_ref(x: &[f64], g: &[f64], bt: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let cols = g.len();
    let (mut y, mut means, mut rstds) = (vec![], vec![], vec![]);
    for row in x.chunks(cols) {
        let mean = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        y.extend(
            row.iter()
                .zip(g)
                .zip(bt)
                .map(|((v, g), b)| (v - mean) * rstd * g + b),
        );
        means.push(mean);
        rstds.push(rstd);
    }
    (y, means, rstds)
}

#[test]
fn layer_norm_forward_and_backward() {
    let b = backend();
    let mut rng = Lcg::new(42);
    let eps = 1e-5;
    for dims in ROW_SHAPES {
        let cols = *dims.last().unwrap();
        for case in layouts(dims) {
            for dtype in FLOATS {
                // An offset mean tests the two-pass variance (one-pass would cancel).
                let data: Vec<f64> = rng.vec(case.len, 1.0).iter().map(|v| v + 100.0).collect();
                let g = rng.vec(cols, 1.0);
                let bt = rng.vec(cols, 1.0);
                let (xs, gs, bs) = (store(&data, dtype), store(&g, dtype), store(&bt, dtype));
                let gl = Layout::contiguous([cols]);
                let out = b
                    .layer_norm(
                        View::new(&*xs, &case.layout),
                        View::new(&*gs, &gl),
                        View::new(&*bs, &gl),
                        eps,
                    )
                    .unwrap();
                let x = gather(&rounded(&data, dtype), &case.layout);
                let (gr, br) = (rounded(&g, dtype), rounded(&bt, dtype));
                let (y, mean, rstd) = layer_norm_ref(&x, &gr, &br, eps);
                let what = format!("layer_norm {dtype} {} {dims:?}", case.name);
                let t = if dtype == DType::F32 { 1e-4 } else { 1e-8 };
                assert_close(&read(&*out.y), &y, t, &what);
                assert_close(&read(&*out.mean), &mean, tol(dtype), &what);
                assert_close(&read(&*out.rstd), &rstd, t, &what);

                // Backward against the analytic formula in f64.
                let rows = x.len() / cols;
                let dy = rng.vec(x.len(), 1.0);
                let dys = store(&dy, dtype);
                let dyr = rounded(&dy, dtype);
                let rows_l = Layout::contiguous([rows]);
                let grads = b
                    .layer_norm_backward(
                        View::new(&*dys, &Layout::contiguous(case.layout.shape().clone())),
                        View::new(&*xs, &case.layout),
                        View::new(&*gs, &gl),
                        View::new(&*out.mean, &rows_l),
                        View::new(&*out.rstd, &rows_l),
                    )
                    .unwrap();
                let (mut dx, mut dg, mut db) = (vec![], vec![0.0; cols], vec![0.0; cols]);
                for r in 0..rows {
                    let xr = &x[r * cols..][..cols];
                    let d = &dyr[r * cols..][..cols];
                    let xhat: Vec<f64> = xr.iter().map(|v| (v - mean[r]) * rstd[r]).collect();
                    let gdy: Vec<f64> = d.iter().zip(&gr).map(|(d, g)| d * g).collect();
                    let m1 = gdy.iter().sum::<f64>() / cols as f64;
                    let m2 = gdy.iter().zip(&xhat).map(|(a, h)| a * h).sum::<f64>() / cols as f64;
                    for i in 0..cols {
                        dx.push(rstd[r] * (gdy[i] - m1 - xhat[i] * m2));
                        dg[i] += d[i] * xhat[i];
                        db[i] += d[i];
                    }
                }
                let t = if dtype == DType::F32 { 1e-3 } else { 1e-7 };
                assert_close(&read(&*grads.dx), &dx, t, &format!("dx {what}"));
                assert_close(&read(&*grads.dgamma), &dg, t, &format!("dgamma {what}"));
                assert_close(
                    &read(&*grads.dbeta),
                    &db,
                    tol(dtype) * 10.0,
                    &format!("dbeta {what}"),
                );
            }
        }
    }
}

#[test]
fn layer_norm_backward_matches_finite_differences() {
    let b = backend();
    let mut rng = Lcg::new(43);
    let (rows, cols, eps) = (3, 6, 1e-5);
    let x = rng.vec(rows * cols, 2.0);
    let g = rng.vec(cols, 1.0);
    let bt = rng.vec(cols, 1.0);
    let dy = rng.vec(rows * cols, 1.0);
    let loss = |x: &[f64], g: &[f64], bt: &[f64]| -> f64 {
        let (y, _, _) = layer_norm_ref(x, g, bt, eps);
        y.iter().zip(&dy).map(|(a, b)| a * b).sum()
    };
    let (xs, gs, bs, dys) = (
        store(&x, DType::F64),
        store(&g, DType::F64),
        store(&bt, DType::F64),
        store(&dy, DType::F64),
    );
    let xl = Layout::contiguous([rows, cols]);
    let gl = Layout::contiguous([cols]);
    let out = b
        .layer_norm(
            View::new(&*xs, &xl),
            View::new(&*gs, &gl),
            View::new(&*bs, &gl),
            eps,
        )
        .unwrap();
    let rl = Layout::contiguous([rows]);
    let grads = b
        .layer_norm_backward(
            View::new(&*dys, &xl),
            View::new(&*xs, &xl),
            View::new(&*gs, &gl),
            View::new(&*out.mean, &rl),
            View::new(&*out.rstd, &rl),
        )
        .unwrap();
    let h = 1e-6;
    // Each input in turn, the others fixed.
    let fd = |which: usize| -> Vec<f64> {
        let base = [&x, &g, &bt][which];
        (0..base.len())
            .map(|i| {
                let eval = |delta: f64| {
                    let mut p = [x.clone(), g.clone(), bt.clone()];
                    p[which][i] += delta;
                    loss(&p[0], &p[1], &p[2])
                };
                (eval(h) - eval(-h)) / (2.0 * h)
            })
            .collect()
    };
    assert_close(&read(&*grads.dx), &fd(0), 1e-6, "dx");
    assert_close(&read(&*grads.dgamma), &fd(1), 1e-6, "dgamma");
    assert_close(&read(&*grads.dbeta), &fd(2), 1e-6, "dbeta");
}

#[test]
fn cross_entropy_matches_log_softmax() {
    let b = backend();
    let mut rng = Lcg::new(44);
    for (rows, cols) in [(1, 1), (7, 5), (33, 70), (200, 1030)] {
        for dtype in FLOATS {
            for tdtype in [DType::U32, DType::I64] {
                let logits = rng.vec(rows * cols, 20.0);
                let mut targets: Vec<f64> = (0..rows).map(|_| rng.below(cols) as f64).collect();
                // Ignore every third row (ignore index 0 for u32, -100 for i64).
                let ignore = if tdtype == DType::U32 { 0 } else { -100 };
                for t in targets.iter_mut().step_by(3) {
                    *t = ignore as f64;
                }
                let (ls, ts) = (store(&logits, dtype), store(&targets, tdtype));
                let ll = Layout::contiguous([rows, cols]);
                let tl = Layout::contiguous([rows]);
                let out = b
                    .cross_entropy(View::new(&*ls, &ll), View::new(&*ts, &tl), Some(ignore))
                    .unwrap();
                let lr = rounded(&logits, dtype);
                let mut want_loss = vec![];
                let mut want_lse = vec![];
                let mut want_dx = vec![];
                let dloss = 0.5;
                for (r, row) in lr.chunks(cols).enumerate() {
                    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                    want_lse.push(lse);
                    let t = targets[r] as i64;
                    let ignored = t == ignore;
                    want_loss.push(if ignored { 0.0 } else { lse - row[t as usize] });
                    for (j, v) in row.iter().enumerate() {
                        let g = if ignored {
                            0.0
                        } else {
                            dloss * ((v - lse).exp() - (j as i64 == t) as u8 as f64)
                        };
                        want_dx.push(g);
                    }
                }
                let what = format!("cross_entropy {rows}x{cols} {dtype} {tdtype}");
                // The loss is minus the backend's own log-softmax at the target.
                let logsm = read(&*b.softmax_last(View::new(&*ls, &ll), true).unwrap());
                let loss = read(&*out.loss);
                for r in 0..rows {
                    let t = targets[r] as i64;
                    let want = if t == ignore {
                        0.0
                    } else {
                        -logsm[r * cols + t as usize]
                    };
                    assert_close(&[loss[r]], &[want], tol(dtype) * 10.0, &what);
                }
                assert_close(&read(&*out.loss), &want_loss, tol(dtype) * 10.0, &what);
                assert_close(&read(&*out.lse), &want_lse, tol(dtype), &what);
                // dloss broadcast from a scalar (stride 0), as a mean-reduced loss gives.
                let ds = store(&[dloss], dtype);
                let dl = Layout::contiguous(())
                    .broadcast_to("t", &Shape::new([rows]))
                    .unwrap();
                let dx = b
                    .cross_entropy_backward(
                        View::new(&*ls, &ll),
                        View::new(&*out.lse, &tl),
                        View::new(&*ts, &tl),
                        View::new(&*ds, &dl),
                        Some(ignore),
                    )
                    .unwrap();
                assert_close(
                    &read(&*dx),
                    &want_dx,
                    tol(dtype),
                    &format!("backward {what}"),
                );
            }
        }
    }
}

#[test]
fn cross_entropy_bad_targets_are_errors() {
    let b = backend();
    let ls = store(&[0.0; 6], DType::F32);
    let ll = Layout::contiguous([2, 3]);
    let tl = Layout::contiguous([2]);
    for (targets, dtype, ignore, bad) in [
        (vec![0.0, 3.0], DType::U32, None, 3),
        (vec![-1.0, 0.0], DType::I64, Some(-100), -1),
        (vec![0.0, 7.0], DType::I64, Some(-100), 7),
    ] {
        let ts = store(&targets, dtype);
        let err = b
            .cross_entropy(View::new(&*ls, &ll), View::new(&*ts, &tl), ignore)
            .err()
            .unwrap();
        assert_eq!(
            err,
            Error::IndexOutOfRange {
                op: "cross_entropy",
                index: bad,
                size: 3
            }
        );
        let lse = store(&[0.0; 2], DType::F32);
        let err = b
            .cross_entropy_backward(
                View::new(&*ls, &ll),
                View::new(&*lse, &tl),
                View::new(&*ts, &tl),
                View::new(&*lse, &tl),
                ignore,
            )
            .err()
            .unwrap();
        assert!(matches!(err, Error::IndexOutOfRange { .. }), "{err}");
    }
    // Float targets are rejected, too.
    let ts = store(&[0.0, 1.0], DType::F32);
    assert!(b
        .cross_entropy(View::new(&*ls, &ll), View::new(&*ts, &tl), None)
        .is_err());
}

#[test]
fn adamw_matches_reference() {
    let b = backend();
    let mut rng = Lcg::new(45);
    for n in [1usize, 7, 33, 100_000] {
        for dtype in FLOATS {
            let p0 = rng.vec(n, 1.0);
            let (mut p, mut m, mut v) = (rounded(&p0, dtype), vec![0.0; n], vec![0.0; n]);
            let mut ps = store(&p0, dtype);
            let mut ms = b.zeros(dtype, n).unwrap();
            let mut vs = b.zeros(dtype, n).unwrap();
            for step in 1..=3u64 {
                let g = rng.vec(n, 1.0);
                let hp = AdamWParams {
                    grad_scale: [1.0, 0.5, 0.25][step as usize - 1],
                    lr: 1e-2,
                    beta1: 0.9,
                    beta2: 0.95,
                    eps: 1e-8,
                    weight_decay: 0.1,
                    step,
                };
                // The gradient arrives through a transposed view of a [n, 1] tensor.
                let gs = store(&g, dtype);
                let gl = Layout::contiguous([1, n]).transpose(0, 1);
                b.adamw_step(&mut *ps, View::new(&*gs, &gl), &mut *ms, &mut *vs, &hp)
                    .unwrap();
                let g: Vec<f64> = rounded(&g, dtype)
                    .iter()
                    .map(|g| g * hp.grad_scale)
                    .collect();
                let t = step as i32;
                for i in 0..n {
                    m[i] = hp.beta1 * m[i] + (1.0 - hp.beta1) * g[i];
                    v[i] = hp.beta2 * v[i] + (1.0 - hp.beta2) * g[i] * g[i];
                    let mh = m[i] / (1.0 - hp.beta1.powi(t));
                    let vh = v[i] / (1.0 - hp.beta2.powi(t));
                    p[i] -= hp.lr * (mh / (vh.sqrt() + hp.eps) + hp.weight_decay * p[i]);
                }
            }
            let what = format!("adamw n={n} {dtype}");
            assert_close(&read(&*ps), &p, tol(dtype) * 10.0, &what);
            assert_close(&read(&*ms), &m, tol(dtype) * 10.0, &what);
            assert_close(&read(&*vs), &v, tol(dtype) * 10.0, &what);
        }
    }
    // Mismatched lengths and step 0 are errors.
    let mut p = b.zeros(DType::F32, 3).unwrap();
    let mut m = b.zeros(DType::F32, 3).unwrap();
    let mut v = b.zeros(DType::F32, 2).unwrap();
    let g = store(&[1.0; 3], DType::F32);
    let gl = Layout::contiguous([3]);
    let mut hp = AdamWParams {
        grad_scale: 1.0,
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.0,
        step: 1,
    };
    assert!(b
        .adamw_step(&mut *p, View::new(&*g, &gl), &mut *m, &mut *v, &hp)
        .is_err());
    let mut v = b.zeros(DType::F32, 3).unwrap();
    hp.step = 0;
    assert!(b
        .adamw_step(&mut *p, View::new(&*g, &gl), &mut *m, &mut *v, &hp)
        .is_err());
}

#[test]
fn sum_squares_matches_reference() {
    let b = backend();
    let mut rng = Lcg::new(46);
    for n in [0usize, 1, 7, 4097, 300_001] {
        for dtype in FLOATS {
            let x = rounded(&rng.vec(n, 1.0), dtype);
            let want: f64 = x.iter().map(|x| x * x).sum();
            // Read through a transposed [n, 1] view as well as contiguously.
            let xs = store(&x, dtype);
            for layout in [
                Layout::contiguous([n]),
                Layout::contiguous([1, n]).transpose(0, 1),
            ] {
                let got = b.sum_squares(View::new(&*xs, &layout)).unwrap();
                assert!(
                    (got - want).abs() <= tol(dtype) * want.max(1.0),
                    "n={n} {dtype}: {got} vs {want}"
                );
            }
        }
    }
}
