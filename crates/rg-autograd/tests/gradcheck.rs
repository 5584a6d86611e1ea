//! One finite-difference property test per differentiable op, over random shapes that
//! include broadcasting and non-contiguous (transposed) inputs.

mod harness;

use harness::{check_gradients, Feed, Input, Rng};
use proptest::prelude::*;
use rg_autograd::Var;
use rg_core::{DType, Device, Tensor, UnaryOp};

fn dims(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 1..=max_rank)
}

fn matrix_dims() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 2..=3)
}

fn feed() -> impl Strategy<Value = Feed> {
    prop_oneof![Just(Feed::Contiguous), Just(Feed::Transposed)]
}

fn n(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// `dims` with some axes set to 1 and some leading axes dropped, so that it
/// broadcasts against `dims`.
fn broadcastable(dims: &[usize], rng: &mut Rng) -> Vec<usize> {
    let drop = rng.below(dims.len());
    dims[drop..]
        .iter()
        .map(|&d| if rng.below(2) == 0 { 1 } else { d })
        .collect()
}

fn ids(values: &[u32]) -> Tensor {
    Tensor::from_vec(values.to_vec(), values.len(), &Device::Cpu).unwrap()
}

macro_rules! unary_case {
    ($name:ident, $op:expr, $gen:ident, $lo:expr, $hi:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(12))]
            #[test]
            fn $name(d in dims(3), seed in any::<u64>(), f in feed()) {
                let mut rng = Rng::new(seed);
                let x = Input::new(rng.$gen(n(&d), $lo, $hi), &d).feed(f);
                check_gradients(vec![x], seed, |v| v[0].unary($op));
            }
        }
    };
}

