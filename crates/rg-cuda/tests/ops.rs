//! Every forward op on CUDA against rg-cpu on fresh random inputs (never zeros), in
//! f32 (relative error <= 1e-5) and bf16 (<= 1e-2, against f32 on the same rounded
//! inputs), with poisoned output buffers, strided and broadcast views included.

mod common;

use common::*;
use rg_core::backend::AdamWParams;
use rg_core::{CmpOp, DType, Device, Error, Shape, Tensor};

/// Checks `f` on CUDA against `f` on the CPU for each float dtype.
fn check(name: &str, gpu: Device, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Tensor) {
    for (dtype, tol) in FLOATS {
        let (refs, gpus): (Vec<Tensor>, Vec<Tensor>) =
            inputs.iter().map(|t| pair(t, dtype, gpu)).unzip();
        let out = f(&gpus);
        assert_eq!(out.dtype(), dtype, "{name}: output dtype");
        assert_eq!(out.device(), gpu);
        assert_close(&format!("{name} {dtype}"), &out, &f(&refs), tol);
    }
}

#[test]
fn unary_ops_on_strided_views() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(1);
    let x = randn(&mut r, &[7, 33, 5], 2.0);
    let pos = positive(&mut r, &[7, 33, 5], 0.2, 3.0);
    // A transposed (non-contiguous) view of each.
    let tr = |t: &Tensor| t.transpose(0, 2).unwrap();
    type F = fn(&Tensor) -> rg_core::Result<Tensor>;
    let general: [(&str, F); 7] = [
        ("neg", Tensor::neg),
        ("exp", Tensor::exp),
        ("tanh", Tensor::tanh),
        ("relu", Tensor::relu),
        ("gelu", Tensor::gelu),
        ("sqr", Tensor::sqr),
        ("abs", Tensor::abs),
    ];
    for (name, f) in general {
        check(name, gpu, &[tr(&x)], |t| f(&t[0]).unwrap());
    }
    let positive_only: [(&str, F); 3] = [
        ("log", Tensor::log),
        ("sqrt", Tensor::sqrt),
        ("recip", Tensor::recip),
    ];
    for (name, f) in positive_only {
        check(name, gpu, &[tr(&pos)], |t| f(&t[0]).unwrap());
    }
    check("affine", gpu, &[tr(&x)], |t| {
        t[0].affine(-1.5, 0.25).unwrap()
    });
    for e in [2.0, 3.0, -1.0] {
        check("powf", gpu, &[tr(&x)], |t| t[0].powf(e).unwrap());
    }
    check("powf 0.5", gpu, &[tr(&pos)], |t| t[0].powf(0.5).unwrap());
}

#[test]
fn binary_ops_with_broadcasting() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(2);
    let a = randn(&mut r, &[4, 5, 6], 2.0);
    let b = positive(&mut r, &[4, 1, 6], 0.5, 2.0);
    let row = randn(&mut r, &[6], 1.0);
    for (name, f) in [
        (
            "add",
            Tensor::add as fn(&Tensor, &Tensor) -> rg_core::Result<Tensor>,
        ),
        ("sub", Tensor::sub),
        ("mul", Tensor::mul),
        ("div", Tensor::div),
        ("maximum", Tensor::maximum),
        ("minimum", Tensor::minimum),
    ] {
        check(name, gpu, &[a.clone(), b.clone()], |t| {
            f(&t[0], &t[1]).unwrap()
        });
        check(name, gpu, &[a.transpose(0, 1).unwrap(), row.clone()], |t| {
            f(&t[0], &t[1]).unwrap()
        });
    }
}

