// CPU image resampling (NHWC) and the random transforms of the augmentation layers: the per-pixel
// arithmetic of backend/image_map.h, which the CUDA kernels share, so both devices give the same bits.
// Work splits by image rows, a chunking fixed by the shape; each pixel is computed alone, so the
// result does not depend on the thread count. 16-bit tensors are staged into float (cpu_staging.h),
// run through the float32 path and rounded once.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_staging.h"
#include "backend/image_map.h"
#include "backend/philox.h"

namespace kiln::backend {

namespace {

template <typename T>
void image_transform_typed(const ImageTransformGeometry& g, const void* x, const void* t, void* y) {
  const T* xs = static_cast<const T*>(x);
  const T* ts = static_cast<const T*>(t);
  T* ys = static_cast<T*>(y);
  parallel_for_work(g.N * g.OH, g.N * g.OH * g.OW * g.C, [&](int64_t row0, int64_t row1) {
    for (int64_t row = row0; row < row1; ++row) {
      const int64_t n = row / g.OH, i = row % g.OH;
      for (int64_t j = 0; j < g.OW; ++j) image::output_pixel(g, xs, ts, n, i, j, 0, g.C, ys + (row * g.OW + j) * g.C);
    }
  });
}

template <typename T>
void image_transform_backward_typed(const ImageTransformGeometry& g, const void* dy, const void* t, void* dx) {
  const T* dys = static_cast<const T*>(dy);
  const T* ts = static_cast<const T*>(t);
  T* dxs = static_cast<T*>(dx);
  parallel_for_work(g.N * g.H, g.N * g.H * g.W * (g.OH + g.OW) * g.C, [&](int64_t row0, int64_t row1) {
    for (int64_t row = row0; row < row1; ++row) {
      const int64_t n = row / g.H, iy = row % g.H;
      for (int64_t ix = 0; ix < g.W; ++ix)
        image::input_grad_pixel(g, dys, ts, n, iy, ix, 0, g.C, dxs + (row * g.W + ix) * g.C);
    }
  });
}

template <typename T>
void random_image_transforms_typed(const ImageAxisSpec* axes, int64_t n, uint64_t seed, int64_t step, uint64_t draw,
                                   int64_t first, T* ts) {
  for (int64_t k = 0; k < n; ++k) {
    // Sample k's two numbers, elements 2s and 2s + 1 for s = first + k: words (2s mod 4) and
    // (2s mod 4) + 1 of block s / 2.
    const int64_t s = first + k;
    const philox::Words w = philox::stream_block(seed, step, draw, static_cast<uint64_t>(s / 2));
    const int word = static_cast<int>((2 * s) % philox::kPerBlock);
    const uint32_t w0 = w.v[word], w1 = w.v[word + 1];
    image::axis_transform<T>(axes[0], w0, w0, ts + 4 * k, ts + 4 * k + 1);
    image::axis_transform<T>(axes[1], w0, w1, ts + 4 * k + 2, ts + 4 * k + 3);
  }
}

}  // namespace

void CpuBackend::image_transform(DType dtype, const ImageTransformGeometry& g, const void* x, const void* t, void* y) {
  with_cpu_compute_type(dtype, "image_transform", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      const int64_t ny = g.N * g.OH * g.OW * g.C;
      const std::vector<float> xs = widened<T>(x, g.N * g.H * g.W * g.C), ts = widened<T>(t, 4 * g.N);
      std::vector<float> ys(static_cast<std::size_t>(ny));
      image_transform_typed<float>(g, xs.data(), ts.data(), ys.data());
      store_rounded<T>(ys.data(), y, ny);
    } else {
      image_transform_typed<T>(g, x, t, y);
    }
  });
}

void CpuBackend::image_transform_backward(DType dtype, const ImageTransformGeometry& g, const void* dy, const void* t,
                                          void* dx) {
  with_cpu_compute_type(dtype, "image_transform_backward", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      const int64_t nx = g.N * g.H * g.W * g.C;
      const std::vector<float> dys = widened<T>(dy, g.N * g.OH * g.OW * g.C), ts = widened<T>(t, 4 * g.N);
      std::vector<float> dxs(static_cast<std::size_t>(nx));
      image_transform_backward_typed<float>(g, dys.data(), ts.data(), dxs.data());
      store_rounded<T>(dxs.data(), dx, nx);
    } else {
      image_transform_backward_typed<T>(g, dy, t, dx);
    }
  });
}

void CpuBackend::random_image_transforms(DType dtype, const ImageAxisSpec* axes, int64_t n, uint64_t seed,
                                         const int64_t* counter, uint64_t draw, int64_t first, void* t) {
  with_cpu_compute_type(dtype, "random_image_transforms", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      std::vector<float> ts(static_cast<std::size_t>(4 * n));
      random_image_transforms_typed<float>(axes, n, seed, *counter, draw, first, ts.data());
      store_rounded<T>(ts.data(), t, 4 * n);
    } else {
      random_image_transforms_typed<T>(axes, n, seed, *counter, draw, first, static_cast<T*>(t));
    }
  });
}

}  // namespace kiln::backend