unary_case!(neg, UnaryOp::Neg, vec, -2.0, 2.0);
unary_case!(exp, UnaryOp::Exp, vec, -2.0, 2.0);
unary_case!(log, UnaryOp::Log, vec, 0.5, 3.0);
unary_case!(tanh, UnaryOp::Tanh, vec, -2.0, 2.0);
unary_case!(sqrt, UnaryOp::Sqrt, vec, 0.5, 3.0);
unary_case!(relu, UnaryOp::Relu, vec_away_from_zero, 0.1, 2.0);
unary_case!(gelu, UnaryOp::Gelu, vec, -3.0, 3.0);
unary_case!(square, UnaryOp::Square, vec, -2.0, 2.0);
unary_case!(recip, UnaryOp::Recip, vec_away_from_zero, 0.5, 2.0);
unary_case!(abs, UnaryOp::Abs, vec_away_from_zero, 0.1, 2.0);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn affine_and_powf(d in dims(3), seed in any::<u64>(), f in feed()) {
        let mut rng = Rng::new(seed);
        let x = Input::new(rng.vec(n(&d), 0.5, 2.0), &d).feed(f);
        check_gradients(vec![x], seed, |v| v[0].affine(1.5, 0.25)?.powf(1.7));
    }

    #[test]
    fn binary_broadcasting(d in dims(3), seed in any::<u64>(), f in feed(), op in 0usize..6) {
        let mut rng = Rng::new(seed);
        let rd = broadcastable(&d, &mut rng);
        let (a, b) = if op == 3 {
            (rng.vec(n(&d), -2.0, 2.0), rng.vec_away_from_zero(n(&rd), 0.5, 2.0))
        } else {
            (rng.vec(n(&d), -2.0, 2.0), rng.vec(n(&rd), -2.0, 2.0))
        };
        // Swap operands half the time so the broadcast side varies.
        let swap = seed & 1 == 1 && op != 3;
        let (a, b) = (Input::new(a, &d).feed(f), Input::new(b, &rd));
        let inputs = if swap { vec![b, a] } else { vec![a, b] };
        check_gradients(inputs, seed, |v| match op {
            0 => v[0].add(&v[1]),
            1 => v[0].sub(&v[1]),
            2 => v[0].mul(&v[1]),
            3 => v[0].div(&v[1]),
            4 => v[0].maximum(&v[1]),
            _ => v[0].minimum(&v[1]),
        });
    }

    #[test]
    fn sum_mean_max_min(d in dims(3), seed in any::<u64>(), f in feed(), keep in any::<bool>(), op in 0usize..5) {
        let mut rng = Rng::new(seed);
        let axis = rng.below(d.len()) as isize;
        let x = Input::new(rng.vec(n(&d), -2.0, 2.0), &d).feed(f);
        check_gradients(vec![x], seed, |v| match op {
            0 => v[0].sum(axis, keep),
            1 => v[0].mean(axis, keep),
            2 => v[0].max(axis, keep),
            3 => v[0].min(axis, keep),
            _ => v[0].mean_all(),
        });
    }

    #[test]
    fn matmul_batched_broadcast(m in 1usize..5, k in 1usize..5, nn in 1usize..5, b in 1usize..4,
                                seed in any::<u64>(), fa in feed(), fb in feed(), shared_rhs in any::<bool>()) {
        let mut rng = Rng::new(seed);
        let ad = vec![b, m, k];
        let bd = if shared_rhs { vec![k, nn] } else { vec![b, k, nn] };
        let a = Input::new(rng.vec(n(&ad), -1.0, 1.0), &ad).feed(fa);
        let bb = Input::new(rng.vec(n(&bd), -1.0, 1.0), &bd).feed(fb);
        check_gradients(vec![a, bb], seed, |v| v[0].matmul(&v[1]));
    }

    #[test]
    fn matmul_bias_batched(m in 1usize..5, k in 1usize..5, nn in 1usize..5, b in 1usize..4,
                           seed in any::<u64>(), fa in feed(), fb in feed(), fc in feed()) {
        let mut rng = Rng::new(seed);
        let ad = vec![b, m, k];
        let a = Input::new(rng.vec(n(&ad), -1.0, 1.0), &ad).feed(fa);
        let w = Input::new(rng.vec(k * nn, -1.0, 1.0), &[k, nn]).feed(fb);
        let bias = Input::new(rng.vec(nn, -1.0, 1.0), &[nn]).feed(fc);
        check_gradients(vec![a, w, bias], seed, |v| v[0].matmul_bias(&v[1], &v[2]));
    }

    #[test]
    fn softmax_and_log_softmax(d in matrix_dims(), seed in any::<u64>(), f in feed(), log in any::<bool>()) {
        let mut rng = Rng::new(seed);
        let x = Input::new(rng.vec(n(&d), -3.0, 3.0), &d).feed(f);
        check_gradients(vec![x], seed, |v| if log { v[0].log_softmax_last() } else { v[0].softmax_last() });
    }

    #[test]
    fn layer_norm(d in matrix_dims(), seed in any::<u64>(), f in feed()) {
        let mut rng = Rng::new(seed);
        let c = *d.last().unwrap();
        prop_assume!(c >= 2);
        let x = Input::new(rng.vec(n(&d), -2.0, 2.0), &d).feed(f);
        let g = Input::new(rng.vec(c, 0.5, 1.5), &[c]);
        let b = Input::new(rng.vec(c, -0.5, 0.5), &[c]);
        check_gradients(vec![x, g, b], seed, |v| v[0].layer_norm(&v[1], &v[2], 1e-5));
    }

    #[test]
    fn cross_entropy(rows in 1usize..6, classes in 2usize..7, seed in any::<u64>(), f in feed(), ignore in any::<bool>()) {
        let mut rng = Rng::new(seed);
        let x = Input::new(rng.vec(rows * classes, -2.0, 2.0), &[rows, classes]).feed(f);
        let mut t: Vec<u32> = (0..rows).map(|_| rng.below(classes) as u32).collect();
        let ignore_index = (ignore && rows > 1).then(|| {
            t[0] = 99;
            99i64
        });
        let targets = ids(&t);
        check_gradients(vec![x], seed, |v| v[0].cross_entropy(&targets, ignore_index));
    }

    #[test]
    fn index_select_and_embedding(d in matrix_dims(), seed in any::<u64>(), f in feed(), count in 1usize..6) {
        let mut rng = Rng::new(seed);
        let axis = rng.below(d.len());
        let x = Input::new(rng.vec(n(&d), -2.0, 2.0), &d).feed(f);
        // Repeated ids must accumulate.
        let picks: Vec<u32> = (0..count).map(|_| rng.below(d[axis]) as u32).collect();
        let table_rows = d[0];
        let emb: Vec<u32> = (0..count * 2).map(|_| rng.below(table_rows) as u32).collect();
        let emb_ids = Tensor::from_vec(emb, [count, 2], &Device::Cpu).unwrap();
        let picks = ids(&picks);
        check_gradients(vec![x], seed, |v| {
            let selected = v[0].index_select(axis as isize, &picks)?.sum_all()?;
            if d.len() == 2 {
                v[0].embedding(&emb_ids)?.sum_all()?.mul(&selected)
            } else {
                Ok(selected)
            }
        });
    }

    #[test]
    fn tied_embedding(vocab in 1usize..=5, dim in 1usize..=4, count in 1usize..6, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let w = Input::new(rng.vec(vocab * dim, -2.0, 2.0), &[vocab, dim]);
        let tokens: Vec<u32> = (0..count).map(|_| rng.below(vocab) as u32).collect();
        let tokens = ids(&tokens);
        // GPT-2's tied `wte`: the table's sparse lookup gradient meets the output
        // layer's dense one.
        check_gradients(vec![w], seed, |v| v[0].embedding(&tokens)?.matmul(&v[0].t()?));
    }

    #[test]
    fn views(d in prop::collection::vec(1usize..=4, 3..=3), seed in any::<u64>(), f in feed(), op in 0usize..7) {
        let mut rng = Rng::new(seed);
        let x = Input::new(rng.vec(n(&d), -2.0, 2.0), &d).feed(f);
        let w = Input::new(rng.vec(n(&d), -2.0, 2.0), &d);
        let len = 1 + rng.below(d[1]);
        let start = rng.below(d[1] - len + 1);
        check_gradients(vec![x, w], seed, |v| {
            // Multiply by a second input so each view's gradient is non-uniform.
            let x = v[0].mul(&v[1])?;
            match op {
                0 => x.reshape([d[0] * d[1], d[2]]),
                1 => x.permute(&[2, 0, 1])?.contiguous(),
                2 => x.narrow(1, start, len),
                3 => x.unsqueeze(1)?.squeeze(1)?.transpose(0, 2),
                4 => x.narrow(2, 0, 1)?.broadcast_to([2, d[0], d[1], 3]),
                5 => Var::concat(&[x.clone(), x.narrow(1, start, len)?], 1),
                _ => x.flatten_all(),
            }
        });
    }

    #[test]
    fn fused_attention(b in 1usize..3, t in 1usize..5, extra in 0usize..3, h in 1usize..3, d in 1usize..5, seed in any::<u64>(), f in feed()) {
        let mut rng = Rng::new(seed);
        let s = t + extra;
        let q = Input::new(rng.vec(b * t * h * d, -1.5, 1.5), &[b, t, h, d]).feed(f);
        let k = Input::new(rng.vec(b * s * h * d, -1.5, 1.5), &[b, s, h, d]).feed(f);
        let v = Input::new(rng.vec(b * s * h * d, -1.5, 1.5), &[b, s, h, d]).feed(f);
        let scale = 1.0 / (d as f64).sqrt();
        check_gradients(vec![q, k, v], seed, |x| x[0].attention(&x[1], &x[2], scale));
    }

    #[test]
    fn where_masked_fill_and_causal(t in 1usize..5, extra in 0usize..3, seed in any::<u64>(), f in feed()) {
        let mut rng = Rng::new(seed);
        let s = t + extra;
        let d = vec![2, t, s];
        let a = Input::new(rng.vec(n(&d), -2.0, 2.0), &d).feed(f);
        let b = Input::new(rng.vec(s, -2.0, 2.0), &[s]);
        let cond: Vec<u32> = (0..n(&d)).map(|_| rng.below(2) as u32).collect();
        let cond = Tensor::from_vec(cond, d.clone(), &Device::Cpu).unwrap();
        check_gradients(vec![a, b], seed, |v| {
            let w = Var::where_cond(&cond, &v[0], &v[1])?;
            let masked = v[0].masked_fill(&cond, -1.5)?;
            // Exponentiate after the causal fill: -inf becomes 0, as in attention.
            let causal = v[0].causal_fill(f64::NEG_INFINITY)?.exp()?;
            w.add(&masked)?.add(&causal)
        });
    }
}

