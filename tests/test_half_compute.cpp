// The CPU's float16 and bfloat16 compute kernels: each op on 16-bit tensors must give, bit for bit,
// the float32 op run on the same values widened to float32 and then rounded once to the 16-bit type
// (the kernels compute in float and round when they store). Ops with a public function run through
// it; backward kernels and kernels without one run through the CPU backend directly, with the same
// 16-bit inputs on both sides (through autograd the float32 side would feed unrounded intermediate
// values to the backward, which is a different computation).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kiln/kiln.h"
#include "test_support.h"

namespace kiln {
namespace {

using backend::BinaryOp;
using backend::UnaryOp;
using testing::message_of;

constexpr DType kHalfTypes[] = {DType::Float16, DType::BFloat16};

backend::Backend& cpu() { return backend::get(Device::cpu()); }

// The 16-bit patterns of a tensor of float16 or bfloat16, in element order.
std::vector<uint16_t> bits_of(const Tensor& t) {
  EXPECT_EQ(dtype_size(t.dtype()), 2u);
  std::vector<uint16_t> out(static_cast<std::size_t>(t.numel()));
  std::memcpy(out.data(), t.raw_data(), out.size() * 2);
  return out;
}

// `got` (16-bit) holds exactly the float32 tensor `ref` rounded to got's dtype.
void expect_rounded_from(const Tensor& got, const Tensor& ref, const std::string& what) {
  ASSERT_EQ(ref.dtype(), DType::Float32) << what;
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  EXPECT_EQ(bits_of(got), bits_of(ref.astype(got.dtype()))) << what << " in " << dtype_name(got.dtype());
}

// Uniform numbers in [lo, hi) rounded to `dtype`, from a fixed seed.
Tensor random_tensor(const Shape& shape, DType dtype, double lo, double hi, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(static_cast<float>(lo), static_cast<float>(hi));
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (float& x : v) x = dist(gen);
  return Tensor::from_vector(v, shape).astype(dtype);
}

Tensor widen(const Tensor& t) { return t.astype(DType::Float32); }

// A new tensor with t's dtype, shape and values.
Tensor copy_of(const Tensor& t) {
  Tensor c = Tensor::empty(t.shape(), t.dtype());
  std::memcpy(c.raw_data(), t.raw_data(), t.nbytes());
  return c;
}

using Inputs = std::vector<const void*>;
using Outputs = std::vector<void*>;
using Kernel = std::function<void(DType, const Inputs&, const Outputs&)>;

// Runs `kernel` on the 16-bit inputs with outputs that start as copies of `outs`, and on the inputs
// and outputs widened to float32; each 16-bit output must equal its float32 one rounded. Outputs
// start from given values because some kernels add into them (beta C, counts, accumulate).
void expect_kernel_rounds_once(const std::vector<Tensor>& ins, const std::vector<Tensor>& outs, const Kernel& kernel,
                               const std::string& what) {
  const DType dtype = outs.at(0).dtype();
  Inputs in16, in32;
  std::vector<Tensor> wide_ins;
  for (const Tensor& t : ins) wide_ins.push_back(widen(t));
  for (std::size_t i = 0; i < ins.size(); ++i) {
    in16.push_back(ins[i].raw_data());
    in32.push_back(wide_ins[i].raw_data());
  }
  std::vector<Tensor> out16, out32;
  Outputs o16, o32;
  for (const Tensor& t : outs) {
    out16.push_back(copy_of(t));
    out32.push_back(widen(t));
    o16.push_back(out16.back().raw_data());
    o32.push_back(out32.back().raw_data());
  }
  kernel(dtype, in16, o16);
  kernel(DType::Float32, in32, o32);
  for (std::size_t i = 0; i < outs.size(); ++i)
    expect_rounded_from(out16[i], out32[i], what + " output " + std::to_string(i));
}

class HalfCompute : public testing::CpuTestInFolder {};

TEST_F(HalfCompute, UnaryOpsRoundTheFloat32ResultOnce) {
  using UnaryFnOp = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<std::string, UnaryFnOp>> any_sign = {
      {"relu", [](const Tensor& x) { return relu(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"square", [](const Tensor& x) { return square(x); }},
      {"abs", [](const Tensor& x) { return abs(x); }},
      {"neg", [](const Tensor& x) { return neg(x); }},
      {"gelu", [](const Tensor& x) { return gelu(x); }},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, true); }},
      {"silu", [](const Tensor& x) { return silu(x); }},
      {"elu", [](const Tensor& x) { return elu(x, 0.7); }},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.1); }},
      {"clip", [](const Tensor& x) { return clip(x, -1.3, 2.1); }},
      {"mul_scalar", [](const Tensor& x) { return mul(x, 0.3); }},
      {"add_scalar", [](const Tensor& x) { return add(x, 1.7); }}};
  const std::vector<std::pair<std::string, UnaryFnOp>> positive = {{"log", [](const Tensor& x) { return log(x); }},
                                                                   {"sqrt", [](const Tensor& x) { return sqrt(x); }}};
  for (const DType dt : kHalfTypes) {
    const Tensor x = random_tensor({7, 9}, dt, -4.0, 4.0, 1);
    const Tensor xp = random_tensor({7, 9}, dt, 0.01, 9.0, 2);
    for (const auto& [name, f] : any_sign) {
      const Tensor y = f(x);
      EXPECT_EQ(y.dtype(), dt) << name;
      expect_rounded_from(y, f(widen(x)), name);
    }
    for (const auto& [name, f] : positive) expect_rounded_from(f(xp), f(widen(xp)), name);
  }
}

