// The MPI communicator (communicator.h) and MPI's start-up: the first one made initializes MPI
// unless the program did, and then finalizes it at exit.
#pragma once

#include <memory>

#include "distribute/communicator.h"

namespace kiln::distribute {

/// A communicator over a duplicate of MPI_COMM_WORLD, its collectives waited for up to
/// `timeout_seconds`. Only in builds with MPI (KILN_WITH_MPI).
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_seconds);

}  // namespace kiln::distribute
