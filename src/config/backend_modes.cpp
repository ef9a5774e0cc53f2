// The process-wide math modes of the GPU backends: TF32 (kiln::config::
// enable_tensor_float_32_execution) and op determinism (kiln::config::enable_op_determinism). Each
// is one flag, applied to every CUDA backend in use and handed to each one the loader resolves
// later. One mutex orders both, so a backend resolved while a flag changes cannot miss the change.
#include "backend/backend_modes.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "kiln/config.h"

namespace kiln {

namespace {

std::mutex mutex;
std::atomic<bool> tf32{false};  // kiln's default: exact float32
// kiln's default: the fastest algorithms, deterministic or not (bench/README.md has the measurement).
std::atomic<bool> determinism{false};
std::vector<backend::Backend*> backends;  // every CUDA backend handed out so far (they live until exit)

// Sets a mode on every backend, all or nothing: a backend that refuses (it is recording) leaves
// every one as it was.
void apply(std::atomic<bool>& flag, bool on, void (backend::Backend::*set)(bool)) {
  std::lock_guard lock(mutex);
  if (flag.load() == on) return;
  std::size_t done = 0;
  try {
    for (; done < backends.size(); ++done) (backends[done]->*set)(on);
  } catch (...) {
    for (std::size_t i = 0; i < done; ++i) {
      try {
        (backends[i]->*set)(!on);
      } catch (...) {  // the first error is the one worth reporting
      }
    }
    throw;
  }
  flag.store(on);
}

}  // namespace

void config::enable_tensor_float_32_execution(bool on) { apply(tf32, on, &backend::Backend::set_tensor_float_32); }

bool config::tensor_float_32_execution_enabled() { return tf32.load(); }

void config::enable_op_determinism(bool on) { apply(determinism, on, &backend::Backend::set_op_determinism); }

bool config::op_determinism_enabled() { return determinism.load(); }

void backend::adopt_backend_modes(Backend& b) {
  std::lock_guard lock(mutex);
  if (std::find(backends.begin(), backends.end(), &b) != backends.end()) return;
  b.set_tensor_float_32(tf32.load());
  b.set_op_determinism(determinism.load());
  backends.push_back(&b);
}

}  // namespace kiln