TEST_F(HalfCompute, UnaryBackwardRoundsOnce) {
  const std::vector<std::pair<UnaryOp, double>> fns = {
      {UnaryOp::Neg, 0},  {UnaryOp::Relu, 0},   {UnaryOp::Sigmoid, 0},     {UnaryOp::Gelu, 0}, {UnaryOp::GeluTanh, 0},
      {UnaryOp::Silu, 0}, {UnaryOp::Elu, 0.7},  {UnaryOp::LeakyRelu, 0.1}, {UnaryOp::Tanh, 0}, {UnaryOp::Exp, 0},
      {UnaryOp::Log, 0},  {UnaryOp::Square, 0}, {UnaryOp::Sqrt, 0},        {UnaryOp::Abs, 0}};
  for (const DType dt : kHalfTypes) {
    const int64_t n = 40;
    for (const auto& [op, param] : fns) {
      const bool positive = op == UnaryOp::Log || op == UnaryOp::Sqrt;
      const Tensor x = random_tensor({n}, dt, positive ? 0.05 : -3.0, 3.0, 3);
      // y as the 16-bit forward stored it: the backward reads the rounded output.
      Tensor y = Tensor::empty({n}, dt);
      cpu().unary(backend::UnaryFn(op, param), dt, x.raw_data(), y.raw_data(), n);
      const Tensor dy = random_tensor({n}, dt, -2.0, 2.0, 4);
      expect_kernel_rounds_once(
          {x, y, dy}, {Tensor::zeros({n}, dt)},
          [&](DType d, const Inputs& in, const Outputs& out) {
            cpu().unary_backward(backend::UnaryFn(op, param), d, in[0], in[1], in[2], out[0], n);
          },
          "unary_backward " + std::to_string(static_cast<int>(op)));
    }
  }
}

