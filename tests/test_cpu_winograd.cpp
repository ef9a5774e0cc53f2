// The CPU's Winograd F(4x4, 3x3) convolutions (forward pass, data gradient, filter and bias
// gradients with and without the fused ReLU) against the definition summed in long double, against
// im2col + GEMM in float32, across thread counts, and where the backend chooses it.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_winograd.h"
#include "conv_reference.h"
#include "kiln/kiln.h"
#include "test_support.h"

namespace {

using kiln::testing::ConvPasses;
using kiln::testing::uniform_values;
using kiln::testing::worst_difference;

using kiln::backend::Conv2dGeometry;
using kiln::backend::cpu;

// A 3x3 stride-1 geometry: padding 0 ('valid'), 1 ('same') or 2.
Conv2dGeometry geometry(int64_t n, int64_t h, int64_t w, int64_t c, int64_t f, int64_t pad) {
  return {n, h, w, c, 3, 3, f, h + 2 * pad - 2, w + 2 * pad - 2, 1, 1, pad, pad};
}

class WinogradSwitch {  // sets whether the backend may choose Winograd; restores it when a test ends
 public:
  explicit WinogradSwitch(bool on) : saved_(kiln::backend::set_conv_winograd(on)) {}
  ~WinogradSwitch() { kiln::backend::set_conv_winograd(saved_); }

 private:
  bool saved_;
};

// Odd and even sizes (last tiles partly outside the output), one-pixel outputs, each padding the
// backend accepts, more filters than channels and the reverse, and a batch of several chunks.
const Conv2dGeometry kCases[] = {
    geometry(2, 6, 6, 32, 32, 1), geometry(1, 7, 5, 32, 40, 1),   geometry(2, 9, 6, 64, 72, 1),
    geometry(2, 5, 8, 80, 32, 0), geometry(1, 3, 3, 32, 33, 0),   geometry(1, 4, 3, 40, 32, 2),
    geometry(2, 1, 2, 32, 32, 1), geometry(1, 11, 10, 32, 48, 2), geometry(3, 16, 16, 64, 64, 1)};

}  // namespace

TEST(CpuWinograd, ForwardAndGradientsMatchTheDefinitionInFloat64) {
  const WinogradSwitch on(true);
  std::mt19937 rng(11);
  for (const Conv2dGeometry& g : kCases) {
    SCOPED_TRACE("N=" + std::to_string(g.N) + " H=" + std::to_string(g.H) + " W=" + std::to_string(g.W) +
                 " C=" + std::to_string(g.C) + " F=" + std::to_string(g.F) + " pad=" + std::to_string(g.pad_top));
    ASSERT_TRUE(kiln::backend::winograd_fits(g));
    const auto x = uniform_values(g.N * g.H * g.W * g.C, rng), w = uniform_values(9 * g.C * g.F, rng),
               bias = uniform_values(g.F, rng);
    const auto dy = uniform_values(g.N * g.OH * g.OW * g.F, rng);
    // Sums of 9C products of values in [-1, 1], taken through F(4x4, 3x3)'s transforms, which grow
    // the terms (rows of B^T and A^T add up to 10 and 18 in absolute value): a few hundred ulps of
    // 9C, 1e-16 x 9C x 324; the errors measured stay under a twentieth of it. A wrong tap or tile is
    // off by a whole product, about 1e-1.
    const double bound = 1e-16 * 9.0 * static_cast<double>(std::max(g.C, g.F)) * 4 * 9 * 9;

    const auto want_y = kiln::testing::conv_forward_reference(g, x, w);
    std::vector<double> y(want_y.size(), -7.0);
    cpu().conv2d_forward(kiln::DType::Float64, g, x.data(), w.data(), nullptr, false, y.data());
    EXPECT_LT(worst_difference(y, want_y), bound) << "forward";

    std::vector<double> want_fused = want_y;  // relu(y + bias)
    for (std::size_t i = 0; i < want_fused.size(); ++i)
      want_fused[i] = std::max(0.0, want_fused[i] + bias[i % static_cast<std::size_t>(g.F)]);
    cpu().conv2d_forward(kiln::DType::Float64, g, x.data(), w.data(), bias.data(), true, y.data());
    EXPECT_LT(worst_difference(y, want_fused), bound) << "forward with bias and ReLU";

    const auto want_dx = kiln::testing::conv_data_gradient_reference(g, dy, w);
    std::vector<double> dx(want_dx.size(), -7.0);  // every element must be written
    cpu().conv2d_backward_data(kiln::DType::Float64, g, dy.data(), w.data(), dx.data());
    EXPECT_LT(worst_difference(dx, want_dx), bound) << "data gradient";

    // The filter and bias gradients, plain and through the fused ReLU (its output y, half of it <= 0).
    // Their sums run over N*OH*OW pixels instead of 9C taps.
    const double filter_bound = 1e-16 * static_cast<double>(g.N * g.OH * g.OW) * 4 * 9 * 9;
    for (const bool relu : {false, true}) {
      SCOPED_TRACE(relu ? "fused ReLU" : "no ReLU");
      const std::vector<double>* relu_y = relu ? &want_fused : nullptr;
      const auto want = kiln::testing::conv_filter_gradient_reference(g, x, dy, relu_y);
      std::vector<double> dw(want.dw.size(), -7.0), db(want.db.size(), -7.0);
      cpu().conv2d_backward_filter(kiln::DType::Float64, g, x.data(), dy.data(), relu ? want_fused.data() : nullptr,
                                   dw.data(), db.data());
      EXPECT_LT(worst_difference(dw, want.dw), filter_bound) << "filter gradient";
      EXPECT_LT(worst_difference(db, want.db), filter_bound) << "bias gradient";
    }
  }
}

