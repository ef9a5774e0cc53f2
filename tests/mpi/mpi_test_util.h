// Helpers of the tests that run under mpirun: this process's rank, gathering what each rank saw;
// the models, data and comparisons come from data_parallel_support.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data_parallel_support.h"
#include "kiln/kiln.h"

namespace kiln::mpi_test {

/// The strategy of the test process (made once; MPI lives until the process ends).
std::shared_ptr<distribute::MultiWorkerMirroredStrategy> strategy();
/// This process's rank and the number of ranks.
int rank();
int ranks();
/// Every rank's `values`, concatenated in rank order (MPI_Allgatherv on MPI_COMM_WORLD).
std::vector<int32_t> all_gather(const std::vector<int32_t>& values);
/// MPI_Barrier on MPI_COMM_WORLD.
void barrier();
/// A directory every rank shares (made by rank 0, named by rank 0's pid), empty.
std::string shared_dir(const std::string& name);

using data_parallel_test::batch_norm;
using data_parallel_test::classifier;
using data_parallel_test::data;
using data_parallel_test::expect_history_near;
using data_parallel_test::flat_weights;
using data_parallel_test::max_relative_difference;

}  // namespace kiln::mpi_test