/// The fused op against attention composed from matmul, causal fill and softmax.
#[test]
fn fused_attention_matches_the_composed_ops() {
    let (b, t, s, h, d) = (2, 5, 7, 3, 4);
    let mut rng = Rng::new(11);
    let mut input = |n: usize, dims: [usize; 4]| {
        Var::parameter(Tensor::from_vec(rng.vec(n, -2.0, 2.0), dims, &Device::Cpu).unwrap())
    };
    let q = input(b * t * h * d, [b, t, h, d]);
    let k = input(b * s * h * d, [b, s, h, d]);
    let v = input(b * s * h * d, [b, s, h, d]);
    let scale = 0.7;
    let fused = q.attention(&k, &v, scale).unwrap();
    let heads = |x: &Var| x.permute(&[0, 2, 1, 3]).unwrap();
    let probs = heads(&q)
        .matmul(&heads(&k).t().unwrap())
        .unwrap()
        .scale(scale)
        .unwrap()
        .causal_fill(f64::NEG_INFINITY)
        .unwrap()
        .softmax_last()
        .unwrap();
    let composed = probs
        .matmul(&heads(&v))
        .unwrap()
        .permute(&[0, 2, 1, 3])
        .unwrap();
    let (a, c) = (
        fused.tensor().to_vec::<f64>().unwrap(),
        composed
            .tensor()
            .contiguous()
            .unwrap()
            .to_vec::<f64>()
            .unwrap(),
    );
    for (x, y) in a.iter().zip(&c) {
        assert!((x - y).abs() < 1e-12, "{x} vs {y}");
    }
}

