// The dtype dispatcher of both backends (the CPU's loops and the CUDA launchers): calls a generic
// lambda with a value of the C++ type of a DType, so each kernel is written once as a template.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kiln/dtype.h"
#include "kiln/error.h"

namespace kiln::backend {

/// Calls f(T{}) with T the C++ type that holds elements of `dtype`, for every DType kiln has.
/// Half and BFloat16 are the calling backend's 16-bit float types (Eigen::half and Eigen::bfloat16
/// on the CPU, __half and __nv_bfloat16 in CUDA code), so this header needs neither Eigen nor CUDA.
template <typename Half, typename BFloat16, typename F>
void with_storage_type(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32:
      f(float{});
      return;
    case DType::Float64:
      f(double{});
      return;
    case DType::Int32:
      f(int32_t{});
      return;
    case DType::UInt8:
      f(uint8_t{});
      return;
    case DType::Int64:
      f(int64_t{});
      return;
    case DType::Float16:
      f(Half{});
      return;
    case DType::BFloat16:
      f(BFloat16{});
      return;
  }
}

/// Stands for a 16-bit float in with_any_type, which has no C++ arithmetic type for it.
struct NoArithmeticType {};

/// Calls f(T{}) with T the C++ arithmetic type that holds elements of `dtype`; throws kiln::Error
/// for float16 and bfloat16, which no C++ arithmetic type holds (their kernels go through
/// with_storage_type), rather than letting a kernel read their bytes as another type.
template <typename F>
void with_any_type(DType dtype, F&& f) {
  with_storage_type<NoArithmeticType, NoArithmeticType>(dtype, [&](auto tag) {
    if constexpr (std::is_same_v<decltype(tag), NoArithmeticType>)
      throw Error("dtype", "no kernel for " + dtype_name(dtype) +
                               "; expected float32, float64, int32, uint8 or int64 (16-bit floats are storage "
                               "types: cast them with astype)");
    else
      f(tag);
  });
}

/// Calls f(T{}) with T = float or double for a floating `dtype`; throws kiln::Error naming `op`
/// for the others.
template <typename F>
void with_float_type(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32:
      f(float{});
      return;
    case DType::Float64:
      f(double{});
      return;
    default:
      throw Error(op, "no kernel for " + dtype_name(dtype) + "; expected float32 or float64");
  }
}

/// Calls f(T{}) with T the element type of a floating `dtype` whose kernels compute in it or in
/// float: float, double, and the calling backend's 16-bit types Half and BFloat16 (which kernels
/// read into float, compute on and round back once: accumulate_t). Throws kiln::Error naming `op`
/// for the others.
template <typename Half, typename BFloat16, typename F>
void with_compute_type(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32:
      f(float{});
      return;
    case DType::Float64:
      f(double{});
      return;
    case DType::Float16:
      f(Half{});
      return;
    case DType::BFloat16:
      f(BFloat16{});
      return;
    default:
      throw Error(op, "no kernel for " + dtype_name(dtype) + "; expected float32, float64, float16 or bfloat16");
  }
}

/// The type a kernel computes and accumulates elements of type T in: T itself for float and
/// double, float for the 16-bit types (whose own arithmetic would round after every operation).
template <typename T>
using accumulate_t = std::conditional_t<std::is_floating_point_v<T>, T, float>;

}  // namespace kiln::backend
