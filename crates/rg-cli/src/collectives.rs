//! `rgrad train --collectives`: which backend joins the ranks of a data-parallel run
//! and averages their gradients. The choice is a pure function of the flag, the
//! device, the launcher's environment and what this build has, so every rule is tested
//! here without MPI, NCCL or a GPU.

use anyhow::{bail, Result};
use rusty_gradients::dist::Backend;

use crate::device::DeviceSpec;

/// The values of `--collectives`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Collectives {
    /// nccl when --device is cuda and rgrad has NCCL, mpi under a launcher, else single
    Auto,
    /// one process, no collectives
    Single,
    /// MPI between the ranks mpirun/srun started (any device)
    Mpi,
    /// NCCL between GPUs, one process per GPU (--device cuda)
    Nccl,
}

const REBUILD_MPI: &str = "cargo build --release -p rg-cli --features mpi";
const REBUILD_NCCL: &str = "cargo build --release -p rg-cli --features nccl";
const REBUILD_MPI_NCCL: &str = "cargo build --release -p rg-cli --features mpi,nccl";

/// The backend `asked` resolves to. `launched` is what `launched_by_mpi` says (an MPI
/// launcher started this process, with the world size it announced); `built` says
/// whether this build has a backend. Errors name the flag and how to rebuild.
pub fn choose(
    asked: Collectives,
    device: DeviceSpec,
    launched: Option<Option<usize>>,
    built: impl Fn(&Backend) -> bool,
) -> Result<Backend> {
    // Several ranks need a backend that connects them; a launcher that does not say
    // how many it started is taken at its word that there may be several.
    let ranks = match launched {
        Some(Some(n)) if n > 1 => Some(n),
        _ => None,
    };
    let nccl = Backend::Nccl {
        gpu: match device {
            DeviceSpec::Cuda(n) => n,
            DeviceSpec::Cpu => None,
        },
    };
    match asked {
        Collectives::Auto => {
            if device.is_cuda() && built(&nccl) {
                nccl_host_check(
                    "--collectives auto (nccl, as --device is cuda)",
                    ranks,
                    &built,
                )?;
                return Ok(nccl);
            }
            match (launched, ranks) {
                (None, _) => Ok(Backend::Single),
                (Some(_), _) if built(&Backend::Mpi) => Ok(Backend::Mpi),
                (Some(_), Some(n)) => bail!(
                    "--collectives auto: started by an MPI launcher with {n} ranks, but this \
                     rgrad was built without MPI (rebuild with `{REBUILD_MPI}`, or \
                     `{REBUILD_MPI_NCCL}` for GPUs)"
                ),
                (Some(_), None) => Ok(Backend::Single),
            }
        }
        Collectives::Single => {
            if let Some(n) = ranks {
                bail!(
                    "--collectives single: started by an MPI launcher with {n} ranks, which \
                     would train {n} independent models writing the same files (use \
                     --collectives auto, mpi or nccl, or run without the launcher)"
                );
            }
            Ok(Backend::Single)
        }
        Collectives::Mpi => {
            if !built(&Backend::Mpi) {
                bail!(
                    "--collectives mpi: this rgrad was built without MPI (rebuild with \
                     `{REBUILD_MPI}`)"
                );
            }
            Ok(Backend::Mpi)
        }
        Collectives::Nccl => {
            if !built(&nccl) {
                bail!(
                    "--collectives nccl: this rgrad was built without NCCL (rebuild with \
                     `{REBUILD_NCCL}`, or `{REBUILD_MPI_NCCL}` to run under mpirun)"
                );
            }
            if !device.is_cuda() {
                bail!(
                    "--collectives nccl: NCCL runs on GPUs and needs --device cuda or \
                     cuda:N, not --device cpu (use --collectives single or mpi on the CPU)"
                );
            }
            nccl_host_check("--collectives nccl", ranks, &built)?;
            Ok(nccl)
        }
    }
}

/// NCCL's ranks learn rank 0's id over MPI; without MPI only a world of one works.
fn nccl_host_check(
    flag: &str,
    ranks: Option<usize>,
    built: &impl Fn(&Backend) -> bool,
) -> Result<()> {
    if let Some(n) = ranks {
        if !built(&Backend::Mpi) {
            bail!(
                "{flag}: started by an MPI launcher with {n} ranks, but this rgrad was built \
                 without MPI, which passes NCCL's id between the ranks (rebuild with \
                 `{REBUILD_MPI_NCCL}`)"
            );
        }
    }
    Ok(())
}

