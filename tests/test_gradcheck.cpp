// Every op's backward rule against central differences in float64.
#include "gradcheck.h"

using kiln::testing::gradcheck;
using kiln::testing::random_input;
using namespace kiln;

namespace {
using In = const std::vector<Tensor>&;
}

TEST(Gradcheck, AddSubMulDivSameShape) {
  auto a = random_input({3, 4}, 1), b = random_input({3, 4}, 2, 0.5, 2.0);
  EXPECT_TRUE(gradcheck([](In v) { return add(v[0], v[1]); }, {a, b}));
  EXPECT_TRUE(gradcheck([](In v) { return sub(v[0], v[1]); }, {a, b}));
  EXPECT_TRUE(gradcheck([](In v) { return mul(v[0], v[1]); }, {a, b}));
  EXPECT_TRUE(gradcheck([](In v) { return div(v[0], v[1]); }, {a, b}));
}

TEST(Gradcheck, RowBroadcastBothWays) {
  auto a = random_input({5, 3}, 3), b = random_input({3}, 4, 0.5, 2.0);
  for (auto f : {add, sub, mul, div}) {
    EXPECT_TRUE(gradcheck([f](In v) { return f(v[0], v[1]); }, {a, b}));
    EXPECT_TRUE(gradcheck([f](In v) { return f(v[1], v[0]); }, {random_input({5, 3}, 5, 0.5, 2.0), b}));
  }
}

TEST(Gradcheck, ScalarBroadcastAndScalarOps) {
  auto a = random_input({2, 3}, 6), s = random_input({1}, 7, 0.5, 2.0);
  EXPECT_TRUE(gradcheck([](In v) { return mul(v[0], v[1]); }, {a, s}));
  EXPECT_TRUE(gradcheck([](In v) { return div(v[1], v[0]); }, {random_input({2, 3}, 8, 0.5, 2.0), s}));
  EXPECT_TRUE(gradcheck([](In v) { return add(mul(v[0], 2.5), -1.0); }, {a}));
  EXPECT_TRUE(gradcheck([](In v) { return neg(v[0]); }, {a}));
}

