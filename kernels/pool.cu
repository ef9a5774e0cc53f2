// Max pooling, NHWC. Forward: one thread per output cell. Backward: one thread per input cell,
// which visits the windows covering it and takes each window's gradient when it is that window's
// first maximal input (the CPU's and TensorFlow's rule). Gathering instead of scattering needs no
// atomics, so overlapping windows add in a fixed order (increasing oh, ow, as the CPU does).
// cuDNN's pooling is not used: its tie rule is not specified.
// Shape letters: N batch, H/W input, C channels, KH/KW window, OH/OW output.
#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "device_math.cuh"

namespace kiln::backend::kernels {

// ---------------------------------------------------------------------------------------------
// kernels

// Flat input index of the first maximum of window (n, oh, ow, c); -1 when it is all padding.
template <typename T>
__device__ int64_t window_argmax(const Pool2dGeometry& g, const T* x, int64_t n, int64_t oh, int64_t ow, int64_t c) {
  int64_t best = -1;
  T best_value = T(0);
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

template <typename T>
__global__ void max_pool_forward_kernel(Pool2dGeometry g, const T* x, T* y) {
  const int64_t total = g.N * g.OH * g.OW * g.C;
  KILN_FOR_EACH(o, total) {
    const int64_t c = o % g.C, ow = (o / g.C) % g.OW, oh = (o / (g.C * g.OW)) % g.OH, n = o / (g.C * g.OW * g.OH);
    const int64_t i = window_argmax(g, x, n, oh, ow, c);
    y[o] = i < 0 ? T(0) : x[i];
  }
}

// floor(a / b) for b > 0 and any sign of a.
__device__ inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

template <typename T>
__global__ void max_pool_backward_kernel(Pool2dGeometry g, const T* x, const T* dy, T* dx) {
  const int64_t total = g.N * g.H * g.W * g.C;
  KILN_FOR_EACH(i, total) {
    const int64_t c = i % g.C, iw = (i / g.C) % g.W, ih = (i / (g.C * g.W)) % g.H, n = i / (g.C * g.W * g.H);
    // Windows oh with oh*sh - pad_top <= ih <= oh*sh - pad_top + KH - 1, likewise for ow.
    const int64_t oh_lo = max(int64_t(0), floor_div(ih + g.pad_top - g.KH, g.stride_h) + 1);
    const int64_t oh_hi = min(g.OH - 1, floor_div(ih + g.pad_top, g.stride_h));
    const int64_t ow_lo = max(int64_t(0), floor_div(iw + g.pad_left - g.KW, g.stride_w) + 1);
    const int64_t ow_hi = min(g.OW - 1, floor_div(iw + g.pad_left, g.stride_w));
    T acc = T(0);
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh)
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow)
        if (window_argmax(g, x, n, oh, ow, c) == i) acc += dy[((n * g.OH + oh) * g.OW + ow) * g.C + c];
    dx[i] = acc;
  }
}

// ---------------------------------------------------------------------------------------------
// launchers

void max_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y, cudaStream_t s) {
  const int64_t total = g.N * g.OH * g.OW * g.C;
  if (total <= 0) return;
  with_float(dtype, "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    max_pool_forward_kernel<<<grid_for(total), kBlock, 0, s>>>(g, static_cast<const T*>(x), static_cast<T*>(y));
  });
  KILN_LAUNCH_CHECK("max_pool_forward_kernel");
}

void max_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* x, const void* dy, void* dx,
                         cudaStream_t s) {
  const int64_t total = g.N * g.H * g.W * g.C;
  if (total <= 0) return;
  with_float(dtype, "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    max_pool_backward_kernel<<<grid_for(total), kBlock, 0, s>>>(g, static_cast<const T*>(x),
                                                                static_cast<const T*>(dy), static_cast<T*>(dx));
  });
  KILN_LAUNCH_CHECK("max_pool_backward_kernel");
}

}  // namespace kiln::backend::kernels
