// The CPU batch normalization's channel sums at the channel counts that take each of its paths
// (channels summed in register tiles up to 32 channels, a partial tile after the whole ones, and
// row by row above 32) and over several row blocks: the fused op's forward pass equals moments +
// batch_normalization bit for bit, as the composition's sums are the same sums in the same order,
// and in float64 its gradients equal the composition's to rounding (in float32 the two
// arrangements of the derivative drift apart with the row count: over 600 rows, by more than the
// 120-row test in test_batch_normalization.cpp allows).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "kiln/kiln.h"

namespace {

using kiln::DType;
using kiln::Tensor;

std::vector<double> doubles(const Tensor& t) { return t.to_vector<double>(); }

TEST(CpuBatchNormSums, FusedEqualsTheCompositionAtEveryChannelPath) {
  for (const DType dtype : {DType::Float32, DType::Float64})
    for (const int64_t C : {3, 16, 20, 32, 48, 64}) {
      kiln::Generator gen(static_cast<uint64_t>(40 + C));
      // 600 rows: two whole blocks of 256 rows and a partial one; a mean away from 0.
      const Tensor x0 =
          kiln::add(Tensor::uniform({6, 100, C}, -2.5, 2.5, gen, dtype), Tensor::uniform({C}, -2.0, 3.0, gen, dtype));
      const Tensor r = Tensor::uniform(x0.shape(), 0.5, 1.5, gen, dtype);
      const Tensor gamma0 = Tensor::uniform({C}, 0.5, 2, gen, dtype), beta0 = Tensor::uniform({C}, -1, 1, gen, dtype);
      const auto run = [&](bool fused) {
        Tensor x = x0.detach(), gamma = gamma0.detach(), beta = beta0.detach();
        for (Tensor* t : {&x, &gamma, &beta}) t->set_requires_grad(true);
        Tensor y, mean, variance;
        if (fused) {
          const kiln::FusedBatchNorm f = kiln::fused_batch_norm(x, gamma, beta, 1e-3);
          y = f.y, mean = f.mean, variance = f.variance;
        } else {
          std::tie(mean, variance) = kiln::moments(x);
          y = kiln::batch_normalization(x, mean, variance, beta, gamma, 1e-3);
        }
        kiln::sum(kiln::mul(y, r)).backward();
        return std::vector<std::vector<double>>{doubles(y),        doubles(mean),         doubles(variance),
                                                doubles(x.grad()), doubles(gamma.grad()), doubles(beta.grad())};
      };
      const auto composed = run(false), fused = run(true);
      const char* names[] = {"y", "mean", "variance", "dx", "dgamma", "dbeta"};
      for (std::size_t i = 0; i < 3; ++i)
        EXPECT_EQ(fused[i], composed[i]) << names[i] << " C=" << C << " " << kiln::dtype_name(dtype);
      for (std::size_t i = 3; dtype == DType::Float64 && i < composed.size(); ++i) {
        double worst = 0;
        for (std::size_t j = 0; j < composed[i].size(); ++j)
          worst = std::max(worst, std::abs(fused[i][j] - composed[i][j]) / (1.0 + std::abs(composed[i][j])));
        EXPECT_LT(worst, 1e-11) << names[i] << " C=" << C << " " << kiln::dtype_name(dtype);
      }
    }
}

}  // namespace
