// Image resampling (NHWC) and the augmentation layers' random transforms: one general per-sample
// axis-aligned map (flip, translation, crop and resize are all y = x at (ay i + by, ax j + bx)),
// with the fill modes and both interpolations. The arithmetic is backend/image_map.h's, shared
// with the CPU, so both devices give the same bits. Forward: one thread per output element.
// Backward: one thread per input element, gathering from the output pixels that read it in
// increasing (i, j) order, the CPU's order, with no atomics. Transforms: one thread per sample,
// its numbers read from the Philox stream at the step the device counter names, so a recorded
// step draws new transforms on each replay.
// float16 and bfloat16 tensors are staged as the CPU stages them: widened to float32 scratch (the
// backend's cast, exact), run through the float32 kernel and rounded once into the output, so
// both devices give the same bits. Why not a kernel reading 16-bit elements: image_map.h's pixel
// functions read and write their own element type, and these layers run on input batches, where
// the extra passes over scratch cost little next to the model.
// Shape letters: N batch, H/W input, C channels, OH/OW output.
#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/image_map.h"
#include "backend/philox.h"
#include "device_math.cuh"

namespace kiln::backend {

namespace {

// ---------------------------------------------------------------------------------------------
// kernels

template <typename T>
__global__ void image_transform_kernel(ImageTransformGeometry g, const T* x, const T* t, T* y) {
  const int64_t total = g.N * g.OH * g.OW * g.C;
  KILN_FOR_EACH(e, total) {
    const int64_t c = e % g.C, pixel = e / g.C;
    const int64_t j = pixel % g.OW, i = (pixel / g.OW) % g.OH, n = pixel / (g.OW * g.OH);
    image::output_pixel(g, x, t, n, i, j, c, c + 1, y + pixel * g.C);
  }
}

template <typename T>
__global__ void image_transform_backward_kernel(ImageTransformGeometry g, const T* dy, const T* t, T* dx) {
  const int64_t total = g.N * g.H * g.W * g.C;
  KILN_FOR_EACH(e, total) {
    const int64_t c = e % g.C, pixel = e / g.C;
    const int64_t ix = pixel % g.W, iy = (pixel / g.W) % g.H, n = pixel / (g.W * g.H);
    image::input_grad_pixel(g, dy, t, n, iy, ix, c, c + 1, dx + pixel * g.C);
  }
}

// The two axis specs by value (the backend receives them in host memory).
struct AxisSpecs {
  ImageAxisSpec axis[2];
};

template <typename T>
__global__ void random_image_transforms_kernel(AxisSpecs specs, int64_t n, uint64_t seed, const int64_t* counter,
                                               uint64_t draw, int64_t first, T* t) {
  const int64_t step = *counter;
  KILN_FOR_EACH(k, n) {
    // Sample k draws as sample s = first + k of the whole batch: elements 2s and 2s + 1.
    const int64_t s = first + k;
    const philox::Words w = philox::stream_block(seed, step, draw, static_cast<uint64_t>(s / 2));
    const int word = static_cast<int>((2 * s) % philox::kPerBlock);
    const uint32_t w0 = w.v[word], w1 = w.v[word + 1];
    image::axis_transform<T>(specs.axis[0], w0, w0, t + 4 * k, t + 4 * k + 1);
    image::axis_transform<T>(specs.axis[1], w0, w1, t + 4 * k + 2, t + 4 * k + 3);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::image_transform(DType dtype, const ImageTransformGeometry& g, const void* x, const void* t, void* y) {
  DeviceGuard guard(device_);
  const int64_t total = g.N * g.OH * g.OW * g.C;
  if (total <= 0) return;
  kernels::with_cuda_compute_type(dtype, "image_transform", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kernels::is_half_v<T>) {
      const int64_t nx = g.N * g.H * g.W * g.C, nt = 4 * g.N;
      Scratch xs(allocator_, static_cast<std::size_t>(nx) * sizeof(float));
      Scratch ts(allocator_, static_cast<std::size_t>(nt) * sizeof(float));
      Scratch ys(allocator_, static_cast<std::size_t>(total) * sizeof(float));
      cast(dtype, x, DType::Float32, xs.get(), nx);
      cast(dtype, t, DType::Float32, ts.get(), nt);
      image_transform(DType::Float32, g, xs.get(), ts.get(), ys.get());
      cast(DType::Float32, ys.get(), dtype, y, total);
    } else {
      image_transform_kernel<<<grid_for(total), kBlock, 0, stream_>>>(g, static_cast<const T*>(x),
                                                                      static_cast<const T*>(t), static_cast<T*>(y));
    }
  });
  KILN_LAUNCH_CHECK("image_transform_kernel");
}

void CudaBackend::image_transform_backward(DType dtype, const ImageTransformGeometry& g, const void* dy, const void* t,
                                           void* dx) {
  DeviceGuard guard(device_);
  const int64_t total = g.N * g.H * g.W * g.C;
  if (total <= 0) return;
  kernels::with_cuda_compute_type(dtype, "image_transform_backward", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kernels::is_half_v<T>) {
      const int64_t ndy = g.N * g.OH * g.OW * g.C, nt = 4 * g.N;
      Scratch dys(allocator_, static_cast<std::size_t>(ndy) * sizeof(float));
      Scratch ts(allocator_, static_cast<std::size_t>(nt) * sizeof(float));
      Scratch dxs(allocator_, static_cast<std::size_t>(total) * sizeof(float));
      cast(dtype, dy, DType::Float32, dys.get(), ndy);
      cast(dtype, t, DType::Float32, ts.get(), nt);
      image_transform_backward(DType::Float32, g, dys.get(), ts.get(), dxs.get());
      cast(DType::Float32, dxs.get(), dtype, dx, total);
    } else {
      image_transform_backward_kernel<<<grid_for(total), kBlock, 0, stream_>>>(
          g, static_cast<const T*>(dy), static_cast<const T*>(t), static_cast<T*>(dx));
    }
  });
  KILN_LAUNCH_CHECK("image_transform_backward_kernel");
}

void CudaBackend::random_image_transforms(DType dtype, const ImageAxisSpec* axes, int64_t n, uint64_t seed,
                                          const int64_t* counter, uint64_t draw, int64_t first, void* t) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  const AxisSpecs specs{{axes[0], axes[1]}};
  kernels::with_cuda_compute_type(dtype, "random_image_transforms", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kernels::is_half_v<T>) {  // float32's transforms, each number rounded once
      Scratch ts(allocator_, static_cast<std::size_t>(4 * n) * sizeof(float));
      random_image_transforms(DType::Float32, axes, n, seed, counter, draw, first, ts.get());
      cast(DType::Float32, ts.get(), dtype, t, 4 * n);
    } else {
      random_image_transforms_kernel<<<grid_for(n), kBlock, 0, stream_>>>(specs, n, seed, counter, draw, first,
                                                                          static_cast<T*>(t));
    }
  });
  KILN_LAUNCH_CHECK("random_image_transforms_kernel");
}

}  // namespace kiln::backend
