//! `CudaBackend`: the `rg_core::backend::Backend` implementation, a table from trait
//! methods to the ops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rg_core::backend::{
    AdamWParams, AttentionGrads, AttentionOutput, Backend, BackendStorage, BoxStorage,
    CrossEntropyOutput, LayerNormGrads, LayerNormOutput, MatmulDims, View,
};
use rg_core::{
    BinaryOp, CmpOp, DType, Device, HostBuffer, Layout, ReduceOp, Result, SharedBytes, UnaryOp,
};

use crate::alloc::PoolStats;
use crate::gpu::Gpu;
use crate::ops::{
    adamw, attention, cross_entropy, elementwise, indexing, layer_norm, matmul, memory, reduce,
    softmax,
};

/// One GPU.
pub struct CudaBackend {
    gpu: Gpu,
}

impl CudaBackend {
    /// Opens GPU `ordinal` (a new context stream, pool and cuBLAS handle), or says why
    /// it cannot: no driver, no such device, compute capability below 8.0, no cuBLAS.
    pub fn new(ordinal: usize) -> Result<Self> {
        Ok(CudaBackend {
            gpu: Gpu::open(ordinal)?,
        })
    }

    /// The process-wide backend of GPU `ordinal`, the one `Device::cuda(ordinal)`
    /// tensors use.
    pub fn shared(ordinal: usize) -> Result<Arc<CudaBackend>> {
        static OPEN: OnceLock<Mutex<HashMap<usize, Arc<CudaBackend>>>> = OnceLock::new();
        let mut map = OPEN
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get(&ordinal) {
            return Ok(b.clone());
        }
        let b = Arc::new(CudaBackend::new(ordinal)?);
        map.insert(ordinal, b.clone());
        Ok(b)
    }

    /// Fill every buffer handed out from now on with 0xFF bytes (NaN in float dtypes),
    /// so elements a kernel fails to write show up. Also `RG_CUDA_POISON=1`.
    pub fn set_poison(&self, on: bool) {
        self.gpu.pool.set_poison(on);
    }

    /// Let f32 matrix products use TF32 tensor cores (about 10 mantissa bits; off by
    /// default). Also `RG_CUDA_TF32=1`.
    pub fn set_tf32(&self, on: bool) {
        self.gpu.blas.set_tf32(on);
    }

    /// Memory held by the caching allocator.
    pub fn memory_stats(&self) -> PoolStats {
        self.gpu.pool.stats()
    }

    /// Returns cached device memory to the driver.
    pub fn release_cached_memory(&self) {
        self.gpu.pool.release_cached();
    }

    /// The device's name, compute capability and the cuBLAS in use.
    pub fn describe(&self) -> String {
        let name = self.gpu.ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        format!(
            "{name} (compute capability {}.{}), cuBLAS {} from {}",
            self.gpu.major,
            self.gpu.minor,
            self.gpu.blas.version,
            self.gpu.blas.path.display()
        )
    }

    /// The raw `CUstream` all of this backend's work runs on (for interop such as NCCL
    /// collectives, which must be queued on the same stream).
    pub fn stream_handle(&self) -> cudarc::driver::sys::CUstream {
        self.gpu.stream.cu_stream()
    }
}

impl Backend for CudaBackend {
    fn device(&self) -> Device {
        self.gpu.device
    }

    fn zeros(&self, dtype: DType, len: usize) -> Result<BoxStorage> {
        memory::full(&self.gpu, dtype, len, 0.0)
    }

    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<BoxStorage> {
        memory::full(&self.gpu, dtype, len, value)
    }

    fn from_host(&self, data: HostBuffer) -> Result<BoxStorage> {
        memory::from_host(&self.gpu, data)
    }

    fn from_shared_bytes(&self, dtype: DType, bytes: SharedBytes) -> Result<BoxStorage> {
        memory::from_shared_bytes(&self.gpu, dtype, bytes)
    }

    fn to_host(&self, src: View<'_>) -> Result<HostBuffer> {
        memory::to_host(&self.gpu, src)
    }

    fn copy_strided(
        &self,
        src: View<'_>,
        dst: &mut dyn BackendStorage,
        dst_layout: &Layout,
    ) -> Result<()> {
        memory::copy_strided(&self.gpu, src, dst, dst_layout)
    }

    fn cast(&self, src: View<'_>, dtype: DType) -> Result<BoxStorage> {
        memory::cast(&self.gpu, src, dtype)
    }

    fn synchronize(&self) -> Result<()> {
        self.gpu.synchronize("synchronize")
    }