#[test]
fn comparisons_and_where_match_exactly() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(3);
    // Few distinct values so that equality happens.
    let a: Vec<f32> = ids(&mut r, 120, 4)
        .into_iter()
        .map(|v| v as f32 - 1.5)
        .collect();
    let b: Vec<f32> = ids(&mut r, 120, 4)
        .into_iter()
        .map(|v| v as f32 - 1.5)
        .collect();
    let a = Tensor::from_vec(a, [10, 12], &Device::Cpu).unwrap();
    let b = Tensor::from_vec(b, [10, 12], &Device::Cpu).unwrap();
    for dtype in [DType::F32, DType::BF16, DType::F64, DType::I64, DType::U32] {
        let (ac, bc) = (
            a.to_dtype(dtype).unwrap(),
            b.to_dtype(dtype).unwrap().t().unwrap().t().unwrap(),
        );
        let (ag, bg) = (ac.to_device(&gpu).unwrap(), bc.to_device(&gpu).unwrap());
        for op in [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ] {
            let g = ag.cmp(op, &bg).unwrap();
            assert_eq!(g.dtype(), DType::U32);
            assert_eq!(
                g.to_vec::<u32>().unwrap(),
                ac.cmp(op, &bc).unwrap().to_vec::<u32>().unwrap(),
                "{op:?} {dtype}"
            );
        }
        let cond = ac.cmp(CmpOp::Gt, &bc).unwrap();
        let w = cond
            .to_device(&gpu)
            .unwrap()
            .where_cond(&ag, &bg.transpose(0, 1).unwrap().t().unwrap())
            .unwrap();
        let want = cond.where_cond(&ac, &bc).unwrap();
        assert_eq!(
            w.to_f64_vec().unwrap(),
            want.to_f64_vec().unwrap(),
            "where {dtype}"
        );
    }
}

#[test]
fn causal_fill_with_and_without_cache() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(4);
    for dims in [[2, 3, 9, 9], [2, 3, 4, 11]] {
        let x = randn(&mut r, &dims, 1.0);
        check("causal_fill", gpu, &[x], |t| {
            t[0].causal_fill(-1e4).unwrap()
        });
    }
}

#[test]
fn reductions_along_every_axis() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(5);
    let x = randn(&mut r, &[6, 70, 33], 3.0);
    let views = [x.clone(), x.permute(&[2, 0, 1]).unwrap()];
    for v in &views {
        for axis in 0..3 {
            check("sum", gpu, std::slice::from_ref(v), |t| {
                t[0].sum(axis, false).unwrap()
            });
            check("max", gpu, std::slice::from_ref(v), |t| {
                t[0].max(axis, false).unwrap()
            });
            check("min", gpu, std::slice::from_ref(v), |t| {
                t[0].min(axis, false).unwrap()
            });
            for dtype in [DType::F32, DType::BF16] {
                // Exact: argmax of identical (rounded) values, first maximum wins.
                let c = v.to_dtype(dtype).unwrap();
                let g = c.to_device(&gpu).unwrap().argmax(axis, false).unwrap();
                let want = c.to_dtype(DType::F32).unwrap().argmax(axis, false).unwrap();
                assert_eq!(
                    g.to_vec::<u32>().unwrap(),
                    want.to_vec::<u32>().unwrap(),
                    "argmax axis {axis} {dtype}"
                );
            }
        }
    }
    // A long single row (one block reduces it) and a tall matrix summed over rows;
    // positive values, so the sums are far from zero and rounding stays relative.
    let long = positive(&mut r, &[100_000], 0.5, 1.5);
    check("sum of a long row", gpu, &[long], |t| {
        t[0].sum(0, false).unwrap()
    });
    let tall = positive(&mut r, &[3000, 96], 0.5, 1.5);
    check("column sums", gpu, &[tall], |t| t[0].sum(0, false).unwrap());
}

#[test]
fn matmul_plain_batched_broadcast_and_transposed() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(6);
    let a = randn(&mut r, &[3, 17, 33], 1.0);
    let b = randn(&mut r, &[3, 33, 20], 1.0);
    let w = randn(&mut r, &[33, 20], 1.0);
    check("matmul batched", gpu, &[a.clone(), b.clone()], |t| {
        t[0].matmul(&t[1]).unwrap()
    });
    check("matmul broadcast rhs", gpu, &[a.clone(), w.clone()], |t| {
        t[0].matmul(&t[1]).unwrap()
    });
    let at = randn(&mut r, &[3, 33, 17], 1.0);
    check("matmul transposed lhs", gpu, &[at, b.clone()], |t| {
        t[0].transpose(1, 2).unwrap().matmul(&t[1]).unwrap()
    });
    let wt = randn(&mut r, &[20, 33], 1.0);
    check("matmul transposed rhs", gpu, &[a.clone(), wt], |t| {
        t[0].matmul(&t[1].t().unwrap()).unwrap()
    });
    // Attention-like: q [b, t, h, d] viewed as [b, h, t, d] times k^T.
    let q = randn(&mut r, &[2, 9, 3, 16], 1.0);
    let k = randn(&mut r, &[2, 9, 3, 16], 1.0);
    check("matmul 4-d heads", gpu, &[q, k], |t| {
        let q = t[0].permute(&[0, 2, 1, 3]).unwrap();
        let k = t[1].permute(&[0, 2, 3, 1]).unwrap();
        q.matmul(&k).unwrap()
    });
    // A linear layer's product and bias (the backend's default `matmul_bias`).
    let bias = randn(&mut r, &[20], 1.0);
    check("matmul_bias", gpu, &[a.clone(), w.clone(), bias], |t| {
        t[0].matmul_bias(&t[1], &t[2]).unwrap()
    });
    let big_a = randn(&mut r, &[256, 768], 1.0);
    let big_b = randn(&mut r, &[768, 300], 1.0);
    check("matmul 256x768x300", gpu, &[big_a, big_b], |t| {
        t[0].matmul(&t[1]).unwrap()
    });
}

