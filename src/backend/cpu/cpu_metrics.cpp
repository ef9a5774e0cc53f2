// CPU metric counts: top-k membership of a row's label and thresholded binary matches, each added
// into one element so that the CUDA versions can do the same without a host read.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/dtype_dispatch.h"

namespace kiln::backend {

void CpuBackend::in_top_k_sum(DType dtype, const void* x, const int32_t* labels, void* correct, int64_t rows,
                              int64_t cols, int64_t k) {
  with_float_type(dtype, "in_top_k", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    int64_t hits = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = xs + r * cols;
      const T target = row[labels[r]];
      // TensorFlow's in_top_k: a row holding a non-finite value cannot say, and counts as a miss.
      bool finite = std::isfinite(target);
      int64_t greater = 0;
      for (int64_t c = 0; c < cols && finite; ++c) {
        finite = std::isfinite(row[c]);
        greater += row[c] > target;
      }
      hits += finite && greater < k;
    }
    *static_cast<T*>(correct) += static_cast<T>(hits);
  });
}

void CpuBackend::binary_accuracy_sum(DType dtype, const void* x, const void* targets, void* matches, int64_t n,
                                     double threshold, double scale) {
  with_float_type(dtype, "binary_accuracy", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    const T* zs = static_cast<const T*>(targets);
    const T t = static_cast<T>(threshold);
    int64_t hits = 0;
    for (int64_t i = 0; i < n; ++i) hits += (xs[i] > t ? T(1) : T(0)) == zs[i];
    *static_cast<T*>(matches) += static_cast<T>(static_cast<double>(hits) * scale);
  });
}

}  // namespace kiln::backend
