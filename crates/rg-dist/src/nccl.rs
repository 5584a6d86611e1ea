//! NCCL on GPUs: one process per GPU (the local rank picks the device), MPI for the
//! launch and for passing the NCCL id from rank 0 to the others (as llm.c does), NCCL
//! for the collectives, on a stream of their own.
//!
//! The primitives take host buffers (the `Communicator` contract) and stage them
//! through device buffers; a trainer keeping gradients on the GPU would hand NCCL its
//! device memory directly, which needs `rg-cuda` to expose its buffers (not yet).

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::{Comm, Id, ReduceOp as NcclOp};

use crate::communicator::check_len;
use crate::{find_libnccl, Communicator, DistError, MpiCommunicator, ReduceOp, Result};

pub struct NcclCommunicator {
    // Dropped first: the NCCL communicator before the MPI world it was set up over.
    nccl: Comm,
    stream: Arc<CudaStream>,
    mpi: MpiCommunicator,
}

// SAFETY: as `MpiCommunicator`: one thread at a time (the trait is `Send`, not `Sync`).
unsafe impl Send for NcclCommunicator {}

fn nccl_err(what: &str, e: impl std::fmt::Debug) -> DistError {
    DistError::unavailable("nccl", format!("{what}: {e:?}"))
}

impl NcclCommunicator {
    /// Checks that the CUDA driver and NCCL load (an error, not cudarc's panic), joins
    /// MPI, opens GPU `local_rank` and sets up NCCL with rank 0's id.
    pub fn init() -> Result<Self> {
        // SAFETY: only probes whether the driver library loads.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(DistError::unavailable(
                "nccl",
                "the CUDA driver (libcuda.so) is not installed; NCCL needs a GPU",
            ));
        }
        find_libnccl()?;
        let mpi = MpiCommunicator::init()?;
        let ctx = CudaContext::new(mpi.local_rank())
            .map_err(|e| nccl_err(&format!("opening GPU {}", mpi.local_rank()), e))?;
        let stream = ctx.new_stream().map_err(|e| nccl_err("new stream", e))?;
        let mut id_bytes = [0u8; 128];
        if mpi.rank() == 0 {
            let id = Id::new().map_err(|e| nccl_err("ncclGetUniqueId", e))?;
            for (b, c) in id_bytes.iter_mut().zip(id.internal()) {
                *b = *c as u8;
            }
        }
        mpi.broadcast_bytes(&mut id_bytes, 0)?;
        let id = Id::uninit(id_bytes.map(|b| b as std::ffi::c_char));
        let nccl = Comm::from_rank(stream.clone(), mpi.rank(), mpi.world_size(), id)
            .map_err(|e| nccl_err("ncclCommInitRank", e))?;
        Ok(NcclCommunicator { nccl, stream, mpi })
    }

    /// Copies `send` to the GPU, runs `op` into a device buffer of `recv.len()`, copies
    /// the result back and waits for it.
    fn staged(
        &self,
        what: &'static str,
        send: &[f32],
        recv: &mut [f32],
        op: impl FnOnce(
            &Comm,
            &cudarc::driver::CudaSlice<f32>,
            &mut cudarc::driver::CudaSlice<f32>,
        ) -> std::result::Result<
            cudarc::nccl::result::NcclStatus,
            cudarc::nccl::result::NcclError,
        >,
    ) -> Result<()> {
        let d_send = self
            .stream
            .clone_htod(send)
            .map_err(|e| nccl_err(what, e))?;
        let mut d_recv = self
            .stream
            .alloc_zeros::<f32>(recv.len())
            .map_err(|e| nccl_err(what, e))?;
        op(&self.nccl, &d_send, &mut d_recv).map_err(|e| nccl_err(what, e))?;
        self.stream
            .memcpy_dtoh(&d_recv, recv)
            .map_err(|e| nccl_err(what, e))?;
        self.stream.synchronize().map_err(|e| nccl_err(what, e))
    }
}

fn nccl_op(op: ReduceOp) -> NcclOp {
    match op {
        ReduceOp::Sum => NcclOp::Sum,
        ReduceOp::Avg => NcclOp::Avg,
        ReduceOp::Max => NcclOp::Max,
    }
}

impl Communicator for NcclCommunicator {
    fn rank(&self) -> usize {
        self.mpi.rank()
    }
    fn world_size(&self) -> usize {
        self.mpi.world_size()
    }
    fn local_rank(&self) -> usize {
        self.mpi.local_rank()
    }
    fn local_size(&self) -> usize {
        self.mpi.local_size()
    }
    fn backend_name(&self) -> &'static str {
        "nccl"
    }
    fn barrier(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| nccl_err("barrier", e))?;
        self.mpi.barrier()
    }
    fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32], op: ReduceOp) -> Result<()> {
        check_len("all_reduce", "recv", recv.len(), send.len())?;
        self.staged("all_reduce", send, recv, |c, s, r| {
            c.all_reduce(s, r, &nccl_op(op))
        })
    }
    // Small host-side values (losses, flags, hashes, ids) go over MPI.
    fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64], op: ReduceOp) -> Result<()> {
        self.mpi.all_reduce_f64(send, recv, op)
    }
    fn broadcast_bytes(&self, buf: &mut [u8], root: usize) -> Result<()> {
        self.mpi.broadcast_bytes(buf, root)
    }
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()> {
        if root >= self.world_size() {
            return Err(DistError::invalid(
                "broadcast",
                format!(
                    "root rank {root} does not exist in a world of {}",
                    self.world_size()
                ),
            ));
        }
        let send = buf.to_vec();
        self.staged("broadcast", &send, buf, |c, s, r| {
            c.broadcast(Some(s), r, root as i32)
        })
    }
    fn reduce_scatter_f32(&self, send: &[f32], recv: &mut [f32], op: ReduceOp) -> Result<()> {
        check_len(
            "reduce_scatter",
            "send",
            send.len(),
            recv.len() * self.world_size(),
        )?;
        self.staged("reduce_scatter", send, recv, |c, s, r| {
            c.reduce_scatter(s, r, &nccl_op(op))
        })
    }
    fn all_gather_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        check_len(
            "all_gather",
            "recv",
            recv.len(),
            send.len() * self.world_size(),
        )?;
        self.staged("all_gather", send, recv, |c, s, r| c.all_gather(s, r))
    }
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()> {
        self.mpi.all_gather_u64(send, recv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_gpu_or_nccl_init_is_an_error_not_a_panic() {
        let has_driver = unsafe { cudarc::driver::sys::is_culib_present() };
        if has_driver && find_libnccl().is_ok() {
            eprintln!("skipped: this machine has the CUDA driver and NCCL");
            return;
        }
        let err = NcclCommunicator::init().err().expect("init must fail here");
        let msg = err.to_string();
        assert!(msg.starts_with("nccl: "), "{msg}");
        assert!(msg.contains("libcuda") || msg.contains("NCCL"), "{msg}");
    }
}
