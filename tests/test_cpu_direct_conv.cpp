// The CPU's direct convolution for few channels (forward pass with and without bias and ReLU, data
// gradient, filter and bias gradients with and without the fused ReLU) in float32 against the
// definition summed in long double, across thread counts, and where the backend chooses it.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_direct_conv.h"
#include "conv_reference.h"
#include "kiln/kiln.h"
#include "test_support.h"

namespace {

using kiln::backend::Conv2dGeometry;
using kiln::backend::cpu;
using kiln::testing::ConvPasses;
using kiln::testing::uniform_values;
using kiln::testing::worst_difference;

// A stride-1 geometry with the window kh x kw and the paddings before the rows and columns; the
// paddings after make the output oh x ow.
Conv2dGeometry geometry(int64_t n, int64_t h, int64_t w, int64_t c, int64_t f, int64_t kh, int64_t kw, int64_t oh,
                        int64_t ow, int64_t pad_top, int64_t pad_left) {
  return {n, h, w, c, kh, kw, f, oh, ow, 1, 1, pad_top, pad_left};
}

std::string describe(const Conv2dGeometry& g) {
  return "N=" + std::to_string(g.N) + " " + std::to_string(g.H) + "x" + std::to_string(g.W) + "x" +
         std::to_string(g.C) + " > " + std::to_string(g.F) + " window " + std::to_string(g.KH) + "x" +
         std::to_string(g.KW) + " output " + std::to_string(g.OH) + "x" + std::to_string(g.OW) + " pads " +
         std::to_string(g.pad_top) + "," + std::to_string(g.pad_left);
}

std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

class DirectSwitch {  // sets whether the backend may choose direct summation; restores it when a test ends
 public:
  explicit DirectSwitch(bool on) : saved_(kiln::backend::set_conv_direct(on)) {}
  ~DirectSwitch() { kiln::backend::set_conv_direct(saved_); }
  DirectSwitch(const DirectSwitch&) = delete;
  DirectSwitch& operator=(const DirectSwitch&) = delete;

 private:
  bool saved_;
};

// 'same' and 'valid' 3x3 layers; widths that leave 1 to 5 pixels after the blocks of 6; an image's 1
// and 3 channels; 8 filters; 1x1, 5x5 and 3x1 windows; an even window's uneven padding; images of
// several bands, and a batch of more bands than partial sums. Filter counts that are not a multiple
// of 8 (a masked last group, in the forward pass and the filter gradient): LeNet-5's first layer (6
// filters, 5x5 'valid'), 4, 5 and 12 filters; and LeNet-5's second layer (6 channels: its data
// gradient is not taken directly). Many channels with few filters, as a DenseNet's layers have (24,
// 60 and 128 channels, 8 or 12 filters, 3x3 and 1x1): their data gradients are not taken directly.
const Conv2dGeometry kCases[] = {
    geometry(2, 8, 8, 16, 16, 3, 3, 8, 8, 1, 1),   geometry(1, 7, 13, 3, 16, 3, 3, 7, 13, 1, 1),
    geometry(2, 5, 11, 16, 8, 3, 3, 3, 9, 0, 0),   geometry(1, 6, 9, 8, 16, 5, 5, 6, 9, 2, 2),
    geometry(3, 4, 5, 1, 8, 1, 1, 4, 5, 0, 0),     geometry(1, 9, 10, 16, 16, 3, 1, 9, 10, 1, 0),
    geometry(2, 6, 7, 8, 8, 2, 2, 6, 7, 0, 1),     geometry(2, 40, 40, 16, 16, 3, 3, 40, 40, 1, 1),
    geometry(20, 4, 4, 16, 16, 3, 3, 4, 4, 1, 1),  geometry(1, 2, 4, 16, 16, 3, 3, 2, 4, 1, 1),
    geometry(2, 32, 32, 3, 6, 5, 5, 28, 28, 0, 0), geometry(2, 14, 14, 6, 16, 5, 5, 10, 10, 0, 0),
    geometry(2, 9, 11, 5, 4, 3, 3, 9, 11, 1, 1),   geometry(1, 8, 13, 12, 5, 3, 3, 6, 11, 0, 0),
    geometry(2, 7, 9, 16, 12, 3, 3, 7, 9, 1, 1),   geometry(2, 9, 10, 24, 12, 3, 3, 9, 10, 1, 1),
    geometry(1, 6, 7, 60, 12, 3, 3, 6, 7, 1, 1),   geometry(2, 5, 5, 128, 8, 1, 1, 5, 5, 0, 0)};

}  // namespace

