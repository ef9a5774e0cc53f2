// NaN through ReLU, max pooling and argmax on the CPU, as PyTorch and NumPy treat it: relu(NaN) is
// NaN, a pooling window holding a NaN pools to NaN and routes its gradient to that NaN (the first
// one; equal maxima still go to the first), argmax picks the first NaN. The fused dense and conv
// layers follow the unfused ops, and check_numerics reports a NaN weight behind a ReLU.
// (GPU agreement with these rules: test_cuda_backend.cpp and test_dense_fused.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::message_of;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Equal element for element, a NaN matching only a NaN.
template <typename T>
void expect_same(const std::vector<T>& want, const std::vector<T>& got, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << " at " << i << ": want NaN, got " << got[i];
    } else {
      EXPECT_EQ(want[i], got[i]) << what << " at " << i;
    }
  }
}

std::size_t count_nan(const std::vector<float>& v) {
  std::size_t n = 0;
  for (float x : v) n += std::isnan(x);
  return n;
}

Tensor leaf(const Tensor& t) {
  Tensor l = t.detach().clone();
  l.set_requires_grad(true);
  return l;
}

// Max pooling by its definition, for any geometry: a window's value is its first NaN, else its
// largest value; its gradient goes to that cell (the first of equal maxima).
template <typename T>
void reference_pool(const backend::Pool2dGeometry& g, const std::vector<T>& x, const std::vector<T>& dy,
                    std::vector<T>& y, std::vector<T>& dx) {
  y.assign(static_cast<std::size_t>(g.N * g.OH * g.OW * g.C), T(0));
  dx.assign(x.size(), T(0));
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow)
        for (int64_t c = 0; c < g.C; ++c) {
          int64_t best = -1;
          for (int64_t kh = 0; kh < g.KH; ++kh)
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              const int64_t ih = oh * g.stride_h - g.pad_top + kh, iw = ow * g.stride_w - g.pad_left + kw;
              if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
              const int64_t i = ((n * g.H + ih) * g.W + iw) * g.C + c;
              if (best >= 0 && std::isnan(x[best])) continue;  // the first NaN stays
              if (best < 0 || std::isnan(x[i]) || x[i] > x[best]) best = i;
            }
          const int64_t o = ((n * g.OH + oh) * g.OW + ow) * g.C + c;
          if (best < 0) continue;  // all padding: 0, no gradient
          y[o] = x[best];
          dx[best] += dy[o];
        }
}

}  // namespace

TEST(NanPropagation, ReluOfNanIsNan) {
  const std::vector<float> x = {kNaN, -1.f, 0.f, -0.f, 2.5f, -kNaN};
  const auto y = relu(Tensor::from_vector(x)).to_vector<float>();
  expect_same<float>({kNaN, 0.f, 0.f, 0.f, 2.5f, kNaN}, y, "relu float32");
  EXPECT_FALSE(std::signbit(y[3])) << "relu(-0) is +0";
  const std::vector<double> xd = {std::nan(""), -3.0, 4.0};
  expect_same<double>({std::nan(""), 0.0, 4.0}, relu(Tensor::from_vector(xd)).to_vector<double>(), "relu float64");
}

TEST(NanPropagation, ReluBackwardPassesTheGradientAtNanAsPyTorchDoes) {
  // PyTorch's rule, threshold_backward(dy, y, 0): dx = y <= 0 ? 0 : dy, so a NaN input gets dy.
  Tensor x = leaf(Tensor::from_vector<float>({kNaN, -1.f, 0.f, 2.f}));
  const Tensor dy = Tensor::from_vector<float>({3.f, 5.f, 7.f, 11.f});
  sum(mul(relu(x), dy)).backward();
  expect_same<float>({3.f, 0.f, 0.f, 11.f}, x.grad().to_vector<float>(), "relu gradient");
}

TEST(NanPropagation, FusedDenseFollowsTheUnfusedOpsWithNan) {
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> xv(5 * 4), wv(4 * 6), bv(6);
  for (auto* v : {&xv, &wv, &bv})
    for (float& e : *v) e = dist(gen);
  xv[1 * 4 + 2] = kNaN;  // row 1 of the product
  wv[0 * 6 + 4] = kNaN;  // column 4
  bv[1] = kNaN;          // column 1
  const Tensor x = Tensor::from_vector(xv, {5, 4}), w = Tensor::from_vector(wv, {4, 6}),
               b = Tensor::from_vector(bv, {6});
  const auto fused = dense(x, w, b, "relu").to_vector<float>();
  const auto unfused = relu(add(matmul(x, w), b)).to_vector<float>();
  expect_same(unfused, fused, "dense relu");
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 6; ++c)
      EXPECT_EQ(std::isnan(fused[r * 6 + c]), r == 1 || c == 4 || c == 1) << r << ", " << c;
}

