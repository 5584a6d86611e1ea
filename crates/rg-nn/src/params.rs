use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rg_autograd::Var;
use rg_core::{DType, Device, Error, Q8Matrix, Result, Shape, Tensor};

/// How a freshly created parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    Normal { mean: f64, std: f64 },
    Uniform { lo: f64, hi: f64 },
}

/// Provides the tensor for a parameter name: initialised or loaded.
pub trait ParamSource {
    fn get(&self, name: &str, shape: &Shape, init: Init) -> Result<Tensor>;

    /// A Q8_0 matrix for the weight `name`, if the source holds one (loaded quantized
    /// models); layers then use it instead of a dense parameter.
    fn quantized(&self, name: &str) -> Option<Arc<Q8Matrix>> {
        let _ = name;
        None
    }
}

/// Deterministic initialisation: each parameter draws from its own generator seeded by
/// the run seed and its name, so values do not depend on creation order.
pub struct InitSource {
    seed: u64,
    dtype: DType,
    device: Device,
}

impl InitSource {
    pub fn new(seed: u64, dtype: DType, device: Device) -> Self {
        InitSource {
            seed,
            dtype,
            device,
        }
    }
}

/// FNV-1a: a stable hash of the parameter name (std's hasher is not stable across
/// releases).
fn stable_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Standard normal samples by Box-Muller (deterministic across platforms).
fn normal_samples(rng: &mut ChaCha8Rng, n: usize, mean: f64, std: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        out.push(mean + std * r * theta.cos());
        out.push(mean + std * r * theta.sin());
    }
    out.truncate(n);
    out
}

impl ParamSource for InitSource {
    fn get(&self, name: &str, shape: &Shape, init: Init) -> Result<Tensor> {
        let n = shape.elem_count();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ stable_hash(name));
        let values: Vec<f64> = match init {
            Init::Zeros => return Tensor::zeros(shape.clone(), self.dtype, &self.device),
            Init::Ones => return Tensor::ones(shape.clone(), self.dtype, &self.device),
            Init::Normal { mean, std } => normal_samples(&mut rng, n, mean, std),
            Init::Uniform { lo, hi } => (0..n).map(|_| rng.random_range(lo..hi)).collect(),
        };
        Tensor::from_vec(values, shape.clone(), &self.device)?.to_dtype(self.dtype)
    }
}

/// Parameters taken from named tensors (a loaded safetensors file); a missing name
/// or a shape mismatch is an error naming both. Names that were never asked for can
/// be listed afterwards with [`TensorMapSource::unused`].
pub struct TensorMapSource {
    tensors: HashMap<String, Tensor>,
    quantized: HashMap<String, Arc<Q8Matrix>>,
    used: Mutex<Vec<String>>,
}

impl TensorMapSource {
    pub fn new(tensors: HashMap<String, Tensor>) -> Self {
        TensorMapSource::with_quantized(tensors, HashMap::new())
    }

    /// Dense tensors plus Q8_0 matrices, both by parameter name.
    pub fn with_quantized(
        tensors: HashMap<String, Tensor>,
        quantized: HashMap<String, Arc<Q8Matrix>>,
    ) -> Self {
        TensorMapSource {
            tensors,
            quantized,
            used: Mutex::new(Vec::new()),
        }
    }

    /// Names present in the map that no parameter asked for, sorted.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let mut rest: Vec<String> = self
            .tensors
            .keys()
            .chain(self.quantized.keys())
            .filter(|k| !used.contains(k))
            .cloned()
            .collect();
        rest.sort();
        rest
    }
}

impl ParamSource for TensorMapSource {
    fn quantized(&self, name: &str) -> Option<Arc<Q8Matrix>> {
        let q = self.quantized.get(name)?;
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_string());
        Some(q.clone())
    }

    fn get(&self, name: &str, shape: &Shape, _init: Init) -> Result<Tensor> {
        let t = self.tensors.get(name).ok_or_else(|| {
            Error::invalid(
                "load parameters",
                format!("missing tensor {name:?} (expected shape {shape})"),
            )
        })?;
        if t.shape() != shape {
            return Err(Error::invalid(
                "load parameters",
                format!(
                    "tensor {name:?} has shape {}, the model expects {shape}",
                    t.shape()
                ),
            ));
        }
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_string());
        Ok(t.clone())
    }
}

/// Hands out parameters under a dotted name prefix.
#[derive(Clone)]
pub struct ParamBuilder<'a> {
    prefix: String,
    source: &'a dyn ParamSource,
}

impl<'a> ParamBuilder<'a> {
    pub fn new(source: &'a dyn ParamSource) -> Self {
        ParamBuilder {
            prefix: String::new(),
            source,
        }
    }

    /// A builder for a child module named `name`.
    pub fn push(&self, name: impl std::fmt::Display) -> ParamBuilder<'a> {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        ParamBuilder {
            prefix,
            source: self.source,
        }
    }

    pub fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The source's Q8_0 matrix for `name`, checked to be `[rows, cols]` (reduction
    /// axis last); `None` when the source has none.
    pub fn quantized(&self, name: &str, rows: usize, cols: usize) -> Result<Option<Arc<Q8Matrix>>> {
        let full = self.full_name(name);
        match self.source.quantized(&full) {
            Some(q) if (q.rows(), q.cols()) != (rows, cols) => Err(Error::invalid(
                "load parameters",
                format!(
                    "q8_0 tensor {full:?} is [{}, {}], the model expects [{rows}, {cols}] (outputs, inputs)",
                    q.rows(),
                    q.cols()
                ),
            )),
            other => Ok(other),
        }
    }

    /// The parameter `name` of `shape`, as a leaf var that requires gradients.
    pub fn param(&self, name: &str, shape: impl Into<Shape>, init: Init) -> Result<Var> {
        let tensor = self
            .source
            .get(&self.full_name(name), &shape.into(), init)?;
        Ok(Var::parameter(tensor))
    }
}
