// CPU reductions over [rows, cols]: column sums, row sums, row argmax. 16-bit elements are summed
// and compared in float (accumulate_t), and a sum is rounded once when stored.
#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_half.h"
#include "backend/elementwise_math.h"

namespace kiln::backend {

namespace {
// The first index of the row's maximum, or of its first NaN (NumPy's argmax). A plain ">" scan
// answered by where the NaN sat: in column 0 it won the row, anywhere else it was skipped.
template <typename T>
int64_t row_argmax(const T* row, int64_t cols) {
  using A = accumulate_t<T>;
  int64_t best = 0;
  for (int64_t c = 1; c < cols; ++c)
    if (math::greater_or_nan(convert_element<A>(row[c]), convert_element<A>(row[best]))) best = c;
  return best;
}
}  // namespace

void CpuBackend::sum_rows(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool accumulate) {
  with_cpu_compute_type(dtype, "sum_rows", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    // Rows are summed in fixed blocks (row-major, so the inner loop is contiguous and vectorises);
    // block sums are then added in block order, so the result never depends on the thread count.
    constexpr int64_t kBlock = 256;
    const int64_t blocks = (rows + kBlock - 1) / kBlock;
    std::vector<A> partial(static_cast<std::size_t>(blocks * cols), A(0));
    parallel_for_work(blocks, rows * cols, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        A* __restrict acc = partial.data() + b * cols;
        for (int64_t r = b * kBlock; r < std::min(rows, (b + 1) * kBlock); ++r) {
          const T* __restrict row = xs + r * cols;
          for (int64_t c = 0; c < cols; ++c) acc[c] += convert_element<A>(row[c]);
        }
      }
    });
    for (int64_t c = 0; c < cols; ++c) {
      A total = accumulate ? convert_element<A>(ys[c]) : A(0);
      for (int64_t b = 0; b < blocks; ++b) total += partial[b * cols + c];
      ys[c] = convert_element<T>(total);
    }
  });
}

void CpuBackend::sum_cols(DType dtype, const void* x, void* y, int64_t rows, int64_t cols) {
  with_cpu_compute_type(dtype, "sum_cols", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    parallel_for_work(rows, rows * cols, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        A acc = A(0);
        for (int64_t c = 0; c < cols; ++c) acc += convert_element<A>(xs[r * cols + c]);
        ys[r] = convert_element<T>(acc);
      }
    });
  });
}

void CpuBackend::argmax_rows(DType dtype, const void* x, int32_t* y, int64_t rows, int64_t cols) {
  with_cpu_compute_type(dtype, "argmax", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    for (int64_t r = 0; r < rows; ++r) y[r] = static_cast<int32_t>(row_argmax(xs + r * cols, cols));
  });
}

void CpuBackend::accuracy_sum(DType dtype, const void* x, const int32_t* labels, void* correct, int64_t rows,
                              int64_t cols) {
  with_cpu_compute_type(dtype, "accuracy", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    int64_t hits = 0;
    for (int64_t r = 0; r < rows; ++r) hits += row_argmax(xs + r * cols, cols) == labels[r];
    // The count stays in `dtype`: added in float and rounded once for the 16-bit types.
    using A = accumulate_t<T>;
    T* count = static_cast<T*>(correct);
    *count = convert_element<T>(convert_element<A>(*count) + static_cast<A>(hits));
  });
}

}  // namespace kiln::backend
