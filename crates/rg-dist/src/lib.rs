//! Collectives for data-parallel training: a [`Communicator`] over a world of one
//! ([`SingleProcess`], no dependency), MPI (feature `mpi`) or NCCL (feature `nccl`, with
//! or without `mpi`).
//!
//! Backends implement a few primitives on host `f32`/`f64`/byte buffers; the tensor
//! operations (in place all-reduce and broadcast, reduce-scatter and all-gather of flat
//! tensors) and the bucketed gradient all-reduce are built on those, so every backend
//! gets them. Launchers (`mpirun`, `srun`) start the processes; [`from_env`] joins the
//! world they set up, [`Backend::open`] joins it through a backend the caller chose.

mod bucket;
mod communicator;
mod error;
mod launch;
#[cfg(feature = "mpi")]
mod mpi_backend;
#[cfg(feature = "nccl")]
mod nccl;
#[cfg(not(target_arch = "wasm32"))]
mod nccl_library;
mod param_hash;
mod single;

pub use bucket::{BucketedAllReduce, ExchangeReport, DEFAULT_BUCKET_BYTES};
pub use communicator::{Communicator, ReduceOp};
pub use error::{DistError, Result};
pub use launch::{from_env, launched_by_mpi, Backend};
#[cfg(feature = "mpi")]
pub use mpi_backend::MpiCommunicator;
#[cfg(feature = "nccl")]
pub use nccl::NcclCommunicator;
#[cfg(not(target_arch = "wasm32"))]
pub use nccl_library::find_libnccl;
pub use param_hash::{check_same_everywhere, hash_tensors};
pub use single::SingleProcess;
