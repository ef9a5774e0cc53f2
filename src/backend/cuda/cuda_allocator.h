// The caching, stream-ordered allocator of one GPU. All of a GPU's work runs on one stream, so a
// block given back can be handed out again at once: later work on that stream is queued after the
// work that used it. Blocks are never returned to the driver during training; empty_cache() does.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

#include "backend/allocator.h"

namespace kiln::backend {

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int device) : device_(device) {}
  /// Never frees: blocks may still be named by tensors that outlive the backend at exit.
  ~CudaAllocator() override = default;

  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr, std::size_t bytes) override;
  MemoryStats stats() const override;
  void empty_cache() override;

  /// The size class of a request: 512-byte steps below 1 MiB, 1 MiB steps above.
  static std::size_t round_size(std::size_t bytes);

 private:
  void release_cached_locked();
  [[noreturn]] void throw_out_of_memory(std::size_t bytes, std::size_t rounded);

  int device_;
  mutable std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;       // cached blocks by size
  std::unordered_map<void*, std::size_t> live_;  // handed-out blocks and their sizes
  MemoryStats stats_;
};

}  // namespace kiln::backend
