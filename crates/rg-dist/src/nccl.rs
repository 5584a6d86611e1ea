//! NCCL on GPUs: one process per GPU (the local rank picks the device unless the
//! caller names one), NCCL for the f32 collectives, on a stream of their own. The
//! host-side collectives (the NCCL id from rank 0, as llm.c passes it; losses, flags,
//! hashes) go through a host [`Communicator`]: MPI under a launcher, or a world of one,
//! where rank 0 makes the id itself and nothing needs to travel.
//!
//! The primitives take host buffers (the `Communicator` contract) and stage them
//! through device buffers; a trainer keeping gradients on the GPU would hand NCCL its
//! device memory directly, which needs `rg-cuda` to expose its buffers (not yet).

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::{Comm, Id, ReduceOp as NcclOp};

use crate::communicator::check_len;
use crate::{find_libnccl, Communicator, DistError, ReduceOp, Result};

pub struct NcclCommunicator {
    // Dropped first: the NCCL communicator before the host world it was set up over
    // (MPI must still be initialised while NCCL tears down).
    nccl: Comm,
    stream: Arc<CudaStream>,
    host: Box<dyn Communicator>,
}

// SAFETY: `Comm` holds NCCL's raw communicator handle, which NCCL allows any thread to
// use as long as calls on it do not overlap; the trainer owns this communicator and
// calls it from one thread at a time (the trait is `Send`, not `Sync`). The host world
// is `Send` by the trait's bound.
unsafe impl Send for NcclCommunicator {}

fn nccl_err(what: &str, e: impl std::fmt::Debug) -> DistError {
    DistError::unavailable("nccl", format!("{what}: {e:?}"))
}

impl NcclCommunicator {
    /// NCCL over the world the launcher set up ([`crate::from_env`]: MPI under
    /// `mpirun`/`srun` when built with `mpi`, else a world of one), on GPU `local_rank`.
    pub fn init() -> Result<Self> {
        Self::over(crate::from_env()?, None)
    }

    /// NCCL over the ranks of `host`, on GPU `gpu` (`None`: the GPU numbered by the
    /// local rank, one process per GPU). Checks first that the CUDA driver and NCCL
    /// load, so a missing library is an error rather than cudarc's panic. Every rank of
    /// `host` must call it: rank 0 makes the NCCL id and broadcasts it over `host`.
    pub fn over(host: Box<dyn Communicator>, gpu: Option<usize>) -> Result<Self> {
        // SAFETY: only probes whether the driver library loads.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(DistError::unavailable(
                "nccl",
                "the CUDA driver (libcuda.so) is not installed; NCCL needs a GPU",
            ));
        }
        find_libnccl()?;
        let gpu = gpu.unwrap_or_else(|| host.local_rank());
        let ctx = CudaContext::new(gpu).map_err(|e| nccl_err(&format!("opening GPU {gpu}"), e))?;
        let stream = ctx.new_stream().map_err(|e| nccl_err("new stream", e))?;
        let mut id_bytes = [0u8; 128];
        if host.rank() == 0 {
            let id = Id::new().map_err(|e| nccl_err("ncclGetUniqueId", e))?;
            for (b, c) in id_bytes.iter_mut().zip(id.internal()) {
                *b = *c as u8;
            }
        }
        host.broadcast_bytes(&mut id_bytes, 0)?;
        let id = Id::uninit(id_bytes.map(|b| b as std::ffi::c_char));
        let nccl = Comm::from_rank(stream.clone(), host.rank(), host.world_size(), id)
            .map_err(|e| nccl_err("ncclCommInitRank", e))?;
        Ok(NcclCommunicator { nccl, stream, host })
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
        // Every rank passes the same lengths, so all skip together; the driver refuses
        // allocations of zero bytes.
        if send.is_empty() && recv.is_empty() {
            return Ok(());
        }
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
        self.host.rank()
    }
    fn world_size(&self) -> usize {
        self.host.world_size()
    }
    fn local_rank(&self) -> usize {
        self.host.local_rank()
    }
    fn local_size(&self) -> usize {
        self.host.local_size()
    }
    fn backend_name(&self) -> &'static str {
        "nccl"
    }
    fn barrier(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| nccl_err("barrier", e))?;
        self.host.barrier()
    }
    fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32], op: ReduceOp) -> Result<()> {
        check_len("all_reduce", "recv", recv.len(), send.len())?;
        self.staged("all_reduce", send, recv, |c, s, r| {
            c.all_reduce(s, r, &nccl_op(op))
        })
    }
    // Small host-side values (losses, flags, hashes, ids) go over the host world:
    // staging a few bytes through the GPU would cost more than the message.
    fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64], op: ReduceOp) -> Result<()> {
        self.host.all_reduce_f64(send, recv, op)
    }
    fn broadcast_bytes(&self, buf: &mut [u8], root: usize) -> Result<()> {
        self.host.broadcast_bytes(buf, root)
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
        self.host.all_gather_u64(send, recv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SingleProcess;

    fn has_gpu_libraries() -> bool {
        // SAFETY: only probes whether the driver library loads.
        let has_driver = unsafe { cudarc::driver::sys::is_culib_present() };
        has_driver && find_libnccl().is_ok()
    }

    fn assert_clear_error(err: DistError) {
        let msg = err.to_string();
        assert!(msg.starts_with("nccl: "), "{msg}");
        assert!(msg.contains("libcuda") || msg.contains("NCCL"), "{msg}");
    }

    #[test]
    fn without_a_gpu_or_nccl_init_is_an_error_not_a_panic() {
        if has_gpu_libraries() {
            eprintln!("skipped: this machine has the CUDA driver and NCCL");
            return;
        }
        assert_clear_error(NcclCommunicator::init().err().expect("init must fail here"));
    }

    #[test]
    fn over_a_world_of_one_without_a_gpu_is_an_error_not_a_panic() {
        if has_gpu_libraries() {
            eprintln!("skipped: this machine has the CUDA driver and NCCL");
            return;
        }
        let err = NcclCommunicator::over(Box::new(SingleProcess), Some(0))
            .err()
            .expect("must fail here");
        assert_clear_error(err);
    }
}
