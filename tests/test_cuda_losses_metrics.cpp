// GPU against CPU for the ops of the losses and metrics: abs, sigmoid cross-entropy, the top-k and
// binary accuracy counts; fresh random inputs each run, NaN included, float32 and float64.
#include <gtest/gtest.h>

#include "cuda_parity.h"
#include "test_support.h"

namespace kiln::testing {
namespace {

TEST(CudaLossesMetrics, AbsAndItsGradientMatchCpu) {
  REQUIRE_GPU();
  using backend::UnaryOp;
  const int64_t n = 100003;
  auto x = with_nans(random_vec(n, -3, 3));
  x[1] = 0.f;  // the gradient at 0 is 0 on both
  const auto dy = random_vec(n);
  std::vector<float> y(n), dx(n);
  cpu().unary(UnaryOp::Abs, DType::Float32, x.data(), y.data(), n);
  cpu().unary_backward(UnaryOp::Abs, DType::Float32, x.data(), y.data(), dy.data(), dx.data(), n);
  DevBuf gx(x), gy(n * sizeof(float)), gdy(dy), gdx(n * sizeof(float));
  gpu().unary(UnaryOp::Abs, DType::Float32, gx.ptr, gy.ptr, n);
  gpu().unary_backward(UnaryOp::Abs, DType::Float32, gx.ptr, gy.ptr, gdy.ptr, gdx.ptr, n);
  // Exact: a sign flip and a sign.
  expect_close(y, gy.get<float>(), 0, 0, "abs");
  expect_close(dx, gdx.get<float>(), 0, 0, "abs backward");
}

template <typename T>
void check_sigmoid_xent() {
  const int64_t n = 50021;
  const auto x = with_nans(random_vec<T>(n, -30, 30));
  const auto z = random_vec<T>(n, 0, 1);
  std::vector<T> loss(n);
  cpu().sigmoid_xent(dtype_of<T>(), x.data(), z.data(), loss.data(), n);
  DevBuf gx(x), gz(z), gl(n * sizeof(T));
  gpu().sigmoid_xent(dtype_of<T>(), gx.ptr, gz.ptr, gl.ptr, n);
  // Tolerance: CUDA's exp and log1p are within 2 ulp of the host's; the terms are at most ~30 and
  // add in the same order: a few ulps of 30 absolute.
  const double ulp = std::numeric_limits<T>::epsilon();
  expect_close(loss, gl.get<T>(), 8 * ulp, 64 * ulp, "sigmoid_xent");
}

TEST(CudaLossesMetrics, SigmoidCrossEntropyMatchesCpu) {
  REQUIRE_GPU();
  check_sigmoid_xent<float>();
  check_sigmoid_xent<double>();
}

TEST(CudaLossesMetrics, TopKAndBinaryAccuracyCountsMatchCpu) {
  REQUIRE_GPU();
  for (int64_t cols : {1, 5, 33, 1000})
    for (int64_t k : {1, 3, 5, 2000}) {
      const int64_t rows = 517;
      auto x = tied_vec(rows * cols, 4);  // many ties at the boundary
      x[7 * cols] = std::numeric_limits<float>::quiet_NaN();
      x[9 * cols] = std::numeric_limits<float>::infinity();
      std::vector<int32_t> labels(rows);
      for (auto& l : labels) l = static_cast<int32_t>(rng()() % cols);
      float correct = 3.f;
      cpu().in_top_k_sum(DType::Float32, x.data(), labels.data(), &correct, rows, cols, k);
      DevBuf gx(x), gl(labels), gc(std::vector<float>{3.f});
      gpu().in_top_k_sum(DType::Float32, gx.ptr, gl.as<int32_t>(), gc.ptr, rows, cols, k);
      EXPECT_EQ(gc.get<float>()[0], correct) << cols << " " << k;  // whole counts: exact
    }
  for (int64_t n : {1, 1000, 70001}) {
    const auto x = with_nans(random_vec(n, 0, 1));
    std::vector<float> z(n);
    for (auto& v : z) v = static_cast<float>(rng()() % 2);
    float matches = 1.f;
    cpu().binary_accuracy_sum(DType::Float32, x.data(), z.data(), &matches, n, 0.5, 0.25);
    DevBuf gx(x), gz(z), gm(std::vector<float>{1.f});
    gpu().binary_accuracy_sum(DType::Float32, gx.ptr, gz.ptr, gm.ptr, n, 0.5, 0.25);
    EXPECT_EQ(gm.get<float>()[0], matches) << n;  // one count scaled once on both: exact
  }
}

}  // namespace
}  // namespace kiln::testing