TEST(CpuDirectConv, ForwardAndGradientsMatchTheDefinition) {
  if (!kiln::backend::direct_conv_available())
    GTEST_SKIP() << "the direct convolution is not in this build (no AVX2 and FMA)";
  const DirectSwitch on(true);
  std::mt19937 rng(21);
  for (const Conv2dGeometry& g : kCases) {
    SCOPED_TRACE(describe(g));
    ASSERT_TRUE(kiln::backend::direct_conv_fits(g));
    EXPECT_EQ(kiln::backend::direct_conv_data_fits(g), g.C == 8 || g.C == 16);
    const auto x64 = uniform_values(g.N * g.H * g.W * g.C, rng), w64 = uniform_values(g.KH * g.KW * g.C * g.F, rng);
    const auto bias64 = uniform_values(g.F, rng), dy64 = uniform_values(g.N * g.OH * g.OW * g.F, rng);
    // The references take the float32 values, so only the sums' rounding differs: float32 sums of m
    // products in [-1, 1] err by up to about m ulps of m in the worst order, far less in practice;
    // 4 ulps of 1 per term is several times the errors seen. A wrong tap, pixel or padding is off by
    // a whole product, about 0.3 on average.
    const auto x = to_float(x64), w = to_float(w64), bias = to_float(bias64), dy = to_float(dy64);
    const std::vector<double> xr(x.begin(), x.end()), wr(w.begin(), w.end()), dyr(dy.begin(), dy.end());
    const double forward_bound = 6e-8 * 4 * static_cast<double>(g.KH * g.KW * g.C);

    const auto want_y = kiln::testing::conv_forward_reference(g, xr, wr);
    std::vector<float> y(want_y.size(), -7.0F);  // every element must be written
    cpu().conv2d_forward(kiln::DType::Float32, g, x.data(), w.data(), nullptr, false, y.data());
    EXPECT_LT(worst_difference(y, want_y), forward_bound) << "forward";

    std::vector<double> want_fused = want_y;  // relu(y + bias)
    for (std::size_t i = 0; i < want_fused.size(); ++i)
      want_fused[i] = std::max(0.0, want_fused[i] + bias[i % static_cast<std::size_t>(g.F)]);
    cpu().conv2d_forward(kiln::DType::Float32, g, x.data(), w.data(), bias.data(), true, y.data());
    EXPECT_LT(worst_difference(y, want_fused), forward_bound) << "forward with bias and ReLU";

    const auto want_dx = kiln::testing::conv_data_gradient_reference(g, dyr, wr);
    std::vector<float> dx(want_dx.size(), -7.0F);
    cpu().conv2d_backward_data(kiln::DType::Float32, g, dy.data(), w.data(), dx.data());
    EXPECT_LT(worst_difference(dx, want_dx), 6e-8 * 4 * static_cast<double>(g.KH * g.KW * g.F)) << "data gradient";

    // The filter and bias gradients, plain and through the fused ReLU (its output, about half of it
    // 0), as sums over N*OH*OW pixels.
    const std::vector<float> relu_y = to_float(want_fused);
    const std::vector<double> relu_yr(relu_y.begin(), relu_y.end());
    const double filter_bound = 6e-8 * 4 * static_cast<double>(g.N * g.OH * g.OW);
    for (const bool relu : {false, true}) {
      SCOPED_TRACE(relu ? "fused ReLU" : "no ReLU");
      const auto want = kiln::testing::conv_filter_gradient_reference(g, xr, dyr, relu ? &relu_yr : nullptr);
      std::vector<float> dw(want.dw.size(), -7.0F), db(want.db.size(), -7.0F);
      cpu().conv2d_backward_filter(kiln::DType::Float32, g, x.data(), dy.data(), relu ? relu_y.data() : nullptr,
                                   dw.data(), db.data());
      EXPECT_LT(worst_difference(dw, want.dw), filter_bound) << "filter gradient";
      EXPECT_LT(worst_difference(db, want.db), filter_bound) << "bias gradient";
      std::vector<float> dw_alone(want.dw.size(), -7.0F);  // without the bias gradient
      cpu().conv2d_backward_filter(kiln::DType::Float32, g, x.data(), dy.data(), relu ? relu_y.data() : nullptr,
                                   dw_alone.data(), nullptr);
      EXPECT_EQ(dw_alone, dw) << "filter gradient without the bias's";
    }
  }
}

