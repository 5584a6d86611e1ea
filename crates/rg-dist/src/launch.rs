use crate::{Communicator, DistError, Result, SingleProcess};

/// Environment variables through which launchers announce the world size: OpenMPI's
/// `mpirun`, MPICH/Hydra (PMI), and PMIx (`srun --mpi=pmix`, OpenMPI 5).
const WORLD_SIZE_VARS: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"];
const LAUNCHER_VARS: &[&str] = &["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"];

/// Whether an MPI launcher started this process, and the world size it announced
/// (`None` when it does not say).
pub fn launched_by_mpi() -> Option<Option<usize>> {
    let launched = LAUNCHER_VARS
        .iter()
        .chain(WORLD_SIZE_VARS)
        .any(|v| std::env::var_os(v).is_some());
    if !launched {
        return None;
    }
    let size = WORLD_SIZE_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
    Some(size)
}

/// The world this process belongs to: MPI's when a launcher started it (and the `mpi`
/// feature is built in), otherwise a world of one. Started by `mpirun -n 2` without
/// the feature is an error rather than two independent runs writing the same files.
pub fn from_env() -> Result<Box<dyn Communicator>> {
    match launched_by_mpi() {
        None => Ok(Box::new(SingleProcess)),
        Some(size) => join_mpi(size),
    }
}

#[cfg(feature = "mpi")]
fn join_mpi(_size: Option<usize>) -> Result<Box<dyn Communicator>> {
    Ok(Box::new(crate::MpiCommunicator::init()?))
}

#[cfg(not(feature = "mpi"))]
fn join_mpi(size: Option<usize>) -> Result<Box<dyn Communicator>> {
    match size {
        Some(n) if n > 1 => Err(crate::DistError::unavailable(
            "mpi",
            format!(
                "this process was started by an MPI launcher with {n} ranks, but it was \
                 built without MPI support (rebuild with `--features mpi`)"
            ),
        )),
        _ => Ok(Box::new(SingleProcess)),
    }
}

/// A collectives backend, as chosen by the caller (`rgrad train --collectives`) rather
/// than by the environment alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A world of one process.
    Single,
    /// MPI over the ranks a launcher started (on a host without one, a world of one).
    Mpi,
    /// NCCL on a GPU, its host-side messages over [`from_env`]'s world. `gpu: None`
    /// runs on the GPU numbered by the local rank (one process per GPU).
    Nccl { gpu: Option<usize> },
}

impl Backend {
    /// `single`, `mpi` or `nccl`, as [`Communicator::backend_name`] reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Single => "single",
            Backend::Mpi => "mpi",
            Backend::Nccl { .. } => "nccl",
        }
    }

    /// Whether this build has the backend (features `mpi`, `nccl`).
    pub fn is_built_in(&self) -> bool {
        match self {
            Backend::Single => true,
            Backend::Mpi => cfg!(feature = "mpi"),
            Backend::Nccl { .. } => cfg!(feature = "nccl"),
        }
    }

    /// Joins the world through this backend. A backend this build lacks is an error
    /// naming the feature to rebuild with.
    pub fn open(self) -> Result<Box<dyn Communicator>> {
        match self {
            Backend::Single => return Ok(Box::new(SingleProcess)),
            #[cfg(feature = "mpi")]
            Backend::Mpi => return Ok(Box::new(crate::MpiCommunicator::init()?)),
            #[cfg(feature = "nccl")]
            Backend::Nccl { gpu } => {
                return Ok(Box::new(crate::NcclCommunicator::over(from_env()?, gpu)?))
            }
            // Reached only by the backends this build lacks (none with both features).
            #[allow(unreachable_patterns)]
            _ => {}
        }
        let name = self.name();
        Err(DistError::unavailable(
            name,
            format!("this build has no {name} support (rebuild with `--features {name}`)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_is_always_built_in_and_opens_a_world_of_one() {
        assert!(Backend::Single.is_built_in());
        let comm = Backend::Single.open().unwrap();
        assert_eq!((comm.rank(), comm.world_size()), (0, 1));
        assert_eq!(comm.backend_name(), Backend::Single.name());
    }

    #[test]
    fn a_backend_not_built_in_is_an_error_naming_the_feature() {
        for backend in [Backend::Mpi, Backend::Nccl { gpu: None }] {
            if backend.is_built_in() {
                continue;
            }
            let msg = backend.open().err().expect("not built in").to_string();
            let name = backend.name();
            assert!(msg.starts_with(&format!("{name}: ")), "{msg}");
            assert!(msg.contains(&format!("--features {name}")), "{msg}");
        }
    }
}