#[test]
fn gradients_accumulate_when_a_var_is_used_twice() {
    let x = Var::parameter(Tensor::from_vec(vec![3.0f64], [1], &Device::Cpu).unwrap());
    // y = x*x + x  =>  dy/dx = 2x + 1 = 7
    let y = x.mul(&x).unwrap().add(&x).unwrap().sum_all().unwrap();
    let g = y.backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![7.0]);
}

#[test]
fn no_grad_records_nothing_and_detach_cuts_the_graph() {
    let x = Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0], [2], &Device::Cpu).unwrap());
    let y = rg_autograd::no_grad(|| x.exp().unwrap());
    assert!(!y.requires_grad());
    let z = x.detach().mul(&x).unwrap().sum_all().unwrap();
    let g = z.backward().unwrap();
    // Only the non-detached factor contributes: d(c * x)/dx = c = x.
    assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![1.0, 2.0]);
}

#[test]
fn backward_needs_a_scalar() {
    let x = Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0], [2], &Device::Cpu).unwrap());
    let err = x.exp().unwrap().backward().unwrap_err().to_string();
    assert!(err.contains("backward") && err.contains("[2]"), "{err}");
}

#[test]
fn add_into_never_writes_through_a_shared_buffer() {
    let cpu = Device::Cpu;
    let b = Tensor::from_vec(vec![10.0f32, 20.0], [2], &cpu).unwrap();
    // A view shares the storage: the sum must be a new tensor.
    let a = Tensor::from_vec(vec![1.0f32, 2.0], [2], &cpu).unwrap();
    let view = a.reshape([1, 2]).unwrap();
    let sum = a.add_into(&b).unwrap();
    assert_eq!(sum.to_vec::<f32>().unwrap(), vec![11.0, 22.0]);
    assert_eq!(view.to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
    // Sole owner: written in place, same values; a transposed rhs is read correctly.
    let c = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2], &cpu).unwrap();
    let d = Tensor::from_vec(vec![10.0f32, 20.0, 30.0, 40.0], [2, 2], &cpu).unwrap();
    let c = c.add_into(&d.t().unwrap()).unwrap();
    assert_eq!(c.to_vec::<f32>().unwrap(), vec![11.0, 32.0, 23.0, 44.0]);
}

