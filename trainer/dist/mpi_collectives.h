// Collectives over Open MPI's MPI_COMM_WORLD, for a run started by mpirun.
// Every operation is non-blocking underneath and waited on with a deadline, so
// a rank that stops answering makes the others stop with an error naming the
// operation instead of hanging; mpirun itself names a rank that exited.
#ifndef QFORGE_TRAINER_DIST_MPI_COLLECTIVES_H_
#define QFORGE_TRAINER_DIST_MPI_COLLECTIVES_H_

#include <memory>

#include "trainer/dist/collectives.h"

namespace qforge {

// Whether an MPI launcher started this process (mpirun sets
// OMPI_COMM_WORLD_SIZE, PMIx launchers PMIX_RANK).
bool StartedByMpiLauncher();

// MPI's collectives when an MPI launcher started this process, else
// SingleProcess, which needs no MPI at all. `timeout_seconds` bounds each
// collective's wait.
std::unique_ptr<Collectives> StartCollectives(double timeout_seconds);

}  // namespace qforge

#endif  // QFORGE_TRAINER_DIST_MPI_COLLECTIVES_H_