#[test]
fn softmax_and_log_softmax() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(7);
    for cols in [5, 257, 5000] {
        let x = randn(&mut r, &[13, cols], 4.0);
        check("softmax", gpu, std::slice::from_ref(&x), |t| {
            t[0].softmax_last().unwrap()
        });
        check("log_softmax", gpu, std::slice::from_ref(&x), |t| {
            t[0].log_softmax_last().unwrap()
        });
    }
    let x = randn(&mut r, &[6, 40], 3.0);
    check("softmax of a transposed view", gpu, &[x], |t| {
        t[0].t().unwrap().softmax_last().unwrap()
    });
}

#[test]
fn layer_norm_forward() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(8);
    for cols in [7, 768, 1600] {
        let x = randn(&mut r, &[2, 9, cols], 2.0).affine(1.0, 3.0).unwrap();
        let g = randn(&mut r, &[cols], 1.0);
        let b = randn(&mut r, &[cols], 1.0);
        for (dtype, tol) in FLOATS {
            let (xr, xg) = pair(&x, dtype, gpu);
            let (gr, gg) = pair(&g, dtype, gpu);
            let (br, bg) = (pair(&b, dtype, gpu).0, pair(&b, dtype, gpu).1);
            let want = xr.layer_norm(&gr, &br, 1e-5).unwrap();
            let got = xg.layer_norm(&gg, &bg, 1e-5).unwrap();
            assert_close(&format!("layer_norm y {dtype}"), &got.y, &want.y, tol);
            assert_close(
                &format!("layer_norm mean {dtype}"),
                &got.mean,
                &want.mean,
                tol,
            );
            assert_close(
                &format!("layer_norm rstd {dtype}"),
                &got.rstd,
                &want.rstd,
                tol,
            );
        }
    }
}

#[test]
fn cross_entropy_forward_with_ignored_rows() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(9);
    for (rows, cols) in [(17, 10), (33, 50_257)] {
        let x = randn(&mut r, &[rows, cols], 4.0);
        let mut t: Vec<i64> = ids(&mut r, rows, cols as u32)
            .into_iter()
            .map(i64::from)
            .collect();
        t[3] = -100;
        let ti = Tensor::from_vec(t.clone(), [rows], &Device::Cpu).unwrap();
        let tu = Tensor::from_vec(
            t.iter().map(|&v| v.max(0) as u32).collect::<Vec<_>>(),
            [rows],
            &Device::Cpu,
        )
        .unwrap();
        for (dtype, tol) in FLOATS {
            let (xr, xg) = pair(&x, dtype, gpu);
            let want = xr.cross_entropy(&ti, Some(-100)).unwrap();
            let got = xg
                .cross_entropy(&ti.to_device(&gpu).unwrap(), Some(-100))
                .unwrap();
            assert_close(&format!("ce loss {dtype}"), &got.loss, &want.loss, tol);
            assert_close(&format!("ce lse {dtype}"), &got.lse, &want.lse, tol);
            assert_eq!(got.loss.to_f64_vec().unwrap()[3], 0.0, "ignored row");
            let want = xr.cross_entropy(&tu, None).unwrap();
            let got = xg
                .cross_entropy(&tu.to_device(&gpu).unwrap(), None)
                .unwrap();
            assert_close(
                &format!("ce loss u32 targets {dtype}"),
                &got.loss,
                &want.loss,
                tol,
            );
        }
    }
}

