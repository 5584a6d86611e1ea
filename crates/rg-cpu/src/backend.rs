//! `CpuBackend`: the `rg_core::backend::Backend` implementation, a thin table from
//! trait methods to the kernels.

use std::sync::{Arc, OnceLock};

use rg_core::backend::{
    AdamWParams, AttentionGrads, AttentionOutput, Backend, BackendStorage, BoxStorage,
    CrossEntropyOutput, LayerNormGrads, LayerNormOutput, MatmulDims, View,
};
use rg_core::{
    BinaryOp, CmpOp, DType, Device, HostBuffer, Layout, ReduceOp, Result, SharedBytes, UnaryOp,
};

use crate::kernels::{
    adamw, attention, binary, cast, cmp, copy, cross_entropy, fill, gelu, indexing, layer_norm,
    mask, matmul, norm, reduce, softmax, unary, where_cond,
};
use crate::storage::CpuStorage;

/// The CPU device. Stateless: every kernel threads through rayon's global pool.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend
    }

    /// The process-wide instance the backend registry hands out.
    pub fn shared() -> Arc<dyn Backend> {
        static SHARED: OnceLock<Arc<dyn Backend>> = OnceLock::new();
        SHARED.get_or_init(|| Arc::new(CpuBackend::new())).clone()
    }
}

impl Backend for CpuBackend {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn zeros(&self, dtype: DType, len: usize) -> Result<BoxStorage> {
        fill::zeros(dtype, len)
    }

    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<BoxStorage> {
        fill::full(dtype, len, value)
    }

    fn from_host(&self, data: HostBuffer) -> Result<BoxStorage> {
        Ok(Box::new(CpuStorage::from_host(data)))
    }

    fn from_shared_bytes(&self, dtype: DType, bytes: SharedBytes) -> Result<BoxStorage> {
        Ok(Box::new(CpuStorage::from_shared_bytes(dtype, bytes)?))
    }

    fn to_host(&self, src: View<'_>) -> Result<HostBuffer> {
        copy::to_host(src)
    }

    fn copy_strided(
        &self,
        src: View<'_>,
        dst: &mut dyn BackendStorage,
        dst_layout: &Layout,
    ) -> Result<()> {
        copy::copy_strided(src, dst, dst_layout)
    }

