// Helpers of the tests that run under mpirun: this process's rank, gathering what each rank saw,
// the models and data the tests train, and comparing weights.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

/// A small classifier: Dense(8, relu) -> Dense(3), optionally with BatchNormalization between,
/// compiled with `optimizer`, SparseCategoricalCrossentropy(from_logits) and accuracy; built from seed.
Sequential classifier(uint64_t seed, const std::string& optimizer = "sgd", bool batch_norm = false);
/// n samples of 4 features and labels in 0..2 (deterministic).
std::pair<Tensor, Tensor> data(int64_t n, uint64_t seed = 7);
/// Every trainable and non-trainable weight, flattened, in layer order.
std::vector<float> flat_weights(const Model& model);
/// max |a - b| / max |b|.
double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace kiln::mpi_test
