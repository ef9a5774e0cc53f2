// CPU vs GPU parity of gelu, silu, elu, leaky_relu, average pooling and the Philox ops (fresh random
// inputs each run, the tolerance stated per op), and the step counter read on the device, also in a
// recorded step (CUDA graph) replayed as the counter advances. Skipped, with the reason, where no
// GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cuda_parity.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using namespace kiln::testing;
using backend::UnaryFn;
using backend::UnaryOp;

namespace {

struct NamedFn {
  UnaryFn fn;
  std::string name;
};

std::vector<NamedFn> new_activations() {
  return {{UnaryOp::Gelu, "gelu"},
          {UnaryOp::GeluTanh, "gelu approximate"},
          {UnaryOp::Silu, "silu"},
          {UnaryFn(UnaryOp::Elu, 1.0), "elu"},
          {UnaryFn(UnaryOp::Elu, 0.5), "elu alpha 0.5"},
          {UnaryFn(UnaryOp::LeakyRelu, 0.2), "leaky_relu"}};
}

// One activation and its backward on both devices, x with NaNs; tolerances for y and dx.
template <typename T>
void check_activation(const NamedFn& f, double rtol, double atol_y, double atol_dx) {
  const DType dtype = dtype_of<T>();
  const int64_t n = 100003;
  const auto x = with_nans(random_vec<T>(n, -8.0, 8.0), 64), dy = random_vec<T>(n);
  std::vector<T> y(n), dx(n);
  cpu().unary(f.fn, dtype, x.data(), y.data(), n);
  cpu().unary_backward(f.fn, dtype, x.data(), y.data(), dy.data(), dx.data(), n);
  DevBuf gx(x), gy(n * sizeof(T)), gdy(dy), gdx(n * sizeof(T));
  gpu().unary(f.fn, dtype, gx.ptr, gy.ptr, n);
  gpu().unary_backward(f.fn, dtype, gx.ptr, gy.ptr, gdy.ptr, gdx.ptr, n);
  expect_close(y, gy.get<T>(), rtol, atol_y, f.name + " " + dtype_name(dtype));
  expect_close(dx, gdx.get<T>(), rtol, atol_dx, f.name + " backward " + dtype_name(dtype));
}

// TensorFlow's output size and leading padding of one axis.
std::pair<int64_t, int64_t> tf_axis(int64_t in, int64_t k, int64_t s, bool same) {
  if (!same) return {(in - k) / s + 1, 0};
  const int64_t out = (in + s - 1) / s;
  return {out, std::max<int64_t>((out - 1) * s + k - in, 0) / 2};
}

template <typename T>
void check_avg_pool(const backend::Pool2dGeometry& g, bool nans, const std::string& what) {
  const DType dtype = dtype_of<T>();
  auto x = random_vec<T>(g.N * g.H * g.W * g.C);
  if (nans) x = with_nans(std::move(x), 16);
  const auto dy = random_vec<T>(g.N * g.OH * g.OW * g.C);
  std::vector<T> y(dy.size()), dx(x.size());
  cpu().avg_pool2d_forward(dtype, g, x.data(), y.data());
  cpu().avg_pool2d_backward(dtype, g, dy.data(), dx.data());
  DevBuf gx(x), gdy(dy), gy(y.size() * sizeof(T)), gdx(dx.size() * sizeof(T));
  gpu().avg_pool2d_forward(dtype, g, gx.ptr, gy.ptr);
  gpu().avg_pool2d_backward(dtype, g, gdy.ptr, gdx.ptr);
  // Tolerance: exact. Both devices add a window's cells in window order and divide once; both add
  // a cell's gradient shares (dy / count, one correctly rounded division) in (oh, ow) order; no
  // product is there for a fused multiply-add to change.
  expect_close(y, gy.get<T>(), 0, 0, what + " forward " + dtype_name(dtype));
  expect_close(dx, gdx.get<T>(), 0, 0, what + " backward " + dtype_name(dtype));
}

}  // namespace

TEST(CudaActivations, MatchCpuWithNan) {
  REQUIRE_GPU();
  for (const NamedFn& f : new_activations()) {
    // float32: erfcf, expf, expm1f and tanhf are within 4 ulp of the CPU's and the GPU contracts
    // products into FMAs: 1e-5 relative. The derivatives cancel (1 - t^2 times up to ~30 in the
    // tanh form at |x| = 8, s (1 + x (1 - s)) near x = -1.28): 1e-5 absolute.
    check_activation<float>(f, 1e-5, 1e-6, 1e-5);
    // float64: the same at double's precision.
    check_activation<double>(f, 1e-12, 1e-14, 1e-12);
  }
}

