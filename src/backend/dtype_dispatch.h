// The host-side dtype dispatcher: calls a generic lambda with a value of the C++ type of a DType.
#pragma once

#include <cstdint>

#include "kiln/dtype.h"

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

}  // namespace kiln::backend
