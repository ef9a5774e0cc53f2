/// Memory statistics of a device's allocator.
#pragma once

#include <cstddef>

#include "kiln/device.h"

namespace kiln {

/// What a device's allocator holds.
struct MemoryStats {
  std::size_t in_use = 0;  ///< bytes handed out and not yet returned
  std::size_t peak = 0;    ///< largest in_use seen since start (or reset)
  /// Bytes kept for reuse, not in use: a GPU's cached blocks; on the CPU, freed blocks of 256 KiB
  /// and more (up to 2 GiB), kept for the next request of their size.
  std::size_t cached = 0;
  std::size_t allocations = 0;  ///< live allocations
};

/// Statistics of `device`'s allocator.
MemoryStats memory_stats(Device device);
/// Returns cached, unused blocks of `device` to the system.
void empty_cache(Device device);

}  // namespace kiln
