//! Op-level profiling: with `RG_PROFILE=1` in the environment, every backend is wrapped
//! in [`ProfilingBackend`], which times each call (after `synchronize`, so device work
//! is counted where it is launched) and adds it to a process-wide table keyed by the
//! current phase (see [`phase`]) and the op's name. [`report`] renders the table.
//!
//! Backend time is what the kernels cost; the difference between a step's wall time
//! and the table's total is the framework's own overhead (graph, layouts, dispatch).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use web_time::Instant;

use crate::backend::{
    AdamWParams, AttentionGrads, AttentionOutput, Backend, BackendStorage, BoxStorage,
    CrossEntropyOutput, LayerNormGrads, LayerNormOutput, MatmulDims, View,
};
use crate::{
    BinaryOp, CmpOp, DType, Device, HostBuffer, Layout, ReduceOp, Result, SharedBytes, UnaryOp,
};

/// Whether `RG_PROFILE` asks for profiling (read once).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("RG_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0"))
}

thread_local! {
    static PHASE: Cell<&'static str> = const { Cell::new("forward") };
}

/// Runs `f` with ops attributed to `name` (e.g. "backward", "optimizer").
pub fn phase<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    let previous = PHASE.with(|p| p.replace(name));
    let out = f();
    PHASE.with(|p| p.set(previous));
    out
}

#[derive(Default, Clone, Copy)]
struct Entry {
    calls: u64,
    time: Duration,
}