TEST(NanPropagation, FusedConvFollowsTheUnfusedOpsWithNan) {
  std::mt19937 gen(4);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> xv(2 * 6 * 6 * 3), kv(3 * 3 * 3 * 4), bv(4);
  for (auto* v : {&xv, &kv, &bv})
    for (float& e : *v) e = dist(gen);
  xv[((1 * 6 + 2) * 6 + 3) * 3 + 1] = kNaN;  // image 1, row 2, column 3: in 9 windows of 16
  const Tensor x = Tensor::from_vector(xv, {2, 6, 6, 3}), k = Tensor::from_vector(kv, {3, 3, 3, 4});
  const Tensor b = Tensor::from_vector(bv, {4});
  const auto fused = conv2d(x, k, b, "relu").to_vector<float>();
  expect_same(relu(add(conv2d(x, k), b)).to_vector<float>(), fused, "conv relu, NaN input");
  EXPECT_EQ(count_nan(fused), 9u * 4u);

  // A NaN bias makes filter 2's outputs NaN; its ReLU backward passes their gradient (the kernel's
  // gradient for filter 2 stays finite), as the unfused ops do.
  std::vector<float> bn = bv;
  bn[2] = kNaN;
  Generator pg(5);
  const Tensor proj = Tensor::uniform({2, 4, 4, 4}, -1, 1, pg);
  Tensor kf = leaf(k), ku = leaf(k);
  const Tensor yf = conv2d(x.slice_rows(0, 1).clone(), kf, Tensor::from_vector(bn, {4}), "relu");
  sum(mul(yf, proj.slice_rows(0, 1))).backward();
  const Tensor yu = relu(add(conv2d(x.slice_rows(0, 1).clone(), ku), Tensor::from_vector(bn, {4})));
  sum(mul(yu, proj.slice_rows(0, 1))).backward();
  expect_same(yu.to_vector<float>(), yf.to_vector<float>(), "conv relu, NaN bias");
  const auto dkf = kf.grad().to_vector<float>(), dku = ku.grad().to_vector<float>();
  EXPECT_EQ(count_nan(dkf), 0u);
  for (std::size_t i = 0; i < dkf.size(); ++i) EXPECT_NEAR(dkf[i], dku[i], 1e-5) << i;
}

TEST(NanPropagation, MaxPoolWindowWithNanPoolsToNanAndTakesItsGradient) {
  // One image 2x4, two channels, 2x2 windows stride 2: two windows per channel.
  //   channel 0: window A = {1, NaN | 5, 2} (NaN after a smaller value, before a larger one),
  //              window B = {3, 3 | 3, 0}   (a three-way tie: the first 3 wins)
  //   channel 1: window A = {NaN, 9 | 1, 1} (NaN first), window B = {4, NaN | NaN, 8} (two NaNs)
  const float c0[8] = {1, kNaN, 3, 3, 5, 2, 3, 0};
  const float c1[8] = {kNaN, 9, 4, kNaN, 1, 1, kNaN, 8};
  std::vector<float> xv(16);
  for (int i = 0; i < 8; ++i) xv[2 * i] = c0[i], xv[2 * i + 1] = c1[i];
  Tensor x = leaf(Tensor::from_vector(xv, {1, 2, 4, 2}));
  const Tensor y = max_pool2d(x, {2, 2}, {2, 2});
  expect_same<float>({kNaN, kNaN, 3.f, kNaN}, y.to_vector<float>(), "pooled");
  const Tensor dy = Tensor::from_vector<float>({10, 20, 30, 40}, {1, 1, 2, 2});
  sum(mul(y, dy)).backward();
  std::vector<float> want(16, 0.f);
  want[2 * 1] = 10;      // channel 0, window A: its NaN (cell 1)
  want[2 * 2] = 30;      // channel 0, window B: the first of the tied 3s (cell 2)
  want[2 * 0 + 1] = 20;  // channel 1, window A: its NaN (cell 0)
  want[2 * 3 + 1] = 40;  // channel 1, window B: the first NaN in window order (cell 3, not cell 6)
  expect_same(want, x.grad().to_vector<float>(), "pooling gradient");
}

