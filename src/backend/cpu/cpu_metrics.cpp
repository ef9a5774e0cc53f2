// CPU metric counts: top-k membership of a row's label and thresholded binary matches, each added
// into one element so that the CUDA versions can do the same without a host read. 16-bit elements
// are compared in float, and the count is added in float and rounded once into its 16-bit element.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_half.h"
#include "backend/dtype_dispatch.h"

namespace kiln::backend {

void CpuBackend::in_top_k_sum(DType dtype, const void* x, const int32_t* labels, void* correct, int64_t rows,
                              int64_t cols, int64_t k) {
  with_cpu_compute_type(dtype, "in_top_k", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    const T* xs = static_cast<const T*>(x);
    int64_t hits = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = xs + r * cols;
      const A target = convert_element<A>(row[labels[r]]);
      // TensorFlow's in_top_k: a row holding a non-finite value cannot say, and counts as a miss.
      bool finite = std::isfinite(target);
      int64_t greater = 0;
      for (int64_t c = 0; c < cols && finite; ++c) {
        const A v = convert_element<A>(row[c]);
        finite = std::isfinite(v);
        greater += v > target;
      }
      hits += finite && greater < k;
    }
    T* count = static_cast<T*>(correct);
    *count = convert_element<T>(convert_element<A>(*count) + static_cast<A>(hits));
  });
}

void CpuBackend::binary_accuracy_sum(DType dtype, const void* x, const void* targets, void* matches, int64_t n,
                                     double threshold, double scale) {
  with_cpu_compute_type(dtype, "binary_accuracy", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    const T* xs = static_cast<const T*>(x);
    const T* zs = static_cast<const T*>(targets);
    const A t = static_cast<A>(threshold);
    int64_t hits = 0;
    for (int64_t i = 0; i < n; ++i) hits += (convert_element<A>(xs[i]) > t ? A(1) : A(0)) == convert_element<A>(zs[i]);
    T* count = static_cast<T*>(matches);
    *count = convert_element<T>(convert_element<A>(*count) + static_cast<A>(static_cast<double>(hits) * scale));
  });
}

}  // namespace kiln::backend
