/// Element types a Tensor can hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln {

/// Element type. Float32 is the default; Float64 serves gradient checks (CPU only); Int32 holds
/// labels and indices; UInt8 holds raw image bytes (only cast to a float type is supported); Int64
/// holds step counters (the counter the random ops read on the device). Float16 (IEEE half) and
/// BFloat16 (bfloat16: float32's exponent, 8 bits of significand) are storage types for now:
/// tensors of them are created, cast, copied, printed and saved, but arithmetic ops refuse them
/// (it comes with mixed precision).
enum class DType { Float32, Float64, Int32, UInt8, Int64, Float16, BFloat16 };

/// Bytes per element of `dtype`.
std::size_t dtype_size(DType dtype);
/// "float32", "float64", "int32", "uint8", "int64", "float16" or "bfloat16" (NumPy's and Keras' names).
std::string dtype_name(DType dtype);
/// True for Float32, Float64, Float16 and BFloat16.
bool is_floating(DType dtype);
/// True for Float32 and Float64, the dtypes kiln computes in: fit, evaluate and predict cast other
/// inputs and targets (integers, 16-bit floats) to float32, as Keras casts to a layer's dtype.
bool is_compute_floating(DType dtype);

/// The DType of a C++ element type.
template <typename T>
constexpr DType dtype_of();
/// Float32.
template <>
constexpr DType dtype_of<float>() {
  return DType::Float32;
}
/// Float64.
template <>
constexpr DType dtype_of<double>() {
  return DType::Float64;
}
/// Int32.
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::Int32;
}
/// UInt8.
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::UInt8;
}
/// Int64.
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::Int64;
}

}  // namespace kiln
