/// Element types a Tensor can hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln {

/// Element type. Float32 is the default; Float64 serves gradient checks (CPU only); Int32 holds
/// labels and indices; UInt8 holds raw image bytes (only cast to a float type is supported); Int64
/// holds step counters (the counter the random ops read on the device).
enum class DType { Float32, Float64, Int32, UInt8, Int64 };

/// Bytes per element of `dtype`.
std::size_t dtype_size(DType dtype);
/// "float32", "float64", "int32", "uint8" or "int64".
std::string dtype_name(DType dtype);
/// True for Float32 and Float64.
bool is_floating(DType dtype);

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
