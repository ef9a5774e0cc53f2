// The caching, stream-ordered allocator of one GPU. All of a GPU's work runs on one stream, so a
// block given back can be handed out again at once: later work on that stream is queued after the
// work that used it. Blocks are never returned to the driver during training; empty_cache() does.
// Private pools serve recorded work (CUDA graphs): while one is active every allocation comes from
// it, and its blocks go back to it when freed, never to the shared cache, until the recording that
// owns the pool gives it back.
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

  /// Routes every allocation to a new private pool until end_private_pool(); returns its id (> 0).
  int begin_private_pool();
  /// Stops routing allocations to the active private pool; its blocks stay reserved for it.
  void end_private_pool();
  /// The owner of pool `id` is gone: its cached blocks join the shared cache, and its blocks still
  /// in use go there when freed. Stream order makes this safe: later work queues after the replays.
  void release_private_pool(int id);

  /// The size class of a request: 512-byte steps below 1 MiB, 1 MiB steps above.
  static std::size_t round_size(std::size_t bytes);

 private:
  void release_cached_locked();
  [[noreturn]] void throw_out_of_memory(std::size_t bytes, std::size_t rounded);

  int device_;
  mutable std::mutex mutex_;
  struct Live {
    std::size_t size;
    int pool;  // 0: the shared cache, else a private pool
  };
  std::multimap<std::size_t, void*> free_;                  // cached blocks of the shared cache by size
  std::unordered_map<void*, Live> live_;                    // handed-out blocks
  std::map<int, std::multimap<std::size_t, void*>> pools_;  // cached blocks of each private pool
  int active_pool_ = 0;
  int next_pool_ = 1;
  MemoryStats stats_;
};

/// A scratch block from the caching allocator, given back (stream-ordered) at scope exit.
class Scratch {
 public:
  Scratch(CudaAllocator& a, std::size_t bytes) : a_(a), bytes_(bytes), ptr_(bytes ? a.allocate(bytes) : nullptr) {}
  ~Scratch() {
    if (ptr_) a_.deallocate(ptr_, bytes_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return ptr_; }

 private:
  CudaAllocator& a_;
  std::size_t bytes_;
  void* ptr_;
};

}  // namespace kiln::backend
