// CPU Philox kernels: uniform numbers and dropout from the stream of backend/philox.h, block by
// block (four elements per Philox call), exactly as the CUDA kernels draw them.
#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "backend/philox.h"

namespace kiln::backend {

namespace {

// Calls f(i, word) for every element i < n with its stream word, the blocks split across threads.
template <typename F>
void for_each_word(int64_t n, uint64_t seed, int64_t step, uint64_t draw, F&& f) {
  const int64_t blocks = (n + philox::kPerBlock - 1) / philox::kPerBlock;
  parallel_for_work(blocks, n, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const philox::Words w = philox::stream_block(seed, step, draw, static_cast<uint64_t>(j));
      const int64_t i0 = j * philox::kPerBlock, len = std::min(philox::kPerBlock, n - i0);
      for (int64_t k = 0; k < len; ++k) f(i0 + k, w.v[k]);
    }
  });
}

}  // namespace

void CpuBackend::philox_uniform(DType dtype, void* y, int64_t n, uint64_t seed, const int64_t* counter, uint64_t draw) {
  with_float_type(dtype, "random_uniform_philox", [&](auto tag) {
    using T = decltype(tag);
    T* ys = static_cast<T*>(y);
    for_each_word(n, seed, *counter, draw, [&](int64_t i, uint32_t w) { ys[i] = philox::to_uniform<T>(w); });
  });
}

void CpuBackend::dropout(DType dtype, const void* x, void* y, int64_t n, double rate, uint64_t seed,
                         const int64_t* counter, uint64_t draw) {
  with_float_type(dtype, "dropout", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    const uint64_t threshold = philox::keep_threshold(rate);
    const T scale = philox::keep_scale<T>(rate);
    for_each_word(n, seed, *counter, draw,
                  [&](int64_t i, uint32_t w) { ys[i] = philox::dropout_of(xs[i], w, threshold, scale); });
  });
}

}  // namespace kiln::backend
