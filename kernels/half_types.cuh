// The GPU's 16-bit float types (CUDA's __half and __nv_bfloat16) and the one element conversion
// that the CUDA casts and fills use; the CPU's twin is backend/cpu/cpu_half.h (Eigen's types), and
// both round to nearest even, so a cast gives the same bits on either device.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "backend/dtype_dispatch.h"
#include "backend/half_rounding.h"

namespace kiln::backend::kernels {

/// Calls f(T{}) with T the GPU's C++ type for `dtype`: every DType, __half and __nv_bfloat16 for
/// the 16-bit floats.
template <typename F>
void with_cuda_type(DType dtype, F&& f) {
  with_storage_type<__half, __nv_bfloat16>(dtype, static_cast<F&&>(f));
}

/// Calls f(T{}) with T the GPU's element type for a floating `dtype` (float, double, __half,
/// __nv_bfloat16); kernels compute in accumulate_t<T>. Throws kiln::Error naming `op` otherwise.
template <typename F>
void with_cuda_compute_type(DType dtype, const char* op, F&& f) {
  with_compute_type<__half, __nv_bfloat16>(dtype, op, static_cast<F&&>(f));
}

/// `v` as a To, as static_cast does between arithmetic types. A 16-bit float goes through float,
/// which holds each of its values exactly; a value becomes a 16-bit float rounded once to nearest
/// even (overflow gives inf, NaN stays NaN), through float rounded to odd (half_rounding.h).
template <typename To, typename From>
__host__ __device__ To convert_element(From v) {
  if constexpr (std::is_same_v<From, __half>)
    return convert_element<To>(__half2float(v));
  else if constexpr (std::is_same_v<From, __nv_bfloat16>)
    return convert_element<To>(__bfloat162float(v));
  else if constexpr (std::is_same_v<To, __half>)
    return __float2half_rn(to_float_for_half(v));
  else if constexpr (std::is_same_v<To, __nv_bfloat16>)
    return __float2bfloat16_rn(to_float_for_half(v));
  else
    return static_cast<To>(v);
}

}  // namespace kiln::backend::kernels
