// Helpers of the tests under mpirun.
#include "mpi_test_util.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace kiln::mpi_test {

namespace {
// These tests check the MPI (CPU) path; on a machine with a GPU new models would start on it, where
// multi-worker training needs NCCL. Every model of this binary starts on the CPU.
[[maybe_unused]] const bool models_start_on_the_cpu = [] {
  set_default_device(Device::cpu());
  return true;
}();
}  // namespace

std::shared_ptr<distribute::MultiWorkerMirroredStrategy> strategy() {
  static const auto s = std::make_shared<distribute::MultiWorkerMirroredStrategy>();
  return s;
}

int rank() { return strategy()->rank(); }
int ranks() { return strategy()->num_replicas_in_sync(); }

std::vector<int32_t> all_gather(const std::vector<int32_t>& values) {
  strategy();  // MPI is initialized
  const int n = ranks();
  int mine = static_cast<int>(values.size());
  std::vector<int> counts(static_cast<std::size_t>(n)), offsets(static_cast<std::size_t>(n));
  MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
  int total = 0;
  for (int r = 0; r < n; ++r) {
    offsets[static_cast<std::size_t>(r)] = total;
    total += counts[static_cast<std::size_t>(r)];
  }
  std::vector<int32_t> out(static_cast<std::size_t>(total));
  MPI_Allgatherv(values.data(), mine, MPI_INT32_T, out.data(), counts.data(), offsets.data(), MPI_INT32_T,
                 MPI_COMM_WORLD);
  return out;
}

void barrier() {
  strategy();
  MPI_Barrier(MPI_COMM_WORLD);
}

std::string shared_dir(const std::string& name) {
  std::vector<int32_t> pid = {static_cast<int32_t>(getpid())};
  const auto pids = all_gather(pid);
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_mpi_" + name + "_" + std::to_string(pids[0]));
  if (rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  barrier();
  return dir.string();
}

}  // namespace kiln::mpi_test
