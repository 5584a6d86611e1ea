//! The gradients of slices cut from one tensor (a fused QKV projection's queries, keys
//! and values) fill one buffer: one concatenation when they tile the tensor, else one
//! tensor of zeros with each slice copied into its place, never a zero-padded tensor
//! per slice added up. Overlapping slices and a dense use of the same tensor still add
//! up. Its own test binary, because it turns on
//! profiling (read once per process) to see which backend ops the backward pass ran.

use rg_autograd::Var;
use rg_core::{Device, Tensor};

/// The backward ops (name column) of the profile since the last reset.
fn backward_ops() -> Vec<String> {
    rg_core::profile::report()
        .lines()
        .filter(|l| l.starts_with("backward"))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

#[test]
fn slices_of_one_tensor_fill_one_gradient_and_overlaps_add() {
    // SAFETY: set before this process starts any thread or backend.
    unsafe { std::env::set_var("RG_PROFILE", "1") };
    rg_cpu::register();
    let cpu = Device::Cpu;
    let values: Vec<f32> = (0..2 * 3 * 6).map(|i| i as f32 * 0.5 - 4.0).collect();
    let x = Var::parameter(Tensor::from_vec(values.clone(), [2, 3, 6], &cpu).unwrap());

    // Disjoint thirds, each scaled by its own factor and split into heads.
    let loss = (0..3)
        .map(|i| {
            let part = x
                .narrow(2, 2 * i, 2)
                .unwrap()
                .reshape([2, 3, 2, 1])
                .unwrap();
            part.scale((i + 1) as f64).unwrap().sum_all().unwrap()
        })
        .reduce(|a, b| a.add(&b).unwrap())
        .unwrap();
    rg_core::profile::reset();
    let grads = loss.backward().unwrap();
    let ops = backward_ops();
    let g = grads.get(&x).unwrap().to_vec::<f32>().unwrap();
    let want: Vec<f32> = (0..36).map(|i| ((i % 6) / 2 + 1) as f32).collect();
    assert_eq!(g, want);
    assert_eq!(
        ops.iter().filter(|op| *op == "concat").count(),
        1,
        "{ops:?}"
    );
    assert!(!ops.iter().any(|op| op == "zeros"), "{ops:?}");
    assert!(
        !ops.iter().any(|op| op == "add_assign"),
        "disjoint slices were added up: {ops:?}"
    );

    // Two of the thirds only: zeros where the third would be, and still no adds.
    let loss = x
        .narrow(2, 4, 2)
        .unwrap()
        .scale(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .add(&x.narrow(2, 0, 2).unwrap().sum_all().unwrap())
        .unwrap();
    rg_core::profile::reset();
    let g = loss
        .backward()
        .unwrap()
        .get(&x)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let ops = backward_ops();
    let want: Vec<f32> = (0..36)
        .map(|i| [1.0, 1.0, 0.0, 0.0, 3.0, 3.0][i % 6])
        .collect();
    assert_eq!(g, want);
    assert_eq!(ops.iter().filter(|op| *op == "zeros").count(), 1, "{ops:?}");
    assert!(!ops.iter().any(|op| op == "add_assign"), "{ops:?}");

    // Overlapping slices along the same axis, a slice along another axis, and the
    // whole tensor used densely: everything adds.
    let a = x.narrow(2, 0, 4).unwrap().sum_all().unwrap();
    let b = x
        .narrow(2, 2, 4)
        .unwrap()
        .scale(2.0)
        .unwrap()
        .sum_all()
        .unwrap();
    let c = x
        .narrow(1, 1, 1)
        .unwrap()
        .scale(10.0)
        .unwrap()
        .sum_all()
        .unwrap();
    let d = x.mul(&x).unwrap().sum_all().unwrap();
    let loss = a.add(&b).unwrap().add(&c).unwrap().add(&d).unwrap();
    let g = loss
        .backward()
        .unwrap()
        .get(&x)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    for (i, (&got, &v)) in g.iter().zip(&values).enumerate() {
        let (t, col) = ((i / 6) % 3, i % 6);
        let want =
            f32::from(col < 4) + 2.0 * f32::from(col >= 2) + 10.0 * f32::from(t == 1) + 2.0 * v;
        assert!((got - want).abs() < 1e-5, "element {i}: {got} vs {want}");
    }
}
