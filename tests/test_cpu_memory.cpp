// The CPU allocator keeps freed large blocks for the next request of their size (no fresh pages to
// fault in at every training step), reports them as cached, gives them back on empty_cache, and
// passes small blocks straight to the C library. Under AddressSanitizer it keeps nothing.
#include <gtest/gtest.h>

#include <cstring>

#include "backend/backend.h"
#include "kiln/kiln.h"

using namespace kiln;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kKeeps = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kKeeps = false;
#else
constexpr bool kKeeps = true;
#endif
#else
constexpr bool kKeeps = true;
#endif

}  // namespace

TEST(CpuMemory, AFreedLargeBlockServesTheNextRequestOfItsSize) {
  if (!kKeeps) GTEST_SKIP() << "under AddressSanitizer the allocator keeps no block";
  backend::Allocator& a = backend::get(Device::cpu()).allocator();
  a.empty_cache();
  const std::size_t bytes = (std::size_t(3) << 20) + 100;  // rounded up to whole pages when kept
  void* first = a.allocate(bytes);
  std::memset(first, 1, bytes);
  const MemoryStats live = a.stats();
  a.deallocate(first, bytes);
  EXPECT_EQ(a.stats().in_use, live.in_use - bytes);
  EXPECT_EQ(a.stats().allocations, live.allocations - 1);
  EXPECT_GE(a.stats().cached, bytes);
  void* again = a.allocate(bytes - 50);  // the same page-rounded size
  EXPECT_EQ(again, first);
  EXPECT_EQ(a.stats().cached, 0u);
  a.deallocate(again, bytes - 50);
  EXPECT_GT(memory_stats(Device::cpu()).cached, 0u);
  empty_cache(Device::cpu());
  EXPECT_EQ(memory_stats(Device::cpu()).cached, 0u);
}

TEST(CpuMemory, SmallBlocksAreNotKept) {
  backend::Allocator& a = backend::get(Device::cpu()).allocator();
  a.empty_cache();
  void* p = a.allocate(1000);
  a.deallocate(p, 1000);
  EXPECT_EQ(a.stats().cached, 0u);
}

TEST(CpuMemory, TensorsReuseTheBlocksOfTensorsThatDied) {
  if (!kKeeps) GTEST_SKIP() << "under AddressSanitizer the allocator keeps no block";
  empty_cache(Device::cpu());
  const void* before = nullptr;
  {
    const Tensor t = Tensor::zeros({512, 1024});
    before = t.raw_data();
  }
  EXPECT_EQ(memory_stats(Device::cpu()).cached, std::size_t(2) << 20);
  const Tensor u = Tensor::zeros({1024, 512});
  EXPECT_EQ(u.raw_data(), before);
  EXPECT_EQ(u.to_vector<float>()[12345], 0.0f) << "a reused block is filled like a new one";
  empty_cache(Device::cpu());
}
