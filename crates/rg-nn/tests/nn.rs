use std::collections::HashMap;

use rg_autograd::Var;
use rg_core::{DType, Device, Tensor};
use rg_cpu as _;
use rg_nn::optim::ParamGroup;
use rg_nn::*;

fn tensor(v: Vec<f64>, dims: &[usize]) -> Tensor {
    Tensor::from_vec(v, dims.to_vec(), &Device::Cpu).unwrap()
}

#[test]
fn warmup_cosine_matches_nanogpt() {
    let s = LrSchedule::warmup_cosine(1e-3, 1e-4, 100, 2000).unwrap();
    assert!((s.lr_at(0) - 1e-3 / 101.0).abs() < 1e-15);
    assert!((s.lr_at(99) - 1e-3 * 100.0 / 101.0).abs() < 1e-15);
    assert!((s.lr_at(100) - 1e-3).abs() < 1e-15);
    assert!((s.lr_at(1050) - 5.5e-4).abs() < 1e-12);
    assert_eq!(s.lr_at(2000), 1e-4);
    assert_eq!(s.lr_at(5000), 1e-4);
    assert!(LrSchedule::warmup_cosine(1e-4, 1e-3, 0, 10).is_err());
}

/// AdamW against the textbook update written out in f64.
#[test]
fn adamw_matches_reference_update() {
    let p0 = vec![0.5, -1.0, 2.0, 0.25];
    let grads_per_step = [
        vec![0.1, -0.2, 0.3, 0.0],
        vec![-0.05, 0.4, 0.1, 1.0],
        vec![0.2, 0.2, -0.3, -0.5],
    ];
    let w = Var::parameter(tensor(p0.clone(), &[2, 2]));
    let b = Var::parameter(tensor(vec![1.0, 1.0], &[2]));
    let cfg = AdamWConfig {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
    };
    let groups = ParamGroup::decay_matrices_only(
        vec![("w".into(), w.clone()), ("b".into(), b.clone())],
        0.1,
    );
    let mut opt = AdamW::new(groups, cfg).unwrap();
    let (mut p, mut m, mut v) = (p0.clone(), vec![0.0; 4], vec![0.0; 4]);
    for (t, g) in grads_per_step.iter().enumerate() {
        let mut grads = rg_autograd::Gradients::default();
        grads.insert(&w, tensor(g.clone(), &[2, 2]));
        opt.step(&grads).unwrap();
        let t = (t + 1) as i32;
        for i in 0..4 {
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.95 * v[i] + 0.05 * g[i] * g[i];
            let mh = m[i] / (1.0 - 0.9f64.powi(t));
            let vh = v[i] / (1.0 - 0.95f64.powi(t));
            p[i] -= 0.01 * (mh / (vh.sqrt() + 1e-8) + 0.1 * p[i]);
        }
    }
    let got = w.tensor().to_vec::<f64>().unwrap();
    for (a, e) in got.iter().zip(&p) {
        assert!((a - e).abs() < 1e-12, "{got:?} vs {p:?}");
    }
    // The bias had no gradient: untouched; moments exist only for the weight.
    assert_eq!(b.tensor().to_vec::<f64>().unwrap(), vec![1.0, 1.0]);
    assert_eq!(opt.moments().len(), 1);
}

#[test]
fn sgd_momentum_matches_reference() {
    let w = Var::parameter(tensor(vec![1.0, 2.0], &[2]));
    let groups = vec![ParamGroup {
        params: vec![("w".into(), w.clone())],
        weight_decay: 0.0,
    }];
    let mut opt = Sgd::new(groups, 0.1, 0.9).unwrap();
    let mut grads = rg_autograd::Gradients::default();
    grads.insert(&w, tensor(vec![1.0, -1.0], &[2]));
    opt.step(&grads).unwrap(); // v = g; p = p - 0.1 g
    opt.step(&grads).unwrap(); // v = 0.9 g + g = 1.9 g; p -= 0.19 g
    let got = w.tensor().to_vec::<f64>().unwrap();
    assert!(
        (got[0] - (1.0 - 0.1 - 0.19)).abs() < 1e-12 && (got[1] - (2.0 + 0.29)).abs() < 1e-12,
        "{got:?}"
    );
}

