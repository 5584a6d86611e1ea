//! The step-0 gradient comparison with PyTorch, shared by the CPU parity test and the
//! CUDA one (`rg-cuda/tests/gpt2_tiny.rs` includes this file by path).

/// Step-0 gradients against PyTorch's, per parameter: every element within
/// `1e-6 + 1e-5 * max|ref|`. f32 reaches about 7e-7 * max|ref| here (summation order
/// differs from PyTorch's), so the bound leaves a tenfold margin yet fails on a
/// 1e-4 relative error in one gradient. Prints the worst error of each tensor.
pub fn assert_gradients_match_reference(grads: &[(String, Vec<f32>, Vec<f32>)]) {
    const ABS: f64 = 1e-6;
    const REL_TO_MAX: f64 = 1e-5;
    let mut failures = Vec::new();
    let mut worst_overall = (0.0f64, String::new());
    for (name, got, reference) in grads {
        assert_eq!(got.len(), reference.len(), "{name}: gradient length");
        let max_ref = reference.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
        let tol = ABS + REL_TO_MAX * max_ref;
        let (worst_i, worst_err) = got
            .iter()
            .zip(reference)
            .map(|(&a, &e)| (a as f64 - e as f64).abs())
            .enumerate()
            .fold(
                (0, 0f64),
                |w, (i, err)| if err > w.1 { (i, err) } else { w },
            );
        let relative = worst_err / max_ref.max(f64::MIN_POSITIVE);
        println!(
            "{name:<28} max|ref| {max_ref:.3e}  max err {worst_err:.3e} ({relative:.2e} of max|ref|)"
        );
        if relative > worst_overall.0 {
            worst_overall = (relative, name.clone());
        }
        if worst_err > tol || !worst_err.is_finite() {
            failures.push(format!(
                "{name}[{worst_i}]: {} vs {} (error {worst_err:.3e} > tol {tol:.3e})",
                got[worst_i], reference[worst_i]
            ));
        }
    }
    println!(
        "worst: {:.2e} of max|ref| ({}); tolerance {ABS:.0e} + {REL_TO_MAX:.0e} * max|ref|",
        worst_overall.0, worst_overall.1
    );
    assert!(
        failures.is_empty(),
        "{} of {} gradients differ from PyTorch's:\n{}",
        failures.len(),
        grads.len(),
        failures.join("\n")
    );
}
