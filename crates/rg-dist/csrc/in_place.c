/* MPI_IN_PLACE is a macro whose value differs between MPI libraries (OpenMPI: 1,
 * MPICH: -1) and the `mpi` crate does not export it; this returns the value of the
 * library rg-dist is built against. */
#include <mpi.h>

void *rg_dist_mpi_in_place(void) { return MPI_IN_PLACE; }