#[test]
fn index_add_into_never_writes_through_a_shared_buffer() {
    let cpu = Device::Cpu;
    let rows = ids(&[2, 0, 2]);
    let src = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2], &cpu).unwrap();
    let want = vec![13.0, 14.0, 10.0, 10.0, 16.0, 18.0];
    // A view shares the storage: the sum must be a new tensor.
    let a = Tensor::from_vec(vec![10.0f32; 6], [3, 2], &cpu).unwrap();
    let view = a.reshape([6]).unwrap();
    let sum = a.index_add_into(0, &rows, &src).unwrap();
    assert_eq!(sum.to_vec::<f32>().unwrap(), want);
    assert_eq!(view.to_vec::<f32>().unwrap(), vec![10.0; 6]);
    // Sole owner: written in place, same values.
    let a = Tensor::from_vec(vec![10.0f32; 6], [3, 2], &cpu).unwrap();
    let sum = a.index_add_into(0, &rows, &src).unwrap();
    assert_eq!(sum.to_vec::<f32>().unwrap(), want);
}

/// Unit roundoff of a float dtype: the relative error of one rounding to it.
fn unit_roundoff(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::EPSILON / 2.0,
        DType::F32 => f32::EPSILON as f64 / 2.0,
        DType::F16 => 2f64.powi(-11),
        DType::BF16 => 2f64.powi(-8),
        other => panic!("{other} is not a float dtype"),
    }
}

