// CPU softmax, log-softmax and sparse softmax cross-entropy over rows, all max-shifted so that
// large logits never overflow.
#include <cmath>
#include <limits>

#include "backend/cpu/cpu_backend.h"

namespace kiln::backend {

namespace {

// log(sum(exp(x))) of one row, stably.
template <typename T>
T log_sum_exp(const T* x, int64_t cols) {
  T mx = x[0];
  for (int64_t c = 1; c < cols; ++c) mx = std::max(mx, x[c]);
  T s = T(0);
  for (int64_t c = 0; c < cols; ++c) s += std::exp(x[c] - mx);
  return mx + std::log(s);
}

}  // namespace

void CpuBackend::softmax(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool log) {
  with_float_type(dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    parallel_for_work(rows, rows * cols, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = xs + r * cols;
        T* yr = ys + r * cols;
        const T lse = log_sum_exp(xr, cols);
        for (int64_t c = 0; c < cols; ++c) yr[c] = log ? xr[c] - lse : std::exp(xr[c] - lse);
      }
    });
  });
}

void CpuBackend::softmax_backward(DType dtype, const void* y, const void* dy, void* dx, int64_t rows, int64_t cols,
                                  bool log) {
  with_float_type(dtype, "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* ys = static_cast<const T*>(y);
    const T* dys = static_cast<const T*>(dy);
    T* dxs = static_cast<T*>(dx);
    parallel_for_work(rows, rows * cols, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* yr = ys + r * cols;
        const T* dyr = dys + r * cols;
        T* dxr = dxs + r * cols;
        if (log) {  // dx = dy - softmax * sum(dy)
          T s = T(0);
          for (int64_t c = 0; c < cols; ++c) s += dyr[c];
          for (int64_t c = 0; c < cols; ++c) dxr[c] = dyr[c] - std::exp(yr[c]) * s;
        } else {  // dx = y * (dy - sum(dy * y))
          T s = T(0);
          for (int64_t c = 0; c < cols; ++c) s += dyr[c] * yr[c];
          for (int64_t c = 0; c < cols; ++c) dxr[c] = yr[c] * (dyr[c] - s);
        }
      }
    });
  });
}

void CpuBackend::sparse_softmax_xent(DType dtype, const void* logits, const int32_t* labels, void* loss, void* dlogits,
                                     double grad_scale, int64_t rows, int64_t cols) {
  with_float_type(dtype, "sparse_softmax_cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(logits);
    T* ls = static_cast<T*>(loss);
    T* ds = static_cast<T*>(dlogits);
    const T scale = static_cast<T>(grad_scale);
    parallel_for_work(rows, rows * cols, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = xs + r * cols;
        const int32_t label = labels[r];
        const bool valid = label >= 0 && label < cols;
        const T lse = log_sum_exp(xr, cols);
        ls[r] = valid ? lse - xr[label] : std::numeric_limits<T>::quiet_NaN();
        if (ds) {
          T* dr = ds + r * cols;
          for (int64_t c = 0; c < cols; ++c) dr[c] = (std::exp(xr[c] - lse) - (c == label ? T(1) : T(0))) * scale;
        }
      }
    });
  });
}

}  // namespace kiln::backend
