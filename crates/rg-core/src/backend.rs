//! The object-safe backend traits every device implements, and the registry that maps a
//! [`Device`] to its backend.
//!
//! Contract: every method receives views (`View`: storage + layout) whose dtypes,
//! devices and shapes `rg-core` has already checked, and returns new contiguous storage
//! (row-major, offset 0) unless it writes in place. A backend may still return an
//! error (unsupported dtype, device failure); it must not panic.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use crate::ops::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
use crate::{DType, Device, Error, HostBuffer, Layout, Result, SharedBytes};

/// Device memory of one dtype, owned by a backend.
pub trait BackendStorage: Send + Sync + fmt::Debug {
    fn device(&self) -> Device;
    fn dtype(&self) -> DType;
    /// Number of elements.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Copies elements borrowed from elsewhere (a memory-mapped file) into memory the
    /// storage owns, so later in-place writes need no copy and the source can be
    /// released. Storage that always owns its memory has nothing to do.
    fn make_owned(&mut self) {}
    /// The elements as a writable host slice when the storage is f32 in host memory
    /// (borrowed memory is made owned first); `None` elsewhere. Lets collectives hand
    /// a tensor's memory straight to MPI instead of copying it out and back.
    fn host_f32_mut(&mut self) -> Option<&mut [f32]> {
        None
    }
}

pub type BoxStorage = Box<dyn BackendStorage>;

/// A strided view of storage: what every backend op reads.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub storage: &'a dyn BackendStorage,
    pub layout: &'a Layout,
}

impl<'a> View<'a> {
    pub fn new(storage: &'a dyn BackendStorage, layout: &'a Layout) -> Self {
        View { storage, layout }
    }

    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    pub fn dims(&self) -> &'a [usize] {
        self.layout.dims()
    }
}

/// Batched matrix product sizes: `lhs` is `[batch, m, k]`, `rhs` `[batch, k, n]`
/// (each view may have any strides, including batch stride 0), output `[batch, m, n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulDims {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl MatmulDims {
    /// `bias` (`[n]`) seen as the product's `[batch, m, n]` shape, every row the bias:
    /// the view a backend adds to its product; an error naming the shape otherwise.
    pub fn bias_rows(&self, device: Device, bias: &Layout) -> Result<Layout> {
        let MatmulDims { batch, m, n, .. } = *self;
        match bias.strides() {
            [s] if bias.dims() == [n] => Ok(Layout::new(
                crate::Shape::new([batch, m, n]),
                vec![0, 0, *s],
                bias.offset(),
            )),
            _ => Err(Error::backend(
                device,
                "matmul_bias",
                format!("bias has shape {:?}, expected [{n}]", bias.dims()),
            )),
        }
    }
}

/// Outputs of the fused layer-norm forward: `y`, and per row `mean` and `rstd`
/// (1 / sqrt(var + eps)) kept for the backward pass.
pub struct LayerNormOutput {
    pub y: BoxStorage,
    pub mean: BoxStorage,
    pub rstd: BoxStorage,
}

pub struct LayerNormGrads {
    pub dx: BoxStorage,
    pub dgamma: BoxStorage,
    pub dbeta: BoxStorage,
}

/// Outputs of the fused cross-entropy forward over rows of logits: the loss of each row
/// (0 where the target is ignored) and each row's log-sum-exp for the backward pass.
pub struct CrossEntropyOutput {
    pub loss: BoxStorage,
    pub lse: BoxStorage,
}

/// Outputs of fused causal attention: `out` (`[b, t, h, d]`, contiguous) and the
/// log-sum-exp of each query's scaled scores (`[b, h, t]`) that the backward pass uses
/// to rebuild the probabilities without storing them.
pub struct AttentionOutput {
    pub out: BoxStorage,
    pub lse: BoxStorage,
}

/// `dq` is contiguous `[b, t, h, d]`, `dk` and `dv` contiguous `[b, s, h, d]`.
pub struct AttentionGrads {
    pub dq: BoxStorage,
    pub dk: BoxStorage,
    pub dv: BoxStorage,
}