fn table() -> &'static Mutex<HashMap<(&'static str, String), Entry>> {
    static TABLE: OnceLock<Mutex<HashMap<(&'static str, String), Entry>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// Clears the table (e.g. after warm-up steps).
pub fn reset() {
    table().lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// The table, slowest first: phase, op, calls, total milliseconds and share.
pub fn report() -> String {
    let table = table().lock().unwrap_or_else(|p| p.into_inner());
    let mut rows: Vec<_> = table.iter().collect();
    rows.sort_by_key(|(_, e)| std::cmp::Reverse(e.time));
    let total: Duration = rows.iter().map(|(_, e)| e.time).sum();
    let mut out = format!(
        "{:<10} {:<28} {:>8} {:>11} {:>6}\n",
        "phase", "op", "calls", "ms", "share"
    );
    for ((phase, op), e) in rows {
        let ms = e.time.as_secs_f64() * 1e3;
        let share = 100.0 * e.time.as_secs_f64() / total.as_secs_f64().max(1e-12);
        out += &format!(
            "{phase:<10} {op:<28} {:>8} {ms:>11.1} {share:>5.1}%\n",
            e.calls
        );
    }
    out += &format!(
        "{:<10} {:<28} {:>8} {:>11.1}\n",
        "",
        "total",
        "",
        total.as_secs_f64() * 1e3
    );
    out
}

/// Times every call of the wrapped backend.
pub struct ProfilingBackend {
    inner: Arc<dyn Backend>,
}

impl ProfilingBackend {
    pub fn wrap(inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(ProfilingBackend { inner })
    }

    fn time<R>(
        &self,
        op: impl FnOnce() -> String,
        f: impl FnOnce(&dyn Backend) -> Result<R>,
    ) -> Result<R> {
        let start = Instant::now();
        let out = f(&*self.inner);
        let _ = self.inner.synchronize();
        let elapsed = start.elapsed();
        let key = (PHASE.with(Cell::get), op());
        let mut table = table().lock().unwrap_or_else(|p| p.into_inner());
        let e = table.entry(key).or_default();
        e.calls += 1;
        e.time += elapsed;
        out
    }
}

fn named(s: &'static str) -> impl FnOnce() -> String {
    move || s.to_string()
}

impl Backend for ProfilingBackend {
    fn device(&self) -> Device {
        self.inner.device()
    }
    fn zeros(&self, dtype: DType, len: usize) -> Result<BoxStorage> {
        self.time(named("zeros"), |b| b.zeros(dtype, len))
    }
    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<BoxStorage> {
        self.time(named("full"), |b| b.full(dtype, len, value))
    }
    fn from_host(&self, data: HostBuffer) -> Result<BoxStorage> {
        self.time(named("from_host"), |b| b.from_host(data))
    }
    fn from_shared_bytes(&self, dtype: DType, bytes: SharedBytes) -> Result<BoxStorage> {
        self.time(named("from_shared_bytes"), |b| {
            b.from_shared_bytes(dtype, bytes)
        })
    }
    fn to_host(&self, src: View<'_>) -> Result<HostBuffer> {
        self.time(named("to_host"), |b| b.to_host(src))
    }
    fn copy_strided(
        &self,
        src: View<'_>,
        dst: &mut dyn BackendStorage,
        dst_layout: &Layout,
    ) -> Result<()> {
        self.time(named("copy_strided"), |b| {
            b.copy_strided(src, dst, dst_layout)
        })
    }
    fn concat(&self, srcs: &[View<'_>], axis: usize, dims: &[usize]) -> Result<BoxStorage> {
        self.time(named("concat"), |b| b.concat(srcs, axis, dims))
    }
    fn cast(&self, src: View<'_>, dtype: DType) -> Result<BoxStorage> {
        self.time(|| format!("cast:{dtype}"), |b| b.cast(src, dtype))
    }
    fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }
    fn unary(&self, op: UnaryOp, src: View<'_>) -> Result<BoxStorage> {
        self.time(|| format!("unary:{op:?}"), |b| b.unary(op, src))
    }
    fn affine(&self, src: View<'_>, mul: f64, add: f64) -> Result<BoxStorage> {
        self.time(named("affine"), |b| b.affine(src, mul, add))
    }
    fn powf(&self, src: View<'_>, exponent: f64) -> Result<BoxStorage> {
        self.time(named("powf"), |b| b.powf(src, exponent))
    }
    fn binary(&self, op: BinaryOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage> {
        let label = || {
            let order = |v: View<'_>| if v.layout.is_contiguous() { "" } else { "~" };
            format!("binary:{op:?} {:?}{}{}", lhs.dims(), order(lhs), order(rhs))
        };
        self.time(label, |b| b.binary(op, lhs, rhs))
    }
    fn cmp(&self, op: CmpOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage> {
        self.time(|| format!("cmp:{op:?}"), |b| b.cmp(op, lhs, rhs))
    }
    fn where_cond(
        &self,
        cond: View<'_>,
        on_true: View<'_>,
        on_false: View<'_>,
    ) -> Result<BoxStorage> {
        self.time(named("where_cond"), |b| {
            b.where_cond(cond, on_true, on_false)
        })
    }
    fn gelu_backward(&self, x: View<'_>, dy: View<'_>) -> Result<BoxStorage> {
        self.time(named("gelu_backward"), |b| b.gelu_backward(x, dy))
    }
    fn causal_fill(&self, src: View<'_>, value: f64) -> Result<BoxStorage> {
        self.time(named("causal_fill"), |b| b.causal_fill(src, value))
    }
    fn reduce(&self, op: ReduceOp, src: View<'_>, axis: usize) -> Result<BoxStorage> {
        self.time(|| format!("reduce:{op:?}"), |b| b.reduce(op, src, axis))
    }
    fn add_assign(&self, dst: &mut dyn BackendStorage, src: View<'_>) -> Result<()> {
        let label = || format!("add_assign {:?}", src.dims());
        self.time(label, |b| b.add_assign(dst, src))
    }
    fn sum_squares(&self, src: View<'_>) -> Result<f64> {
        self.time(named("sum_squares"), |b| b.sum_squares(src))
    }
    fn matmul(&self, lhs: View<'_>, rhs: View<'_>, dims: MatmulDims) -> Result<BoxStorage> {
        self.time(
            || product_label("matmul", dims),
            |b| b.matmul(lhs, rhs, dims),
        )
    }
    fn matmul_bias(
        &self,
        lhs: View<'_>,
        rhs: View<'_>,
        bias: View<'_>,
        dims: MatmulDims,
    ) -> Result<BoxStorage> {
        let label = || product_label("matmul+bias", dims);
        self.time(label, |b| b.matmul_bias(lhs, rhs, bias, dims))
    }
    fn matmul_f32(
        &self,
        lhs: View<'_>,
        rhs: View<'_>,
        bias: Option<View<'_>>,
        dims: MatmulDims,
    ) -> Result<BoxStorage> {
        let name = if bias.is_some() {
            "matmul+bias:f32"
        } else {
            "matmul:f32"
        };
        let label = || product_label(name, dims);
        self.time(label, |b| b.matmul_f32(lhs, rhs, bias, dims))
    }
    fn matmul_q8(&self, x: View<'_>, w: &crate::Q8Matrix) -> Result<BoxStorage> {
        let m = x.dims().first().copied().unwrap_or(0);
        let label = || format!("matmul_q8 {m}x{}x{}", w.rows(), w.cols());
        self.time(label, |b| b.matmul_q8(x, w))
    }
    fn softmax_last(&self, src: View<'_>, log: bool) -> Result<BoxStorage> {
        self.time(named("softmax"), |b| b.softmax_last(src, log))
    }
    fn softmax_last_backward(&self, y: View<'_>, dy: View<'_>, log: bool) -> Result<BoxStorage> {
        self.time(named("softmax_backward"), |b| {
            b.softmax_last_backward(y, dy, log)
        })
    }
    fn layer_norm(
        &self,
        x: View<'_>,
        gamma: View<'_>,
        beta: View<'_>,
        eps: f64,
    ) -> Result<LayerNormOutput> {
        self.time(named("layer_norm"), |b| b.layer_norm(x, gamma, beta, eps))
    }
    fn layer_norm_backward(
        &self,
        dy: View<'_>,
        x: View<'_>,
        gamma: View<'_>,
        mean: View<'_>,
        rstd: View<'_>,
    ) -> Result<LayerNormGrads> {
        self.time(named("layer_norm_backward"), |b| {
            b.layer_norm_backward(dy, x, gamma, mean, rstd)
        })
    }
    fn cross_entropy(
        &self,
        logits: View<'_>,
        targets: View<'_>,
        ignore_index: Option<i64>,
    ) -> Result<CrossEntropyOutput> {
        self.time(named("cross_entropy"), |b| {
            b.cross_entropy(logits, targets, ignore_index)
        })
    }
    fn cross_entropy_backward(
        &self,
        logits: View<'_>,
        lse: View<'_>,
        targets: View<'_>,
        dloss: View<'_>,
        ignore_index: Option<i64>,
    ) -> Result<BoxStorage> {
        self.time(named("cross_entropy_backward"), |b| {
            b.cross_entropy_backward(logits, lse, targets, dloss, ignore_index)
        })
    }
    fn attention(
        &self,
        q: View<'_>,
        k: View<'_>,
        v: View<'_>,
        scale: f64,
    ) -> Result<AttentionOutput> {
        self.time(named("attention"), |b| b.attention(q, k, v, scale))
    }
    fn attention_backward(
        &self,
        q: View<'_>,
        k: View<'_>,
        v: View<'_>,
        out: View<'_>,
        lse: View<'_>,
        dout: View<'_>,
        scale: f64,
    ) -> Result<AttentionGrads> {
        self.time(named("attention_backward"), |b| {
            b.attention_backward(q, k, v, out, lse, dout, scale)
        })
    }
    fn index_select(&self, src: View<'_>, axis: usize, ids: View<'_>) -> Result<BoxStorage> {
        self.time(named("index_select"), |b| b.index_select(src, axis, ids))
    }
    fn index_add(
        &self,
        dst_dims: &[usize],
        axis: usize,
        ids: View<'_>,
        src: View<'_>,
    ) -> Result<BoxStorage> {
        self.time(named("index_add"), |b| {
            b.index_add(dst_dims, axis, ids, src)
        })
    }
    fn index_add_assign(
        &self,
        dst: &mut dyn BackendStorage,
        dst_dims: &[usize],
        axis: usize,
        ids: View<'_>,
        src: View<'_>,
    ) -> Result<()> {
        self.time(named("index_add_assign"), |b| {
            b.index_add_assign(dst, dst_dims, axis, ids, src)
        })
    }
    fn adamw_step(
        &self,
        param: &mut dyn BackendStorage,
        grad: View<'_>,
        m: &mut dyn BackendStorage,
        v: &mut dyn BackendStorage,
        params: &AdamWParams,
    ) -> Result<()> {
        self.time(named("adamw_step"), |b| {
            b.adamw_step(param, grad, m, v, params)
        })
    }
}

/// `"{name} MxNxK"`, with the batch in front when there is more than one product.
fn product_label(name: &str, dims: MatmulDims) -> String {
    let MatmulDims { batch, m, n, k } = dims;
    if batch > 1 {
        format!("{name} {batch}x{m}x{n}x{k}")
    } else {
        format!("{name} {m}x{n}x{k}")
    }
}
