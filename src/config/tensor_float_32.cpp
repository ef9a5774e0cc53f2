// The TF32 switch (kiln::config::enable_tensor_float_32_execution): one process-wide flag, applied
// to every CUDA backend in use and handed to each one the loader resolves later. One mutex orders
// both, so a backend resolved while the flag changes cannot miss the change.
#include "backend/tensor_float_32.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "kiln/config.h"

namespace kiln {

namespace {

std::mutex mutex;
std::atomic<bool> enabled{false};         // kiln's default: exact float32
std::vector<backend::Backend*> backends;  // every CUDA backend handed out so far (they live until exit)

}  // namespace

void config::enable_tensor_float_32_execution(bool on) {
  std::lock_guard lock(mutex);
  if (enabled.load() == on) return;
  // All or nothing: a backend that refuses (it is recording) leaves every one as it was.
  std::size_t done = 0;
  try {
    for (; done < backends.size(); ++done) backends[done]->set_tensor_float_32(on);
  } catch (...) {
    for (std::size_t i = 0; i < done; ++i) {
      try {
        backends[i]->set_tensor_float_32(!on);
      } catch (...) {  // the first error is the one worth reporting
      }
    }
    throw;
  }
  enabled.store(on);
}

bool config::tensor_float_32_execution_enabled() { return enabled.load(); }

void backend::adopt_tensor_float_32(Backend& b) {
  std::lock_guard lock(mutex);
  if (std::find(backends.begin(), backends.end(), &b) != backends.end()) return;
  b.set_tensor_float_32(enabled.load());
  backends.push_back(&b);
}

}  // namespace kiln
