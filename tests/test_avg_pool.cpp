// avg_pool2d on the CPU: Keras' "same" divisor (only the cells inside the input count), by hand on
// small cases; gradients against central differences in float64; NaN; bad input. (GPU agreement:
// test_cuda_activations_pooling_random.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
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

namespace {

// Values of channels [0, keep) of an NHWC tensor with `channels` channels.
std::vector<float> first_channels(const std::vector<float>& v, int64_t channels, int64_t keep) {
  std::vector<float> out;
  for (std::size_t i = 0; i < v.size(); i += static_cast<std::size_t>(channels))
    out.insert(out.end(), v.begin() + static_cast<std::ptrdiff_t>(i),
               v.begin() + static_cast<std::ptrdiff_t>(i) + static_cast<std::ptrdiff_t>(keep));
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

// The float32 kernels take channel counts up to 8 as compile-time constants, and windows that tile
// the input without zeroing the gradient first: both must give the bits of the general path, which
// a layer of more channels takes. So each geometry runs with C channels (1..9) and with C + 9
// channels whose first C hold the same values, and the first C channels of the output and of the
// input gradient (of sum(y * w), w random) must be the same floats.
TEST(AvgPool, Float32FewChannelsAndTilingGiveTheGeneralPathsBits) {
  const std::vector<AvgPoolCase> geometries = {
      {{2, 4, 6, 0}, {2, 2}, {2, 2}, Padding::Valid},   // tiles
      {{2, 5, 6, 0}, {2, 2}, {2, 2}, Padding::Valid},   // a row left over: does not tile
      {{1, 5, 6, 0}, {3, 3}, {1, 1}, Padding::Valid},   // overlapping
      {{2, 5, 6, 0}, {3, 3}, {2, 2}, Padding::Same},    // padding both sides
      {{1, 5, 5, 0}, {2, 2}, {2, 2}, Padding::Same},    // padding after: tiles the padded input only
      {{2, 6, 6, 0}, {2, 2}, {3, 3}, Padding::Valid}};  // gaps between windows
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  const auto random = [&](int64_t n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& e : v) e = uniform(rng);
    return v;
  };
  for (const AvgPoolCase& g : geometries)
    for (int64_t few = 1; few <= 9; ++few) {
      const int64_t wide = few + 9;
      const Shape x_wide{g.x[0], g.x[1], g.x[2], wide}, x_few{g.x[0], g.x[1], g.x[2], few};
      const std::vector<float> xv = random(x_wide.numel());
      Tensor xw = Tensor::from_vector(xv, x_wide), xf = Tensor::from_vector(first_channels(xv, wide, few), x_few);
      xw.set_requires_grad(true);
      xf.set_requires_grad(true);
      const Tensor yw = avg_pool2d(xw, g.pool, g.strides, g.padding);
      const Tensor yf = avg_pool2d(xf, g.pool, g.strides, g.padding);
      const std::vector<float> wv = random(yw.shape().numel());
      const Shape y_few{yw.shape()[0], yw.shape()[1], yw.shape()[2], few};
      sum(yw * Tensor::from_vector(wv, yw.shape())).backward();
      sum(yf * Tensor::from_vector(first_channels(wv, wide, few), y_few)).backward();
      const std::string what =
          "x " + x_few.str() + ", window " + std::to_string(g.pool[0]) + ", stride " + std::to_string(g.strides[0]);
      EXPECT_TRUE(same_bits(yf.to_vector<float>(), first_channels(yw.to_vector<float>(), wide, few))) << what;
      EXPECT_TRUE(same_bits(xf.grad().to_vector<float>(), first_channels(xw.grad().to_vector<float>(), wide, few)))
          << what;
    }
}

// Windows that tile the input: in float32, each output is the window's cells summed in row-major
// order and divided by 4, and each input cell's gradient its window's gradient divided by 4 (written
// without a zeroed gradient under it), with a channel count the kernels know at compile time (6) and
// one they do not (11).
TEST(AvgPool, Float32TilingWindowsAreTheirOrderedMean) {
  for (const int64_t channels : {6, 11}) {
    const Shape shape{2, 4, 6, channels};
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
    std::vector<float> xv(static_cast<std::size_t>(shape.numel())), wv(xv.size() / 4);
    for (float& e : xv) e = uniform(rng);
    for (float& e : wv) e = uniform(rng);
    Tensor x = Tensor::from_vector(xv, shape);
    x.set_requires_grad(true);
    const Tensor y = avg_pool2d(x, {2, 2}, {2, 2});
    sum(y * Tensor::from_vector(wv, y.shape())).backward();
    const std::vector<float> yv = y.to_vector<float>(), dx = x.grad().to_vector<float>();
    const auto at = [&](int64_t n, int64_t h, int64_t w, int64_t c, int64_t height, int64_t width) {
      return static_cast<std::size_t>(((n * height + h) * width + w) * channels + c);
    };
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t w = 0; w < 6; ++w)
          for (int64_t c = 0; c < channels; ++c) {
            const std::size_t o = at(n, h / 2, w / 2, c, 2, 3);
            EXPECT_EQ(dx[at(n, h, w, c, 4, 6)], wv[o] / 4.0f) << channels << " channels, cell " << h << "," << w;
            if (h % 2 != 0 || w % 2 != 0) continue;
            const float window =
                ((xv[at(n, h, w, c, 4, 6)] + xv[at(n, h, w + 1, c, 4, 6)]) + xv[at(n, h + 1, w, c, 4, 6)]) +
                xv[at(n, h + 1, w + 1, c, 4, 6)];
            EXPECT_EQ(yv[o], window / 4.0f) << channels << " channels, window " << h / 2 << "," << w / 2;
          }
  }
}

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
