//! Finite-difference gradient checking in f64, shared by the per-op property tests.
#![allow(dead_code)]

use rg_autograd::{no_grad, Var};
use rg_core::{Device, Result, Tensor};
use rg_cpu as _;

/// Deterministic pseudo-random numbers (xorshift*), so a failing case reproduces from
/// the seed proptest prints.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// Values in `[lo, hi)` with random sign, kept at least `lo` away from 0 (for ops
    /// with a kink or pole at 0).
    pub fn vec_away_from_zero(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let v = self.uniform(lo, hi);
                if self.next_u64() & 1 == 0 {
                    v
                } else {
                    -v
                }
            })
            .collect()
    }
}

/// How an input reaches the function under test: as it is, or as a transposed view
/// of differently laid-out storage, so kernels see non-contiguous strides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Feed {
    Contiguous,
    Transposed,
}

pub struct Input {
    pub data: Vec<f64>,
    pub dims: Vec<usize>,
    pub feed: Feed,
}

impl Input {
    pub fn new(data: Vec<f64>, dims: &[usize]) -> Self {
        assert_eq!(data.len(), dims.iter().product::<usize>());
        Input {
            data,
            dims: dims.to_vec(),
            feed: Feed::Contiguous,
        }
    }

    /// Feeds the input through a transposed view when it has two or more axes.
    pub fn feed(mut self, feed: Feed) -> Self {
        if self.dims.len() >= 2 {
            self.feed = feed;
        }
        self
    }

    /// Dims of the stored tensor (last two swapped when fed transposed).
    fn stored_dims(&self) -> Vec<usize> {
        let mut d = self.dims.clone();
        if self.feed == Feed::Transposed {
            let r = d.len();
            d.swap(r - 2, r - 1);
        }
        d
    }

    /// Stored data: the logical data transposed when fed transposed, so that the view
    /// shows the logical values.
    fn stored_data(&self) -> Vec<f64> {
        if self.feed == Feed::Contiguous {
            return self.data.clone();
        }
        let r = self.dims.len();
        let (rows, cols) = (self.dims[r - 2], self.dims[r - 1]);
        let batch = self.data.len() / (rows * cols).max(1);
        let mut out = vec![0.0; self.data.len()];
        for b in 0..batch {
            for i in 0..rows {
                for j in 0..cols {
                    out[b * rows * cols + j * rows + i] = self.data[b * rows * cols + i * cols + j];
                }
            }
        }
        out
    }
}

/// Logical var for a stored parameter.
fn present(stored: &Var, feed: Feed) -> Result<Var> {
    match feed {
        Feed::Contiguous => Ok(stored.clone()),
        Feed::Transposed => stored.t(),
    }
}

/// `sum(f(inputs) * weights)`: a scalar whose gradient covers the full Jacobian
/// applied to random weights.
fn weighted_loss(out: &Var, weights: &Tensor) -> Result<Var> {
    out.mul(&Var::constant(weights.clone()))?.sum_all()
}

/// Checks the backward rules reached by `f` against central finite differences in f64.
pub fn check_gradients(inputs: Vec<Input>, seed: u64, f: impl Fn(&[Var]) -> Result<Var>) {
    let device = Device::Cpu;
    let stored: Vec<Var> = inputs
        .iter()
        .map(|i| {
            Var::parameter(Tensor::from_vec(i.stored_data(), i.stored_dims(), &device).unwrap())
        })
        .collect();
    let eval = |params: &[Var]| -> Result<Var> {
        let views: Vec<Var> = params
            .iter()
            .zip(&inputs)
            .map(|(p, i)| present(p, i.feed))
            .collect::<Result<_>>()?;
        f(&views)
    };
    let out = eval(&stored).expect("forward");
    let mut rng = Rng::new(seed ^ 0xABCD);
    let weights = Tensor::from_vec(
        rng.vec(out.elem_count(), -1.0, 1.0),
        out.dims().to_vec(),
        &device,
    )
    .unwrap();
    let loss = weighted_loss(&out, &weights).unwrap();
    let grads = loss.backward().expect("backward");

    let h = 1e-6;
    for (k, input) in inputs.iter().enumerate() {
        let analytic = grads
            .get(&stored[k])
            .unwrap_or_else(|| panic!("input {k} got no gradient"))
            .to_vec::<f64>()
            .unwrap();
        let base = input.stored_data();
        let dims = input.stored_dims();
        let numeric: Vec<f64> = (0..base.len())
            .map(|j| {
                let at = |delta: f64| -> f64 {
                    let mut data = base.clone();
                    data[j] += delta;
                    let mut params = stored.clone();
                    params[k] =
                        Var::constant(Tensor::from_vec(data, dims.clone(), &device).unwrap());
                    no_grad(|| {
                        let out = eval(&params).unwrap();
                        weighted_loss(&out, &weights)
                            .unwrap()
                            .tensor()
                            .to_scalar::<f64>()
                            .unwrap()
                    })
                };
                (at(h) - at(-h)) / (2.0 * h)
            })
            .collect();
        for (j, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
            let tol = 1e-6 * (1.0 + n.abs());
            assert!(
                (a - n).abs() <= tol,
                "input {k} ({:?}, fed {:?}) element {j}: backward {a} vs finite difference {n}",
                input.dims,
                input.feed
            );
        }
    }
}
