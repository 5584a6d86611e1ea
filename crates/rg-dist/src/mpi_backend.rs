//! MPI through the `mpi` crate: `mpirun`/`srun` start the ranks, MPI moves the data.

use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::raw::AsRaw;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};
use mpi::Threading;

use crate::communicator::{check_len, finish_average_f32, finish_average_f64};
use crate::{Communicator, DistError, ReduceOp, Result};

/// The MPI world of this job and the sub-communicator of the ranks sharing this host.
pub struct MpiCommunicator {
    // Field order matters: communicators are freed before the universe finalizes MPI.
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    local_rank: usize,
    local_size: usize,
    _universe: Universe,
}

// SAFETY: MPI is initialised with `Threading::Serialized`, which allows calls from any
// thread as long as no two are concurrent; `Communicator` methods take `&self` but the
// trainer owns the communicator and calls it from one thread at a time (it is `Send`,
// not `Sync`).
unsafe impl Send for MpiCommunicator {}

impl MpiCommunicator {
    /// Initialises MPI (once per process) and splits off this host's ranks.
    pub fn init() -> Result<Self> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| {
                DistError::unavailable("mpi", "MPI was already initialised in this process")
            })?;
        if threading < Threading::Serialized {
            return Err(DistError::unavailable(
                "mpi",
                format!(
                    "the MPI library offers only {threading:?} threading, Serialized is needed"
                ),
            ));
        }
        let world = universe.world();
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        let local = world.split_shared(world.rank());
        let (local_rank, local_size) = (local.rank() as usize, local.size() as usize);
        Ok(MpiCommunicator {
            world,
            rank,
            size,
            local_rank,
            local_size,
            _universe: universe,
        })
    }

    fn check_root(&self, op: &'static str, root: usize) -> Result<()> {
        if root >= self.size {
            return Err(DistError::invalid(
                op,
                format!(
                    "root rank {root} does not exist in a world of {}",
                    self.size
                ),
            ));
        }
        Ok(())
    }
}

unsafe extern "C" {
    /// `MPI_IN_PLACE` of the library built against (`csrc/in_place.c`).
    fn rg_dist_mpi_in_place() -> *mut std::ffi::c_void;
}

fn system_op(op: ReduceOp) -> SystemOperation {
    match op {
        ReduceOp::Sum | ReduceOp::Avg => SystemOperation::sum(),
        ReduceOp::Max => SystemOperation::max(),
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.size
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn local_size(&self) -> usize {
        self.local_size
    }
    fn backend_name(&self) -> &'static str {
        "mpi"
    }
    fn barrier(&self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }
    fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32], op: ReduceOp) -> Result<()> {
        check_len("all_reduce", "recv", recv.len(), send.len())?;
        self.world.all_reduce_into(send, recv, system_op(op));
        finish_average_f32(recv, op, self.size);
        Ok(())
    }
    fn all_reduce_f32_in_place(&self, buf: &mut [f32], op: ReduceOp) -> Result<()> {
        let count = std::ffi::c_int::try_from(buf.len()).map_err(|_| {
            DistError::invalid(
                "all_reduce",
                format!(
                    "{} elements exceed MPI's count limit; use smaller buckets",
                    buf.len()
                ),
            )
        })?;
        // SAFETY: `buf` is valid for `count` f32s and exclusively borrowed for the
        // (blocking) call; MPI_IN_PLACE tells MPI to read and write it.
        let code = unsafe {
            mpi::ffi::MPI_Allreduce(
                rg_dist_mpi_in_place(),
                buf.as_mut_ptr().cast(),
                count,
                f32::equivalent_datatype().as_raw(),
                system_op(op).as_raw(),
                self.world.as_raw(),
            )
        };
        if code != 0 {
            // The default error handler aborts the job before this returns; kept for
            // handlers that return.
            return Err(DistError::invalid(
                "all_reduce",
                format!("MPI_Allreduce failed with code {code}"),
            ));
        }
        finish_average_f32(buf, op, self.size);
        Ok(())
    }
    fn reduce_f32_in_place(&self, buf: &mut [f32], root: usize, op: ReduceOp) -> Result<()> {
        self.check_root("reduce", root)?;
        let count = i32::try_from(buf.len()).map_err(|_| {
            DistError::invalid(
                "reduce",
                format!("{} elements exceed MPI's count limit", buf.len()),
            )
        })?;
        let is_root = root == self.rank;
        // SAFETY: `buf` is valid for `count` f32s and exclusively borrowed for the
        // (blocking) call. The root passes MPI_IN_PLACE (read and write `buf`); the
        // others send `buf` and pass no receive buffer, which MPI ignores there.
        let code = unsafe {
            let (send, recv) = if is_root {
                (rg_dist_mpi_in_place(), buf.as_mut_ptr().cast())
            } else {
                (buf.as_mut_ptr().cast(), std::ptr::null_mut())
            };
            mpi::ffi::MPI_Reduce(
                send,
                recv,
                count,
                f32::equivalent_datatype().as_raw(),
                system_op(op).as_raw(),
                root as i32,
                self.world.as_raw(),
            )
        };
        if code != 0 {
            return Err(DistError::invalid(
                "reduce",
                format!("MPI_Reduce failed with code {code}"),
            ));
        }
        if is_root {
            finish_average_f32(buf, op, self.size);
        }
        Ok(())
    }
    fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64], op: ReduceOp) -> Result<()> {
        check_len("all_reduce", "recv", recv.len(), send.len())?;
        self.world.all_reduce_into(send, recv, system_op(op));
        finish_average_f64(recv, op, self.size);
        Ok(())
    }
    fn broadcast_bytes(&self, buf: &mut [u8], root: usize) -> Result<()> {
        self.check_root("broadcast", root)?;
        self.world.process_at_rank(root as i32).broadcast_into(buf);
        Ok(())
    }
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()> {
        self.check_root("broadcast", root)?;
        self.world.process_at_rank(root as i32).broadcast_into(buf);
        Ok(())
    }
    fn reduce_scatter_f32(&self, send: &[f32], recv: &mut [f32], op: ReduceOp) -> Result<()> {
        check_len("reduce_scatter", "send", send.len(), recv.len() * self.size)?;
        self.world
            .reduce_scatter_block_into(send, recv, system_op(op));
        finish_average_f32(recv, op, self.size);
        Ok(())
    }
    fn all_gather_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        check_len("all_gather", "recv", recv.len(), send.len() * self.size)?;
        self.world.all_gather_into(send, recv);
        Ok(())
    }
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()> {
        check_len("all_gather", "recv", recv.len(), send.len() * self.size)?;
        self.world.all_gather_into(send, recv);
        Ok(())
    }
}