    fn concat(&self, srcs: &[View<'_>], axis: usize, dims: &[usize]) -> Result<BoxStorage> {
        copy::concat(srcs, axis, dims)
    }

    fn cast(&self, src: View<'_>, dtype: DType) -> Result<BoxStorage> {
        cast::cast(src, dtype)
    }

    fn unary(&self, op: UnaryOp, src: View<'_>) -> Result<BoxStorage> {
        unary::unary(op, src)
    }

    fn affine(&self, src: View<'_>, mul: f64, add: f64) -> Result<BoxStorage> {
        unary::affine(src, mul, add)
    }

    fn powf(&self, src: View<'_>, exponent: f64) -> Result<BoxStorage> {
        unary::powf(src, exponent)
    }

    fn binary(&self, op: BinaryOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage> {
        binary::binary(op, lhs, rhs)
    }

    fn cmp(&self, op: CmpOp, lhs: View<'_>, rhs: View<'_>) -> Result<BoxStorage> {
        cmp::cmp(op, lhs, rhs)
    }

    fn where_cond(
        &self,
        cond: View<'_>,
        on_true: View<'_>,
        on_false: View<'_>,
    ) -> Result<BoxStorage> {
        where_cond::where_cond(cond, on_true, on_false)
    }

    fn gelu_backward(&self, x: View<'_>, dy: View<'_>) -> Result<BoxStorage> {
        gelu::gelu_backward(x, dy)
    }

    fn causal_fill(&self, src: View<'_>, value: f64) -> Result<BoxStorage> {
        mask::causal_fill(src, value)
    }

    fn reduce(&self, op: ReduceOp, src: View<'_>, axis: usize) -> Result<BoxStorage> {
        reduce::reduce(op, src, axis)
    }

    fn add_assign(&self, dst: &mut dyn BackendStorage, src: View<'_>) -> Result<()> {
        binary::add_assign(dst, src)
    }

    fn sum_squares(&self, src: View<'_>) -> Result<f64> {
        norm::sum_squares(src)
    }

    fn matmul(&self, lhs: View<'_>, rhs: View<'_>, dims: MatmulDims) -> Result<BoxStorage> {
        matmul::matmul(lhs, rhs, dims)
    }

    fn matmul_bias(
        &self,
        lhs: View<'_>,
        rhs: View<'_>,
        bias: View<'_>,
        dims: MatmulDims,
    ) -> Result<BoxStorage> {
        matmul::matmul_bias(lhs, rhs, bias, dims)
    }

    fn matmul_f32(
        &self,
        lhs: View<'_>,
        rhs: View<'_>,
        bias: Option<View<'_>>,
        dims: MatmulDims,
    ) -> Result<BoxStorage> {
        matmul::matmul_f32(lhs, rhs, bias, dims)
    }

    fn matmul_q8(&self, x: View<'_>, w: &rg_core::Q8Matrix) -> Result<BoxStorage> {
        crate::kernels::matmul_q8::matmul_q8(x, w)
    }

    fn softmax_last(&self, src: View<'_>, log: bool) -> Result<BoxStorage> {
        softmax::softmax_last(src, log)
    }

    fn softmax_last_backward(&self, y: View<'_>, dy: View<'_>, log: bool) -> Result<BoxStorage> {
        softmax::softmax_last_backward(y, dy, log)
    }

    fn layer_norm(
        &self,
        x: View<'_>,
        gamma: View<'_>,
        beta: View<'_>,
        eps: f64,
    ) -> Result<LayerNormOutput> {
        layer_norm::layer_norm(x, gamma, beta, eps)
    }

    fn layer_norm_backward(
        &self,
        dy: View<'_>,
        x: View<'_>,
        gamma: View<'_>,
        mean: View<'_>,
        rstd: View<'_>,
    ) -> Result<LayerNormGrads> {
        layer_norm::layer_norm_backward(dy, x, gamma, mean, rstd)
    }

    fn attention(
        &self,
        q: View<'_>,
        k: View<'_>,
        v: View<'_>,
        scale: f64,
    ) -> Result<AttentionOutput> {
        attention::attention(q, k, v, scale)
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
        attention::attention_backward(q, k, v, out, lse, dout, scale)
    }

    fn cross_entropy(
        &self,
        logits: View<'_>,
        targets: View<'_>,
        ignore_index: Option<i64>,
    ) -> Result<CrossEntropyOutput> {
        cross_entropy::cross_entropy(logits, targets, ignore_index)
    }

    fn cross_entropy_backward(
        &self,
        logits: View<'_>,
        lse: View<'_>,
        targets: View<'_>,
        dloss: View<'_>,
        ignore_index: Option<i64>,
    ) -> Result<BoxStorage> {
        cross_entropy::cross_entropy_backward(logits, lse, targets, dloss, ignore_index)
    }

    fn index_select(&self, src: View<'_>, axis: usize, ids: View<'_>) -> Result<BoxStorage> {
        indexing::index_select(src, axis, ids)
    }

    fn index_add(
        &self,
        dst_dims: &[usize],
        axis: usize,
        ids: View<'_>,
        src: View<'_>,
    ) -> Result<BoxStorage> {
        indexing::index_add(dst_dims, axis, ids, src)
    }

    fn index_add_assign(
        &self,
        dst: &mut dyn BackendStorage,
        dst_dims: &[usize],
        axis: usize,
        ids: View<'_>,
        src: View<'_>,
    ) -> Result<()> {
        indexing::index_add_assign(dst, dst_dims, axis, ids, src)
    }

    fn adamw_step(
        &self,
        param: &mut dyn BackendStorage,
        grad: View<'_>,
        m: &mut dyn BackendStorage,
        v: &mut dyn BackendStorage,
        params: &AdamWParams,
    ) -> Result<()> {
        adamw::adamw_step(param, grad, m, v, params)
    }
}
