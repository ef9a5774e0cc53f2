// CPU 2-D convolution, NHWC, by im2col + GEMM (Eigen). Patches of a chunk of images are unrolled
// into rows [N*OH*OW, KH*KW*C] whose column order matches the kernel layout [KH, KW, C, F], so
// the forward pass is one GEMM per chunk and its output is already NHWC.
// Shape letters: N batch, H/W input size, C channels, KH/KW kernel, F filters, OH/OW output.
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace kiln::backend {

namespace {

// Caps the patch buffer so that large batches do not unroll into gigabytes.
constexpr int64_t kPatchBufferElems = int64_t(8) << 20;

int64_t images_per_chunk(const Conv2dGeometry& g) {
  const int64_t per_image = g.OH * g.OW * g.KH * g.KW * g.C;
  return std::clamp<int64_t>(kPatchBufferElems / std::max<int64_t>(per_image, 1), 1, g.N);
}

template <typename T>
void im2col(const Conv2dGeometry& g, const T* x, int64_t n0, int64_t n_count, T* patches) {
  const int64_t K = g.KH * g.KW * g.C, row_cells = g.KW * g.C;
  const int64_t rows = n_count * g.OH * g.OW;
#pragma omp parallel for if (rows * K > kParallelGrain)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t n = n0 + row / (g.OH * g.OW);
    const int64_t oh = (row / g.OW) % g.OH, ow = row % g.OW;
    const int64_t iw0 = ow * g.stride_w - g.pad_left;
    const bool columns_inside = iw0 >= 0 && iw0 + g.KW <= g.W;
    T* dst = patches + row * K;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.stride_h - g.pad_top + kh;
      T* cells = dst + kh * row_cells;
      if (ih < 0 || ih >= g.H) {
        std::fill(cells, cells + row_cells, T(0));
      } else if (columns_inside) {  // the window's row is KW*C contiguous input values
        const T* src = x + ((n * g.H + ih) * g.W + iw0) * g.C;
        for (int64_t j = 0; j < row_cells; ++j) cells[j] = src[j];
      } else {
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t iw = iw0 + kw;
          T* cell = cells + kw * g.C;
          if (iw < 0 || iw >= g.W) std::fill(cell, cell + g.C, T(0));
          else std::copy_n(x + ((n * g.H + ih) * g.W + iw) * g.C, g.C, cell);
        }
      }
    }
  }
}

// Adds patch gradients back onto the image gradient; images are independent, so threads split them.
template <typename T>
void col2im_add(const Conv2dGeometry& g, const T* dpatches, int64_t n0, int64_t n_count, T* dx) {
  const int64_t K = g.KH * g.KW * g.C;
#pragma omp parallel for if (n_count > 1)
  for (int64_t i = 0; i < n_count; ++i) {
    const int64_t n = n0 + i;
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const T* src = dpatches + ((i * g.OH + oh) * g.OW + ow) * K;
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          const int64_t ih = oh * g.stride_h - g.pad_top + kh;
          if (ih < 0 || ih >= g.H) continue;
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const int64_t iw = ow * g.stride_w - g.pad_left + kw;
            if (iw < 0 || iw >= g.W) continue;
            const T* cell = src + (kh * g.KW + kw) * g.C;
            T* out = dx + ((n * g.H + ih) * g.W + iw) * g.C;
            for (int64_t c = 0; c < g.C; ++c) out[c] += cell[c];
          }
        }
      }
  }
}

}  // namespace

void CpuBackend::conv2d_forward(DType dtype, const Conv2dGeometry& g, const void* x, const void* w, void* y) {
  with_float_type(dtype, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const int64_t K = g.KH * g.KW * g.C, chunk = images_per_chunk(g), rows_per_image = g.OH * g.OW;
    std::vector<T> patches(static_cast<std::size_t>(chunk * rows_per_image * K));
    for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
      const int64_t count = std::min(chunk, g.N - n0);
      im2col(g, static_cast<const T*>(x), n0, count, patches.data());
      gemm(dtype, false, false, count * rows_per_image, g.F, K, 1.0, patches.data(), w, 0.0,
           static_cast<T*>(y) + n0 * rows_per_image * g.F);
    }
  });
}

void CpuBackend::conv2d_backward_data(DType dtype, const Conv2dGeometry& g, const void* dy, const void* w, void* dx) {
  with_float_type(dtype, "conv2d_backward_data", [&](auto tag) {
    using T = decltype(tag);
    const int64_t K = g.KH * g.KW * g.C, chunk = images_per_chunk(g), rows_per_image = g.OH * g.OW;
    fill(dtype, dx, g.N * g.H * g.W * g.C, 0.0);
    std::vector<T> dpatches(static_cast<std::size_t>(chunk * rows_per_image * K));
    for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
      const int64_t count = std::min(chunk, g.N - n0);
      gemm(dtype, false, true, count * rows_per_image, K, g.F, 1.0,
           static_cast<const T*>(dy) + n0 * rows_per_image * g.F, w, 0.0, dpatches.data());
      col2im_add(g, dpatches.data(), n0, count, static_cast<T*>(dx));
    }
  });
}

void CpuBackend::conv2d_backward_filter(DType dtype, const Conv2dGeometry& g, const void* x, const void* dy,
                                        void* dw) {
  with_float_type(dtype, "conv2d_backward_filter", [&](auto tag) {
    using T = decltype(tag);
    const int64_t K = g.KH * g.KW * g.C, chunk = images_per_chunk(g), rows_per_image = g.OH * g.OW;
    std::vector<T> patches(static_cast<std::size_t>(chunk * rows_per_image * K));
    for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
      const int64_t count = std::min(chunk, g.N - n0);
      im2col(g, static_cast<const T*>(x), n0, count, patches.data());
      gemm(dtype, true, false, K, g.F, count * rows_per_image, 1.0, patches.data(),
           static_cast<const T*>(dy) + n0 * rows_per_image * g.F, n0 == 0 ? 0.0 : 1.0, dw);
    }
    if (g.N == 0) fill(dtype, dw, K * g.F, 0.0);
  });
}

}  // namespace kiln::backend
