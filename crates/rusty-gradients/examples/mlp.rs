//! Trains a small MLP with AdamW to separate two interleaved spirals (a problem no
//! linear model solves) and prints the loss falling below a stated threshold.
//!
//! `cargo run --release --example mlp -p rusty-gradients`

use rusty_gradients::autograd::Var;
use rusty_gradients::nn::{
    loss, AdamW, AdamWConfig, InitSource, Linear, Module, Optimizer, ParamBuilder, ParamGroup,
};
use rusty_gradients::{DType, Device, Result, Tensor};

const POINTS_PER_CLASS: usize = 200;
const HIDDEN: usize = 64;
const STEPS: usize = 1500;
const TARGET_LOSS: f64 = 0.05;

/// Two spirals, one per class, as `[2n, 2]` inputs and `[2n]` labels.
fn spirals(n: usize) -> (Vec<f32>, Vec<u32>) {
    let mut x = Vec::with_capacity(4 * n);
    let mut y = Vec::with_capacity(2 * n);
    for class in 0..2u32 {
        for i in 0..n {
            let r = i as f32 / n as f32 * 5.0 + 0.5;
            let angle = 1.75 * i as f32 / n as f32 * std::f32::consts::TAU
                + class as f32 * std::f32::consts::PI;
            x.push(r * angle.cos() / 5.0);
            x.push(r * angle.sin() / 5.0);
            y.push(class);
        }
    }
    (x, y)
}

struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    fn new(pb: &ParamBuilder) -> Result<Self> {
        let sizes = [2, HIDDEN, HIDDEN, 2];
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| Linear::new(&pb.push(i), w[0], w[1], true, (1.0 / w[0] as f64).sqrt()))
            .collect::<Result<_>>()?;
        Ok(Mlp { layers })
    }

    fn forward(&self, x: &Var) -> Result<Var> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            if i + 1 < self.layers.len() {
                h = h.gelu()?;
            }
        }
        Ok(h)
    }
}

impl Module for Mlp {
    fn visit_params(&self, visit: &mut dyn FnMut(&str, &Var)) {
        self.layers.visit_params(visit);
    }
}

fn main() -> Result<()> {
    let device = Device::Cpu;
    let (xs, ys) = spirals(POINTS_PER_CLASS);
    let n = ys.len();
    let x = Var::constant(Tensor::from_vec(xs, [n, 2], &device)?);
    let y = Tensor::from_vec(ys.clone(), [n], &device)?;

    let init = InitSource::new(0, DType::F32, device);
    let model = Mlp::new(&ParamBuilder::new(&init))?;
    let groups = ParamGroup::decay_matrices_only(model.named_params(), 1e-4);
    let mut opt = AdamW::new(
        groups,
        AdamWConfig {
            lr: 1e-2,
            ..Default::default()
        },
    )?;
    println!(
        "MLP 2-{HIDDEN}-{HIDDEN}-2, {} parameters, {n} points",
        model.param_count()
    );

    let mut last = f64::INFINITY;
    for step in 0..STEPS {
        let logits = model.forward(&x)?;
        let l = loss::cross_entropy(&logits, &y, None)?;
        last = l.tensor().to_scalar::<f32>()? as f64;
        let grads = l.backward()?;
        opt.step(&grads)?;
        if step % 100 == 0 || last < TARGET_LOSS {
            println!("step {step:4}  loss {last:.4}");
        }
        if last < TARGET_LOSS {
            break;
        }
    }
    let predictions = model
        .forward(&x)?
        .tensor()
        .argmax(-1, false)?
        .to_vec::<u32>()?;
    let correct = predictions.iter().zip(&ys).filter(|(p, y)| p == y).count();
    println!(
        "final loss {last:.4} (target < {TARGET_LOSS}), accuracy {:.1}%",
        100.0 * correct as f64 / n as f64
    );
    if last >= TARGET_LOSS {
        eprintln!("did not reach the target loss");
        std::process::exit(1);
    }
    Ok(())
}
