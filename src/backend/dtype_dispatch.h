// The dtype dispatcher of both backends (the CPU's loops and the CUDA launchers): calls a generic
// lambda with a value of the C++ type of a DType, so each kernel is written once as a template.
#pragma once

#include <cstdint>

#include "kiln/dtype.h"
#include "kiln/error.h"

namespace kiln::backend {

/// Calls f(T{}) with T the C++ type that holds elements of `dtype` (every DType kiln has).
template <typename F>
void with_any_type(DType dtype, F&& f) {
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
  }
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

}  // namespace kiln::backend