TEST(CpuDirectConv, DataGradientOfManyFiltersMatchesTheDefinition) {
  if (!kiln::backend::direct_conv_available())
    GTEST_SKIP() << "the direct convolution is not in this build (no AVX2 and FMA)";
  const DirectSwitch on(true);
  std::mt19937 rng(24);
  // 8 or 16 channels and more than 16 filters: the forward pass is not direct, its data gradient
  // (a forward pass of dy with as many channels as the layer has filters) is.
  for (const Conv2dGeometry& g :
       {geometry(2, 9, 10, 16, 32, 3, 3, 9, 10, 1, 1), geometry(1, 6, 7, 8, 64, 3, 3, 4, 5, 0, 0),
        geometry(1, 5, 5, 16, 128, 1, 1, 5, 5, 0, 0)}) {
    SCOPED_TRACE(describe(g));
    ASSERT_FALSE(kiln::backend::direct_conv_fits(g));
    ASSERT_TRUE(kiln::backend::direct_conv_data_fits(g));
    const auto dy = to_float(uniform_values(g.N * g.OH * g.OW * g.F, rng));
    const auto w = to_float(uniform_values(g.KH * g.KW * g.C * g.F, rng));
    const std::vector<double> dyr(dy.begin(), dy.end()), wr(w.begin(), w.end());
    const auto want_dx = kiln::testing::conv_data_gradient_reference(g, dyr, wr);
    std::vector<float> dx(want_dx.size(), -7.0F);  // every element must be written
    cpu().conv2d_backward_data(kiln::DType::Float32, g, dy.data(), w.data(), dx.data());
    EXPECT_LT(worst_difference(dx, want_dx), 6e-8 * 4 * static_cast<double>(g.KH * g.KW * g.F));
  }
}

TEST(CpuDirectConv, ResultDoesNotDependOnTheThreadCount) {
  if (!kiln::backend::direct_conv_available())
    GTEST_SKIP() << "the direct convolution is not in this build (no AVX2 and FMA)";
  const DirectSwitch on(true);
  std::mt19937 rng(22);
  // More bands than partial sums (batch 40 of 2 bands each), one image of several bands, a masked
  // last group (6 filters), and small images of many channels (5 partial sums for 40 bands).
  for (const Conv2dGeometry& g :
       {geometry(40, 32, 32, 16, 16, 3, 3, 32, 32, 1, 1), geometry(1, 48, 48, 16, 8, 3, 3, 48, 48, 1, 1),
        geometry(24, 20, 20, 10, 6, 5, 5, 16, 16, 0, 0), geometry(40, 8, 8, 48, 12, 3, 3, 8, 8, 1, 1)}) {
    SCOPED_TRACE(describe(g));
    const auto x = to_float(uniform_values(g.N * g.H * g.W * g.C, rng));
    const auto w = to_float(uniform_values(g.KH * g.KW * g.C * g.F, rng));
    const auto dy = to_float(uniform_values(g.N * g.OH * g.OW * g.F, rng));
    kiln::testing::expect_conv_passes_independent_of_threads(g, x, w, dy);
  }
}

TEST(CpuDirectConv, AgreesWithIm2colAndGemm) {
  if (!kiln::backend::direct_conv_available())
    GTEST_SKIP() << "the direct convolution is not in this build (no AVX2 and FMA)";
  // The path the backend took before: the same float32 values, summed in another order.
  std::mt19937 rng(23);
  const Conv2dGeometry g = geometry(4, 16, 16, 16, 16, 3, 3, 16, 16, 1, 1);
  const auto x = to_float(uniform_values(g.N * g.H * g.W * g.C, rng));
  const auto w = to_float(uniform_values(g.KH * g.KW * g.C * g.F, rng));
  const auto dy = to_float(uniform_values(g.N * g.OH * g.OW * g.F, rng));
  ConvPasses by_path[2];
  for (const bool direct : {false, true}) {
    const DirectSwitch choice(direct);
    ASSERT_EQ(kiln::backend::direct_conv_fits(g), direct);
    by_path[static_cast<std::size_t>(direct)] = kiln::testing::cpu_conv_passes(g, x, w, dy, false);
  }
  const auto& [y, dx, dw, db] = by_path[0];
  const ConvPasses& direct = by_path[1];
  EXPECT_LT(worst_difference(direct.y, y), 6e-8 * 8 * 144) << "forward";
  EXPECT_LT(worst_difference(direct.dx, dx), 6e-8 * 8 * 144) << "data gradient";
  EXPECT_LT(worst_difference(direct.dw, dw), 6e-8 * 8 * 1024) << "filter gradient";
  EXPECT_LT(worst_difference(direct.db, db), 6e-8 * 8 * 1024) << "bias gradient";
}

