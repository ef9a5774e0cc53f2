// CPU memory: aligned allocation with statistics, copies, fills, casts and row gathers.
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "backend/cpu/cpu_backend.h"

namespace kiln::backend {

namespace {
std::mutex stats_mutex;
constexpr std::size_t kAlignment = 64;  // a cache line; also what AVX-512 loads like
}  // namespace

void* CpuAllocator::allocate(std::size_t bytes) {
  const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded ? rounded : kAlignment);
  if (!p)
    throw OutOfMemoryError("cpu", "could not allocate " + std::to_string(bytes) +
                                      " bytes of host memory; expected a smaller tensor or batch", bytes);
  std::lock_guard lock(stats_mutex);
  stats_.in_use += bytes;
  stats_.peak = std::max(stats_.peak, stats_.in_use);
  ++stats_.allocations;
  return p;
}

void CpuAllocator::deallocate(void* ptr, std::size_t bytes) {
  std::free(ptr);
  std::lock_guard lock(stats_mutex);
  stats_.in_use -= bytes;
  --stats_.allocations;
}

MemoryStats CpuAllocator::stats() const {
  std::lock_guard lock(stats_mutex);
  return stats_;
}

void CpuBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes && dst != src) std::memmove(dst, src, bytes);
}
void CpuBackend::copy_to_host(void* dst, const void* src, std::size_t bytes) { copy(dst, src, bytes); }
void CpuBackend::copy_from_host(void* dst, const void* src, std::size_t bytes) { copy(dst, src, bytes); }

namespace {
template <typename T>
void fill_typed(void* dst, int64_t n, double value) {
  T* p = static_cast<T*>(dst);
  const T v = static_cast<T>(value);
  for (int64_t i = 0; i < n; ++i) p[i] = v;
}

template <typename From, typename To>
void cast_typed(const void* src, void* dst, int64_t n) {
  const From* s = static_cast<const From*>(src);
  To* d = static_cast<To*>(dst);
#pragma omp parallel for schedule(static, iteration_chunk(n, n)) if (threads_for(n) > 1)
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<To>(s[i]);
}

template <typename F>
void with_any_type(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    case DType::Int32: f(int32_t{}); return;
    case DType::UInt8: f(uint8_t{}); return;
  }
}
}  // namespace

void CpuBackend::fill(DType dtype, void* dst, int64_t n, double value) {
  with_any_type(dtype, [&](auto tag) { fill_typed<decltype(tag)>(dst, n, value); });
}

void CpuBackend::cast(DType from, const void* src, DType to, void* dst, int64_t n) {
  with_any_type(from, [&](auto f) {
    with_any_type(to, [&](auto t) { cast_typed<decltype(f), decltype(t)>(src, dst, n); });
  });
}

void CpuBackend::gather_rows(const void* src, const int32_t* idx, void* dst, int64_t n_idx, std::size_t row_bytes) {
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
#pragma omp parallel for schedule(static, iteration_chunk(n_idx, n_idx * static_cast<int64_t>(row_bytes) / 4)) if (threads_for(n_idx * static_cast<int64_t>(row_bytes) / 4) > 1)
  for (int64_t i = 0; i < n_idx; ++i) std::memcpy(d + i * row_bytes, s + static_cast<std::size_t>(idx[i]) * row_bytes, row_bytes);
}

void CpuBackend::select_batch(const int32_t* perm, const int64_t* index, int32_t* idx, int64_t n) {
  std::memcpy(idx, perm + *index * n, static_cast<std::size_t>(n) * sizeof(int32_t));
}

}  // namespace kiln::backend