#[test]
fn bad_indices_are_errors_not_crashes() {
    let Some(gpu) = cuda_or_skip() else { return };
    let x = Tensor::from_vec(vec![1f32; 12], [3, 4], &gpu).unwrap();
    let bad = Tensor::from_vec(vec![0u32, 4, 1], [3], &gpu).unwrap();
    let e = x.cross_entropy(&bad, None).unwrap_err();
    assert!(
        matches!(
            e,
            Error::IndexOutOfRange {
                index: 4,
                size: 4,
                ..
            }
        ),
        "{e}"
    );
    let bad = Tensor::from_vec(vec![0i64, 3, -1], [3], &gpu).unwrap();
    let e = x.index_select(0, &bad).unwrap_err();
    assert!(matches!(e, Error::IndexOutOfRange { .. }), "{e}");
    let e = x.to_dtype(DType::U32).unwrap().exp().unwrap_err();
    assert!(e.to_string().contains("exp"), "{e}");
}

#[test]
fn gather_and_scatter_add() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(10);
    let table = randn(&mut r, &[50, 24], 1.0);
    let picks = ids(&mut r, 70, 50); // repeats certain
    let ids_cpu = Tensor::from_vec(picks.clone(), [70], &Device::Cpu).unwrap();
    let ids_gpu = ids_cpu.to_device(&gpu).unwrap();
    for (dtype, tol) in FLOATS {
        let (tr, tg) = pair(&table, dtype, gpu);
        assert_close(
            &format!("embedding {dtype}"),
            &tg.embedding(&ids_gpu).unwrap(),
            &tr.embedding(&ids_cpu).unwrap(),
            tol,
        );
        let (tr3, tg3) = pair(&randn(&mut r, &[3, 50, 4], 1.0), dtype, gpu);
        assert_close(
            &format!("index_select axis 1 {dtype}"),
            &tg3.index_select(1, &ids_gpu).unwrap(),
            &tr3.index_select(1, &ids_cpu).unwrap(),
            tol,
        );
        let src = randn(&mut r, &[3, 70, 4], 1.0);
        let (sr, sg) = pair(&src, dtype, gpu);
        let shape = Shape::new(vec![3, 50, 4]);
        let want = Tensor::index_add(&shape, 1, &ids_cpu, &sr).unwrap();
        let got = Tensor::index_add(&shape, 1, &ids_gpu, &sg).unwrap();
        assert_close(&format!("index_add {dtype}"), &got, &want, tol);
    }
    // Integer tables gather too (any dtype).
    let itab = Tensor::from_vec((0..100i64).collect::<Vec<_>>(), [50, 2], &Device::Cpu).unwrap();
    let g = itab
        .to_device(&gpu)
        .unwrap()
        .index_select(0, &ids_gpu)
        .unwrap();
    assert_eq!(
        g.to_vec::<i64>().unwrap(),
        itab.index_select(0, &ids_cpu)
            .unwrap()
            .to_vec::<i64>()
            .unwrap()
    );
}

#[test]
fn adamw_steps() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(11);
    let p = randn(&mut r, &[1000], 1.0);
    let grads: Vec<Tensor> = (0..3).map(|_| randn(&mut r, &[1000], 0.1)).collect();
    for (dtype, tol) in FLOATS {
        let (pr, pg) = pair(&p, dtype, gpu);
        let (mr, vr) = (pr.zeros_like().unwrap(), pr.zeros_like().unwrap());
        let (mg, vg) = (pg.zeros_like().unwrap(), pg.zeros_like().unwrap());
        for (step, g) in grads.iter().enumerate() {
            let (gr, gg) = pair(g, dtype, gpu);
            let hp = AdamWParams {
                lr: 1e-2,
                beta1: 0.9,
                beta2: 0.95,
                eps: 1e-8,
                weight_decay: 0.1,
                step: step as u64 + 1,
                grad_scale: [1.0, 0.5, 0.25][step],
            };
            pr.adamw_step_(&gr, &mr, &vr, &hp).unwrap();
            pg.adamw_step_(&gg, &mg, &vg, &hp).unwrap();
        }
        // bf16 state rounds every step; the parameters move by ~3e-2 of ~1.
        assert_close(&format!("adamw param {dtype}"), &pg, &pr, tol);
        assert_close(&format!("adamw m {dtype}"), &mg, &mr, tol.max(1e-5));
        assert_close(&format!("adamw v {dtype}"), &vg, &vr, tol.max(1e-5));
    }
}

