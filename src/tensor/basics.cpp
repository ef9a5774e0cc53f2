// Error, DType, Device and Shape: the small value types under Tensor.
#include <algorithm>
#include <cctype>
#include <sstream>

#include "kiln/device.h"
#include "kiln/dtype.h"
#include "kiln/error.h"
#include "kiln/shape.h"

namespace kiln {

Error::Error(const std::string& op, const std::string& message)
    : std::runtime_error("[" + op + "] " + message), op_(op) {}

OutOfMemoryError::OutOfMemoryError(const std::string& op, const std::string& message, std::size_t requested)
    : Error(op, message), requested_(requested) {}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return 4;
    case DType::Float64:
      return 8;
    case DType::Int32:
      return 4;
    case DType::UInt8:
      return 1;
    case DType::Int64:
      return 8;
    case DType::Float16:
    case DType::BFloat16:
      return 2;
  }
  return 0;
}

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "float32";
    case DType::Float64:
      return "float64";
    case DType::Int32:
      return "int32";
    case DType::UInt8:
      return "uint8";
    case DType::Int64:
      return "int64";
    case DType::Float16:
      return "float16";
    case DType::BFloat16:
      return "bfloat16";
  }
  return "?";
}

bool is_floating(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float64 || dtype == DType::Float16 || dtype == DType::BFloat16;
}

bool is_compute_floating(DType dtype) { return dtype == DType::Float32 || dtype == DType::Float64; }

Device Device::parse(const std::string& name) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s.rfind("/device:", 0) == 0) s = s.substr(8);
  if (s == "cpu" || s == "cpu:0") return cpu();
  for (const std::string prefix : {"gpu", "cuda"}) {
    if (s == prefix) return gpu(0);
    if (s.rfind(prefix + ":", 0) == 0) {
      const std::string digits = s.substr(prefix.size() + 1);
      if (!digits.empty() && std::all_of(digits.begin(), digits.end(), ::isdigit) && digits.size() < 4)
        return gpu(std::stoi(digits));
    }
  }
  throw Error("device", "unknown device '" + name + "'; expected cpu, gpu, gpu:N, cuda:N or /device:GPU:N");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

std::string Device::tf_name() const { return is_cpu() ? "/device:CPU:0" : "/device:GPU:" + std::to_string(index); }

int64_t Shape::operator[](int64_t i) const {
  const int64_t n = ndim();
  const int64_t j = i < 0 ? i + n : i;
  if (j < 0 || j >= n) throw Error("shape", "dimension " + std::to_string(i) + " out of range for shape " + str());
  return dims_[static_cast<std::size_t>(j)];
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims_) n *= d;
  return n;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < dims_.size(); ++i) os << (i ? ", " : "") << dims_[i];
  os << ']';
  return os.str();
}

std::string Shape::batch_str() const {
  std::ostringstream os;
  os << "[None";
  for (const int64_t d : dims_) os << ", " << d;
  os << ']';
  return os.str();
}

Shape Shape::drop_front() const {
  if (dims_.empty()) throw Error("shape", "cannot drop the first dimension of a scalar shape");
  return Shape(std::vector<int64_t>(dims_.begin() + 1, dims_.end()));
}

Shape Shape::prepend(int64_t n) const {
  std::vector<int64_t> d{n};
  d.insert(d.end(), dims_.begin(), dims_.end());
  return Shape(std::move(d));
}

}  // namespace kiln
