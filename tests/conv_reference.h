// 2-D convolution by its definition, summed in long double, and the CPU backend's three passes in
// float32, for the tests of the CPU's convolution algorithms (Winograd, direct summation): NHWC
// tensors, filters [KH, KW, C, F], stride 1.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "test_support.h"

namespace kiln::testing {

inline std::vector<double> uniform_values(int64_t count, std::mt19937& rng) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(static_cast<std::size_t>(count));
  for (double& x : v) x = dist(rng);
  return v;
}

/// Calls visit(x index, w index, y index) for every product of conv(x, w) at stride 1.
template <typename Visit>
void for_each_conv_product(const backend::Conv2dGeometry& g, Visit&& visit) {
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow)
        for (int64_t kh = 0; kh < g.KH; ++kh)
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const int64_t ih = oh + kh - g.pad_top, iw = ow + kw - g.pad_left;
            if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
            for (int64_t c = 0; c < g.C; ++c)
              for (int64_t f = 0; f < g.F; ++f)
                visit(static_cast<std::size_t>(((n * g.H + ih) * g.W + iw) * g.C + c),
                      static_cast<std::size_t>(((kh * g.KW + kw) * g.C + c) * g.F + f),
                      static_cast<std::size_t>(((n * g.OH + oh) * g.OW + ow) * g.F + f));
          }
}

/// y[n, oh, ow, f] = sum over kh, kw, c of x[n, oh + kh - pad_top, ow + kw - pad_left, c] w[kh, kw, c, f].
inline std::vector<double> conv_forward_reference(const backend::Conv2dGeometry& g, const std::vector<double>& x,
                                                  const std::vector<double>& w) {
  std::vector<long double> y(static_cast<std::size_t>(g.N * g.OH * g.OW * g.F), 0.0L);
  for_each_conv_product(
      g, [&](std::size_t xi, std::size_t wi, std::size_t yi) { y[yi] += static_cast<long double>(x[xi]) * w[wi]; });
  return {y.begin(), y.end()};
}

/// dx = the gradient of sum(y * dy) with respect to x: each output's dy spread back over its window.
inline std::vector<double> conv_data_gradient_reference(const backend::Conv2dGeometry& g, const std::vector<double>& dy,
                                                        const std::vector<double>& w) {
  std::vector<long double> dx(static_cast<std::size_t>(g.N * g.H * g.W * g.C), 0.0L);
  for_each_conv_product(
      g, [&](std::size_t xi, std::size_t wi, std::size_t yi) { dx[xi] += static_cast<long double>(dy[yi]) * w[wi]; });
  return {dx.begin(), dx.end()};
}

/// dw = the gradient of sum(y * dz) with respect to w, db = the sum of dz over pixels; dz = dy, or
/// dy where relu_y > 0 and 0 elsewhere (relu_y holds no NaN here).
struct ConvFilterGradients {
  std::vector<double> dw, db;
};
inline ConvFilterGradients conv_filter_gradient_reference(const backend::Conv2dGeometry& g,
                                                          const std::vector<double>& x, const std::vector<double>& dy,
                                                          const std::vector<double>* relu_y) {
  const auto dz = [&](std::size_t yi) { return relu_y && (*relu_y)[yi] <= 0 ? 0.0 : dy[yi]; };
  std::vector<long double> dw(static_cast<std::size_t>(g.KH * g.KW * g.C * g.F), 0.0L);
  std::vector<long double> db(static_cast<std::size_t>(g.F), 0.0L);
  for (std::size_t yi = 0; yi < dy.size(); ++yi) db[yi % static_cast<std::size_t>(g.F)] += dz(yi);
  for_each_conv_product(
      g, [&](std::size_t xi, std::size_t wi, std::size_t yi) { dw[wi] += static_cast<long double>(x[xi]) * dz(yi); });
  return {{dw.begin(), dw.end()}, {db.begin(), db.end()}};
}

/// The CPU backend's passes of `g` in float32: y = conv(x, w), relu'd when `relu`; dx for dy; dw
/// and db for dy, through the fused ReLU (y as its output) when `relu`.
struct ConvPasses {
  std::vector<float> y, dx, dw, db;
};
inline ConvPasses cpu_conv_passes(const backend::Conv2dGeometry& g, const std::vector<float>& x,
                                  const std::vector<float>& w, const std::vector<float>& dy, bool relu) {
  ConvPasses p{std::vector<float>(dy.size()), std::vector<float>(x.size()), std::vector<float>(w.size()),
               std::vector<float>(static_cast<std::size_t>(g.F))};
  backend::Backend& cpu = backend::cpu();
  cpu.conv2d_forward(DType::Float32, g, x.data(), w.data(), nullptr, relu, p.y.data());
  cpu.conv2d_backward_data(DType::Float32, g, dy.data(), w.data(), p.dx.data());
  cpu.conv2d_backward_filter(DType::Float32, g, x.data(), dy.data(), relu ? p.y.data() : nullptr, p.dw.data(),
                             p.db.data());
  return p;
}

/// Expects cpu_conv_passes (with the fused ReLU) to give the same bits on 1, 2 and 3 threads.
inline void expect_conv_passes_independent_of_threads(const backend::Conv2dGeometry& g, const std::vector<float>& x,
                                                      const std::vector<float>& w, const std::vector<float>& dy) {
  ConvPasses by_threads[3];
  for (int t = 1; t <= 3; ++t) {
    const ThreadCount threads(t);
    by_threads[t - 1] = cpu_conv_passes(g, x, w, dy, true);
  }
  for (std::size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(by_threads[0].y, by_threads[i].y) << i + 1 << " threads";
    EXPECT_EQ(by_threads[0].dx, by_threads[i].dx) << i + 1 << " threads";
    EXPECT_EQ(by_threads[0].dw, by_threads[i].dw) << i + 1 << " threads";
    EXPECT_EQ(by_threads[0].db, by_threads[i].db) << i + 1 << " threads";
  }
}

/// max |a - b| over the elements of two vectors of the same size.
template <typename A, typename B>
double worst_difference(const std::vector<A>& a, const std::vector<B>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return worst;
}

}  // namespace kiln::testing
