use crate::{Communicator, Result, SingleProcess};

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
