// Staging of 16-bit operands for the CPU kernels that run their float32 path on them (products,
// convolutions, pooling, image resampling): a float copy of each input, the float32 kernel, then one
// rounding of the output. Why stage rather than convert in the loops: these kernels accumulate into
// their output (a product's sums, a gradient's scatter-adds), which must stay in float until the end
// so that a 16-bit result is the float32 result rounded once.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cpu/cpu_half.h"
#include "backend/cpu/thread_pool.h"

namespace kiln::backend {

/// `n` elements of type T at `src` widened to float, split across the thread pool; empty when
/// `src` is null (an absent bias), so data_or_null() gives null back.
template <typename T>
std::vector<float> widened(const void* src, int64_t n) {
  if (!src) return {};
  std::vector<float> out(static_cast<std::size_t>(n));
  const T* s = static_cast<const T*>(src);
  float* d = out.data();
  parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) d[i] = convert_element<float>(s[i]);
  });
  return out;
}

/// The data of a staged operand, or null for an absent one.
inline const float* data_or_null(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

/// dst[i] = src[i] rounded once to T (to nearest even) for i < n, split across the thread pool.
template <typename T>
void store_rounded(const float* src, void* dst, int64_t n) {
  T* d = static_cast<T*>(dst);
  parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) d[i] = convert_element<T>(src[i]);
  });
}

}  // namespace kiln::backend