TEST(CpuDirectConv, OnlyStrideOneLayersOfFewFiltersTakeIt) {
  const DirectSwitch on(true);
  const Conv2dGeometry same = geometry(8, 32, 32, 16, 16, 3, 3, 32, 32, 1, 1);
  if (!kiln::backend::direct_conv_available()) {  // a build without AVX2 and FMA keeps im2col + GEMM
    EXPECT_FALSE(kiln::backend::direct_conv_fits(same));
    EXPECT_FALSE(kiln::backend::direct_conv_data_fits(same));
    return;
  }
  EXPECT_TRUE(kiln::backend::direct_conv_fits(same));
  Conv2dGeometry g = same;
  g.stride_h = g.stride_w = 2;
  g.OH = g.OW = 16;
  EXPECT_FALSE(kiln::backend::direct_conv_fits(g)) << "stride 2";
  EXPECT_FALSE(kiln::backend::direct_conv_fits(geometry(8, 32, 32, 16, 32, 3, 3, 32, 32, 1, 1))) << "32 filters";
  EXPECT_FALSE(kiln::backend::direct_conv_fits(geometry(8, 32, 32, 16, 17, 3, 3, 32, 32, 1, 1))) << "17 filters";
  EXPECT_TRUE(kiln::backend::direct_conv_fits(geometry(8, 32, 32, 16, 12, 3, 3, 32, 32, 1, 1))) << "12 filters";
  EXPECT_TRUE(kiln::backend::direct_conv_fits(geometry(8, 32, 32, 3, 4, 3, 3, 32, 32, 1, 1))) << "4 filters";
  EXPECT_FALSE(kiln::backend::direct_conv_fits(geometry(8, 32, 32, 16, 3, 3, 3, 32, 32, 1, 1))) << "3 filters";
  EXPECT_FALSE(kiln::backend::direct_conv_data_fits(geometry(8, 32, 32, 12, 16, 3, 3, 32, 32, 1, 1)))
      << "the data gradient of 12 channels";
  EXPECT_TRUE(kiln::backend::direct_conv_fits(geometry(8, 32, 32, 32, 16, 3, 3, 32, 32, 1, 1))) << "32 channels";
  EXPECT_TRUE(kiln::backend::direct_conv_fits(geometry(8, 32, 32, 128, 12, 3, 3, 32, 32, 1, 1))) << "128 channels";
  EXPECT_FALSE(kiln::backend::direct_conv_fits(geometry(8, 32, 32, 129, 12, 3, 3, 32, 32, 1, 1))) << "129 channels";
  EXPECT_FALSE(kiln::backend::direct_conv_data_fits(geometry(8, 32, 32, 24, 12, 3, 3, 32, 32, 1, 1)))
      << "the data gradient of 24 channels (its 24 filters)";
  EXPECT_TRUE(kiln::backend::direct_conv_data_fits(geometry(8, 32, 32, 16, 32, 3, 3, 32, 32, 1, 1)))
      << "the data gradient of 32 filters (its 32 channels)";
  EXPECT_FALSE(kiln::backend::direct_conv_data_fits(geometry(8, 32, 32, 16, 129, 3, 3, 32, 32, 1, 1)))
      << "the data gradient of 129 filters";
  EXPECT_FALSE(kiln::backend::direct_conv_fits(geometry(8, 32, 32, 16, 16, 3, 3, 36, 36, 3, 3)))
      << "a padding as large as the window";
  const DirectSwitch off(false);
  EXPECT_FALSE(kiln::backend::direct_conv_fits(same)) << "switched off";
}