TEST(CudaAvgPool, MatchesCpuExactly) {
  REQUIRE_GPU();
  struct Case {
    int64_t N, H, W, C, KH, KW, s;
    bool same;
  };
  // Tiles, overlapping windows, gaps between windows, "same" padding on both sides and after only,
  // unequal windows, and a large case (index arithmetic in 32 bits; more than one grid pass).
  const Case cases[] = {{4, 30, 30, 32, 2, 2, 2, false}, {2, 9, 10, 3, 3, 3, 2, true},   {2, 7, 7, 5, 3, 3, 1, true},
                        {2, 9, 9, 4, 2, 2, 3, false},    {2, 7, 9, 3, 2, 2, 2, true},    {1, 5, 5, 12, 3, 3, 3, true},
                        {2, 11, 8, 3, 3, 2, 1, true},    {64, 32, 32, 16, 3, 3, 1, true}};
  for (const Case& t : cases) {
    const auto [OH, pt] = tf_axis(t.H, t.KH, t.s, t.same);
    const auto [OW, pl] = tf_axis(t.W, t.KW, t.s, t.same);
    const backend::Pool2dGeometry g{t.N, t.H, t.W, t.C, t.KH, t.KW, OH, OW, t.s, t.s, pt, pl};
    const std::string what = "avg_pool H=" + std::to_string(t.H) + " K=" + std::to_string(t.KH) + "x" +
                             std::to_string(t.KW) + " s=" + std::to_string(t.s) + (t.same ? " same" : " valid");
    for (const bool nans : {false, true}) {
      check_avg_pool<float>(g, nans, what + (nans ? " with NaN" : ""));
      check_avg_pool<double>(g, nans, what + (nans ? " with NaN" : ""));
    }
  }
}

TEST(CudaPhilox, UniformIsBitIdenticalToCpu) {
  REQUIRE_GPU();
  struct Case {
    int64_t n;
    uint64_t seed;
    int64_t step;
    uint64_t draw;
  };
  const Case cases[] = {{1, 0, 0, 0},
                        {3, 1, 1, 1},
                        {4, 0xdeadbeefcafef00dull, -1, 7},
                        {100003, 42, (int64_t(5) << 32) + 9, 0xffffffffull},
                        {1 << 22, 7, 12, 3}};
  for (const Case& t : cases) {
    const std::vector<int64_t> step = {t.step};
    DevBuf counter(step);
    std::vector<float> y(t.n);
    std::vector<double> yd(t.n);
    cpu().philox_uniform(DType::Float32, y.data(), t.n, t.seed, step.data(), t.draw);
    cpu().philox_uniform(DType::Float64, yd.data(), t.n, t.seed, step.data(), t.draw);
    DevBuf gy(t.n * sizeof(float)), gyd(t.n * sizeof(double));
    gpu().philox_uniform(DType::Float32, gy.ptr, t.n, t.seed, counter.as<int64_t>(), t.draw);
    gpu().philox_uniform(DType::Float64, gyd.ptr, t.n, t.seed, counter.as<int64_t>(), t.draw);
    EXPECT_EQ(gy.get<float>(), y) << "n=" << t.n;  // exact: integer arithmetic, one exact conversion
    EXPECT_EQ(gyd.get<double>(), yd) << "n=" << t.n;
  }
}

TEST(CudaDropoutOp, MasksAreBitIdenticalToCpu) {
  REQUIRE_GPU();
  const int64_t n = 100003;
  for (const double rate : {0.1, 0.5, 0.9}) {
    const auto x = with_nans(random_vec(n), 32);
    const auto xd = with_nans(random_vec<double>(n), 32);
    const int64_t step = 77;
    DevBuf counter(std::vector<int64_t>{step});
    std::vector<float> y(n);
    std::vector<double> yd(n);
    cpu().dropout(DType::Float32, x.data(), y.data(), n, rate, 11, &step, 2, 0);
    cpu().dropout(DType::Float64, xd.data(), yd.data(), n, rate, 11, &step, 2, 0);
    DevBuf gx(x), gy(n * sizeof(float)), gxd(xd);
    gpu().dropout(DType::Float32, gx.ptr, gy.ptr, n, rate, 11, counter.as<int64_t>(), 2, 0);
    gpu().dropout(DType::Float64, gxd.ptr, gxd.ptr, n, rate, 11, counter.as<int64_t>(), 2, 0);  // in place
    // Tolerance: exact (the same integer mask; x times the same scale, one rounding). NaN stays NaN.
    const std::string what = "dropout rate " + std::to_string(rate);
    expect_close(y, gy.get<float>(), 0, 0, what);
    expect_close(yd, gxd.get<double>(), 0, 0, what + " float64 in place");
  }
}

