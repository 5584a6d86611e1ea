//! Backward ops on CUDA against rg-cpu: each fused backward kernel directly, then whole
//! rg-autograd graphs run on both devices with every gradient compared. Fresh random
//! inputs, poisoned outputs, f32 <= 1e-5 and bf16 <= 1e-2 relative error.

mod common;

use common::*;
use rg_autograd::Var;
use rg_core::{DType, Device, Tensor};

#[test]
fn fused_backward_kernels() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(21);
    let x = randn(&mut r, &[11, 300], 3.0);
    let dy = randn(&mut r, &[11, 300], 1.0);
    for (dtype, tol) in FLOATS {
        let (xr, xg) = pair(&x, dtype, gpu);
        let (dr, dg) = pair(&dy, dtype, gpu);
        assert_close(
            &format!("gelu_backward {dtype}"),
            &xg.gelu_backward(&dg).unwrap(),
            &xr.gelu_backward(&dr).unwrap(),
            tol,
        );
        for log in [false, true] {
            // The forward output as each side computed it.
            let (yr, yg) = if log {
                (
                    xr.log_softmax_last().unwrap(),
                    xg.log_softmax_last().unwrap(),
                )
            } else {
                (xr.softmax_last().unwrap(), xg.softmax_last().unwrap())
            };
            let want = yr.softmax_last_backward(&dr, log).unwrap();
            let got = yg.softmax_last_backward(&dg, log).unwrap();
            assert_close(
                &format!("softmax_backward log={log} {dtype}"),
                &got,
                &want,
                tol,
            );
        }
    }
}

#[test]
fn layer_norm_backward() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(22);
    for (rows, cols) in [(5, 7), (64, 768), (3000, 96)] {
        let x = randn(&mut r, &[rows, cols], 2.0);
        let gamma = randn(&mut r, &[cols], 1.0);
        let beta = randn(&mut r, &[cols], 1.0);
        let dy = randn(&mut r, &[rows, cols], 1.0);
        for (dtype, tol) in FLOATS {
            let (xr, xg) = pair(&x, dtype, gpu);
            let (gr, gg) = pair(&gamma, dtype, gpu);
            let (br, bg) = pair(&beta, dtype, gpu);
            let (dr, dg) = pair(&dy, dtype, gpu);
            let fr = xr.layer_norm(&gr, &br, 1e-5).unwrap();
            let fg = xg.layer_norm(&gg, &bg, 1e-5).unwrap();
            // Each side's backward from its own statistics.
            let (dxr, dgr, dbr) = xr
                .layer_norm_backward(&dr, &gr, &fr.mean, &fr.rstd)
                .unwrap();
            let (dxg, dgg, dbg) = xg
                .layer_norm_backward(&dg, &gg, &fg.mean, &fg.rstd)
                .unwrap();
            assert_close(&format!("ln dx {rows}x{cols} {dtype}"), &dxg, &dxr, tol);
            assert_close(&format!("ln dgamma {rows}x{cols} {dtype}"), &dgg, &dgr, tol);
            assert_close(&format!("ln dbeta {rows}x{cols} {dtype}"), &dbg, &dbr, tol);
        }
    }
}

#[test]
fn cross_entropy_backward() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(23);
    for (rows, cols) in [(9, 13), (32, 50_257)] {
        let x = randn(&mut r, &[rows, cols], 4.0);
        let mut t: Vec<i64> = ids(&mut r, rows, cols as u32)
            .into_iter()
            .map(i64::from)
            .collect();
        t[1] = -1;
        let tc = Tensor::from_vec(t, [rows], &Device::Cpu).unwrap();
        let tg = tc.to_device(&gpu).unwrap();
        let dloss = positive(&mut r, &[rows], 0.5, 1.5);
        for (dtype, tol) in FLOATS {
            let (xr, xg) = pair(&x, dtype, gpu);
            let (dr, dg) = pair(&dloss, dtype, gpu);
            let fr = xr.cross_entropy(&tc, Some(-1)).unwrap();
            let fg = xg.cross_entropy(&tg, Some(-1)).unwrap();
            let want = xr
                .cross_entropy_backward(&fr.lse, &tc, &dr, Some(-1))
                .unwrap();
            let got = xg
                .cross_entropy_backward(&fg.lse, &tg, &dg, Some(-1))
                .unwrap();
            assert_close(
                &format!("ce backward {rows}x{cols} {dtype}"),
                &got,
                &want,
                tol,
            );
            let row1 = got.narrow(0, 1, 1).unwrap().to_f64_vec().unwrap();
            assert!(
                row1.iter().all(|&v| v == 0.0),
                "ignored row has zero gradient"
            );
        }
    }
}

