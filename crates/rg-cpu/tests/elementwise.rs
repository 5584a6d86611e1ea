//! Elementwise kernels (unary, affine, powf, binary, cmp, where_cond, GELU) against f64
//! references, through contiguous, offset, transposed, narrowed and broadcast views.

mod common;

use common::*;
use rg_core::backend::{Backend, View};
use rg_core::ops::gelu_reference;
use rg_core::{BinaryOp, CmpOp, DType, Layout, Shape, UnaryOp};

const SHAPES: [&[usize]; 5] = [&[1], &[7], &[3, 33], &[2, 5, 7], &[40, 1030]];

fn unary_reference(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Gelu => gelu_reference(x),
        UnaryOp::Square => x * x,
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Abs => x.abs(),
    }
}

#[test]
fn unary_ops_match_reference_on_every_layout() {
    let b = backend();
    let mut rng = Lcg::new(1);
    let ops = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Tanh,
        UnaryOp::Sqrt,
        UnaryOp::Relu,
        UnaryOp::Gelu,
        UnaryOp::Square,
        UnaryOp::Recip,
        UnaryOp::Abs,
    ];
    for dims in SHAPES {
        for case in layouts(dims) {
            for dtype in FLOATS {
                let raw = rng.vec(case.len, 3.0);
                // Log and sqrt need positive inputs; recip keeps away from zero.
                let positive: Vec<f64> = raw.iter().map(|v| v.abs() + 0.1).collect();
                for op in ops {
                    let data = if matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip) {
                        &positive
                    } else {
                        &raw
                    };
                    let s = store(data, dtype);
                    let out = b.unary(op, View::new(&*s, &case.layout)).unwrap();
                    let want: Vec<f64> = gather(&rounded(data, dtype), &case.layout)
                        .into_iter()
                        .map(|x| unary_reference(op, x))
                        .collect();
                    let what = format!("{op:?} {dtype} {} {dims:?}", case.name);
                    assert_close(&read(&*out), &want, tol(dtype), &what);
                }
            }
        }
    }
}

#[test]
fn affine_and_powf() {
    let b = backend();
    let mut rng = Lcg::new(2);
    for dims in SHAPES {
        for case in layouts(dims) {
            for dtype in FLOATS {
                let data: Vec<f64> = rng.vec(case.len, 2.0);
                let x = gather(&rounded(&data, dtype), &case.layout);
                let s = store(&data, dtype);
                let v = View::new(&*s, &case.layout);
                let out = b.affine(v, 1.5, -0.25).unwrap();
                let want: Vec<f64> = x.iter().map(|x| x * 1.5 - 0.25).collect();
                assert_close(&read(&*out), &want, tol(dtype), "affine");
                for e in [2.0, 3.0, -1.0, 0.5] {
                    let out = b.powf(v, e).unwrap();
                    let want: Vec<f64> = x
                        .iter()
                        .map(|x| if e == 0.5 { x.abs().powf(e) } else { x.powf(e) })
                        .collect();
                    if e == 0.5 {
                        // Only defined for non-negative inputs: compare those.
                        let got = read(&*out);
                        for ((g, w), x) in got.iter().zip(&want).zip(&x) {
                            if *x >= 0.0 {
                                assert_close(&[*g], &[*w], tol(dtype), "powf 0.5");
                            }
                        }
                    } else {
                        assert_close(&read(&*out), &want, 1e-4, &format!("powf {e}"));
                    }
                }
            }
        }
    }
}

fn binary_reference(op: BinaryOp, x: f64, y: f64) -> f64 {
    match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Maximum => x.max(y),
        BinaryOp::Minimum => x.min(y),
    }
}