TEST_F(HalfCompute, BinaryOpsWithBroadcastRoundOnce) {
  for (const DType dt : kHalfTypes) {
    const Tensor a = random_tensor({6, 5}, dt, -3.0, 3.0, 5);
    const Tensor b = random_tensor({6, 5}, dt, 0.5, 3.0, 6);
    const Tensor row = random_tensor({5}, dt, -2.0, 2.0, 7);
    expect_rounded_from(add(a, b), add(widen(a), widen(b)), "add");
    expect_rounded_from(sub(a, b), sub(widen(a), widen(b)), "sub");
    expect_rounded_from(mul(a, b), mul(widen(a), widen(b)), "mul");
    expect_rounded_from(div(a, b), div(widen(a), widen(b)), "div");
    expect_rounded_from(maximum(a, b), maximum(widen(a), widen(b)), "maximum");
    expect_rounded_from(add(a, row), add(widen(a), widen(row)), "add row");
    expect_rounded_from(div(row, a), div(widen(row), widen(a)), "div by rows");
    // GreaterEqual, and a broadcast first operand, through the backend.
    expect_kernel_rounds_once(
        {row, a}, {Tensor::zeros({6, 5}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().binary(BinaryOp::GreaterEqual, d, in[0], 5, in[1], 30, out[0], 30);
        },
        "greater_equal");
  }
}

TEST_F(HalfCompute, AffineClipAndClipBackwardRoundOnce) {
  for (const DType dt : kHalfTypes) {
    const int64_t n = 33;
    const Tensor x = random_tensor({n}, dt, -3.0, 3.0, 8);
    const Tensor dy = random_tensor({n}, dt, -1.0, 1.0, 9);
    expect_kernel_rounds_once(
        {x}, {Tensor::zeros({n}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) { cpu().affine(d, in[0], 0.37, -1.1, out[0], n); },
        "affine");
    expect_kernel_rounds_once(
        {x}, {Tensor::zeros({n}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) { cpu().clip(d, in[0], out[0], n, -1.01, 0.7); }, "clip");
    expect_kernel_rounds_once(
        {x, dy}, {Tensor::zeros({n}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().clip_backward(d, in[0], in[1], out[0], n, -1.01, 0.7);
        },
        "clip_backward");
  }
}

TEST_F(HalfCompute, SumsAccumulateInFloatAndRoundOnce) {
  for (const DType dt : kHalfTypes) {
    // 300 rows cross the column sum's block of 256 rows.
    const Tensor x = random_tensor({300, 7}, dt, -1.0, 1.0, 10);
    expect_rounded_from(sum(x, 0), sum(widen(x), 0), "sum axis 0");
    expect_rounded_from(sum(x, -1), sum(widen(x), -1), "sum axis -1");
    expect_rounded_from(sum(x), sum(widen(x)), "sum");
    // 300 values near 1 sum to about 300, where float16's spacing is 0.25: rounding each partial sum
    // would drift away from the float sum rounded once.
    const Tensor start = random_tensor({7}, dt, 10.0, 20.0, 11);
    expect_kernel_rounds_once(
        {x}, {start},
        [&](DType d, const Inputs& in, const Outputs& out) { cpu().sum_rows(d, in[0], out[0], 300, 7, true); },
        "sum_rows accumulate");
  }
}

TEST_F(HalfCompute, ArgmaxAndAccuracyCountInTheGivenDtype) {
  for (const DType dt : kHalfTypes) {
    const Tensor x = random_tensor({12, 6}, dt, -5.0, 5.0, 12);
    EXPECT_EQ(argmax(x).to_vector<int32_t>(), argmax(widen(x)).to_vector<int32_t>());
    const std::vector<int32_t> best = argmax(x).to_vector<int32_t>();
    std::vector<int32_t> labels(12);
    for (int r = 0; r < 12; ++r) labels[r] = r % 4 == 0 ? (best[r] + 1) % 6 : best[r];  // 9 hits of 12
    const Tensor lab = Tensor::from_vector(labels);
    // The count stays in the dtype: 2048 + 9 is 2057, rounded once to float16's 2056 (its spacing
    // is 2 there: a tie, to even) and to bfloat16's 2064 (spacing 16).
    Tensor count = Tensor::full({1}, 2048.0, dt);
    cpu().accuracy_sum(dt, x.raw_data(), static_cast<const int32_t*>(lab.raw_data()), count.raw_data(), 12, 6);
    EXPECT_EQ(count.dtype(), dt);
    EXPECT_EQ(count.to_vector<double>()[0], dt == DType::Float16 ? 2056.0 : 2064.0) << dtype_name(dt);
    expect_kernel_rounds_once(
        {x}, {Tensor::full({1}, 2048.0, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().accuracy_sum(d, in[0], static_cast<const int32_t*>(lab.raw_data()), out[0], 12, 6);
        },
        "accuracy_sum");
    expect_kernel_rounds_once(
        {x}, {Tensor::full({1}, 3.0, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().in_top_k_sum(d, in[0], static_cast<const int32_t*>(lab.raw_data()), out[0], 12, 6, 2);
        },
        "in_top_k_sum");
    const Tensor probs = random_tensor({20}, dt, 0.0, 1.0, 13);
    const Tensor targets = random_tensor({20}, dt, 0.0, 1.0, 14).astype(DType::Float32);
    const Tensor binary_targets = clip(mul(targets, 2.0), 0.0, 1.0).astype(dt);
    expect_kernel_rounds_once(
        {probs, binary_targets}, {Tensor::full({1}, 0.5, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().binary_accuracy_sum(d, in[0], in[1], out[0], 20, 0.5, 0.1);
        },
        "binary_accuracy_sum");
  }
}

TEST_F(HalfCompute, MatrixProductsStageIntoFloat32) {
  for (const DType dt : kHalfTypes) {
    const Tensor a = random_tensor({9, 13}, dt, -1.0, 1.0, 15);
    const Tensor b = random_tensor({13, 6}, dt, -1.0, 1.0, 16);
    expect_rounded_from(matmul(a, b), matmul(widen(a), widen(b)), "matmul");
    // Transposed operands with alpha and beta: beta C reads the 16-bit C.
    const Tensor at = random_tensor({13, 9}, dt, -1.0, 1.0, 17);
    const Tensor bt = random_tensor({6, 13}, dt, -1.0, 1.0, 18);
    const Tensor c = random_tensor({9, 6}, dt, -4.0, 4.0, 19);
    expect_kernel_rounds_once(
        {at, bt}, {c},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().gemm(d, true, true, 9, 6, 13, 0.75, in[0], in[1], -1.5, out[0]);
        },
        "gemm alpha beta");
    // A skinny product with a long depth, which the CPU splits along the depth.
    const int64_t k = 8192;
    const Tensor da = random_tensor({8, k}, dt, -1.0, 1.0, 20);
    const Tensor db = random_tensor({k, 8}, dt, -1.0, 1.0, 21);
    expect_kernel_rounds_once(
        {da, db}, {Tensor::full({8, 8}, 2.0, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().gemm(d, false, false, 8, 8, k, 1.0, in[0], in[1], 0.5, out[0]);
        },
        "gemm split depth");
  }
}

TEST_F(HalfCompute, DenseForwardAndGradientsRoundOnce) {
  for (const DType dt : kHalfTypes) {
    const Tensor x = random_tensor({5, 11}, dt, -1.0, 1.0, 22);
    const Tensor w = random_tensor({11, 4}, dt, -1.0, 1.0, 23);
    const Tensor bias = random_tensor({4}, dt, -0.5, 0.5, 24);
    // The bias and ReLU act on the float product: the output is the float32 layer's, rounded once.
    expect_rounded_from(dense(x, w, bias, "relu"), dense(widen(x), widen(w), widen(bias), "relu"), "dense relu");
    expect_rounded_from(dense(x, w, bias), dense(widen(x), widen(w), widen(bias)), "dense");
    const Tensor dz = random_tensor({5, 4}, dt, -1.0, 1.0, 25);
    expect_kernel_rounds_once(
        {x, dz}, {Tensor::zeros({11, 4}, dt), Tensor::zeros({4}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().gemm_wgrad_bias(d, 5, 4, 11, in[0], in[1], out[0], out[1]);
        },
        "gemm_wgrad_bias");
  }
}

TEST_F(HalfCompute, SoftmaxFamilyRoundsOnce) {
  for (const DType dt : kHalfTypes) {
    const Tensor x = random_tensor({6, 10}, dt, -6.0, 6.0, 26);
    expect_rounded_from(softmax(x), softmax(widen(x)), "softmax");
    expect_rounded_from(log_softmax(x), log_softmax(widen(x)), "log_softmax");
    const Tensor dy = random_tensor({6, 10}, dt, -1.0, 1.0, 27);
    for (const bool log : {false, true}) {
      Tensor y = Tensor::empty({6, 10}, dt);
      cpu().softmax(dt, x.raw_data(), y.raw_data(), 6, 10, log);
      expect_kernel_rounds_once(
          {y, dy}, {Tensor::zeros({6, 10}, dt)},
          [&](DType d, const Inputs& in, const Outputs& out) {
            cpu().softmax_backward(d, in[0], in[1], out[0], 6, 10, log);
          },
          log ? "log_softmax_backward" : "softmax_backward");
    }
    const Tensor labels = Tensor::from_vector(std::vector<int32_t>{3, 0, 9, 4, 4, 1});
    expect_kernel_rounds_once(
        {x}, {Tensor::zeros({6}, dt), Tensor::zeros({6, 10}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().sparse_softmax_xent(d, in[0], static_cast<const int32_t*>(labels.raw_data()), out[0], out[1], 1.0 / 6.0,
                                    6, 10);
        },
        "sparse_softmax_xent");
    const Tensor z = random_tensor({6, 10}, dt, 0.0, 1.0, 28);
    expect_kernel_rounds_once(
        {x, z}, {Tensor::zeros({6, 10}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) { cpu().sigmoid_xent(d, in[0], in[1], out[0], 60); },
        "sigmoid_xent");
  }
}

TEST_F(HalfCompute, ConvolutionStagesIntoFloat32) {
  for (const DType dt : kHalfTypes) {
    const Tensor x = random_tensor({2, 7, 6, 3}, dt, -1.0, 1.0, 29);
    const Tensor w = random_tensor({3, 3, 3, 4}, dt, -0.5, 0.5, 30);
    const Tensor bias = random_tensor({4}, dt, -0.2, 0.2, 31);
    expect_rounded_from(conv2d(x, w, {2, 1}, Padding::Same), conv2d(widen(x), widen(w), {2, 1}, Padding::Same),
                        "conv2d same");
    expect_rounded_from(conv2d(x, w, bias, "relu"), conv2d(widen(x), widen(w), widen(bias), "relu"),
                        "conv2d bias relu");
    // "same" padding at stride 1: output 7x6.
    const backend::Conv2dGeometry g{.N = 2,
                                    .H = 7,
                                    .W = 6,
                                    .C = 3,
                                    .KH = 3,
                                    .KW = 3,
                                    .F = 4,
                                    .OH = 7,
                                    .OW = 6,
                                    .stride_h = 1,
                                    .stride_w = 1,
                                    .pad_top = 1,
                                    .pad_left = 1};
    const Tensor dy = random_tensor({2, 7, 6, 4}, dt, -1.0, 1.0, 32);
    const Tensor relu_y = random_tensor({2, 7, 6, 4}, dt, -1.0, 1.0, 33);
    expect_kernel_rounds_once(
        {dy, w}, {Tensor::zeros({2, 7, 6, 3}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) { cpu().conv2d_backward_data(d, g, in[0], in[1], out[0]); },
        "conv2d_backward_data");
    expect_kernel_rounds_once(
        {x, dy, relu_y}, {Tensor::zeros({3, 3, 3, 4}, dt), Tensor::zeros({4}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().conv2d_backward_filter(d, g, in[0], in[1], in[2], out[0], out[1]);
        },
        "conv2d_backward_filter relu");
  }
}

TEST_F(HalfCompute, PoolingRoundsOnce) {
  for (const DType dt : kHalfTypes) {
    const Tensor x = random_tensor({2, 5, 5, 3}, dt, -2.0, 2.0, 34);
    expect_rounded_from(max_pool2d(x, {2, 2}, {2, 2}, Padding::Same),
                        max_pool2d(widen(x), {2, 2}, {2, 2}, Padding::Same), "max_pool2d");
    expect_rounded_from(avg_pool2d(x, {3, 3}, {1, 1}, Padding::Same),
                        avg_pool2d(widen(x), {3, 3}, {1, 1}, Padding::Same), "avg_pool2d");
    // Overlapping 3x3 windows at stride 1 ("same"): gradient shares meet in one input cell.
    const backend::Pool2dGeometry g{.N = 2,
                                    .H = 5,
                                    .W = 5,
                                    .C = 3,
                                    .KH = 3,
                                    .KW = 3,
                                    .OH = 5,
                                    .OW = 5,
                                    .stride_h = 1,
                                    .stride_w = 1,
                                    .pad_top = 1,
                                    .pad_left = 1};
    Tensor y = Tensor::empty({2, 5, 5, 3}, dt);
    cpu().max_pool2d_forward(dt, g, x.raw_data(), y.raw_data());
    const Tensor dy = random_tensor({2, 5, 5, 3}, dt, -1.0, 1.0, 35);
    expect_kernel_rounds_once(
        {x, y, dy}, {Tensor::zeros({2, 5, 5, 3}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().max_pool2d_backward(d, g, in[0], in[1], in[2], out[0]);
        },
        "max_pool2d_backward");
    expect_kernel_rounds_once(
        {dy}, {Tensor::zeros({2, 5, 5, 3}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) { cpu().avg_pool2d_backward(d, g, in[0], out[0]); },
        "avg_pool2d_backward");
  }
}

TEST_F(HalfCompute, PhiloxUniformRoundsDownAndDropoutRoundsOnce) {
  const Tensor counter = Tensor::from_vector(std::vector<int64_t>{5});
  const int64_t n = int64_t(1) << 14;
  const std::vector<float> u32 = random_uniform_philox({n}, 77, counter, 3, DType::Float32).to_vector<float>();
  for (const DType dt : kHalfTypes) {
    const Tensor u16 = random_uniform_philox({n}, 77, counter, 3, dt);
    // Each number is float32's rounded down to the 16-bit type (the op's contract keeps it in
    // [0, 1)): float32's rounded to nearest, or the pattern below it where that rounded up.
    const Tensor nearest = Tensor::from_vector(u32).astype(dt);
    std::vector<uint16_t> expected = bits_of(nearest);
    const std::vector<float> nearest_values = nearest.to_vector<float>();
    const float step = dt == DType::Float16 ? std::ldexp(1.0f, -11) : std::ldexp(1.0f, -8);
    int near_one = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (nearest_values[i] > u32[i]) --expected[i];
      near_one += u32[i] >= 1.0f - step / 2;
    }
    EXPECT_EQ(bits_of(u16), expected) << dtype_name(dt);
    // Of 2^14 float32 numbers several lie within half a 16-bit step of 1, where rounding to nearest
    // would give 1.
    const std::vector<float> values = u16.to_vector<float>();
    for (int64_t i = 0; i < n; ++i) ASSERT_LT(values[i], 1.0f) << i;
    EXPECT_GT(near_one, 0) << dtype_name(dt);
    const Tensor x = random_tensor({40, 10}, dt, -3.0, 3.0, 36);
    expect_rounded_from(dropout(x, 0.3, 99, counter, 1), dropout(widen(x), 0.3, 99, counter, 1), "dropout");
  }
}

TEST_F(HalfCompute, ImageTransformsRoundOnce) {
  for (const DType dt : kHalfTypes) {
    const Tensor x = random_tensor({2, 6, 5, 2}, dt, -1.0, 1.0, 37);
    // Per sample (ay, by, ax, bx): a flip and a fractional shift.
    const Tensor t =
        Tensor::from_vector(std::vector<float>{-1.0f, 5.0f, 1.0f, 0.0f, 1.0f, -1.25f, 0.75f, 0.5f}, {2, 4}).astype(dt);
    expect_rounded_from(image_transform(x, t, {4, 7}, Interpolation::Bilinear, FillMode::Reflect),
                        image_transform(widen(x), widen(t), {4, 7}, Interpolation::Bilinear, FillMode::Reflect),
                        "image_transform");
    const backend::ImageTransformGeometry g{.N = 2,
                                            .H = 6,
                                            .W = 5,
                                            .C = 2,
                                            .OH = 4,
                                            .OW = 7,
                                            .bilinear = true,
                                            .fill = backend::ImageFill::Constant,
                                            .fill_value = 0.3};
    const Tensor dy = random_tensor({2, 4, 7, 2}, dt, -1.0, 1.0, 38);
    expect_kernel_rounds_once(
        {dy, t}, {Tensor::zeros({2, 6, 5, 2}, dt)},
        [&](DType d, const Inputs& in, const Outputs& out) {
          cpu().image_transform_backward(d, g, in[0], in[1], out[0]);
        },
        "image_transform_backward");
    const Tensor counter = Tensor::from_vector(std::vector<int64_t>{4});
    const std::array<backend::ImageAxisSpec, 2> axes = {
        backend::ImageAxisSpec{.kind = backend::ImageAxisKind::Shift, .lo = -0.3, .hi = 0.2, .size = 6},
        backend::ImageAxisSpec{.kind = backend::ImageAxisKind::Flip, .size = 5}};
    expect_kernel_rounds_once(
        {}, {Tensor::zeros({9, 4}, dt)},
        [&](DType d, const Inputs&, const Outputs& out) {
          cpu().random_image_transforms(d, axes.data(), 9, 11, static_cast<const int64_t*>(counter.raw_data()), 2, 0,
                                        out[0]);
        },
        "random_image_transforms");
  }
}

TEST_F(HalfCompute, IntegerDtypesAndOptimizersStillRefuse) {
  const Tensor i = Tensor::zeros({4}, DType::Int32);
  Tensor out = Tensor::zeros({4}, DType::Int32);
  EXPECT_EQ(
      message_of([&] { cpu().unary(backend::UnaryFn(UnaryOp::Relu), DType::Int32, i.raw_data(), out.raw_data(), 4); }),
      "[unary] no kernel for int32; expected float32, float64, float16 or bfloat16");
  // Parameters stay float32 under mixed precision: the optimizers' kernels keep refusing 16-bit.
  Tensor w = Tensor::ones({3}, DType::Float16);
  w.set_requires_grad(true);
  sum(square(w)).backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().dtype(), DType::Float16);
  optimizers::SGD sgd;
  EXPECT_EQ(message_of([&] { sgd.step({w}); }),
            "[optimizer_update] no kernel for float16; expected float32 or float64");
}

}  // namespace
}  // namespace kiln