/// Runs `f` on parameters built from `inputs` on `device`, returns the loss value and
/// the gradient of every input (in f32 on the CPU).
fn grads_of(
    inputs: &[Tensor],
    device: Device,
    dtype: DType,
    f: &dyn Fn(&[Var]) -> Var,
) -> (f64, Vec<Tensor>) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::parameter(t.to_dtype(dtype).unwrap().to_device(&device).unwrap()))
        .collect();
    let loss = f(&vars);
    let value = loss
        .tensor()
        .to_dtype(DType::F32)
        .unwrap()
        .to_f64_vec()
        .unwrap()[0];
    let grads = loss.backward().unwrap();
    let g = vars
        .iter()
        .map(|v| {
            grads
                .get(v)
                .expect("every input gets a gradient")
                .to_dtype(DType::F32)
                .unwrap()
                .to_device(&Device::Cpu)
                .unwrap()
        })
        .collect();
    (value, g)
}

/// Whole graphs: f32 at the op tolerance. A graph run entirely in bf16 rounds every
/// intermediate result (each op is checked at 1e-2 above), and those roundings
/// compound through a few layers, so the graph-level bound for bf16 is 5e-2.
const GRAPH_TOLERANCES: [(DType, f64); 2] = [(DType::F32, 1e-5), (DType::BF16, 5e-2)];

/// Compares a graph's loss and gradients on CUDA with the CPU, per float dtype (the
/// CPU computing in f32 on the same rounded inputs).
fn check_graph(name: &str, gpu: Device, inputs: &[Tensor], f: &dyn Fn(&[Var]) -> Var) {
    for (dtype, tol) in GRAPH_TOLERANCES {
        let rounded: Vec<Tensor> = inputs
            .iter()
            .map(|t| t.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap())
            .collect();
        let (lr, gr) = grads_of(&rounded, Device::Cpu, DType::F32, f);
        let (lg, gg) = grads_of(&rounded, gpu, dtype, f);
        assert!(
            (lg - lr).abs() <= tol * lr.abs().max(1.0),
            "{name} {dtype}: loss {lg} vs {lr}"
        );
        for (i, (g, r)) in gg.iter().zip(&gr).enumerate() {
            assert_close(&format!("{name} {dtype}: gradient of input {i}"), g, r, tol);
        }
    }
}

#[test]
fn mlp_graph_with_layer_norm_and_cross_entropy() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(24);
    let (n, d, hidden, v) = (12, 32, 64, 50);
    let inputs = [
        randn(&mut r, &[v, d], 1.0),      // embedding table
        randn(&mut r, &[d], 1.0),         // ln gamma
        randn(&mut r, &[d], 0.5),         // ln beta
        randn(&mut r, &[d, hidden], 0.3), // fc
        randn(&mut r, &[hidden], 0.1),    // fc bias
        randn(&mut r, &[hidden, v], 0.3), // head
    ];
    let ids_cpu = Tensor::from_vec(ids(&mut r, n, v as u32), [n], &Device::Cpu).unwrap();
    let tgt_cpu = Tensor::from_vec(ids(&mut r, n, v as u32), [n], &Device::Cpu).unwrap();
    let f = |p: &[Var]| -> Var {
        let dev = p[0].device();
        let ids = ids_cpu.to_device(&dev).unwrap();
        let tgt = tgt_cpu.to_device(&dev).unwrap();
        let x = p[0].embedding(&ids).unwrap();
        let x = x.layer_norm(&p[1], &p[2], 1e-5).unwrap();
        let h = x.matmul(&p[3]).unwrap().add(&p[4]).unwrap().gelu().unwrap();
        let logits = h.matmul(&p[5]).unwrap();
        logits
            .cross_entropy(&tgt, None)
            .unwrap()
            .mean_all()
            .unwrap()
    };
    check_graph("mlp", gpu, &inputs, &f);
}