/// One AdamW update, decoupled weight decay: `p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// 1-based step count, for bias correction.
    pub step: u64,
    /// Multiplies the gradient before the update: gradient-norm clipping folded into
    /// the step instead of a separate pass over every gradient (1.0 for none).
    pub grad_scale: f64,
}

/// A compute device. All methods are object-safe so the tensor layer stays free of
/// backend type parameters.
pub trait Backend: Send + Sync {
    fn device(&self) -> Device;

    // ---- memory -------------------------------------------------------------------
    fn zeros(&self, dtype: DType, len: usize) -> Result<BoxStorage>;
    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<BoxStorage>;
    #[allow(clippy::wrong_self_convention)] // uploads into this backend's memory
    fn from_host(&self, data: HostBuffer) -> Result<BoxStorage>;
    /// Little-endian bytes of `dtype`; the CPU backend keeps aligned f32 data
    /// zero-copy, other cases copy.
    #[allow(clippy::wrong_self_convention)]
    fn from_shared_bytes(&self, dtype: DType, bytes: SharedBytes) -> Result<BoxStorage>;
    /// Gathers the view into host memory in row-major order.
    fn to_host(&self, src: View<'_>) -> Result<HostBuffer>;
    /// Copies the view element by element into `dst` laid out as `dst_layout`
    /// (same shape and dtype).
    fn copy_strided(
        &self,
        src: View<'_>,
        dst: &mut dyn BackendStorage,
        dst_layout: &Layout,
    ) -> Result<()>;
    /// `srcs` (same dtype) joined along `axis` into new contiguous storage of shape
    /// `dims`: the sources' shape with their lengths along `axis` summed (the caller
    /// checks the shapes). The default fills zeros and copies each source into its
    /// slice; a backend that writes each element once overrides it.
    fn concat(&self, srcs: &[View<'_>], axis: usize, dims: &[usize]) -> Result<BoxStorage> {
        let out_layout = Layout::contiguous(dims.to_vec());
        let dtype = srcs.first().map_or(DType::F32, View::dtype);
        let mut out = self.zeros(dtype, out_layout.elem_count())?;
        let mut start = 0;
        for src in srcs {
            let len = src.dims()[axis];
            let slice = out_layout.narrow("concat", axis, start, len)?;
            self.copy_strided(*src, &mut *out, &slice)?;
            start += len;
        }
        Ok(out)
    }
    fn cast(&self, src: View<'_>, dtype: DType) -> Result<BoxStorage>;
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    // ---- elementwise ----------------------------------------------------------------
    fn unary(&self, op: UnaryOp, src: View<'_>) -> Result<BoxStorage>;
    /// `x * mul + add`.
    fn affine(&self, src: View<'_>, mul: f64, add: f64) -> Result<BoxStorage>;
    /// `x ^ exponent`.
    fn powf(&self, src: View<'_>, exponent: f64) -> Result<BoxStorage>;
    /// Both views have the output's shape (broadcast axes have stride 0).
    fn binary(&self, op: BinaryOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage>;
    /// 1 where the comparison holds, else 0, as u32.
    fn cmp(&self, op: CmpOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage>;
    /// `dst += src` in place, `dst` being contiguous storage of `src`'s shape and dtype
    /// (gradient accumulation without a new buffer). The default composes `binary` and
    /// `copy_strided`; backends override it with one in-place pass.
    fn add_assign(&self, dst: &mut dyn BackendStorage, src: View<'_>) -> Result<()> {
        let layout = Layout::contiguous(crate::Shape::new(src.dims()));
        let sum = self.binary(BinaryOp::Add, View::new(&*dst, &layout), src)?;
        self.copy_strided(View::new(&*sum, &layout), dst, &layout)
    }
    /// `cond != 0 ? on_true : on_false`, all views of the output's shape; `cond` is u32.
    fn where_cond(
        &self,
        cond: View<'_>,
        on_true: View<'_>,
        on_false: View<'_>,
    ) -> Result<BoxStorage>;
    /// GELU (tanh approximation) backward: `dy * gelu'(x)`.
    fn gelu_backward(&self, x: View<'_>, dy: View<'_>) -> Result<BoxStorage>;
    /// Sets element `(i, j)` of the last two axes `[t, s]` to `value` where
    /// `j > i + (s - t)`: the causal mask of attention with `s - t` cached positions.
    fn causal_fill(&self, src: View<'_>, value: f64) -> Result<BoxStorage>;

    // ---- reductions -----------------------------------------------------------------
    /// Reduces `axis`; the output has the input's shape with that axis removed.
    /// `ArgMax` yields u32.
    fn reduce(&self, op: ReduceOp, src: View<'_>, axis: usize) -> Result<BoxStorage>;

    /// `sum(x^2)` over every element, accumulated in f64 (gradient norms). The default
    /// composes `unary` and `reduce`; backends override it with one fused pass.
    fn sum_squares(&self, src: View<'_>) -> Result<f64> {
        let squares = self.unary(UnaryOp::Square, src)?;
        let flat = Layout::contiguous(crate::Shape::new([squares.len()]));
        let sum = self.reduce(ReduceOp::Sum, View::new(&*squares, &flat), 0)?;
        let host = self.to_host(View::new(&*sum, &Layout::contiguous(crate::Shape::new([]))))?;
        host.to_f64_vec().into_iter().next().ok_or_else(|| {
            Error::backend(
                self.device(),
                "sum_squares",
                "reduction returned no element",
            )
        })
    }

    // ---- matmul ---------------------------------------------------------------------
    fn matmul(&self, lhs: View<'_>, rhs: View<'_>, dims: MatmulDims) -> Result<BoxStorage>;
    /// `lhs @ rhs + bias` with `bias` (`[n]`, the operands' dtype) added to every row
    /// of every product: a linear layer's forward. The default adds it in a second
    /// pass over the product; backends fold it into the product where they can.
    fn matmul_bias(
        &self,
        lhs: View<'_>,
        rhs: View<'_>,
        bias: View<'_>,
        dims: MatmulDims,
    ) -> Result<BoxStorage> {
        let rows = dims.bias_rows(self.device(), bias.layout)?;
        let product = self.matmul(lhs, rhs, dims)?;
        let out = Layout::contiguous(rows.shape().clone());
        self.binary(
            BinaryOp::Add,
            View::new(&*product, &out),
            View::new(bias.storage, &rows),
        )
    }
    /// `lhs @ rhs (+ bias)` returned in f32 whatever the operands' dtype (mixed
    /// precision: an autocast product of bf16 operands feeds f32 activations and f32
    /// master-weight gradients). `bias`, when given, is f32 `[n]`. Backends whose
    /// kernels accumulate in f32 return that accumulator as it is; the default
    /// computes the product in the operands' dtype and widens it, which rounds it
    /// once on the way.
    fn matmul_f32(
        &self,
        lhs: View<'_>,
        rhs: View<'_>,
        bias: Option<View<'_>>,
        dims: MatmulDims,
    ) -> Result<BoxStorage> {
        let product = self.matmul(lhs, rhs, dims)?;
        let out = Layout::contiguous([dims.batch, dims.m, dims.n]);
        let wide = self.cast(View::new(&*product, &out), DType::F32)?;
        let Some(bias) = bias else {
            return Ok(wide);
        };
        let rows = dims.bias_rows(self.device(), bias.layout)?;
        self.binary(
            BinaryOp::Add,
            View::new(&*wide, &out),
            View::new(bias.storage, &rows),
        )
    }
    /// `x · wᵀ` for f32 `x` `[m, w.cols()]` and a Q8_0 matrix (see [`crate::quant`]):
    /// f32 `[m, w.rows()]`. Backends without Q8_0 kernels keep this default.
    fn matmul_q8(&self, x: View<'_>, w: &crate::Q8Matrix) -> Result<BoxStorage> {
        let _ = (x, w);
        Err(Error::backend(
            self.device(),
            "matmul_q8",
            "q8_0 weights are not supported on this backend",
        ))
    }

    // ---- fused ops ------------------------------------------------------------------
    /// Softmax (or log-softmax with `log`) over the last axis.
    fn softmax_last(&self, src: View<'_>, log: bool) -> Result<BoxStorage>;
    /// Gradient w.r.t. the input given the forward output `y` and its gradient `dy`.
    fn softmax_last_backward(&self, y: View<'_>, dy: View<'_>, log: bool) -> Result<BoxStorage>;
    /// Layer norm over the last axis of `x` with per-feature `gamma` and `beta`.
    fn layer_norm(
        &self,
        x: View<'_>,
        gamma: View<'_>,
        beta: View<'_>,
        eps: f64,
    ) -> Result<LayerNormOutput>;
    fn layer_norm_backward(
        &self,
        dy: View<'_>,
        x: View<'_>,
        gamma: View<'_>,
        mean: View<'_>,
        rstd: View<'_>,
    ) -> Result<LayerNormGrads>;
    /// `logits` is `[n, v]`, `targets` `[n]` of u32 or i64. Targets equal to
    /// `ignore_index` contribute 0; any other target outside `0..v` is an error.
    fn cross_entropy(
        &self,
        logits: View<'_>,
        targets: View<'_>,
        ignore_index: Option<i64>,
    ) -> Result<CrossEntropyOutput>;
    /// `dlogits[r] = dloss[r] * (softmax(logits[r]) - onehot(target[r]))`, zero for
    /// ignored rows.
    fn cross_entropy_backward(
        &self,
        logits: View<'_>,
        lse: View<'_>,
        targets: View<'_>,
        dloss: View<'_>,
        ignore_index: Option<i64>,
    ) -> Result<BoxStorage>;

    /// Causal scaled dot-product attention. `q` is `[b, t, h, d]`, `k` and `v` are
    /// `[b, s, h, d]` (any strides, so heads sliced out of a fused QKV projection need
    /// no copy), `s >= t`; query `i` attends to keys `j <= i + (s - t)`, which covers
    /// training (`s == t`) and decoding after `s - t` cached positions. `lse` is f32
    /// for f32 and bf16 inputs, f64 for f64. No `[t, s]` matrix may be stored.
    fn attention(
        &self,
        q: View<'_>,
        k: View<'_>,
        v: View<'_>,
        scale: f64,
    ) -> Result<AttentionOutput>;
    /// Gradients of [`Backend::attention`] given its inputs, its `out` and `lse`, and
    /// the gradient `dout` of `out`.
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        &self,
        q: View<'_>,
        k: View<'_>,
        v: View<'_>,
        out: View<'_>,
        lse: View<'_>,
        dout: View<'_>,
        scale: f64,
    ) -> Result<AttentionGrads>;

    // ---- indexing -------------------------------------------------------------------
    /// Picks entries `ids` (u32 or i64, 1-D) along `axis`; ids out of range are an error.
    fn index_select(&self, src: View<'_>, axis: usize, ids: View<'_>) -> Result<BoxStorage>;
    /// Zeros of shape `dst_dims`, then adds slice `i` of `src` along `axis` into slice
    /// `ids[i]` (the backward of `index_select` and of an embedding lookup).
    fn index_add(
        &self,
        dst_dims: &[usize],
        axis: usize,
        ids: View<'_>,
        src: View<'_>,
    ) -> Result<BoxStorage>;
    /// [`Backend::index_add`] added into `dst` (contiguous, of shape `dst_dims`) in
    /// place. Backends override the default, which builds the dense sum first, to touch
    /// only the slices `ids` names.
    fn index_add_assign(
        &self,
        dst: &mut dyn BackendStorage,
        dst_dims: &[usize],
        axis: usize,
        ids: View<'_>,
        src: View<'_>,
    ) -> Result<()> {
        let sum = self.index_add(dst_dims, axis, ids, src)?;
        let layout = Layout::contiguous(crate::Shape::new(dst_dims));
        self.add_assign(dst, View::new(&*sum, &layout))
    }

    // ---- optimizer ------------------------------------------------------------------
    /// One fused AdamW update of contiguous `param`, `m`, `v` in place.
    fn adamw_step(
        &self,
        param: &mut dyn BackendStorage,
        grad: View<'_>,
        m: &mut dyn BackendStorage,
        v: &mut dyn BackendStorage,
        params: &AdamWParams,
    ) -> Result<()>;
}

/// How a backend makes itself known: its crate calls [`register`] with one of these
/// (`rg_cpu::register()`, `rg_cuda::register()`), which the facade and `rgrad` do.
#[derive(Clone, Copy)]
pub struct BackendRegistration {
    /// The device kind: `"cpu"` or `"cuda"`.
    pub kind: &'static str,
    /// Opens the backend for a device ordinal (0 for the CPU), or says why it cannot.
    pub open: fn(ordinal: usize) -> Result<Arc<dyn Backend>>,
}

/// Backends registered by an explicit call. This is the mechanism that works
/// everywhere: a linker (wasm32, some static links) drops an unreferenced
/// `inventory::submit!`, but never a function the program calls.
static REGISTERED: Mutex<Vec<BackendRegistration>> = Mutex::new(Vec::new());

/// Makes a backend available to [`backend_for`]. Registering a kind again is a no-op
/// (the first registration wins), so every entry point may call it.
pub fn register(registration: BackendRegistration) {
    let mut registered = REGISTERED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !registered.iter().any(|r| r.kind == registration.kind) {
        registered.push(registration);
    }
}

#[cfg(not(target_arch = "wasm32"))]
inventory::collect!(BackendRegistration);

/// The registration for `kind`: an explicit one, else (native targets only) one that
/// a linked backend crate submitted, so tests that merely link `rg-cpu` keep working.
fn find_registration(kind: &str) -> Option<BackendRegistration> {
    let explicit = REGISTERED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .find(|r| r.kind == kind)
        .copied();
    #[cfg(not(target_arch = "wasm32"))]
    let explicit = explicit.or_else(|| {
        inventory::iter::<BackendRegistration>
            .into_iter()
            .find(|r| r.kind == kind)
            .copied()
    });
    explicit
}

fn open_backend(device: Device) -> Result<Arc<dyn Backend>> {
    let ordinal = match device {
        Device::Cpu => 0,
        Device::Cuda(n) => n,
    };
    let registration = find_registration(device.kind()).ok_or_else(|| Error::BackendUnavailable {
        device,
        hint: match device {
            Device::Cpu => "no CPU backend is registered: call `rusty_gradients::register_backends()` or `rg_cpu::register()` first".into(),
            Device::Cuda(_) => "this build has no CUDA backend: enable the `cuda` feature of `rusty-gradients` (or link `rg-cuda` and call `rg_cuda::register()`)".into(),
        },
    })?;
    let backend = (registration.open)(ordinal)?;
    Ok(if crate::profile::enabled() {
        crate::profile::ProfilingBackend::wrap(backend)
    } else {
        backend
    })
}

/// The backend for `device`, opened on first use and cached afterwards.
pub fn backend_for(device: Device) -> Result<Arc<dyn Backend>> {
    static CPU: OnceLock<Arc<dyn Backend>> = OnceLock::new();
    static OTHERS: OnceLock<Mutex<HashMap<Device, Arc<dyn Backend>>>> = OnceLock::new();
    if device == Device::Cpu {
        if let Some(b) = CPU.get() {
            return Ok(b.clone());
        }
        let b = open_backend(device)?;
        return Ok(CPU.get_or_init(|| b).clone());
    }
    let mut map = OTHERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(b) = map.get(&device) {
        return Ok(b.clone());
    }
    let b = open_backend(device)?;
    map.insert(device, b.clone());
    Ok(b)
}

/// Downcasts storage to a backend's concrete type, or an error naming the op (reached
/// only when a backend is handed another backend's storage).
pub fn downcast<'a, S: 'static>(
    storage: &'a dyn BackendStorage,
    op: &'static str,
) -> Result<&'a S> {
    let device = storage.device();
    storage
        .as_any()
        .downcast_ref::<S>()
        .ok_or_else(|| Error::backend(device, op, "storage belongs to another backend"))
}

pub fn downcast_mut<'a, S: 'static>(
    storage: &'a mut dyn BackendStorage,
    op: &'static str,
) -> Result<&'a mut S> {
    let device = storage.device();
    storage
        .as_any_mut()
        .downcast_mut::<S>()
        .ok_or_else(|| Error::backend(device, op, "storage belongs to another backend"))
}
