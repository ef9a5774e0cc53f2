// Backend::scaled_copy_multi, the packing of a data-parallel fit's gradient sum: every part is
// scale * src in the element type (an exact copy at scale 1, zeros without a source), on the CPU
// against values computed here, and on a GPU bit for bit against the CPU with more parts than one
// launch takes.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "cuda_parity.h"
#include "test_support.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

constexpr int kParts = 61;  // more than one GPU launch takes

struct Parts {
  std::vector<std::size_t> size;
  std::vector<std::vector<float>> src;  // empty: no source (zeros)
  std::vector<double> scale;
};

// Parts of 0 to 300 elements: sources and none, scales of 1 and others.
Parts parts() {
  Parts p;
  for (int k = 0; k < kParts; ++k) {
    p.size.push_back(static_cast<std::size_t>((k * 37) % 301));
    p.src.push_back(k % 7 == 3 ? std::vector<float>() : random_vec(p.size.back(), -5, 5));
    p.scale.push_back(k % 3 == 0 ? 1.0 : 0.25 + 0.1 * k);
  }
  return p;
}

const float* source(const Parts& p, int k) { return p.src[k].empty() ? nullptr : p.src[k].data(); }

}  // namespace

TEST(ScaledCopyMulti, EachPartIsScaleTimesItsSourceOrZeros) {
  const Parts p = parts();
  std::vector<std::vector<float>> dst;
  std::vector<backend::ScaledCopy> copies;
  for (int k = 0; k < kParts; ++k) dst.emplace_back(p.size[k], 9.f);
  for (int k = 0; k < kParts; ++k)
    copies.push_back({source(p, k), dst[k].data(), static_cast<int64_t>(p.size[k]), p.scale[k]});
  backend::cpu().scaled_copy_multi(DType::Float32, copies.data(), kParts);
  for (int k = 0; k < kParts; ++k)
    for (std::size_t i = 0; i < dst[k].size(); ++i) {
      const float want = p.src[k].empty() ? 0.f : static_cast<float>(p.scale[k]) * p.src[k][i];
      ASSERT_EQ(dst[k][i], want) << "part " << k << " element " << i;
    }
}

TEST(ScaledCopyMulti, GpuEqualsCpuBitForBit) {
  REQUIRE_GPU();
  const Parts p = parts();
  std::vector<std::vector<float>> want;
  std::vector<std::unique_ptr<DevBuf>> src, dst;
  std::vector<backend::ScaledCopy> on_cpu, on_gpu;
  for (int k = 0; k < kParts; ++k) {
    const auto n = static_cast<int64_t>(p.size[k]);
    want.emplace_back(p.size[k]);
    on_cpu.push_back({source(p, k), want[k].data(), n, p.scale[k]});
    const bool empty = n == 0;  // no device buffer of 0 bytes
    src.push_back(source(p, k) && !empty ? std::make_unique<DevBuf>(p.src[k]) : nullptr);
    dst.push_back(empty ? nullptr : std::make_unique<DevBuf>(std::vector<float>(p.size[k], 9.f)));
    on_gpu.push_back({src[k] ? src[k]->ptr : nullptr, dst[k] ? dst[k]->ptr : nullptr, n, p.scale[k]});
  }
  backend::cpu().scaled_copy_multi(DType::Float32, on_cpu.data(), kParts);
  gpu().scaled_copy_multi(DType::Float32, on_gpu.data(), kParts);
  for (int k = 0; k < kParts; ++k) {
    if (!dst[k]) continue;
    EXPECT_EQ(dst[k]->get<float>(), want[k]) << "part " << k;
  }
}
