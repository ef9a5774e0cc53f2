// Column sums y[c] = sum_r x[r, c] of a [rows, cols] matrix on a GPU: the bias gradients of the
// dense layer's and the convolution's unfused paths, for every floating dtype. float32 and float64
// take sum_rows. float16 and bfloat16 take a product with a row of ones (cuBLAS, float
// accumulation on tensor cores, one rounding to 16 bits): the sum of many 16-bit values must not
// be rounded to 16 bits along the way, and the GEMM does it in float at full speed.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/allocator.h"
#include "backend/backend.h"

namespace kiln::backend {

/// y[c] = sum_r x[r, c] for x [rows, cols] in `dtype` on `gpu` (y overwritten; zeros when rows is 0).
inline void column_sums(Backend& gpu, DType dtype, const void* x, void* y, int64_t rows, int64_t cols) {
  if (dtype != DType::Float16 && dtype != DType::BFloat16) return gpu.sum_rows(dtype, x, y, rows, cols, false);
  if (cols <= 0) return;
  if (rows <= 0) return gpu.fill(dtype, y, cols, 0.0);
  // The ones live until the product is queued; the allocator is stream-ordered, so giving the block
  // back right after is safe (and inside a recording it returns to the recording's pool).
  Allocator& allocator = gpu.allocator();
  const std::size_t bytes = static_cast<std::size_t>(rows) * dtype_size(dtype);
  void* ones = allocator.allocate(bytes);
  try {
    gpu.fill(dtype, ones, rows, 1.0);
    gpu.gemm(dtype, false, false, 1, cols, rows, 1.0, ones, x, 0.0, y);  // [1, rows] x [rows, cols]
  } catch (...) {
    allocator.deallocate(ones, bytes);
    throw;
  }
  allocator.deallocate(ones, bytes);
}

}  // namespace kiln::backend
