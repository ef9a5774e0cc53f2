/// Where a tensor's memory lives and where its ops run.
#pragma once

#include <string>

namespace kiln {

/// Kind of device.
enum class DeviceType { CPU, CUDA };

/// A device: the CPU, or one CUDA GPU by index.
struct Device {
  DeviceType type = DeviceType::CPU;  ///< CPU or CUDA
  int index = 0;                      ///< GPU ordinal; 0 for the CPU

  /// The host CPU.
  static Device cpu() { return {DeviceType::CPU, 0}; }
  /// CUDA GPU number `index`.
  static Device gpu(int index = 0) { return {DeviceType::CUDA, index}; }
  /// Parses "cpu", "gpu", "gpu:1", "cuda", "cuda:0" or "/device:GPU:0".
  static Device parse(const std::string& name);

  /// True for the host CPU.
  bool is_cpu() const { return type == DeviceType::CPU; }
  /// True for a CUDA GPU.
  bool is_cuda() const { return type == DeviceType::CUDA; }
  /// "cpu" or "cuda:N".
  std::string str() const;
  /// TensorFlow's name: "/device:CPU:0" or "/device:GPU:N".
  std::string tf_name() const;

  /// Same type and index.
  bool operator==(const Device&) const = default;
};

}  // namespace kiln