TEST(Gradcheck, Activations) {
  auto x = random_input({4, 5}, 9, -2.0, 2.0);
  EXPECT_TRUE(gradcheck([](In v) { return relu(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return sigmoid(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return kiln::tanh(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return kiln::exp(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return square(v[0]); }, {x}));
  auto pos = random_input({4, 5}, 10, 0.5, 3.0);
  EXPECT_TRUE(gradcheck([](In v) { return kiln::log(v[0]); }, {pos}));
  EXPECT_TRUE(gradcheck([](In v) { return kiln::sqrt(v[0]); }, {pos}));
  EXPECT_TRUE(gradcheck([](In v) { return clip(v[0], -0.5, 0.7); }, {x}));
}

TEST(Gradcheck, Reductions) {
  auto x = random_input({3, 4}, 11);
  EXPECT_TRUE(gradcheck([](In v) { return sum(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return mean(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return sum(v[0], 0); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return sum(v[0], -1); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return mean(v[0], 0); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return mean(v[0], 1); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return mean(v[0], 2); }, {random_input({2, 3, 4}, 12)}));
}

TEST(Gradcheck, Matmul) {
  EXPECT_TRUE(gradcheck([](In v) { return matmul(v[0], v[1]); }, {random_input({3, 4}, 13), random_input({4, 2}, 14)}));
  EXPECT_TRUE(gradcheck([](In v) { return matmul(v[0], v[1]); }, {random_input({1, 1}, 15), random_input({1, 5}, 16)}));
}

TEST(Gradcheck, SoftmaxFamily) {
  auto x = random_input({3, 5}, 17, -3.0, 3.0);
  EXPECT_TRUE(gradcheck([](In v) { return softmax(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return log_softmax(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return softmax(v[0]); }, {random_input({2, 3, 4}, 18)}));
}

TEST(Gradcheck, Losses) {
  auto p = random_input({4, 3}, 19), t = random_input({4, 3}, 20);
  EXPECT_TRUE(gradcheck([](In v) { return mse(v[0], v[1]); }, {p, t}));
  const Tensor labels = Tensor::from_vector<int32_t>({2, 0, 1, 2}, {4});
  EXPECT_TRUE(gradcheck([labels](In v) { return sparse_softmax_cross_entropy(v[0], labels); },
                        {random_input({4, 3}, 21, -2.0, 2.0)}));
}

TEST(Gradcheck, ReshapeAndFlatten) {
  auto x = random_input({2, 3, 2}, 22);
  EXPECT_TRUE(gradcheck([](In v) { return mul(reshape(v[0], {3, -1}), reshape(v[0], {3, 4})); }, {x}));
  EXPECT_TRUE(gradcheck([](In v) { return square(flatten(v[0])); }, {x}));
}

struct ConvCase {
  Shape x, k;
  std::array<int64_t, 2> strides;
  Padding padding;
};

class ConvGradcheck : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvGradcheck, InputAndKernel) {
  const ConvCase c = GetParam();
  auto x = random_input(c.x, 23), k = random_input(c.k, 24);
  EXPECT_TRUE(gradcheck([c](In v) { return conv2d(v[0], v[1], c.strides, c.padding); }, {x, k}));
}

// The fused form (bias and ReLU inside the convolution's passes): input, kernel and bias, with the
// ReLU on and off; and with the input needing no gradient, the layer-one case where the ReLU
// backward is applied inside the filter-gradient kernel instead of written out.
TEST_P(ConvGradcheck, FusedBiasAndRelu) {
  const ConvCase c = GetParam();
  auto x = random_input(c.x, 33), k = random_input(c.k, 34), b = random_input({c.k[3]}, 35);
  for (const bool relu : {false, true}) {
    SCOPED_TRACE(relu ? "relu" : "linear");
    EXPECT_TRUE(
        gradcheck([c, relu](In v) { return conv2d(v[0], v[1], v[2], relu ? "relu" : "linear", c.strides, c.padding); },
                  {x, k, b}));
    const Tensor x_const = x.detach();
    EXPECT_TRUE(gradcheck(
        [c, relu, x_const](In v) {
          return conv2d(x_const, v[0], v[1], relu ? "relu" : "linear", c.strides, c.padding);
        },
        {k, b}));
  }
  EXPECT_TRUE(gradcheck([c](In v) { return conv2d(v[0], v[1], Tensor(), "relu", c.strides, c.padding); }, {x, k}));
  // A frozen kernel: the bias's gradient alone (with and without the input's), no filter gradient.
  const Tensor k_const = k.detach();
  for (const bool relu : {false, true}) {
    SCOPED_TRACE(relu ? "frozen kernel, relu" : "frozen kernel, linear");
    const char* act = relu ? "relu" : "linear";
    EXPECT_TRUE(
        gradcheck([c, act, k_const](In v) { return conv2d(v[0], k_const, v[1], act, c.strides, c.padding); }, {x, b}));
    const Tensor x_const = x.detach();
    EXPECT_TRUE(gradcheck(
        [c, act, x_const, k_const](In v) { return conv2d(x_const, k_const, v[0], act, c.strides, c.padding); }, {b}));
  }
}

// 3x3 stride-1 layers of 32 channels and filters or more compute all three passes by Winograd's
// F(4x4, 3x3) on the CPU: the input's gradient, plain and fused with a bias and ReLU, in both
// paddings, and the kernel's and bias's at one padding. tests/test_cpu_winograd.cpp checks every
// pass against the definition in long double.
TEST(WinogradConvGradcheck, ThreeByThreeLayerOfManyChannels) {
  auto x = random_input({1, 5, 4, 32}, 42), k = random_input({3, 3, 32, 32}, 43), b = random_input({32}, 44);
  const Tensor k_const = k.detach(), b_const = b.detach(), x_const = x.detach();
  for (const Padding padding : {Padding::Same, Padding::Valid}) {
    SCOPED_TRACE(padding == Padding::Same ? "same" : "valid");
    EXPECT_TRUE(gradcheck([k_const, padding](In v) { return conv2d(v[0], k_const, {1, 1}, padding); }, {x}));
    EXPECT_TRUE(gradcheck(
        [k_const, b_const, padding](In v) {
          return conv2d(v[0], k_const, b_const, "relu", {1, 1}, padding);
        },
        {x}));
  }
  EXPECT_TRUE(gradcheck(
      [x_const](In v) {
        return conv2d(x_const, v[0], v[1], "relu", {1, 1}, Padding::Same);
      },
      {k, b}));
}

TEST(ConvFused, EqualsTheComposedOps) {
  // Same float64 values as conv2d, then add, then relu: the fused op changes where the work runs,
  // not the arithmetic of the forward pass.
  auto x = random_input({2, 6, 5, 3}, 36), k = random_input({3, 3, 3, 4}, 37), b = random_input({4}, 38);
  const Tensor fused = conv2d(x, k, b, "relu");
  const Tensor composed = relu(add(conv2d(x, k), b));
  EXPECT_EQ(fused.to_vector<double>(), composed.to_vector<double>());
}

TEST(ConvFused, BadBiasSaysWhatWasExpected) {
  auto x = random_input({1, 4, 4, 2}, 39), k = random_input({3, 3, 2, 5}, 40);
  try {
    conv2d(x, k, random_input({4}, 41), "relu");
    FAIL() << "a bias of the wrong length was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected [5]"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvGradcheck,
    ::testing::Values(ConvCase{{2, 5, 5, 3}, {3, 3, 3, 4}, {1, 1}, Padding::Valid},    // the seed's kind
                      ConvCase{{1, 7, 6, 2}, {3, 3, 2, 3}, {2, 2}, Padding::Valid},    // stride 2, batch 1
                      ConvCase{{2, 5, 4, 1}, {3, 2, 1, 2}, {1, 1}, Padding::Same},     // same, one channel
                      ConvCase{{1, 7, 5, 2}, {4, 3, 2, 2}, {2, 3}, Padding::Same},     // same, even kernel, odd sizes
                      ConvCase{{2, 3, 3, 6}, {1, 1, 6, 5}, {1, 1}, Padding::Valid}));  // many channels, 1x1

struct PoolCase {
  Shape x;
  std::array<int64_t, 2> pool, strides;
  Padding padding;
};

class PoolGradcheck : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolGradcheck, Input) {
  const PoolCase c = GetParam();
  auto x = random_input(c.x, 25);
  EXPECT_TRUE(gradcheck([c](In v) { return max_pool2d(v[0], c.pool, c.strides, c.padding); }, {x}));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PoolGradcheck,
    ::testing::Values(PoolCase{{2, 4, 4, 3}, {2, 2}, {2, 2}, Padding::Valid},
                      PoolCase{{1, 5, 5, 1}, {2, 2}, {2, 2}, Padding::Valid},  // odd size drops the edge
                      PoolCase{{1, 5, 5, 2}, {3, 3}, {1, 1}, Padding::Valid},  // overlapping windows
                      PoolCase{{2, 5, 3, 2}, {2, 2}, {2, 2}, Padding::Same},
                      PoolCase{{1, 6, 7, 1}, {3, 2}, {2, 1}, Padding::Same}));

TEST(Gradcheck, SeedModelEndToEnd) {
  // conv -> bias -> relu -> pool -> flatten -> dense -> xent, all in float64
  const Tensor labels = Tensor::from_vector<int32_t>({1, 0}, {2});
  auto fn = [labels](In v) {
    Tensor h = relu(add(conv2d(v[0], v[1]), v[2]));
    h = flatten(max_pool2d(h, {2, 2}, {2, 2}));
    return sparse_softmax_cross_entropy(add(matmul(h, v[3]), v[4]), labels);
  };
  EXPECT_TRUE(gradcheck(fn, {random_input({2, 6, 6, 2}, 26), random_input({3, 3, 2, 3}, 27), random_input({3}, 28),
                             random_input({12, 2}, 29), random_input({2}, 30)}));
}