TEST(NanPropagation, MaxPoolMatchesItsDefinitionWithNanAndTies) {
  // Random small integers (many ties) with NaNs sprinkled in; overlapping, disjoint and padded
  // windows, float32 and float64.
  struct Case {
    int64_t N, H, W, C, KH, KW, OH, OW, s, pt, pl;
  };
  const Case cases[] = {{2, 6, 6, 4, 2, 2, 3, 3, 2, 0, 0},   // disjoint tiles
                        {2, 7, 7, 3, 3, 3, 7, 7, 1, 1, 1},   // overlapping, "same" padding
                        {1, 9, 8, 5, 3, 2, 4, 4, 2, 0, 0},   // rows overlap, columns do not
                        {3, 5, 5, 8, 2, 2, 3, 3, 2, 0, 0}};  // padded past the edge (odd input)
  std::mt19937 gen(6);
  std::uniform_int_distribution<int> small(0, 2), coin(0, 9);
  for (const Case& t : cases) {
    const backend::Pool2dGeometry g{t.N, t.H, t.W, t.C, t.KH, t.KW, t.OH, t.OW, t.s, t.s, t.pt, t.pl};
    std::vector<double> x(static_cast<std::size_t>(t.N * t.H * t.W * t.C));
    for (double& v : x) v = coin(gen) == 0 ? std::nan("") : small(gen);
    std::vector<double> dy(static_cast<std::size_t>(t.N * t.OH * t.OW * t.C));
    for (double& v : dy) v = 1 + coin(gen);
    std::vector<double> want_y, want_dx;
    reference_pool(g, x, dy, want_y, want_dx);
    const std::string what = "pool H=" + std::to_string(t.H) + " K=" + std::to_string(t.KH);
    {
      std::vector<double> y(want_y.size()), dx(x.size());
      backend::cpu().max_pool2d_forward(DType::Float64, g, x.data(), y.data());
      backend::cpu().max_pool2d_backward(DType::Float64, g, x.data(), y.data(), dy.data(), dx.data());
      expect_same(want_y, y, what + " float64 forward");
      expect_same(want_dx, dx, what + " float64 backward");
    }
    const std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end());
    std::vector<float> y(want_y.size()), dx(x.size());
    backend::cpu().max_pool2d_forward(DType::Float32, g, xf.data(), y.data());
    backend::cpu().max_pool2d_backward(DType::Float32, g, xf.data(), y.data(), dyf.data(), dx.data());
    expect_same(std::vector<float>(want_y.begin(), want_y.end()), y, what + " float32 forward");
    expect_same(std::vector<float>(want_dx.begin(), want_dx.end()), dx, what + " float32 backward");
  }
}

TEST(NanPropagation, ArgmaxAndAccuracyTakeTheFirstNanAsNumPyDoes) {
  const Tensor x = Tensor::from_vector<float>({1, kNaN, 3, kNaN,  //
                                               kNaN, 5, 7, 1,     //
                                               2, 2, 1, 0,        //
                                               0, 4, 4, kNaN},
                                              {4, 4});
  EXPECT_EQ(argmax(x).to_vector<int32_t>(), (std::vector<int32_t>{1, 0, 0, 3}));
  const std::vector<int32_t> labels = {1, 2, 0, 1};  // rows 0 and 2 are right
  float correct = 0.f;
  backend::cpu().accuracy_sum(DType::Float32, x.raw_data(), labels.data(), &correct, 4, 4);
  EXPECT_EQ(correct, 2.f);
}

TEST(NanPropagation, CheckNumericsReportsANanWeightBehindARelu) {
  const float nan = kNaN;
  const Tensor x = Tensor::ones({3, 2}), y = Tensor::ones({3, 1});
  {
    // The ReLU used to turn the NaN pre-activations into 0: the model trained on, nothing reported.
    utils::set_random_seed(0);
    Sequential model({layers::Dense(4, {.activation = "relu", .input_shape = {2}}), layers::Dense(1)});
    model.compile("sgd", "mse");
    std::vector<float> k(8, 0.5f);
    k[2] = nan;  // input 0 -> unit 2
    model.layers()[0]->set_weight("kernel", Tensor::from_vector(k, {2, 4}));
    EXPECT_EQ(message_of([&] { model.fit(x, y, {.epochs = 1, .verbose = 0, .check_numerics = true}); }),
              "[check_numerics] the output of layer dense (Dense) holds NaN at element 2 of [3, 4] (epoch 1, step 1); "
              "expected finite values");
  }
  {
    // Conv2D(relu) then max pooling: neither may hide it.
    utils::set_random_seed(0);
    Sequential model({layers::Conv2D(2, {3, 3}, {.activation = "relu", .input_shape = {4, 4, 1}}),
                      layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dense(1)});
    model.compile("sgd", "mse");
    std::vector<float> k(9 * 2, 0.1f);
    k[4 * 2 + 1] = nan;  // centre tap of filter 1
    model.layers()[0]->set_weight("kernel", Tensor::from_vector(k, {3, 3, 1, 2}));
    const Tensor images = Tensor::ones({3, 4, 4, 1});
    EXPECT_EQ(message_of([&] { model.fit(images, y, {.epochs = 1, .verbose = 0, .check_numerics = true}); }),
              "[check_numerics] the output of layer conv2d (Conv2D) holds NaN at element 1 of [3, 2, 2, 2] (epoch 1, "
              "step 1); expected finite values");
  }
}