/// `to_dtype`'s backward through a chain of casts from a parameter of dtype `from`,
/// against central differences of `sum(w * cast(x)^2)` (the square and the sum in
/// f64). Inputs and the step are multiples of 1/64 below 2, exact in every float
/// dtype, so each perturbed forward is exact and the difference quotient of the
/// quadratic is exact too: the only error left is the rounding of the gradient by
/// each cast on its way back, at most twice the narrowest dtype's unit roundoff.
fn check_cast_chain(from: DType, chain: &[DType], dims: &[usize], feed: Feed, seed: u64) {
    let device = Device::Cpu;
    let mut rng = Rng::new(seed);
    let step = 1.0 / 64.0;
    let transposed = feed == Feed::Transposed && dims.len() >= 2;
    let mut stored_dims = dims.to_vec();
    if transposed {
        stored_dims.swap(dims.len() - 2, dims.len() - 1);
    }
    let count = n(dims);
    let base: Vec<f64> = (0..count)
        .map(|_| (rng.below(241) as f64 - 120.0) * step)
        .collect();
    let weights =
        Var::constant(Tensor::from_vec(rng.vec(count, -1.0, 1.0), dims.to_vec(), &device).unwrap());
    let param_of = |data: Vec<f64>| {
        Tensor::from_vec(data, stored_dims.clone(), &device)
            .unwrap()
            .to_dtype(from)
            .unwrap()
    };
    let loss_of = |stored: &Var| -> Var {
        let mut v = if transposed {
            stored.t().unwrap()
        } else {
            stored.clone()
        };
        for &dtype in chain {
            v = v.to_dtype(dtype).unwrap();
        }
        let v = v.to_dtype(DType::F64).unwrap();
        v.mul(&v).unwrap().mul(&weights).unwrap().sum_all().unwrap()
    };
    let param = Var::parameter(param_of(base.clone()));
    let grads = loss_of(&param).backward().unwrap();
    let grad = grads
        .get(&param)
        .unwrap_or_else(|| panic!("{from} -> {chain:?}: no gradient"));
    assert_eq!(grad.dtype(), from, "{from} -> {chain:?}: gradient dtype");
    assert_eq!(
        grad.dims(),
        &stored_dims[..],
        "{from} -> {chain:?}: gradient dims"
    );
    let analytic = grad.to_f64_vec().unwrap();
    let narrowest = chain
        .iter()
        .chain([&from])
        .map(|&d| unit_roundoff(d))
        .fold(0.0, f64::max);
    for (j, a) in analytic.iter().enumerate() {
        let at = |delta: f64| {
            let mut data = base.clone();
            data[j] += delta;
            let x = Var::constant(param_of(data));
            rg_autograd::no_grad(|| loss_of(&x).tensor().to_scalar::<f64>().unwrap())
        };
        let numeric = (at(step) - at(-step)) / (2.0 * step);
        let tol = 2.0 * narrowest * numeric.abs() + 1e-12;
        assert!(
            (a - numeric).abs() <= tol,
            "{from} -> {chain:?} ({dims:?}, fed {feed:?}) element {j}: backward {a} vs \
             finite difference {numeric}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn to_dtype_chains(d in dims(3), seed in any::<u64>(), f in feed(), chain in 0usize..6) {
        use DType::{BF16, F16, F32, F64};
        let (from, casts): (DType, &[DType]) = [
            (F64, &[F32][..]),
            (F32, &[F64][..]),
            (F64, &[BF16][..]),
            (F32, &[BF16, F64][..]),
            (F64, &[F16, F32][..]),
            (BF16, &[F32][..]),
        ][chain];
        check_cast_chain(from, casts, &d, f, seed);
    }
}

#[test]
fn streaming_backward_hands_each_leaf_over_once_complete_last_layer_first() {
    // y = (w2 · tanh(w1 · x)).sum(), with w1 used twice: its gradient must arrive once,
    // with both uses added, and after w2's (backward reaches the output layer first).
    let cpu = Device::Cpu;
    let x = Var::constant(Tensor::from_vec(vec![0.5f64, -1.0, 2.0], [3, 1], &cpu).unwrap());
    let w1 = Var::parameter(
        Tensor::from_vec(
            vec![0.1f64, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, -0.8, 0.9],
            [3, 3],
            &cpu,
        )
        .unwrap(),
    );
    let w2 = Var::parameter(Tensor::from_vec(vec![1.0f64, -2.0, 0.5], [1, 3], &cpu).unwrap());
    let hidden = w1.matmul(&w1.matmul(&x).unwrap()).unwrap().tanh().unwrap();
    let y = w2.matmul(&hidden).unwrap().sum_all().unwrap();
    let mut arrivals = Vec::new();
    let seed = Tensor::ones(y.shape().clone(), y.dtype(), &cpu).unwrap();
    y.backward_streaming(seed, &mut |leaf, grad| {
        arrivals.push((leaf.id(), grad.to_vec::<f64>()?));
        Ok(())
    })
    .unwrap();
    let whole = y.backward().unwrap();
    let ids: Vec<_> = arrivals.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![w2.id(), w1.id()]);
    for (id, grad) in &arrivals {
        assert_eq!(grad, &whole.get_id(*id).unwrap().to_vec::<f64>().unwrap());
    }
}
