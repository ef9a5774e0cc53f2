// CPU thread count: one process-wide setting that every loop of the CPU backend (and its matrix
// products) follows, whichever thread trains or predicts.
#include "backend/backend.h"
#include "backend/cpu/thread_pool.h"
#include "kiln/config.h"
#include "kiln/error.h"
#include "kiln/memory.h"

namespace kiln {

void set_num_threads(int threads) {
  if (threads <= 0)
    throw Error("set_num_threads", "asked for " + std::to_string(threads) + " threads; expected at least 1");
  backend::set_pool_threads(threads);
}

int get_num_threads() { return backend::pool_threads(); }

MemoryStats memory_stats(Device device) { return backend::get(device).allocator().stats(); }

void empty_cache(Device device) { backend::get(device).allocator().empty_cache(); }

}  // namespace kiln