    fn unary(&self, op: UnaryOp, src: View<'_>) -> Result<BoxStorage> {
        elementwise::unary(&self.gpu, op, src)
    }

    fn affine(&self, src: View<'_>, mul: f64, add: f64) -> Result<BoxStorage> {
        elementwise::affine(&self.gpu, src, mul, add)
    }

    fn powf(&self, src: View<'_>, exponent: f64) -> Result<BoxStorage> {
        elementwise::powf(&self.gpu, src, exponent)
    }

    fn binary(&self, op: BinaryOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage> {
        elementwise::binary(&self.gpu, op, lhs, rhs)
    }

    fn cmp(&self, op: CmpOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage> {
        elementwise::cmp(&self.gpu, op, lhs, rhs)
    }

    fn where_cond(
        &self,
        cond: View<'_>,
        on_true: View<'_>,
        on_false: View<'_>,
    ) -> Result<BoxStorage> {
        elementwise::where_cond(&self.gpu, cond, on_true, on_false)
    }

    fn gelu_backward(&self, x: View<'_>, dy: View<'_>) -> Result<BoxStorage> {
        elementwise::gelu_backward(&self.gpu, x, dy)
    }

    fn causal_fill(&self, src: View<'_>, value: f64) -> Result<BoxStorage> {
        elementwise::causal_fill(&self.gpu, src, value)
    }

    fn reduce(&self, op: ReduceOp, src: View<'_>, axis: usize) -> Result<BoxStorage> {
        reduce::reduce(&self.gpu, op, src, axis)
    }

    fn matmul(&self, lhs: View<'_>, rhs: View<'_>, dims: MatmulDims) -> Result<BoxStorage> {
        matmul::matmul(&self.gpu, lhs, rhs, dims)
    }

    fn softmax_last(&self, src: View<'_>, log: bool) -> Result<BoxStorage> {
        softmax::softmax_last(&self.gpu, src, log)
    }

    fn softmax_last_backward(&self, y: View<'_>, dy: View<'_>, log: bool) -> Result<BoxStorage> {
        softmax::softmax_last_backward(&self.gpu, y, dy, log)
    }

    fn layer_norm(
        &self,
        x: View<'_>,
        gamma: View<'_>,
        beta: View<'_>,
        eps: f64,
    ) -> Result<LayerNormOutput> {
        layer_norm::layer_norm(&self.gpu, x, gamma, beta, eps)
    }

    fn layer_norm_backward(
        &self,
        dy: View<'_>,
        x: View<'_>,
        gamma: View<'_>,
        mean: View<'_>,
        rstd: View<'_>,
    ) -> Result<LayerNormGrads> {
        layer_norm::layer_norm_backward(&self.gpu, dy, x, gamma, mean, rstd)
    }

    fn cross_entropy(
        &self,
        logits: View<'_>,
        targets: View<'_>,
        ignore_index: Option<i64>,
    ) -> Result<CrossEntropyOutput> {
        cross_entropy::cross_entropy(&self.gpu, logits, targets, ignore_index)
    }

    fn cross_entropy_backward(
        &self,
        logits: View<'_>,
        lse: View<'_>,
        targets: View<'_>,
        dloss: View<'_>,
        ignore_index: Option<i64>,
    ) -> Result<BoxStorage> {
        cross_entropy::cross_entropy_backward(&self.gpu, logits, lse, targets, dloss, ignore_index)
    }

    fn attention(
        &self,
        q: View<'_>,
        k: View<'_>,
        v: View<'_>,
        scale: f64,
    ) -> Result<AttentionOutput> {
        attention::attention(&self.gpu, q, k, v, scale)
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
        attention::attention_backward(&self.gpu, q, k, v, out, lse, dout, scale)
    }

    fn index_select(&self, src: View<'_>, axis: usize, ids: View<'_>) -> Result<BoxStorage> {
        indexing::index_select(&self.gpu, src, axis, ids)
    }

    fn index_add(
        &self,
        dst_dims: &[usize],
        axis: usize,
        ids: View<'_>,
        src: View<'_>,
    ) -> Result<BoxStorage> {
        indexing::index_add(&self.gpu, dst_dims, axis, ids, src)
    }

    fn adamw_step(
        &self,
        param: &mut dyn BackendStorage,
        grad: View<'_>,
        m: &mut dyn BackendStorage,
        v: &mut dyn BackendStorage,
        params: &AdamWParams,
    ) -> Result<()> {
        adamw::adamw_step(&self.gpu, param, grad, m, v, params)
    }
}