TEST(CudaDropoutOp, FromAnElementOffsetMatchesCpu) {
  REQUIRE_GPU();
  // A replica's shard: x is elements first.. of a larger tensor. Offsets inside a Philox block
  // (not multiples of 4) split blocks at both ends; the CPU's draw is checked against slices of the
  // whole draw in test_dropout.cpp.
  const int64_t n = 10007, step = 31;
  const auto x = with_nans(random_vec(n), 16);
  DevBuf counter(std::vector<int64_t>{step}), gx(x), gy(n * sizeof(float));
  for (const int64_t first : {int64_t{1}, int64_t{3}, int64_t{4}, int64_t{5003}}) {
    std::vector<float> y(n);
    cpu().dropout(DType::Float32, x.data(), y.data(), n, 0.4, 11, &step, 2, first);
    gpu().dropout(DType::Float32, gx.ptr, gy.ptr, n, 0.4, 11, counter.as<int64_t>(), 2, first);
    // Tolerance: exact (the same integer mask, one rounding).
    expect_close(y, gy.get<float>(), 0, 0, "dropout from element " + std::to_string(first));
  }
}

TEST(CudaDropoutOp, ReadsTheCounterOnTheDeviceAlsoInARecordedStep) {
  REQUIRE_GPU();
  const int64_t n = 4099;
  const double rate = 0.4;
  const auto x = random_vec(n, 0.5, 1.5);
  const auto cpu_dropout = [&](int64_t step) {
    std::vector<float> y(n);
    cpu().dropout(DType::Float32, x.data(), y.data(), n, rate, 5, &step, 1, 0);
    return y;
  };
  DevBuf gx(x), gy(n * sizeof(float)), counter(std::vector<int64_t>{10});
  gpu().advance_counter(counter.as<int64_t>());  // the value changes on the device only
  gpu().dropout(DType::Float32, gx.ptr, gy.ptr, n, rate, 5, counter.as<int64_t>(), 1, 0);
  EXPECT_EQ(gy.get<float>(), cpu_dropout(11));
  // Recorded once, replayed three times: each replay reads the counter the previous one advanced.
  gpu().begin_capture();
  gpu().dropout(DType::Float32, gx.ptr, gy.ptr, n, rate, 5, counter.as<int64_t>(), 1, 0);
  gpu().advance_counter(counter.as<int64_t>());
  auto graph = gpu().end_capture();
  for (int64_t step = 11; step < 14; ++step) {
    graph->launch();
    EXPECT_EQ(gy.get<float>(), cpu_dropout(step)) << "replay at step " << step;
  }
  EXPECT_NE(cpu_dropout(11), cpu_dropout(12));
  graph.reset();
}

TEST(CudaTensorOps, NewOpsForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  Generator gen(std::random_device{}());
  const Tensor x = Tensor::uniform({4, 9, 9, 6}, -2, 2, gen);
  struct Out {
    Tensor loss, y, dx, u;
  };
  auto run = [&](Device d) {
    Tensor xx = x.to(d).detach();
    xx.set_requires_grad();
    const Tensor counter = Tensor::from_vector<int64_t>({3}, Shape{1}, d);
    Tensor h = avg_pool2d(gelu(xx), {3, 3}, {2, 2}, Padding::Same);
    h = dropout(silu(h), 0.3, 99, counter, 0);
    h = elu(leaky_relu(gelu(h, true)), 0.7);
    Tensor loss = mean(square(h));
    loss.backward();
    return Out{loss, h, xx.grad(), random_uniform_philox({1001}, 99, counter, 1)};
  };
  const Out c = run(Device::cpu()), g = run(Device::gpu());
  ASSERT_TRUE(g.y.device().is_cuda());
  // Tolerance: float32 chains of the activations above (1e-5 each), a mean in another order.
  expect_close(c.loss.to_vector<float>(), g.loss.to_vector<float>(), 1e-5, 1e-6, "loss");
  expect_close(c.y.to_vector<float>(), g.y.to_vector<float>(), 1e-4, 1e-5, "forward");
  expect_close(c.dx.to_vector<float>(), g.dx.to_vector<float>(), 1e-4, 1e-6, "input gradient");
  // The dropout mask is the same: zeros exactly where the CPU has them.
  const auto yc = c.y.to_vector<float>(), yg = g.y.to_vector<float>();
  for (std::size_t i = 0; i < yc.size(); ++i) ASSERT_EQ(yc[i] == 0.f, yg[i] == 0.f) << i;
  EXPECT_EQ(c.u.to_vector<float>(), g.u.to_vector<float>());  // exact
}
