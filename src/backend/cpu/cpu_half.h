// The CPU's 16-bit float types (Eigen's, round-to-nearest-even) and the one element conversion that
// the CPU's casts and fills use, so that every kernel converts to and from them the same way.
#pragma once

#include <Eigen/Core>
#include <type_traits>

#include "backend/dtype_dispatch.h"
#include "backend/half_rounding.h"

namespace kiln::backend {

/// True for the CPU's float16 and bfloat16 element types.
template <typename T>
constexpr bool is_cpu_half_v = std::is_same_v<T, Eigen::half> || std::is_same_v<T, Eigen::bfloat16>;

/// Calls f(T{}) with T the CPU's C++ type for `dtype`: every DType, Eigen::half and
/// Eigen::bfloat16 for the 16-bit floats.
template <typename F>
void with_cpu_type(DType dtype, F&& f) {
  with_storage_type<Eigen::half, Eigen::bfloat16>(dtype, static_cast<F&&>(f));
}

/// Calls f(T{}) with T the CPU's element type for a floating `dtype` (float, double, Eigen::half,
/// Eigen::bfloat16); kernels compute in accumulate_t<T>. Throws kiln::Error naming `op` otherwise.
template <typename F>
void with_cpu_compute_type(DType dtype, const char* op, F&& f) {
  with_compute_type<Eigen::half, Eigen::bfloat16>(dtype, op, static_cast<F&&>(f));
}

/// `v` as a To, as static_cast does between arithmetic types. A 16-bit float goes through float,
/// which holds each of its values exactly; a value becomes a 16-bit float rounded once to nearest
/// even (overflow gives inf, NaN stays NaN), through float rounded to odd (half_rounding.h).
template <typename To, typename From>
To convert_element(From v) {
  if constexpr (is_cpu_half_v<From>)
    return convert_element<To>(static_cast<float>(v));
  else if constexpr (is_cpu_half_v<To>)
    return To(to_float_for_half(v));
  else
    return static_cast<To>(v);
}

}  // namespace kiln::backend
