// The allocator seam: one Allocator per device; storage returns memory through it.
#pragma once

#include <cstddef>

#include "kiln/memory.h"

namespace kiln::backend {

/// Hands out device memory. The CUDA one caches blocks, so steady-state training allocates nothing
/// from the driver; the CPU one keeps freed large blocks, so a step's tensors fault in no fresh pages.
class Allocator {
 public:
  virtual ~Allocator() = default;
  /// `bytes` of memory (a valid pointer even for 0 bytes); throws OutOfMemoryError.
  virtual void* allocate(std::size_t bytes) = 0;
  /// Gives back a block from allocate().
  virtual void deallocate(void* ptr, std::size_t bytes) = 0;
  virtual MemoryStats stats() const = 0;
  /// Releases cached blocks.
  virtual void empty_cache() {}
};

}  // namespace kiln::backend
