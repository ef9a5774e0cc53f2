// CPU memory: aligned allocation with statistics, copies, fills, casts and row gathers.
//
// Large blocks are kept for reuse when freed. The C library returns them to the system (blocks over
// its mmap threshold, and trimmed arenas), and the next step's tensors of the same sizes then fault
// in fresh pages that the kernel zeroes first: in a CPU training step that was several percent of
// the time (bench/README.md). A training step asks for the same sizes at every step, so a freed
// block of a size is the next request's of that size. Small blocks go straight to the C library,
// whose bins reuse them without faults. Under AddressSanitizer nothing is kept, so that a use after
// free still reaches it.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__linux__)
#include <sys/sysinfo.h>
#endif

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_half.h"
#include "backend/dtype_dispatch.h"

namespace kiln::backend {

namespace {
std::mutex stats_mutex;
constexpr std::size_t kAlignment = 64;  // a cache line; also what AVX-512 loads like

#if defined(__SANITIZE_ADDRESS__)
#define KILN_CPU_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_CPU_ADDRESS_SANITIZER 1
#endif
#endif
#ifdef KILN_CPU_ADDRESS_SANITIZER
constexpr std::size_t kSmallestKept = std::numeric_limits<std::size_t>::max();  // keep nothing
#else
constexpr std::size_t kSmallestKept = std::size_t(256) << 10;  // beyond the C library's bins
#endif
constexpr std::size_t kPage = 4096;                      // kept sizes are whole pages: more reuse
constexpr std::size_t kMostKept = std::size_t(2) << 30;  // bytes kept at most; more are freed

// Freed large blocks by (page-rounded) size, under stats_mutex. Never destroyed: tensors may be
// freed by other static objects' destructors at exit.
struct KeptBlocks {
  std::unordered_map<std::size_t, std::vector<void*>> by_size;
  std::size_t bytes = 0;
};
KeptBlocks& kept() {
  static auto* blocks = new KeptBlocks;
  return *blocks;
}

// The size a request is served at: 64-byte multiples, whole pages for the sizes kept.
std::size_t block_size(std::size_t bytes) {
  const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded < kSmallestKept) return rounded ? rounded : kAlignment;
  return (rounded + kPage - 1) / kPage * kPage;
}

std::string mib(std::size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

// The machine's memory and swap, in bytes; 0 where the system does not say. Read once: totals do
// not change while a program runs (often enough to matter), and allocation is on every op's path.
struct HostMemory {
  std::size_t ram = 0, swap = 0;
};
const HostMemory& host_memory() {
  static const HostMemory m = [] {
    HostMemory r;
#if defined(__linux__)
    struct sysinfo info {};
    if (sysinfo(&info) == 0) {
      r.ram = static_cast<std::size_t>(info.totalram) * info.mem_unit;
      r.swap = static_cast<std::size_t>(info.totalswap) * info.mem_unit;
    }
#endif
    return r;
  }();
  return m;
}

// The C runtime of Windows has no aligned_alloc; its aligned blocks come from _aligned_malloc and
// must go back through _aligned_free.
void* aligned_block(std::size_t alignment, std::size_t bytes) {
#ifdef _WIN32
  return _aligned_malloc(bytes, alignment);
#else
  return std::aligned_alloc(alignment, bytes);
#endif
}
void free_aligned_block(void* p) {
#ifdef _WIN32
  _aligned_free(p);
#else
  std::free(p);
#endif
}

[[noreturn]] void throw_out_of_memory(std::size_t bytes, std::size_t in_use, const HostMemory& m) {
  std::string machine;
  if (m.ram) machine = "; the machine has " + mib(m.ram) + " of memory and " + mib(m.swap) + " of swap";
  throw OutOfMemoryError("cpu",
                         "out of memory on the CPU: could not allocate " + mib(bytes) + " (requested " +
                             std::to_string(bytes) + " bytes)" + machine + ", kiln holds " + mib(in_use) +
                             " in use; expected a smaller batch_size (or a smaller model)",
                         bytes);
}
}  // namespace

void* CpuAllocator::allocate(std::size_t bytes) {
  // A request beyond the machine's memory and swap together can never be backed: it fails here,
  // with its size, rather than in the C library, which under overcommit may hand out address space
  // that faults when touched, and under a sanitizer aborts.
  const HostMemory& m = host_memory();
  const bool impossible =
      bytes > std::numeric_limits<std::size_t>::max() - kPage || (m.ram && bytes > m.ram && bytes - m.ram > m.swap);
  const std::size_t size = impossible ? 0 : block_size(bytes);
  void* p = nullptr;
  if (size >= kSmallestKept) {
    std::lock_guard lock(stats_mutex);
    KeptBlocks& k = kept();
    if (auto it = k.by_size.find(size); it != k.by_size.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      k.bytes -= size;
    }
  }
  if (!p && !impossible) p = aligned_block(kAlignment, size);
  if (!p && !impossible) {  // the kept blocks go back first, then one more try
    empty_cache();
    p = aligned_block(kAlignment, size);
  }
  std::lock_guard lock(stats_mutex);
  if (!p) throw_out_of_memory(bytes, stats_.in_use, m);
  stats_.in_use += bytes;
  stats_.peak = std::max(stats_.peak, stats_.in_use);
  ++stats_.allocations;
  stats_.cached = kept().bytes;
  return p;
}

void CpuAllocator::deallocate(void* ptr, std::size_t bytes) {
  const std::size_t size = block_size(bytes);
  bool keep = false;
  {
    std::lock_guard lock(stats_mutex);
    stats_.in_use -= bytes;
    --stats_.allocations;
    KeptBlocks& k = kept();
    keep = size >= kSmallestKept && k.bytes + size <= kMostKept;
    if (keep) {
      k.by_size[size].push_back(ptr);
      k.bytes += size;
    }
    stats_.cached = k.bytes;
  }
  if (!keep) free_aligned_block(ptr);
}

void CpuAllocator::empty_cache() {
  std::vector<void*> blocks;
  {
    std::lock_guard lock(stats_mutex);
    KeptBlocks& k = kept();
    for (auto& [size, list] : k.by_size) blocks.insert(blocks.end(), list.begin(), list.end());
    k.by_size.clear();
    k.bytes = 0;
    stats_.cached = 0;
  }
  for (void* p : blocks) free_aligned_block(p);
}

MemoryStats CpuAllocator::stats() const {
  std::lock_guard lock(stats_mutex);
  return stats_;
}

Allocator& CpuBackend::allocator() { return allocator_; }

// Host work runs on the calling thread, so it is done when its call returns.
void CpuBackend::synchronize() {}

void CpuBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes && dst != src) std::memmove(dst, src, bytes);
}
void CpuBackend::copy_to_host(void* dst, const void* src, std::size_t bytes) { copy(dst, src, bytes); }
void CpuBackend::copy_from_host(void* dst, const void* src, std::size_t bytes) { copy(dst, src, bytes); }

