// CPU thread count: OpenMP loops and Eigen's GEMM both follow it.
#include <omp.h>

#include <Eigen/Core>

#include "kiln/config.h"
#include "kiln/error.h"
#include "kiln/memory.h"
#include "backend/backend.h"

namespace kiln {

void set_num_threads(int threads) {
  if (threads <= 0)
    throw Error("set_num_threads", "asked for " + std::to_string(threads) + " threads; expected at least 1");
  omp_set_num_threads(threads);
  Eigen::setNbThreads(threads);
}

int get_num_threads() { return omp_get_max_threads(); }

MemoryStats memory_stats(Device device) { return backend::get(device).allocator().stats(); }

void empty_cache(Device device) { backend::get(device).allocator().empty_cache(); }

}  // namespace kiln
