// avg_pool2d on the CPU: Keras' "same" divisor (only the cells inside the input count), by hand on
// small cases; gradients against central differences in float64; NaN; bad input. (GPU agreement:
// test_cuda_activations_pooling_random.cpp.)
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

// 1..9 as a [1, 3, 3, 1] image.
Tensor one_to_nine(bool requires_grad = false) {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, Shape{1, 3, 3, 1});
  x.set_requires_grad(requires_grad);
  return x;
}

}  // namespace

TEST(AvgPool, SamePaddingDividesByTheCellsInsideTheInput) {
  // 3x3 windows, stride 1, "same" on 3x3: a corner window holds 4 cells, an edge one 6, the centre 9.
  Tensor x = one_to_nine(true);
  const Tensor y = avg_pool2d(x, {3, 3}, {1, 1}, Padding::Same);
  EXPECT_EQ(y.shape(), (Shape{1, 3, 3, 1}));
  EXPECT_EQ(y.to_vector<double>(),
            (std::vector<double>{(1 + 2 + 4 + 5) / 4.0, (1 + 2 + 3 + 4 + 5 + 6) / 6.0, (2 + 3 + 5 + 6) / 4.0,
                                 (1 + 2 + 4 + 5 + 7 + 8) / 6.0, 45 / 9.0, (2 + 3 + 5 + 6 + 8 + 9) / 6.0,
                                 (4 + 5 + 7 + 8) / 4.0, (4 + 5 + 6 + 7 + 8 + 9) / 6.0, (5 + 6 + 8 + 9) / 4.0}));
  // d sum(y) / dx: each cell gets 1/count of every window that holds it. The corner (0, 0) is in
  // windows (0, 0) [4 cells], (0, 1) and (1, 0) [6 each] and (1, 1) [9]; the centre in all nine.
  sum(y).backward();
  const std::vector<double> g = x.grad().to_vector<double>();
  EXPECT_NEAR(g[0], 1 / 4.0 + 2 / 6.0 + 1 / 9.0, 1e-15);
  EXPECT_NEAR(g[4], 4 / 4.0 + 4 / 6.0 + 1 / 9.0, 1e-15);
}

TEST(AvgPool, SamePaddingAfterTheInputIsNotCounted) {
  // 2x2 windows, stride 2, "same" on 3x3: one padded row and column after the input (TensorFlow
  // puts the odd one there). Window (0, 1) holds cells 3 and 6; window (1, 1) only cell 9.
  const Tensor y = avg_pool2d(one_to_nine(), {2, 2}, {2, 2}, Padding::Same);
  EXPECT_EQ(y.shape(), (Shape{1, 2, 2, 1}));
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{(1 + 2 + 4 + 5) / 4.0, (3 + 6) / 2.0, (7 + 8) / 2.0, 9.0}));
}

TEST(AvgPool, ValidPaddingIsTheWindowMeanPerChannel) {
  // Two channels: 1..9 and their negatives times 10; 2x2 windows, stride 1.
  std::vector<float> v;
  for (int i = 1; i <= 9; ++i) v.insert(v.end(), {float(i), -10.f * float(i)});
  const Tensor y = avg_pool2d(Tensor::from_vector(v, Shape{1, 3, 3, 2}), {2, 2}, {1, 1});
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{3, -30, 4, -40, 6, -60, 7, -70}));
}

struct AvgPoolCase {
  Shape x;
  std::array<int64_t, 2> pool, strides;
  Padding padding;
};

class AvgPoolGradcheck : public ::testing::TestWithParam<AvgPoolCase> {};

TEST_P(AvgPoolGradcheck, Input) {
  const AvgPoolCase c = GetParam();
  EXPECT_TRUE(gradcheck([c](In v) { return avg_pool2d(v[0], c.pool, c.strides, c.padding); }, {random_input(c.x, 41)}));
}

INSTANTIATE_TEST_SUITE_P(
    Geometries, AvgPoolGradcheck,
    ::testing::Values(AvgPoolCase{{2, 4, 4, 3}, {2, 2}, {2, 2}, Padding::Valid},    // tiles
                      AvgPoolCase{{1, 5, 6, 2}, {3, 3}, {1, 1}, Padding::Valid},    // overlapping
                      AvgPoolCase{{2, 5, 6, 2}, {3, 3}, {2, 2}, Padding::Same},     // padding both sides
                      AvgPoolCase{{1, 4, 5, 3}, {2, 2}, {1, 1}, Padding::Same},     // padding after only
                      AvgPoolCase{{1, 7, 5, 1}, {3, 2}, {3, 2}, Padding::Same},     // unequal window
                      AvgPoolCase{{2, 6, 6, 2}, {2, 2}, {3, 3}, Padding::Valid}));  // gaps between windows

TEST(AvgPool, NanReachesOnlyTheWindowsHoldingIt) {
  std::vector<double> v = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  v[0] = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> y =
      avg_pool2d(Tensor::from_vector(v, Shape{1, 3, 3, 1}), {2, 2}, {1, 1}).to_vector<double>();
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], (2 + 3 + 5 + 6) / 4.0);
  EXPECT_EQ(y[2], (4 + 5 + 7 + 8) / 4.0);
  EXPECT_EQ(y[3], (5 + 6 + 8 + 9) / 4.0);
}

TEST(AvgPool, BadInputSaysWhatIsExpected) {
  const auto error_of = [](const Tensor& x, std::array<int64_t, 2> pool, std::array<int64_t, 2> strides) {
    return message_of([&] { avg_pool2d(x, pool, strides); });
  };
  const Tensor x = Tensor::zeros({1, 3, 3, 1});
  EXPECT_EQ(error_of(Tensor::zeros({3, 3, 1}), {2, 2}, {2, 2}),
            "[avg_pool2d] input (NHWC) has shape [3, 3, 1]; expected 4 dimensions");
  EXPECT_EQ(error_of(Tensor::zeros({1, 3, 3, 1}, DType::Int32), {2, 2}, {2, 2}),
            "[avg_pool2d] input has dtype int32; expected a floating dtype (float32, float64, float16 or bfloat16)");
  EXPECT_EQ(error_of(x, {4, 2}, {1, 1}),
            "[avg_pool2d] input height 3 is smaller than the window (4) with padding \"valid\"; expected an input at "
            "least as large, or padding \"same\"");
  EXPECT_EQ(error_of(x, {2, 2}, {1, 0}), "[avg_pool2d] window width size 2 and stride 0; expected both >= 1");
}