namespace {
template <typename T>
void fill_typed(void* dst, int64_t n, double value) {
  T* p = static_cast<T*>(dst);
  const T v = convert_element<T>(value);
  for (int64_t i = 0; i < n; ++i) p[i] = v;
}

template <typename From, typename To>
void cast_typed(const void* src, void* dst, int64_t n) {
  const From* s = static_cast<const From*>(src);
  To* d = static_cast<To*>(dst);
  parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) d[i] = convert_element<To>(s[i]);
  });
}

}  // namespace

void CpuBackend::fill(DType dtype, void* dst, int64_t n, double value) {
  with_cpu_type(dtype, [&](auto tag) { fill_typed<decltype(tag)>(dst, n, value); });
}

void CpuBackend::scaled_copy_multi(DType dtype, const ScaledCopy* copies, int count) {
  with_float_type(dtype, "scaled_copy_multi", [&](auto tag) {
    using T = decltype(tag);
    for (int k = 0; k < count; ++k) {
      const ScaledCopy& c = copies[k];
      const T* src = static_cast<const T*>(c.src);
      T* dst = static_cast<T*>(c.dst);
      const T scale = static_cast<T>(c.scale);
      if (!src)
        std::fill(dst, dst + c.n, T(0));
      else if (scale == T(1))
        copy(dst, src, static_cast<std::size_t>(c.n) * sizeof(T));
      else
        for (int64_t i = 0; i < c.n; ++i) dst[i] = scale * src[i];
    }
  });
}

void CpuBackend::cast(DType from, const void* src, DType to, void* dst, int64_t n) {
  with_cpu_type(from,
                [&](auto f) { with_cpu_type(to, [&](auto t) { cast_typed<decltype(f), decltype(t)>(src, dst, n); }); });
}

void CpuBackend::gather_rows(const void* src, const int32_t* idx, void* dst, int64_t n_idx, std::size_t row_bytes) {
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  parallel_for_work(n_idx, n_idx * static_cast<int64_t>(row_bytes) / 4, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      std::memcpy(d + i * row_bytes, s + static_cast<std::size_t>(idx[i]) * row_bytes, row_bytes);
  });
}

void CpuBackend::select_batch(const int32_t* perm, const int64_t* index, int32_t* idx, int64_t n) {
  std::memcpy(idx, perm + *index * n, static_cast<std::size_t>(n) * sizeof(int32_t));
}

void CpuBackend::advance_counter(int64_t* counter) { ++*counter; }

}  // namespace kiln::backend
