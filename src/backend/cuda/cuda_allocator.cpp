// Caching allocator: best-fit reuse of cached blocks (at most twice the request), cudaMalloc only
// on a miss, and one retry after emptying the cache before reporting OutOfMemoryError.
#include "backend/cuda/cuda_allocator.h"

#include <cuda_runtime.h>

#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/device_guard.h"

namespace kiln::backend {

namespace {
constexpr std::size_t kSmall = std::size_t(1) << 20;
constexpr std::size_t kSmallStep = 512;

std::string mib(std::size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}
}  // namespace

std::size_t CudaAllocator::round_size(std::size_t bytes) {
  if (bytes == 0) return kSmallStep;
  const std::size_t step = bytes < kSmall ? kSmallStep : kSmall;
  return (bytes + step - 1) / step * step;
}

void* CudaAllocator::allocate(std::size_t bytes) {
  const std::size_t rounded = round_size(bytes);
  std::lock_guard lock(mutex_);
  void* ptr = nullptr;
  std::size_t size = rounded;
  auto it = free_.lower_bound(rounded);
  if (it != free_.end() && it->first <= 2 * rounded) {
    size = it->first;
    ptr = it->second;
    free_.erase(it);
    stats_.cached -= size;
  } else {
    DeviceGuard guard(device_);
    cudaError_t status = cudaMalloc(&ptr, rounded);
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear it, then retry with the cache given back
      release_cached_locked();
      status = cudaMalloc(&ptr, rounded);
    }
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      throw_out_of_memory(bytes, rounded);
    }
    KILN_CUDA_CHECK(status);
  }
  live_.emplace(ptr, size);
  stats_.in_use += size;
  stats_.peak = std::max(stats_.peak, stats_.in_use);
  ++stats_.allocations;
  return ptr;
}

void CudaAllocator::deallocate(void* ptr, std::size_t) {
  if (!ptr) return;
  std::lock_guard lock(mutex_);
  auto it = live_.find(ptr);
  if (it == live_.end()) return;  // not ours; never throw from a destructor's path
  const std::size_t size = it->second;
  live_.erase(it);
  stats_.in_use -= size;
  --stats_.allocations;
  free_.emplace(size, ptr);
  stats_.cached += size;
}

MemoryStats CudaAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void CudaAllocator::empty_cache() {
  std::lock_guard lock(mutex_);
  release_cached_locked();
}

void CudaAllocator::release_cached_locked() {
  if (free_.empty()) return;
  DeviceGuard guard(device_);
  for (auto& [size, ptr] : free_) cudaFree(ptr);  // cudaFree waits for the device first
  free_.clear();
  stats_.cached = 0;
}

void CudaAllocator::throw_out_of_memory(std::size_t bytes, std::size_t rounded) {
  std::size_t free_bytes = 0, total_bytes = 0;
  (void)cudaMemGetInfo(&free_bytes, &total_bytes);
  throw OutOfMemoryError("cuda",
                         "out of memory on GPU " + std::to_string(device_) + ": could not allocate " + mib(rounded) +
                             " (requested " + std::to_string(bytes) + " bytes); the GPU has " + mib(free_bytes) +
                             " free of " + mib(total_bytes) + ", kiln holds " + mib(stats_.in_use) +
                             " in use; expected a smaller batch_size (or a smaller model)",
                         bytes);
}

}  // namespace kiln::backend