#[test]
fn elementwise_and_reduction_graph() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(25);
    let inputs = [
        randn(&mut r, &[6, 20], 1.0),
        positive(&mut r, &[20], 0.5, 2.0),
        randn(&mut r, &[6, 1], 1.0),
    ];
    let f = |p: &[Var]| -> Var {
        let a = p[0].mul(&p[1]).unwrap().sub(&p[2]).unwrap();
        let b = a
            .tanh()
            .unwrap()
            .add(&a.exp().unwrap().scale(0.1).unwrap())
            .unwrap();
        let c = b
            .div(&p[1].sqrt().unwrap())
            .unwrap()
            .maximum(&a.scale(0.5).unwrap())
            .unwrap();
        let s = c.softmax_last().unwrap().mul(&a).unwrap();
        let m = c
            .max(1, true)
            .unwrap()
            .add(&s.sum(1, true).unwrap())
            .unwrap();
        m.powf(2.0).unwrap().mean_all().unwrap()
    };
    check_graph("elementwise", gpu, &inputs, &f);
}

#[test]
fn attention_forward_and_backward() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(26);
    // (b, t, s, h, d): training, a KV-cache prefix, decode with several splits, small heads.
    for (b, t, s, h, d) in [
        (2, 37, 37, 3, 64),
        (1, 5, 70, 2, 64),
        (2, 1, 600, 2, 64),
        (1, 1, 9, 1, 32),
        (2, 40, 40, 2, 16),
    ] {
        // q, k, v sliced out of fused projections: strided views, no copies.
        let qkv_t = randn(&mut r, &[b, s, 3, h, d], 1.0);
        let scale = 1.0 / (d as f64).sqrt();
        let dout = randn(&mut r, &[b, t, h, d], 1.0);
        for (dtype, tol) in FLOATS {
            let (cr, cg) = pair(&qkv_t, dtype, gpu);
            let (dr, dg) = pair(&dout, dtype, gpu);
            let split = |x: &Tensor| {
                let part = |i| x.narrow(2, i, 1).unwrap().squeeze(2).unwrap();
                (part(0).narrow(1, s - t, t).unwrap(), part(1), part(2))
            };
            let (qr, kr, vr) = split(&cr);
            let (qg, kg, vg) = split(&cg);
            let fr = qr.attention(&kr, &vr, scale).unwrap();
            let fg = qg.attention(&kg, &vg, scale).unwrap();
            let case = format!("attention b{b} t{t} s{s} h{h} d{d} {dtype}");
            assert_eq!(fg.lse.dtype(), DType::F32);
            assert_close(&format!("{case} out"), &fg.out, &fr.out, tol);
            assert_close(&format!("{case} lse"), &fg.lse, &fr.lse, tol.max(1e-5));
            let gr = qr.attention_backward(&kr, &vr, &fr, &dr, scale).unwrap();
            let gg = qg.attention_backward(&kg, &vg, &fg, &dg, scale).unwrap();
            assert_close(&format!("{case} dq"), &gg.dq, &gr.dq, tol);
            assert_close(&format!("{case} dk"), &gg.dk, &gr.dk, tol);
            assert_close(&format!("{case} dv"), &gg.dv, &gr.dv, tol);
        }
    }
}

#[test]
fn attention_graph_through_autograd() {
    let Some(gpu) = cuda_or_skip() else { return };
    let mut r = rng(27);
    let (b, t, h, d) = (2, 24, 2, 32);
    let inputs = [
        randn(&mut r, &[b, t, h, d], 1.0),
        randn(&mut r, &[b, t, h, d], 1.0),
        randn(&mut r, &[b, t, h, d], 1.0),
        randn(&mut r, &[h * d, 7], 0.5),
    ];
    let f = |p: &[Var]| -> Var {
        let y = p[0].attention(&p[1], &p[2], 0.2).unwrap();
        let y = y.reshape([b * t, h * d]).unwrap().matmul(&p[3]).unwrap();
        y.sqr().unwrap().mean_all().unwrap()
    };
    check_graph("attention graph", gpu, &inputs, &f);
}
