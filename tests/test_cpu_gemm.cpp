// The CPU matrix product against a plain triple loop, including the skinny shapes that are split
// into per-chunk products across threads (rows, columns or depth of a dense layer at small batch).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "kiln/kiln.h"
#include "test_support.h"

namespace {

using kiln::testing::ThreadCount;

using kiln::backend::cpu;

// C = alpha op(A) op(B) + beta C, in the order of the definition, in long double.
std::vector<double> reference(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                              const std::vector<double>& a, const std::vector<double>& b, double beta,
                              std::vector<double> c) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      long double s = 0;
      for (int64_t p = 0; p < k; ++p)
        s += static_cast<long double>(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
      c[i * n + j] = static_cast<double>(alpha * s + beta * c[i * n + j]);
    }
  return c;
}

// A, B and C of an m x n x k product, uniform in [-1, 1].
struct Operands {
  std::vector<double> a, b, c;
};
Operands random_operands(int64_t m, int64_t n, int64_t k, std::mt19937& rng) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  Operands o{std::vector<double>(static_cast<std::size_t>(m * k)), std::vector<double>(static_cast<std::size_t>(k * n)),
             std::vector<double>(static_cast<std::size_t>(m * n))};
  for (auto* v : {&o.a, &o.b, &o.c})
    for (double& x : *v) x = dist(rng);
  return o;
}

class Avx512Products {  // sets whether products use the AVX-512 copy; restores it when a test ends
 public:
  explicit Avx512Products(bool on) : saved_(kiln::backend::gemm_avx512_enabled()) {
    kiln::backend::set_gemm_avx512(on);
  }
  ~Avx512Products() { kiln::backend::set_gemm_avx512(saved_); }

 private:
  bool saved_;
};

}  // namespace

TEST(CpuGemm, SkinnyProductsSplitAcrossThreadsMatchTheDefinition) {
  const ThreadCount threads(4);
  struct Case {
    int64_t m, n, k;
  };
  // Depth split (the dense layer's forward at batch 10 and 128), column split (its data gradient),
  // row split (its weight gradient), a depth that is not a multiple of the chunk, and a square
  // product that stays with Eigen's own threading.
  const Case cases[] = {{10, 64, 7200}, {128, 64, 7200}, {10, 7200, 64},
                        {7200, 64, 10}, {3, 5, 100003},  {200, 200, 200}};
  std::mt19937 rng(5);
  for (const Case& t : cases)
    for (const bool ta : {false, true})
      for (const bool tb : {false, true}) {
        auto [a, b, c] = random_operands(t.m, t.n, t.k, rng);
        const auto want = reference(ta, tb, t.m, t.n, t.k, 0.5, a, b, 2.0, c);
        cpu().gemm(kiln::DType::Float64, ta, tb, t.m, t.n, t.k, 0.5, a.data(), b.data(), 2.0, c.data());
        double worst = 0;
        for (std::size_t i = 0; i < c.size(); ++i) worst = std::max(worst, std::abs(c[i] - want[i]));
        // Sums of k products of |x| <= 1 in another order: a few ulps of k.
        EXPECT_LT(worst, 1e-15 * static_cast<double>(t.k) * 8)
            << "m=" << t.m << " n=" << t.n << " k=" << t.k << " ta=" << ta << " tb=" << tb;
      }
}

TEST(CpuGemm, SplitResultDoesNotDependOnTheThreadCount) {
  // The depth split adds its chunks in chunk order, with chunk sizes fixed by the shape.
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> a(10 * 7200), b(7200 * 64);
  for (float& x : a) x = dist(rng);
  for (float& x : b) x = dist(rng);
  std::vector<float> c2(10 * 64), c3(10 * 64);
  {
    const ThreadCount threads(2);
    cpu().gemm(kiln::DType::Float32, false, false, 10, 64, 7200, 1.0, a.data(), b.data(), 0.0, c2.data());
  }
  {
    const ThreadCount threads(3);
    cpu().gemm(kiln::DType::Float32, false, false, 10, 64, 7200, 1.0, a.data(), b.data(), 0.0, c3.data());
  }
  EXPECT_EQ(c2, c3);
}

TEST(CpuGemm, BothInstructionSetCopiesMatchTheDefinition) {
  // The product compiled at the library's level and its AVX-512 copy (where this CPU has it), in
  // float32 and float64, at the shapes of convolution layers (im2col rows x kernel, and the two
  // gradients' transposed forms) and of a dense layer.
  struct Case {
    int64_t m, n, k;
  };
  const Case cases[] = {{2048, 64, 576}, {576, 64, 2048}, {1024, 16, 144}, {10, 64, 7200}, {37, 29, 53}};
  std::mt19937 rng(9);
  for (const bool avx512 : {false, true}) {
    const Avx512Products products(avx512);
    if (avx512 && !kiln::backend::gemm_avx512_enabled()) continue;  // not on this CPU
    for (const Case& t : cases)
      for (const bool ta : {false, true})
        for (const bool tb : {false, true}) {
          const auto [a, b, c] = random_operands(t.m, t.n, t.k, rng);
          const auto want = reference(ta, tb, t.m, t.n, t.k, 0.5, a, b, 2.0, c);
          std::vector<double> c64 = c;
          cpu().gemm(kiln::DType::Float64, ta, tb, t.m, t.n, t.k, 0.5, a.data(), b.data(), 2.0, c64.data());
          const std::vector<float> a32(a.begin(), a.end()), b32(b.begin(), b.end());
          std::vector<float> c32(c.begin(), c.end());
          cpu().gemm(kiln::DType::Float32, ta, tb, t.m, t.n, t.k, 0.5, a32.data(), b32.data(), 2.0, c32.data());
          double worst64 = 0, worst32 = 0;
          for (std::size_t i = 0; i < c.size(); ++i) {
            worst64 = std::max(worst64, std::abs(c64[i] - want[i]));
            worst32 = std::max(worst32, std::abs(static_cast<double>(c32[i]) - want[i]));
          }
          // Sums of k products of |x| <= 1 in another order: a few ulps of k.
          EXPECT_LT(worst64, 1e-15 * static_cast<double>(t.k) * 8)
              << "avx512=" << avx512 << " m=" << t.m << " n=" << t.n << " k=" << t.k << " ta=" << ta << " tb=" << tb;
          EXPECT_LT(worst32, 6e-8 * static_cast<double>(t.k) * 8)
              << "avx512=" << avx512 << " m=" << t.m << " n=" << t.n << " k=" << t.k << " ta=" << ta << " tb=" << tb;
        }
  }
}
