// Caching allocator: best-fit reuse of cached blocks (at most twice the request), cudaMalloc only
// on a miss, and one retry after emptying the cache before reporting OutOfMemoryError.
#include "backend/cuda/cuda_allocator.h"

#include <cuda_runtime.h>

#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/device_guard.h"
#include "kiln/error.h"

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
  auto& cache = active_pool_ ? pools_[active_pool_] : free_;
  auto it = cache.lower_bound(rounded);
  if (it != cache.end() && it->first <= 2 * rounded) {
    size = it->first;
    ptr = it->second;
    cache.erase(it);
    stats_.cached -= size;
  } else if (active_pool_) {
    // While recording, cudaMalloc is allowed (it does not touch the stream) but cudaFree is not,
    // so no retry after emptying the cache. Relaxed mode for the call: a recording in this thread
    // must not reject it.
    DeviceGuard guard(device_);
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    (void)cudaThreadExchangeStreamCaptureMode(&mode);
    const cudaError_t status = cudaMalloc(&ptr, rounded);
    (void)cudaThreadExchangeStreamCaptureMode(&mode);
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      throw_out_of_memory(bytes, rounded);
    }
    KILN_CUDA_CHECK(status);
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
  live_.emplace(ptr, Live{size, active_pool_});
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
  const Live block = it->second;
  live_.erase(it);
  stats_.in_use -= block.size;
  --stats_.allocations;
  auto pool = block.pool ? pools_.find(block.pool) : pools_.end();
  (pool != pools_.end() ? pool->second : free_).emplace(block.size, ptr);
  stats_.cached += block.size;
}

int CudaAllocator::begin_private_pool() {
  std::lock_guard lock(mutex_);
  if (active_pool_)
    throw Error("capture", "a private memory pool is already active on GPU " + std::to_string(device_) +
                               "; expected one recording at a time");
  active_pool_ = next_pool_++;
  pools_[active_pool_];
  return active_pool_;
}

void CudaAllocator::end_private_pool() {
  std::lock_guard lock(mutex_);
  active_pool_ = 0;
}

void CudaAllocator::release_private_pool(int id) {
  std::lock_guard lock(mutex_);
  if (active_pool_ == id) active_pool_ = 0;
  auto pool = pools_.find(id);
  if (pool == pools_.end()) return;
  free_.merge(pool->second);
  pools_.erase(pool);
  for (auto& [ptr, block] : live_)
    if (block.pool == id) block.pool = 0;
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
