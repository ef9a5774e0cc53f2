// CPU softmax, log-softmax and sparse softmax cross-entropy over rows, all max-shifted so that
// large logits never overflow. 16-bit elements are read into float (accumulate_t), computed on as
// float32's are, and rounded once when stored.
#include <cmath>
#include <limits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_half.h"

namespace kiln::backend {

namespace {

// log(sum(exp(x))) of one row, stably, in accumulate_t<T>.
template <typename T>
accumulate_t<T> log_sum_exp(const T* x, int64_t cols) {
  using A = accumulate_t<T>;
  A mx = convert_element<A>(x[0]);
  for (int64_t c = 1; c < cols; ++c) mx = std::max(mx, convert_element<A>(x[c]));
  A s = A(0);
  for (int64_t c = 0; c < cols; ++c) s += std::exp(convert_element<A>(x[c]) - mx);
  return mx + std::log(s);
}

}  // namespace

void CpuBackend::softmax(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool log) {
  with_cpu_compute_type(dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    parallel_for_work(rows, rows * cols, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = xs + r * cols;
        T* yr = ys + r * cols;
        const A lse = log_sum_exp(xr, cols);
        for (int64_t c = 0; c < cols; ++c) {
          const A v = convert_element<A>(xr[c]);
          yr[c] = convert_element<T>(log ? v - lse : std::exp(v - lse));
        }
      }
    });
  });
}

void CpuBackend::softmax_backward(DType dtype, const void* y, const void* dy, void* dx, int64_t rows, int64_t cols,
                                  bool log) {
  with_cpu_compute_type(dtype, "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    const T* ys = static_cast<const T*>(y);
    const T* dys = static_cast<const T*>(dy);
    T* dxs = static_cast<T*>(dx);
    const auto at = [](const T* p, int64_t c) { return convert_element<A>(p[c]); };
    parallel_for_work(rows, rows * cols, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* yr = ys + r * cols;
        const T* dyr = dys + r * cols;
        T* dxr = dxs + r * cols;
        if (log) {  // dx = dy - softmax * sum(dy)
          A s = A(0);
          for (int64_t c = 0; c < cols; ++c) s += at(dyr, c);
          for (int64_t c = 0; c < cols; ++c) dxr[c] = convert_element<T>(at(dyr, c) - std::exp(at(yr, c)) * s);
        } else {  // dx = y * (dy - sum(dy * y))
          A s = A(0);
          for (int64_t c = 0; c < cols; ++c) s += at(dyr, c) * at(yr, c);
          for (int64_t c = 0; c < cols; ++c) dxr[c] = convert_element<T>(at(yr, c) * (at(dyr, c) - s));
        }
      }
    });
  });
}

void CpuBackend::sparse_softmax_xent(DType dtype, const void* logits, const int32_t* labels, void* loss, void* dlogits,
                                     double grad_scale, int64_t rows, int64_t cols) {
  with_cpu_compute_type(dtype, "sparse_softmax_cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    const T* xs = static_cast<const T*>(logits);
    T* ls = static_cast<T*>(loss);
    T* ds = static_cast<T*>(dlogits);
    const A scale = static_cast<A>(grad_scale);
    parallel_for_work(rows, rows * cols, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = xs + r * cols;
        const int32_t label = labels[r];
        const bool valid = label >= 0 && label < cols;
        const A lse = log_sum_exp(xr, cols);
        ls[r] = convert_element<T>(valid ? lse - convert_element<A>(xr[label]) : std::numeric_limits<A>::quiet_NaN());
        if (ds) {
          T* dr = ds + r * cols;
          for (int64_t c = 0; c < cols; ++c)
            dr[c] =
                convert_element<T>((std::exp(convert_element<A>(xr[c]) - lse) - (c == label ? A(1) : A(0))) * scale);
        }
      }
    });
  });
}

}  // namespace kiln::backend
