// CPU max pooling, NHWC. Padded cells never win; backward sends each gradient to the first
// maximal input of its window (as TensorFlow does).
#include <limits>

#include "backend/cpu/cpu_backend.h"

namespace kiln::backend {

namespace {

// Flat input index of the maximum of window (n, oh, ow, c); -1 when the window is all padding.
template <typename T>
int64_t window_argmax(const Pool2dGeometry& g, const T* x, int64_t n, int64_t oh, int64_t ow, int64_t c) {
  int64_t best = -1;
  T best_value = -std::numeric_limits<T>::infinity();
  for (int64_t kh = 0; kh < g.KH; ++kh) {
    const int64_t ih = oh * g.stride_h - g.pad_top + kh;
    if (ih < 0 || ih >= g.H) continue;
    for (int64_t kw = 0; kw < g.KW; ++kw) {
      const int64_t iw = ow * g.stride_w - g.pad_left + kw;
      if (iw < 0 || iw >= g.W) continue;
      const int64_t i = ((n * g.H + ih) * g.W + iw) * g.C + c;
      if (best < 0 || x[i] > best_value) {
        best = i;
        best_value = x[i];
      }
    }
  }
  return best;
}

}  // namespace

void CpuBackend::max_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y) {
  with_float_type(dtype, "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
#pragma omp parallel for if (g.N * g.OH * g.OW * g.C > kParallelGrain)
    for (int64_t row = 0; row < g.N * g.OH; ++row) {
      const int64_t n = row / g.OH, oh = row % g.OH;
      for (int64_t ow = 0; ow < g.OW; ++ow)
        for (int64_t c = 0; c < g.C; ++c) {
          const int64_t i = window_argmax(g, xs, n, oh, ow, c);
          ys[((n * g.OH + oh) * g.OW + ow) * g.C + c] = i < 0 ? T(0) : xs[i];
        }
    }
  });
}

void CpuBackend::max_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* x, const void*, const void* dy,
                                     void* dx) {
  with_float_type(dtype, "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    const T* dys = static_cast<const T*>(dy);
    T* dxs = static_cast<T*>(dx);
    fill(dtype, dx, g.N * g.H * g.W * g.C, 0.0);
    // Windows of one image may overlap, so threads split images, never one image.
#pragma omp parallel for if (g.N > 1 && g.N * g.OH * g.OW * g.C > kParallelGrain)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow)
          for (int64_t c = 0; c < g.C; ++c) {
            const int64_t i = window_argmax(g, xs, n, oh, ow, c);
            if (i >= 0) dxs[i] += dys[((n * g.OH + oh) * g.OW + ow) * g.C + c];
          }
  });
}

}  // namespace kiln::backend
