// gelu (exact and tanh forms), silu, elu and leaky_relu on the CPU: values against Keras' numbers,
// gradients against central differences in float64, NaN, and the bad-parameter messages. (GPU
// agreement: test_cuda_activations_pooling_random.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::message_of;
using kiln::testing::random_input;

namespace {

using In = const std::vector<Tensor>&;

const std::vector<double> kPoints = {1.0, -1.0, 0.5, -2.5, 3.0};

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

void expect_values(const Tensor& y, const std::vector<double>& want, double rtol, const char* what) {
  const std::vector<double> got = values(y);
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], rtol * std::abs(want[i])) << what << " at x = " << kPoints[i];
}

}  // namespace

// Reference numbers: Python's math module, with Keras' formulas (0.5 x (1 + erf(x / sqrt 2)), the
// tanh form with 0.044715, x sigmoid(x), alpha expm1(x)).
TEST(ActivationOps, MatchKerasFormulas) {
  const Tensor x = Tensor::from_vector(kPoints, Shape{5});
  expect_values(
      gelu(x), {0.8413447460685429, -0.15865525393145707, 0.34573123063700656, -0.015524163314440348, 2.99595030590511},
      1e-14, "gelu");
  expect_values(
      gelu(x, true),
      {0.8411919906082768, -0.15880800939172324, 0.34571400982514394, -0.015084266089998577, 2.996362607918227}, 1e-14,
      "gelu approximate");
  expect_values(silu(x),
                {0.7310585786300049, -0.2689414213699951, 0.3112296656009273, -0.18964545005310887, 2.8577223804672998},
                1e-14, "silu");
  expect_values(elu(x), {1.0, -0.6321205588285577, 0.5, -0.9179150013761013, 3.0}, 1e-14, "elu");
  expect_values(elu(x, 0.5), {1.0, -0.31606027941427883, 0.5, -0.45895750068805063, 3.0}, 1e-14, "elu alpha 0.5");
  expect_values(leaky_relu(x), {1.0, -0.2, 0.5, -0.5, 3.0}, 1e-14, "leaky_relu");
  expect_values(leaky_relu(x, 0.01), {1.0, -0.01, 0.5, -0.025, 3.0}, 1e-14, "leaky_relu slope 0.01");
  // float32 agrees with the float64 values to float32's precision.
  const Tensor x32 = x.astype(DType::Float32);
  const std::vector<double> g64 = values(gelu(x)), g32 = values(gelu(x32));
  for (std::size_t i = 0; i < g64.size(); ++i) EXPECT_NEAR(g32[i], g64[i], 2e-7 * std::abs(g64[i])) << i;
}

TEST(ActivationOps, ExactGeluKeepsItsPrecisionFarBelowZero) {
  // 0.5 x (1 + erf(x / sqrt 2)) rounds to -0 at x = -10; the erfc form keeps the tiny true value.
  const double y = gelu(Tensor::from_vector<double>({-10.0}, Shape{1})).item();
  EXPECT_NEAR(y, -7.619853024160593e-23, 1e-13 * 7.6e-23);
}

TEST(ActivationOps, GradientsMatchCentralDifferences) {
  auto x = random_input({4, 5}, 31, -3.0, 3.0);
  EXPECT_TRUE(gradcheck([](In v) { return gelu(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return gelu(v[0], true); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return silu(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return elu(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return elu(v[0], 0.5); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return leaky_relu(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return leaky_relu(v[0], 1.7); }, {x}));
  // Large |x|: the tails of the GELU and SiLU derivatives.
  auto wide = random_input({3, 4}, 32, -9.0, 9.0);
  EXPECT_TRUE(gradcheck([](In v) { return gelu(v[0]); }, {wide}));
  EXPECT_TRUE(gradcheck([](In v) { return gelu(v[0], true); }, {wide}));
  EXPECT_TRUE(gradcheck([](In v) { return silu(v[0]); }, {wide}));
}

TEST(ActivationOps, GradientAtZeroIsTheNegativeBranchSlope) {
  // TensorFlow's rule: at x = 0, elu's gradient is alpha and leaky_relu's the slope.
  for (const double alpha : {1.0, 0.5}) {
    Tensor x = Tensor::zeros({1}, DType::Float64);
    x.set_requires_grad(true);
    elu(x, alpha).backward();
    EXPECT_EQ(x.grad().item(), alpha);
  }
  Tensor x = Tensor::zeros({1}, DType::Float64);
  x.set_requires_grad(true);
  leaky_relu(x, 0.3).backward();
  EXPECT_EQ(x.grad().item(), 0.3);
}

TEST(ActivationOps, NanPropagates) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = Tensor::from_vector<double>({nan, 1.0, -1.0}, Shape{3}).astype(dtype);
    for (const Tensor& y : {gelu(x), gelu(x, true), silu(x), elu(x), leaky_relu(x)}) {
      const std::vector<double> v = values(y);
      EXPECT_TRUE(std::isnan(v[0])) << dtype_name(dtype);
      EXPECT_FALSE(std::isnan(v[1]) || std::isnan(v[2])) << dtype_name(dtype);
    }
  }
  // At a NaN input the leaky_relu gradient is dy times the slope (TensorFlow's and PyTorch's rule),
  // the smooth activations' gradients are NaN.
  Tensor x = Tensor::from_vector<double>({nan}, Shape{1});
  x.set_requires_grad(true);
  leaky_relu(x, 0.25).backward();
  EXPECT_EQ(x.grad().item(), 0.25);
  x.zero_grad();
  gelu(x).backward();
  EXPECT_TRUE(std::isnan(x.grad().item()));
}

TEST(ActivationOps, BadInputsSayWhatIsExpected) {
  const Tensor ints = Tensor::zeros({2}, DType::Int32);
  EXPECT_EQ(message_of([&] { gelu(ints); }),
            "[gelu] input has dtype int32; expected a floating dtype (float32, float64, float16 or bfloat16)");
  EXPECT_EQ(message_of([&] { silu(Tensor()); }), "[silu] input is an undefined tensor");
  const Tensor x = Tensor::zeros({2});
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(message_of([&] { elu(x, nan); }), "[elu] alpha is nan; expected a finite number");
  EXPECT_EQ(message_of([&] { leaky_relu(x, inf); }), "[leaky_relu] negative_slope is inf; expected a finite number");
}