#[test]
fn clipping_scales_to_max_norm() {
    let a = Var::parameter(tensor(vec![0.0, 0.0], &[2]));
    let mut grads = rg_autograd::Gradients::default();
    grads.insert(&a, tensor(vec![3.0, 4.0], &[2]));
    let norm = clip_grad_norm(&mut grads, std::slice::from_ref(&a), 1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-12);
    let g = grads.get(&a).unwrap().to_vec::<f64>().unwrap();
    assert!(
        (g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6,
        "{g:?}"
    );
    // Under the limit nothing changes.
    let norm = clip_grad_norm(&mut grads, std::slice::from_ref(&a), 10.0).unwrap();
    assert!((norm - 1.0).abs() < 1e-5);
}

#[test]
fn dropout_is_seeded_resumable_and_unbiased() {
    let x = Var::constant(Tensor::ones([10_000], DType::F32, &Device::Cpu).unwrap());
    let d = Dropout::new(0.25).unwrap();
    let mut r1 = DropoutRng::new(7);
    let a = d
        .forward(&x, Some(&mut r1))
        .unwrap()
        .tensor()
        .to_vec::<f32>()
        .unwrap();
    let (seed, pos) = r1.state();
    let b = d
        .forward(&x, Some(&mut r1))
        .unwrap()
        .tensor()
        .to_vec::<f32>()
        .unwrap();
    let mut resumed = DropoutRng::from_state(seed, pos);
    let b2 = d
        .forward(&x, Some(&mut resumed))
        .unwrap()
        .tensor()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(b, b2, "a restored stream draws the same mask");
    assert_ne!(a, b);
    let mean = a.iter().sum::<f32>() / a.len() as f32;
    assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
    assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
    assert_eq!(
        d.forward(&x, None)
            .unwrap()
            .tensor()
            .to_vec::<f32>()
            .unwrap(),
        vec![1.0; 10_000]
    );
    assert!(Dropout::new(1.0).is_err());
}

#[test]
fn init_is_deterministic_by_name_and_sources_report_problems() {
    let s = InitSource::new(42, DType::F32, Device::Cpu);
    let pb = ParamBuilder::new(&s);
    let a = Linear::new(&pb.push("h").push(0), 64, 32, true, 0.02).unwrap();
    let b = Linear::new(&pb.push("h").push(0), 64, 32, true, 0.02).unwrap();
    let wa = a.weight().var().unwrap().tensor().to_vec::<f32>().unwrap();
    assert_eq!(
        wa,
        b.weight().var().unwrap().tensor().to_vec::<f32>().unwrap()
    );
    let std = (wa.iter().map(|v| v * v).sum::<f32>() / wa.len() as f32).sqrt();
    assert!((std - 0.02).abs() < 0.002, "std {std}");
    let names: Vec<String> = vec![a.clone()]
        .named_params()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, vec!["0.weight", "0.bias"]);

    let mut map = HashMap::new();
    map.insert(
        "ln.weight".to_string(),
        Tensor::ones([4], DType::F32, &Device::Cpu).unwrap(),
    );
    map.insert(
        "extra".to_string(),
        Tensor::ones([1], DType::F32, &Device::Cpu).unwrap(),
    );
    let src = TensorMapSource::new(map);
    let pb = ParamBuilder::new(&src);
    let err = LayerNorm::new(&pb.push("ln"), 4, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ln.bias") && err.contains("[4]"), "{err}");
    let err = LayerNorm::new(&pb.push("ln"), 8, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ln.weight") && err.contains("[4]") && err.contains("[8]"),
        "{err}"
    );
    assert!(src.unused().contains(&"extra".to_string()));
}

/// Every output of a `[2, 2, 3] -> [2, 2, 2]` layer, bias included, against the sum
/// written out in f64.
#[test]
fn linear_forward_folds_leading_axes() {
    let w: Vec<f64> = vec![0.5, -1.0, 0.25, 2.0, -0.75, 1.5]; // [in 3, out 2]
    let bias = vec![0.125, -0.5];
    let src = TensorMapSource::new(HashMap::from([
        ("weight".to_string(), tensor(w.clone(), &[3, 2])),
        ("bias".to_string(), tensor(bias.clone(), &[2])),
    ]));
    let lin = Linear::new(&ParamBuilder::new(&src), 3, 2, true, 0.5).unwrap();
    let xs: Vec<f64> = (0..12).map(|i| i as f64 * 0.1 - 0.3).collect();
    let y = lin
        .forward(&Var::constant(tensor(xs.clone(), &[2, 2, 3])))
        .unwrap();
    assert_eq!(y.dims(), &[2, 2, 2]);
    let got = y.tensor().to_vec::<f64>().unwrap();
    let expected: Vec<f64> = (0..4)
        .flat_map(|row| {
            let x = &xs[row * 3..row * 3 + 3];
            let w = &w;
            let bias = &bias;
            (0..2).map(move |o| (0..3).map(|i| x[i] * w[i * 2 + o]).sum::<f64>() + bias[o])
        })
        .collect();
    assert_eq!(got.len(), 8);
    for (k, (a, e)) in got.iter().zip(&expected).enumerate() {
        assert!(
            (a - e).abs() < 1e-12,
            "output {k}: {a} vs {e} (all: {got:?})"
        );
    }
    // Without a bias: the same products, nothing added.
    let src = TensorMapSource::new(HashMap::from([(
        "weight".to_string(),
        tensor(w.clone(), &[3, 2]),
    )]));
    let no_bias = Linear::new(&ParamBuilder::new(&src), 3, 2, false, 0.5).unwrap();
    assert!(no_bias.bias().is_none());
    let got = no_bias
        .forward(&Var::constant(tensor(xs, &[4, 3])))
        .unwrap()
        .tensor()
        .to_vec::<f64>()
        .unwrap();
    for (k, (a, e)) in got.iter().zip(&expected).enumerate() {
        let e = e - bias[k % 2];
        assert!((a - e).abs() < 1e-12, "no bias, output {k}: {a} vs {e}");
    }
}

#[test]
fn mse_loss_value() {
    let p = Var::constant(tensor(vec![1.0, 2.0], &[2]));
    let t = Var::constant(tensor(vec![0.0, 4.0], &[2]));
    let l = loss::mse(&p, &t)
        .unwrap()
        .tensor()
        .to_scalar::<f64>()
        .unwrap();
    assert!((l - 2.5).abs() < 1e-12);
}
