// The CPU matrix product against a plain triple loop, including the skinny shapes that are split
// into per-chunk products across threads (rows, columns or depth of a dense layer at small batch).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "kiln/kiln.h"

namespace {

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

class ThreadCount {  // restores the thread count when a test ends
 public:
  explicit ThreadCount(int t) : saved_(kiln::get_num_threads()) { kiln::set_num_threads(t); }
  ~ThreadCount() { kiln::set_num_threads(saved_); }

 private:
  int saved_;
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
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (const Case& t : cases)
    for (const bool ta : {false, true})
      for (const bool tb : {false, true}) {
        std::vector<double> a(static_cast<std::size_t>(t.m * t.k)), b(static_cast<std::size_t>(t.k * t.n)),
            c(static_cast<std::size_t>(t.m * t.n));
        for (auto* v : {&a, &b, &c})
          for (double& x : *v) x = dist(rng);
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