#[test]
fn binary_ops_on_mixed_layouts() {
    let b = backend();
    let mut rng = Lcg::new(3);
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
    ];
    for dims in SHAPES {
        let cases = layouts(dims);
        for (i, l) in cases.iter().enumerate() {
            // Pair each layout with a different one so runs of the two views disagree.
            let r = &cases[(i + 2) % cases.len()];
            for dtype in FLOATS {
                let ld = rng.vec(l.len, 2.0);
                let rd: Vec<f64> = rng.vec(r.len, 2.0).iter().map(|v| v + 3.0).collect();
                let (ls, rs) = (store(&ld, dtype), store(&rd, dtype));
                let x = gather(&rounded(&ld, dtype), &l.layout);
                let y = gather(&rounded(&rd, dtype), &r.layout);
                for op in ops {
                    let out = b
                        .binary(op, View::new(&*ls, &l.layout), View::new(&*rs, &r.layout))
                        .unwrap();
                    let want: Vec<f64> = x
                        .iter()
                        .zip(&y)
                        .map(|(&x, &y)| binary_reference(op, x, y))
                        .collect();
                    let what = format!("{op:?} {dtype} {} x {} {dims:?}", l.name, r.name);
                    assert_close(&read(&*out), &want, tol(dtype), &what);
                }
            }
        }
    }
}

#[test]
fn binary_with_scalar_broadcast_and_row_broadcast() {
    let b = backend();
    let dims = Shape::new([64, 1000]);
    let x: Vec<f64> = (0..64_000).map(|i| i as f64 * 0.001).collect();
    let xs = store(&x, DType::F32);
    let xl = Layout::contiguous(dims.clone());
    // A bias row broadcast over the rows, and a scalar broadcast everywhere.
    let bias: Vec<f64> = (0..1000).map(|i| i as f64).collect();
    let bs = store(&bias, DType::F32);
    let bl = Layout::contiguous([1000]).broadcast_to("t", &dims).unwrap();
    let out = b
        .binary(BinaryOp::Add, View::new(&*xs, &xl), View::new(&*bs, &bl))
        .unwrap();
    let want: Vec<f64> = (0..64_000).map(|i| x[i] + bias[i % 1000]).collect();
    assert_close(&read(&*out), &want, 1e-6, "row broadcast");
    let ss = store(&[2.0], DType::F32);
    let sl = Layout::contiguous(()).broadcast_to("t", &dims).unwrap();
    let out = b
        .binary(BinaryOp::Mul, View::new(&*ss, &sl), View::new(&*xs, &xl))
        .unwrap();
    let want: Vec<f64> = x.iter().map(|v| 2.0 * v).collect();
    assert_close(&read(&*out), &want, 1e-6, "scalar broadcast");
}

#[test]
fn cmp_every_dtype_yields_u32() {
    let b = backend();
    let l = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let r = [3.0, 2.0, 1.0];
    let ll = Layout::contiguous([2, 3]);
    let rl = Layout::contiguous([3])
        .broadcast_to("t", &Shape::new([2, 3]))
        .unwrap();
    let expect = |op: CmpOp| -> Vec<f64> {
        (0..6)
            .map(|i| {
                let (x, y) = (l[i], r[i % 3]);
                let hold = match op {
                    CmpOp::Eq => x == y,
                    CmpOp::Ne => x != y,
                    CmpOp::Lt => x < y,
                    CmpOp::Le => x <= y,
                    CmpOp::Gt => x > y,
                    CmpOp::Ge => x >= y,
                };
                hold as u32 as f64
            })
            .collect()
    };
    for dtype in DType::ALL {
        let (ls, rs) = (store(&l, dtype), store(&r, dtype));
        for op in [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ] {
            let out = b
                .cmp(op, View::new(&*ls, &ll), View::new(&*rs, &rl))
                .unwrap();
            assert_eq!(out.dtype(), DType::U32);
            assert_eq!(read(&*out), expect(op), "{op:?} {dtype}");
        }
    }
}

