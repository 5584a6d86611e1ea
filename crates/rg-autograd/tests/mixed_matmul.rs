//! `Var::matmul_mixed` (autocast products): the forward and both operand gradients
//! are f32 products of the bf16-rounded operands (and of the bf16-rounded output
//! gradient), checked against the same products in f64; they are not rounded to
//! bf16 on the way out. A transposed weight (the tied LM head's `wte^T`) gets its
//! gradient in its own memory order.

use rg_autograd::Var;
use rg_core::{DType, Device, Tensor};

/// Deterministic values in (-1, 1) that bf16 cannot hold exactly.
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(40_503));
            (x % 20_011) as f32 / 10_005.5 - 1.0 + 1e-4
        })
        .collect()
}

fn tensor(data: Vec<f32>, dims: &[usize]) -> Tensor {
    Tensor::from_vec(data, dims.to_vec(), &Device::Cpu).unwrap()
}

/// `x` rounded to bf16 (nearest even) and widened, as f64.
fn bf16_rounded(x: &Tensor) -> Vec<f64> {
    let r = x
        .to_dtype(DType::BF16)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    r.contiguous().unwrap().to_vec::<f64>().unwrap()
}

/// `a [m, k] @ b [k, n]` in f64, row-major.
fn product(a: &[f64], b: &[f64], (m, k, n): (usize, usize, usize)) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    c
}

fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols * rows)
        .map(|i| a[(i % rows) * cols + i / rows])
        .collect()
}

/// The gradients of `sum(y * r)`: backward with `r` as `y`'s gradient.
fn backward_with_output_gradient(y: &Var, r: &Tensor) -> rg_autograd::Gradients {
    let loss = y.mul(&Var::constant(r.clone())).unwrap().sum_all().unwrap();
    loss.backward().unwrap()
}

fn assert_close(got: &Tensor, want: &[f64], what: &str) {
    assert_eq!(got.dtype(), DType::F32, "{what}");
    let got = got.contiguous().unwrap().to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        // f32 accumulation of a few terms: ~1e-6; bf16 rounding would be ~4e-3.
        assert!(
            (g as f64 - w).abs() < 2e-5,
            "{what} [{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn forward_and_gradients_are_f32_products_of_the_rounded_operands() {
    rg_cpu::register();
    let (m, k, n) = (6, 40, 9);
    let x = Var::parameter(tensor(values(m * k, 1), &[m, k]));
    let w = Var::parameter(tensor(values(k * n, 2), &[k, n]));
    let bias = Var::parameter(tensor(values(n, 3), &[n]));
    let r = tensor(values(m * n, 4), &[m, n]);
    let y = x.matmul_mixed(&w, Some(&bias), DType::BF16).unwrap();
    let grads = backward_with_output_gradient(&y, &r);

    let (xr, wr, gr) = (
        bf16_rounded(x.tensor()),
        bf16_rounded(w.tensor()),
        bf16_rounded(&r),
    );
    let b = bias
        .tensor()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    let mut want_y = product(&xr, &wr, (m, k, n));
    for (i, v) in want_y.iter_mut().enumerate() {
        *v += b[i % n];
    }
    assert_close(y.tensor(), &want_y, "y");
    let want_dx = product(&gr, &transpose(&wr, k, n), (m, n, k));
    assert_close(grads.get(&x).unwrap(), &want_dx, "dx");
    let want_dw = product(&transpose(&xr, m, k), &gr, (k, m, n));
    assert_close(grads.get(&w).unwrap(), &want_dw, "dw");
    // The bias gradient is the f32 output gradient summed over rows (not rounded).
    let r64 = r.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
    let want_db: Vec<f64> = (0..n)
        .map(|j| (0..m).map(|i| r64[i * n + j]).sum())
        .collect();
    assert_close(grads.get(&bias).unwrap(), &want_db, "dbias");
}

#[test]
fn a_transposed_weight_gets_a_row_major_gradient() {
    rg_cpu::register();
    let (m, k, vocab) = (5, 24, 11);
    let x = Var::parameter(tensor(values(m * k, 5), &[m, k]));
    let table = Var::parameter(tensor(values(vocab * k, 6), &[vocab, k]));
    let r = tensor(values(m * vocab, 7), &[m, vocab]);
    let y = x
        .matmul_mixed(&table.t().unwrap(), None, DType::BF16)
        .unwrap();
    let grads = backward_with_output_gradient(&y, &r);
    let dtable = grads.get(&table).unwrap();
    assert!(dtable.is_contiguous(), "{:?}", dtable.layout());
    let (xr, gr) = (bf16_rounded(x.tensor()), bf16_rounded(&r));
    // d table = (x^T @ g)^T = g^T @ x.
    let want = product(&transpose(&gr, m, vocab), &xr, (vocab, m, k));
    assert_close(dtable, &want, "dtable");
}

#[test]
fn operands_other_than_f32_are_an_error_naming_them() {
    rg_cpu::register();
    let a = Var::parameter(tensor(values(4, 8), &[2, 2]));
    let b = Var::constant(a.tensor().to_dtype(DType::BF16).unwrap());
    let err = a.matmul_mixed(&b, None, DType::BF16).unwrap_err();
    assert!(err.to_string().contains("rhs"), "{err}");
}

#[test]
fn a_bias_of_the_wrong_length_is_an_error_naming_both_shapes() {
    rg_cpu::register();
    let x = Var::parameter(tensor(values(6, 9), &[2, 3]));
    let w = Var::parameter(tensor(values(12, 10), &[3, 4]));
    let bias = Var::parameter(tensor(values(5, 11), &[5]));
    let err = x.matmul_mixed(&w, Some(&bias), DType::BF16).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("matmul_f32") && msg.contains('4') && msg.contains('5'),
        "{msg}"
    );
}