/// Context for an error while joining the world through `backend`.
pub fn joining(asked: Collectives, backend: Backend) -> String {
    match (asked, backend) {
        (Collectives::Auto, Backend::Nccl { .. }) => {
            "--collectives auto chose nccl for --device cuda (for one process, \
             --collectives single trains on the GPU without NCCL)"
                .to_string()
        }
        (Collectives::Auto, b) => format!("--collectives auto chose {}", b.name()),
        (_, b) => format!("--collectives {}", b.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Collectives::{Auto, Mpi, Nccl, Single};

    const CPU: DeviceSpec = DeviceSpec::Cpu;
    const CUDA: DeviceSpec = DeviceSpec::Cuda(None);
    /// Not started by a launcher.
    const ALONE: Option<Option<usize>> = None;

    fn builds(mpi: bool, nccl: bool) -> impl Fn(&Backend) -> bool {
        move |b| match b {
            Backend::Single => true,
            Backend::Mpi => mpi,
            Backend::Nccl { .. } => nccl,
        }
    }

    fn chosen(
        asked: Collectives,
        device: DeviceSpec,
        launched: Option<Option<usize>>,
        mpi: bool,
        nccl: bool,
    ) -> Backend {
        choose(asked, device, launched, builds(mpi, nccl)).unwrap()
    }

    fn refused(
        asked: Collectives,
        device: DeviceSpec,
        launched: Option<Option<usize>>,
        mpi: bool,
        nccl: bool,
    ) -> String {
        let err = choose(asked, device, launched, builds(mpi, nccl)).unwrap_err();
        format!("{err:#}")
    }

    #[test]
    fn auto_takes_nccl_for_cuda_when_built_in() {
        let nccl = Backend::Nccl { gpu: None };
        assert_eq!(chosen(Auto, CUDA, ALONE, false, true), nccl);
        assert_eq!(chosen(Auto, CUDA, Some(Some(8)), true, true), nccl);
        assert_eq!(
            chosen(Auto, DeviceSpec::Cuda(Some(1)), ALONE, false, true),
            Backend::Nccl { gpu: Some(1) }
        );
        // Without NCCL a CUDA run falls back to what the launcher says.
        assert_eq!(chosen(Auto, CUDA, ALONE, true, false), Backend::Single);
        assert_eq!(chosen(Auto, CUDA, Some(Some(2)), true, false), Backend::Mpi);
    }

    #[test]
    fn auto_on_the_cpu_is_mpi_under_a_launcher_else_single() {
        for nccl in [false, true] {
            assert_eq!(chosen(Auto, CPU, ALONE, true, nccl), Backend::Single);
            assert_eq!(chosen(Auto, CPU, Some(Some(2)), true, nccl), Backend::Mpi);
            assert_eq!(chosen(Auto, CPU, Some(None), true, nccl), Backend::Mpi);
            // mpirun -n 1 of a build without MPI is one process either way.
            assert_eq!(
                chosen(Auto, CPU, Some(Some(1)), false, nccl),
                Backend::Single
            );
        }
        let msg = refused(Auto, CPU, Some(Some(2)), false, false);
        assert!(msg.starts_with("--collectives auto: "), "{msg}");
        assert!(msg.contains("with 2 ranks"), "{msg}");
        assert!(msg.contains("--features mpi"), "{msg}");
    }

    #[test]
    fn explicit_backends_that_are_built_in() {
        assert_eq!(chosen(Single, CUDA, ALONE, true, true), Backend::Single);
        assert_eq!(
            chosen(Single, CPU, Some(Some(1)), true, true),
            Backend::Single
        );
        assert_eq!(chosen(Mpi, CPU, Some(Some(2)), true, false), Backend::Mpi);
        assert_eq!(chosen(Mpi, CUDA, ALONE, true, true), Backend::Mpi);
        assert_eq!(
            chosen(Nccl, CUDA, ALONE, false, true),
            Backend::Nccl { gpu: None }
        );
        assert_eq!(
            chosen(Nccl, DeviceSpec::Cuda(Some(3)), Some(Some(4)), true, true),
            Backend::Nccl { gpu: Some(3) }
        );
    }

    #[test]
    fn a_backend_not_built_in_names_the_flag_and_the_rebuild() {
        let msg = refused(Mpi, CPU, ALONE, false, true);
        assert!(msg.starts_with("--collectives mpi: "), "{msg}");
        assert!(msg.contains("built without MPI"), "{msg}");
        assert!(msg.contains("--features mpi`"), "{msg}");

        let msg = refused(Nccl, CUDA, ALONE, true, false);
        assert!(msg.starts_with("--collectives nccl: "), "{msg}");
        assert!(msg.contains("built without NCCL"), "{msg}");
        assert!(msg.contains("--features nccl`"), "{msg}");
    }

    #[test]
    fn nccl_on_the_cpu_is_refused_by_name() {
        let msg = refused(Nccl, CPU, ALONE, true, true);
        assert!(msg.starts_with("--collectives nccl: "), "{msg}");
        assert!(msg.contains("--device cpu"), "{msg}");
    }

    #[test]
    fn nccl_across_ranks_needs_mpi_built_in() {
        let msg = refused(Nccl, CUDA, Some(Some(8)), false, true);
        assert!(msg.starts_with("--collectives nccl: "), "{msg}");
        assert!(msg.contains("with 8 ranks"), "{msg}");
        assert!(msg.contains("--features mpi,nccl"), "{msg}");
        let msg = refused(Auto, CUDA, Some(Some(8)), false, true);
        assert!(msg.starts_with("--collectives auto (nccl"), "{msg}");
        assert!(msg.contains("--features mpi,nccl"), "{msg}");
        // One rank needs nothing to pass the id to.
        assert_eq!(
            chosen(Nccl, CUDA, Some(Some(1)), false, true),
            Backend::Nccl { gpu: None }
        );
    }

    #[test]
    fn single_under_a_launcher_of_several_ranks_is_refused() {
        let msg = refused(Single, CPU, Some(Some(2)), true, false);
        assert!(msg.starts_with("--collectives single: "), "{msg}");
        assert!(msg.contains("2 ranks"), "{msg}");
    }

    #[test]
    fn the_error_context_says_what_auto_chose() {
        let nccl = Backend::Nccl { gpu: None };
        assert!(joining(Auto, nccl).contains("auto chose nccl"));
        assert!(joining(Auto, nccl).contains("--collectives single"));
        assert_eq!(joining(Auto, Backend::Mpi), "--collectives auto chose mpi");
        assert_eq!(joining(Nccl, nccl), "--collectives nccl");
    }
}