#[test]
fn casts_match_the_cpu_exactly() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(12);
    let mut v = values(&mut r, 200, 300.0);
    v.extend([
        f32::NAN,
        f32::INFINITY,
        -f32::INFINITY,
        4.5e9,
        -3.7,
        0.5,
        65504.0,
        1e-40,
    ]);
    let x = Tensor::from_vec(v, [208], &Device::Cpu).unwrap();
    let all = [
        DType::F32,
        DType::F64,
        DType::BF16,
        DType::F16,
        DType::U32,
        DType::I64,
    ];
    for from in all {
        let xc = x.to_dtype(from).unwrap();
        let xg = xc.to_device(&gpu).unwrap();
        for to in all {
            let want = xc.to_dtype(to).unwrap().to_host().unwrap();
            let got = xg.to_dtype(to).unwrap().to_host().unwrap();
            let (w, g) = (format!("{want:?}"), format!("{got:?}"));
            assert!(w == g, "cast {from} -> {to} differs:\n cpu {w}\n gpu {g}");
        }
    }
}

#[test]
fn memory_fills_copies_and_strided_reads() {
    let Some(gpu) = cuda_or_skip() else { return };
    for dtype in [
        DType::F32,
        DType::BF16,
        DType::F64,
        DType::U32,
        DType::I64,
        DType::F16,
    ] {
        let t = Tensor::full(2.5, [3, 5], dtype, &gpu).unwrap();
        assert_eq!(
            t.to_host().unwrap(),
            Tensor::full(2.5, [3, 5], dtype, &Device::Cpu)
                .unwrap()
                .to_host()
                .unwrap()
        );
        assert!(Tensor::zeros([4], dtype, &gpu)
            .unwrap()
            .to_f64_vec()
            .unwrap()
            .iter()
            .all(|&v| v == 0.0));
    }
    let mut r = rng(13);
    let x = randn(&mut r, &[4, 6, 5], 1.0);
    let xg = x.to_device(&gpu).unwrap();
    let view = |t: &Tensor| t.permute(&[2, 0, 1]).unwrap().narrow(1, 1, 2).unwrap();
    assert_eq!(
        view(&xg).to_vec::<f32>().unwrap(),
        view(&x).to_vec::<f32>().unwrap(),
        "strided read"
    );
    assert_eq!(
        view(&xg).contiguous().unwrap().to_vec::<f32>().unwrap(),
        view(&x).to_vec::<f32>().unwrap()
    );
    // Writing into a strided destination.
    let dst_c = Tensor::zeros([6, 4], DType::F32, &Device::Cpu).unwrap();
    let dst_g = dst_c.to_device(&gpu).unwrap();
    let src = randn(&mut r, &[4, 3], 1.0);
    dst_c
        .t()
        .unwrap()
        .narrow(1, 2, 3)
        .unwrap()
        .copy_from(&src)
        .unwrap();
    dst_g
        .t()
        .unwrap()
        .narrow(1, 2, 3)
        .unwrap()
        .copy_from(&src.to_device(&gpu).unwrap())
        .unwrap();
    assert_eq!(
        dst_g.to_vec::<f32>().unwrap(),
        dst_c.to_vec::<f32>().unwrap(),
        "copy_from into a strided view"
    );
    let back = xg.to_device(&Device::Cpu).unwrap();
    assert_eq!(back.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
}

#[test]
fn the_allocator_reuses_freed_buffers() {
    let Some(_gpu) = cuda_or_skip() else { return };
    let b = rg_cuda::CudaBackend::shared(0).unwrap();
    let t = Tensor::zeros([123_457], DType::F32, &Device::Cuda(0)).unwrap();
    drop(t);
    let before = b.memory_stats().driver_allocs;
    for _ in 0..10 {
        let t = Tensor::zeros([123_457], DType::F32, &Device::Cuda(0)).unwrap();
        drop(t);
    }
    assert_eq!(
        b.memory_stats().driver_allocs,
        before,
        "same-size allocations come from the cache"
    );
}