TEST(CpuWinograd, Float32AgreesWithIm2colAndGemm) {
  std::mt19937 rng(12);
  for (const Conv2dGeometry& g : kCases) {
    SCOPED_TRACE("N=" + std::to_string(g.N) + " H=" + std::to_string(g.H) + " C=" + std::to_string(g.C) +
                 " F=" + std::to_string(g.F) + " pad=" + std::to_string(g.pad_top));
    const auto x64 = uniform_values(g.N * g.H * g.W * g.C, rng), w64 = uniform_values(9 * g.C * g.F, rng);
    const auto dy64 = uniform_values(g.N * g.OH * g.OW * g.F, rng);
    const std::vector<float> x(x64.begin(), x64.end()), w(w64.begin(), w64.end()), dy(dy64.begin(), dy64.end());
    ConvPasses by_path[2];
    for (const bool winograd : {false, true}) {
      const WinogradSwitch choice(winograd);
      ASSERT_EQ(kiln::backend::winograd_fits(g), winograd);
      by_path[static_cast<std::size_t>(winograd)] = kiln::testing::cpu_conv_passes(g, x, w, dy, false);
    }
    const auto& [y, dx, dw, db] = by_path[0];
    const ConvPasses& winograd = by_path[1];
    // float32 sums of up to 9C products in [-1, 1] in two ways, Winograd's rounding about ten times
    // im2col's (the transforms' growth, see above): 6e-8 x 9C x 36; the differences measured stay
    // under a quarter of it.
    const double bound = 6e-8 * 9.0 * static_cast<double>(std::max(g.C, g.F)) * 4 * 9;
    EXPECT_LT(worst_difference(winograd.y, y), bound) << "forward";
    EXPECT_LT(worst_difference(winograd.dx, dx), bound) << "data gradient";
    // Sums over N*OH*OW pixels, likewise.
    const double filter_bound = 6e-8 * static_cast<double>(g.N * g.OH * g.OW) * 4 * 9;
    EXPECT_LT(worst_difference(winograd.dw, dw), filter_bound) << "filter gradient";
    EXPECT_LT(worst_difference(winograd.db, db), filter_bound) << "bias gradient";
  }
}

TEST(CpuWinograd, ResultDoesNotDependOnTheThreadCount) {
  // Several chunks of tiles (each product on its thread; the filter gradient's runs of chunks) and
  // one chunk (its products split across threads).
  const WinogradSwitch on(true);
  std::mt19937 rng(13);
  for (const Conv2dGeometry& g : {geometry(8, 16, 16, 64, 64, 1), geometry(1, 6, 6, 64, 80, 1)}) {
    const auto x64 = uniform_values(g.N * g.H * g.W * g.C, rng), w64 = uniform_values(9 * g.C * g.F, rng);
    const std::vector<float> x(x64.begin(), x64.end()), w(w64.begin(), w64.end());
    std::vector<float> dy(static_cast<std::size_t>(g.N * g.OH * g.OW * g.F));
    for (std::size_t i = 0; i < dy.size(); ++i) dy[i] = x[i % x.size()] * 0.5f;
    kiln::testing::expect_conv_passes_independent_of_threads(g, x, w, dy);
  }
}

TEST(CpuWinograd, OnlyThreeByThreeStrideOneLayersOfEnoughChannelsTakeIt) {
  const WinogradSwitch on(true);
  EXPECT_TRUE(kiln::backend::winograd_fits(geometry(8, 32, 32, 64, 64, 1)));
  Conv2dGeometry g = geometry(8, 32, 32, 64, 64, 1);
  g.stride_h = g.stride_w = 2;
  g.OH = g.OW = 16;
  EXPECT_FALSE(kiln::backend::winograd_fits(g)) << "stride 2";
  g = geometry(8, 32, 32, 64, 64, 1);
  g.KH = g.KW = 5;
  EXPECT_FALSE(kiln::backend::winograd_fits(g)) << "5x5";
  EXPECT_FALSE(kiln::backend::winograd_fits(geometry(8, 32, 32, 3, 64, 1))) << "an image's 3 channels";
  EXPECT_TRUE(kiln::backend::winograd_fits(geometry(8, 32, 32, 64, 32, 1))) << "32 filters";
  EXPECT_TRUE(kiln::backend::winograd_fits(geometry(8, 32, 32, 32, 64, 1))) << "32 channels";
  EXPECT_FALSE(kiln::backend::winograd_fits(geometry(8, 32, 32, 16, 64, 1))) << "16 channels";
  const WinogradSwitch off(false);
  EXPECT_FALSE(kiln::backend::winograd_fits(geometry(8, 32, 32, 64, 64, 1))) << "switched off";
}