#[test]
fn where_cond_selects_through_broadcast_views() {
    let b = backend();
    let mut rng = Lcg::new(4);
    let dims = Shape::new([33, 70]);
    let n = dims.elem_count();
    let cond: Vec<f64> = (0..70).map(|i| (i % 3 == 0) as u32 as f64).collect();
    let cs = store(&cond, DType::U32);
    let cl = Layout::contiguous([70]).broadcast_to("t", &dims).unwrap();
    for dtype in [DType::F32, DType::F64, DType::BF16, DType::I64] {
        let t = rng.vec(n, 100.0);
        let ts = store(&t, dtype);
        let tl = Layout::contiguous([70, 33]).transpose(0, 1);
        let fs = store(&[-7.0], dtype);
        let fl = Layout::contiguous(()).broadcast_to("t", &dims).unwrap();
        let out = b
            .where_cond(
                View::new(&*cs, &cl),
                View::new(&*ts, &tl),
                View::new(&*fs, &fl),
            )
            .unwrap();
        let tv = gather(&rounded(&t, dtype), &tl);
        let want: Vec<f64> = (0..n)
            .map(|i| if cond[i % 70] != 0.0 { tv[i] } else { -7.0 })
            .collect();
        assert_eq!(read(&*out), want, "{dtype}");
    }
    let bad = store(&[1.0], DType::F32);
    let l = Layout::contiguous([1]);
    let f = store(&[1.0], DType::F32);
    assert!(b
        .where_cond(View::new(&*bad, &l), View::new(&*f, &l), View::new(&*f, &l))
        .is_err());
}

#[test]
fn gelu_backward_matches_finite_differences() {
    let b = backend();
    let mut rng = Lcg::new(5);
    for dims in SHAPES {
        for case in layouts(dims) {
            let x = rng.vec(case.len, 4.0);
            let dy = rng.vec(case.layout.elem_count(), 1.0);
            let xs = store(&x, DType::F64);
            let dys = store(&dy, DType::F64);
            let dyl = Layout::contiguous(case.layout.shape().clone());
            let out = b
                .gelu_backward(View::new(&*xs, &case.layout), View::new(&*dys, &dyl))
                .unwrap();
            let xv = gather(&x, &case.layout);
            let h = 1e-6;
            let want: Vec<f64> = xv
                .iter()
                .zip(&dy)
                .map(|(&x, &g)| g * (gelu_reference(x + h) - gelu_reference(x - h)) / (2.0 * h))
                .collect();
            assert_close(
                &read(&*out),
                &want,
                1e-7,
                &format!("gelu_backward {}", case.name),
            );
        }
    }
}

#[test]
fn non_float_compute_is_an_error_not_a_panic() {
    let b = backend();
    let s = store(&[1.0, 2.0], DType::BF16);
    let l = Layout::contiguous([2]);
    let v = View::new(&*s, &l);
    assert!(b.unary(UnaryOp::Exp, v).is_err());
    assert!(b.binary(BinaryOp::Add, v, v).is_err());
    assert!(b.affine(v, 1.0, 0.0).is_err());
    // A layout reaching past the storage is reported, not read.
    let long = Layout::contiguous([5]);
    let f = store(&[1.0, 2.0], DType::F32);
    assert!(b.unary(UnaryOp::Neg, View::new(&*f, &long)).is_err());
    // Mismatched dtypes between operands.
    let g = store(&[1.0, 2.0], DType::F64);
    assert!(b
        .binary(BinaryOp::Add, View::new(&*f, &l), View::new(&*g, &l))
        .is_err());
}

#[test]
fn casts_of_column_major_views_keep_every_element_in_place() {
    // Transposed weights (and narrowed ones) are cast tile by tile; ragged edges on
    // both axes, beyond one tile.
    let b = backend();
    let mut rng = Lcg::new(11);
    let (rows, cols) = (70usize, 45usize);
    let data = rng.vec(rows * cols + 3 * cols, 2.0);
    let s = store(&data, DType::F32);
    let transposed = Layout::contiguous(Shape::new([cols, rows])).transpose(0, 1);
    let narrowed = Layout::contiguous(Shape::new([cols, rows + 3]))
        .transpose(0, 1)
        .narrow("test", 0, 2, rows)
        .unwrap();
    for (name, layout) in [("transposed", transposed), ("narrowed", narrowed)] {
        let want = rounded(&gather(&data, &layout), DType::BF16);
        let half = b.cast(View::new(&*s, &layout), DType::BF16).unwrap();
        assert_close(&read(&*half), &want, 0.0, name);
        let back = Layout::contiguous(Shape::new([rows, cols]));
        let full = b.cast(View::new(&*half, &back), DType::F32).unwrap();
        assert_close(&read(&*full), &want, 0.0, name);
    }
}
