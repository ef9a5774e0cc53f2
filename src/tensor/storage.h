// A block of device memory shared by tensors and views; returned to its allocator when the last
// one dies.
#pragma once

#include <cstddef>

#include "kiln/device.h"

namespace kiln {

struct Storage {
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data = nullptr;
  std::size_t bytes = 0;
  Device device;
};

}  // namespace kiln
