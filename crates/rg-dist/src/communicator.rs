use rg_core::{DType, Tensor};

use crate::{DistError, Result};

/// How contributions of all ranks are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    /// The sum divided by the world size.
    Avg,
    Max,
}

/// A group of processes that each run the same program on their share of the data.
///
/// Every collective must be called by all ranks in the same order with buffers of the
/// same length; a backend may block until all have arrived.
pub trait Communicator: Send {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Rank among the processes on this host (picks the GPU of a rank).
    fn local_rank(&self) -> usize;
    /// Processes on this host.
    fn local_size(&self) -> usize;
    /// `single`, `mpi` or `nccl`, for logs.
    fn backend_name(&self) -> &'static str;

    fn barrier(&self) -> Result<()>;

    // ---- primitives on host buffers; every rank passes the same lengths -------------

    /// `recv = op(send of every rank)`; `send` and `recv` have the same length.
    fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32], op: ReduceOp) -> Result<()>;
    fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64], op: ReduceOp) -> Result<()>;
    /// `buf = op(buf of every rank)`. Backends that reduce without a second buffer
    /// (`MPI_IN_PLACE`) override it; this default copies `buf` once.
    fn all_reduce_f32_in_place(&self, buf: &mut [f32], op: ReduceOp) -> Result<()> {
        let send = buf.to_vec();
        self.all_reduce_f32(&send, buf, op)
    }
    /// `buf = op(buf of every rank)` on `root`; other ranks' `buf` is left unspecified.
    /// ZeRO sends each gradient only to the rank that updates it: half the traffic of an
    /// all-reduce. This default all-reduces (correct on `root`, and everywhere else);
    /// backends with a rooted reduction override it.
    fn reduce_f32_in_place(&self, buf: &mut [f32], root: usize, op: ReduceOp) -> Result<()> {
        if root >= self.world_size() {
            return Err(DistError::invalid(
                "reduce",
                format!(
                    "root rank {root} does not exist in a world of {}",
                    self.world_size()
                ),
            ));
        }
        self.all_reduce_f32_in_place(buf, op)
    }
    /// Overwrites `buf` on every rank with `root`'s.
    fn broadcast_bytes(&self, buf: &mut [u8], root: usize) -> Result<()>;
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()>;
    /// `send` is `world_size` equal chunks; rank r receives `op` over chunk r.
    fn reduce_scatter_f32(&self, send: &[f32], recv: &mut [f32], op: ReduceOp) -> Result<()>;
    /// `recv` is `world_size` chunks, chunk r being rank r's `send`.
    fn all_gather_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()>;
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()>;

    // ---- tensors (f32, any device the host can read and write) ----------------------

    /// Reduces `tensor` in place on every rank (in its own memory when it is a
    /// contiguous host tensor; through a copy otherwise).
    fn all_reduce(&self, tensor: &Tensor, op: ReduceOp) -> Result<()> {
        if let Some(done) = tensor.with_host_f32_mut(|buf| self.all_reduce_f32_in_place(buf, op)) {
            return done;
        }
        let send = host_f32("all_reduce", tensor)?;
        let mut recv = vec![0f32; send.len()];
        self.all_reduce_f32(&send, &mut recv, op)?;
        write_back(tensor, &recv)
    }

    /// Overwrites `tensor` in place with `root`'s. A contiguous host tensor is sent
    /// and received in its own memory: ZeRO broadcasts every parameter each step, and
    /// staging them (GPT-2's 154 MB `wte` twice over) raised the peak memory.
    fn broadcast(&self, tensor: &Tensor, root: usize) -> Result<()> {
        if let Some(done) = tensor.with_host_f32_mut(|buf| self.broadcast_f32(buf, root)) {
            return done;
        }
        let mut buf = host_f32("broadcast", tensor)?;
        self.broadcast_f32(&mut buf, root)?;
        write_back(tensor, &buf)
    }

    /// `tensor` holds `world_size` equal chunks (flattened); returns this rank's chunk,
    /// reduced over ranks, as a flat tensor.
    fn reduce_scatter(&self, tensor: &Tensor, op: ReduceOp) -> Result<Tensor> {
        let send = host_f32("reduce_scatter", tensor)?;
        let world = self.world_size();
        if send.len() % world != 0 {
            return Err(DistError::invalid(
                "reduce_scatter",
                format!(
                    "{} elements do not split into {world} equal chunks",
                    send.len()
                ),
            ));
        }
        let mut recv = vec![0f32; send.len() / world];
        self.reduce_scatter_f32(&send, &mut recv, op)?;
        let n = recv.len();
        Ok(Tensor::from_vec(recv, [n], &tensor.device())?)
    }

    /// Concatenates every rank's (flattened) `tensor` in rank order.
    fn all_gather(&self, tensor: &Tensor) -> Result<Tensor> {
        let send = host_f32("all_gather", tensor)?;
        let mut recv = vec![0f32; send.len() * self.world_size()];
        self.all_gather_f32(&send, &mut recv)?;
        let n = recv.len();
        Ok(Tensor::from_vec(recv, [n], &tensor.device())?)
    }

    /// One `f64` per rank, reduced (losses, counts, flags).
    fn all_reduce_scalar(&self, value: f64, op: ReduceOp) -> Result<f64> {
        let mut out = [0f64];
        self.all_reduce_f64(&[value], &mut out, op)?;
        Ok(out[0])
    }
}

/// The tensor's elements as host `f32`; other dtypes are refused by name.
pub(crate) fn host_f32(op: &'static str, tensor: &Tensor) -> Result<Vec<f32>> {
    if tensor.dtype() != DType::F32 {
        return Err(DistError::invalid(
            op,
            format!(
                "collectives move f32 tensors, this one is {:?}",
                tensor.dtype()
            ),
        ));
    }
    Ok(tensor.to_vec::<f32>()?)
}

/// Writes `values` into `tensor`'s view in place (every view of its storage sees them).
pub(crate) fn write_back(tensor: &Tensor, values: &[f32]) -> Result<()> {
    let src = Tensor::from_slice(values, tensor.shape().clone(), &tensor.device())?;
    tensor.copy_from(&src)?;
    Ok(())
}

/// Applies the `Avg` division after a sum; backends call it on their result.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn finish_average_f32(buf: &mut [f32], op: ReduceOp, world: usize) {
    if op == ReduceOp::Avg && world > 1 {
        let inv = 1.0 / world as f32;
        buf.iter_mut().for_each(|x| *x *= inv);
    }
}

#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn finish_average_f64(buf: &mut [f64], op: ReduceOp, world: usize) {
    if op == ReduceOp::Avg && world > 1 {
        let inv = 1.0 / world as f64;
        buf.iter_mut().for_each(|x| *x *= inv);
    }
}

/// Checks that two buffers of a collective have the lengths it needs.
pub(crate) fn check_len(op: &'static str, what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(DistError::invalid(
            op,
            format!("{what} has {got} elements, expected {want}"),
        ));
    }
    Ok(())
}
