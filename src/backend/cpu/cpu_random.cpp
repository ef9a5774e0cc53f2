// CPU Philox kernels: uniform numbers and dropout from the stream of backend/philox.h, block by
// block (four elements per Philox call), exactly as the CUDA kernels draw them. 16-bit tensors get
// the float32 numbers, rounded once (uniform numbers toward zero, see below).
#include <algorithm>
#include <cstdint>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_half.h"
#include "backend/philox.h"

namespace kiln::backend {

namespace {

// Calls f(i, word) for every element i < n with the word of stream element first + i, the blocks
// (of the stream, from the one holding element first) split across threads.
template <typename F>
void for_each_word(int64_t n, uint64_t seed, int64_t step, uint64_t draw, int64_t first, F&& f) {
  const int64_t j_first = first / philox::kPerBlock;
  const int64_t blocks = (first + n + philox::kPerBlock - 1) / philox::kPerBlock - j_first;
  parallel_for_work(blocks, n, [&](int64_t b0, int64_t b1) {
    for (int64_t j = j_first + b0; j < j_first + b1; ++j) {
      const philox::Words w = philox::stream_block(seed, step, draw, static_cast<uint64_t>(j));
      const int64_t e0 = std::max(j * philox::kPerBlock, first), e1 = std::min((j + 1) * philox::kPerBlock, first + n);
      for (int64_t e = e0; e < e1; ++e) f(e - first, w.v[e - j * philox::kPerBlock]);
    }
  });
}

// u (a float32 uniform number in [0, 1)) rounded toward zero to the 16-bit type T. Why not to
// nearest: the numbers of [1 - 2^-12, 1) would round up to 1 in float16 (of [1 - 2^-9, 1) in
// bfloat16), outside the op's [0, 1), as to_uniform rounds float32's down for the same reason.
template <typename T>
T uniform_toward_zero(float u) {
  T h = convert_element<T>(u);
  // Rounded up: the next 16-bit value toward zero (h > u >= 0, so its pattern is positive).
  if (static_cast<float>(h) > u)
    h = Eigen::numext::bit_cast<T>(static_cast<uint16_t>(Eigen::numext::bit_cast<uint16_t>(h) - 1));
  return h;
}

}  // namespace

void CpuBackend::philox_uniform(DType dtype, void* y, int64_t n, uint64_t seed, const int64_t* counter, uint64_t draw) {
  with_cpu_compute_type(dtype, "random_uniform_philox", [&](auto tag) {
    using T = decltype(tag);
    T* ys = static_cast<T*>(y);
    if constexpr (is_cpu_half_v<T>)
      for_each_word(n, seed, *counter, draw, 0,
                    [&](int64_t i, uint32_t w) { ys[i] = uniform_toward_zero<T>(philox::to_uniform<float>(w)); });
    else
      for_each_word(n, seed, *counter, draw, 0, [&](int64_t i, uint32_t w) { ys[i] = philox::to_uniform<T>(w); });
  });
}

void CpuBackend::dropout(DType dtype, const void* x, void* y, int64_t n, double rate, uint64_t seed,
                         const int64_t* counter, uint64_t draw, int64_t first) {
  with_cpu_compute_type(dtype, "dropout", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    const uint64_t threshold = philox::keep_threshold(rate);
    const A scale = philox::keep_scale<A>(rate);
    for_each_word(n, seed, *counter, draw, first, [&](int64_t i, uint32_t w) {
      ys[i] = convert_element<T>(philox::dropout_of(convert_element<A>(xs[i]), w, threshold, scale));
    });
  });
}

}  // namespace kiln::backend
