// The fused dense op, act(x W + b): its backward against central differences (float64, CPU), its
// bit-for-bit agreement with matmul, add and relu on the CPU, its error messages, and on a GPU
// (cuBLASLt epilogues) its agreement with the CPU, determinism and replay inside a CUDA graph.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "gradcheck.h"
#include "kiln/kiln.h"
#include "tensor/tensor_impl.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::message_of;
using kiln::testing::random_input;

namespace {

using In = const std::vector<Tensor>&;

// The composition the fused op replaces.
Tensor unfused(const Tensor& x, const Tensor& w, const Tensor& b, const std::string& act) {
  Tensor y = matmul(x, w);
  if (b.defined()) y = add(y, b);
  return act == "relu" ? relu(y) : y;
}

// The output and every gradient of sum(f(x, w, b) * proj), as host vectors of T.
template <typename T>
struct Results {
  std::vector<T> y, dx, dw, db;
};

template <typename T>
Results<T> run(bool fused, Device device, const Tensor& x_host, const Tensor& w_host, const Tensor& b_host,
               const std::string& act, const Tensor& proj_host) {
  // Fresh leaves (detach keeps the storage and offset), so gradients never pile up across runs.
  Tensor x = x_host.to(device).detach(), w = w_host.to(device).detach();
  Tensor b = b_host.defined() ? b_host.to(device).detach() : Tensor();
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  if (b.defined()) b.set_requires_grad(true);
  const Tensor y = fused ? dense(x, w, b, act) : unfused(x, w, b, act);
  sum(mul(y, proj_host.to(device))).backward();
  return {y.to_vector<T>(), x.grad().to_vector<T>(), w.grad().to_vector<T>(),
          b.defined() ? b.grad().to_vector<T>() : std::vector<T>{}};
}

// Float values k/4 with |k| <= 4: every product and sum below is exact in float32 (|sums| < 2^20),
// so any summation order gives the same bits, and many pre-activations are exactly 0.
Tensor quarters(const Shape& shape, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(-4, 4);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& e : v) e = static_cast<float>(dist(gen)) / 4.0f;
  return Tensor::from_vector(v, shape);
}

Tensor uniform32(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return Tensor::uniform(shape, -1.0, 1.0, gen);
}

struct Case {
  int64_t m, k, n;
};
// The seed CNN's two Dense layers at batch 10 and 2048, and an odd shape.
const Case kGpuCases[] = {{10, 7200, 64}, {2048, 64, 10}, {7, 13, 5}};

// |a - b| <= tol * max(1, max |b|) elementwise: rounding in a long sum scales with the sum's
// partial sums, not with its (possibly tiny) result, so the bound is relative to the largest value.
template <typename T>
::testing::AssertionResult near(const std::vector<T>& a, const std::vector<T>& b, double tol) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " and " << b.size();
  double scale = 1.0;
  for (const T& v : b) scale = std::max(scale, std::abs(double(v)));
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(std::abs(double(a[i]) - double(b[i])) <= tol * scale))
      return ::testing::AssertionFailure()
             << "element " << i << ": " << a[i] << " vs " << b[i] << " (bound " << tol * scale << ")";
  return ::testing::AssertionSuccess();
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

// ---- CPU ----

TEST(DenseFused, GradcheckLinearAndReluWithAndWithoutBias) {
  for (const std::string act : {"linear", "relu"}) {
    auto x = random_input({4, 5}, 31), w = random_input({5, 3}, 32), b = random_input({3}, 33);
    EXPECT_TRUE(gradcheck([act](In v) { return dense(v[0], v[1], v[2], act); }, {x, w, b})) << act;
    EXPECT_TRUE(gradcheck([act](In v) { return dense(v[0], v[1], Tensor(), act); }, {x, w})) << act;
    EXPECT_TRUE(gradcheck([act](In v) { return dense(v[0], v[1], v[2], act); },
                          {random_input({1, 1}, 34), random_input({1, 6}, 35), random_input({6}, 36)}))
        << act;
  }
}

TEST(DenseFused, GradcheckWhenOnlySomeInputsRequireGrad) {
  for (const std::string act : {"linear", "relu"}) {
    auto x = random_input({3, 4}, 37), w = random_input({4, 2}, 38), b = random_input({2}, 39);
    auto fn = [act](In v) { return dense(v[0], v[1], v[2], act); };
    Tensor x_const = x.detach(), w_const = w.detach();
    EXPECT_TRUE(gradcheck(fn, {x_const, w, b})) << act << ": x constant";
    EXPECT_TRUE(gradcheck(fn, {x, w_const, b})) << act << ": kernel constant (bias gradient alone)";
    EXPECT_TRUE(gradcheck(fn, {x_const, w_const, b})) << act << ": bias alone";
  }
}

TEST(DenseFused, EqualsMatmulAddReluBitForBitOnCpu) {
  const Case cases[] = {{10, 7200, 64}, {2048, 64, 10}, {7, 13, 5}, {1, 3, 4}};
  for (const Case& c : cases) {
    const Tensor x = uniform32({c.m, c.k}, 41), w = uniform32({c.k, c.n}, 42), b = uniform32({c.n}, 43);
    const Tensor proj = uniform32({c.m, c.n}, 44);
    for (const std::string act : {"linear", "relu"})
      for (bool with_bias : {true, false}) {
        const Tensor bias = with_bias ? b : Tensor();
        const auto f = run<float>(true, Device::cpu(), x, w, bias, act, proj);
        const auto u = run<float>(false, Device::cpu(), x, w, bias, act, proj);
        const std::string what = "[" + std::to_string(c.m) + ", " + std::to_string(c.k) + "] x [" +
                                 std::to_string(c.k) + ", " + std::to_string(c.n) + "] " + act +
                                 (with_bias ? " with bias" : " without bias");
        EXPECT_EQ(f.y, u.y) << what;
        EXPECT_EQ(f.dx, u.dx) << what;
        EXPECT_EQ(f.dw, u.dw) << what;
        EXPECT_EQ(f.db, u.db) << what;
      }
  }
}

TEST(DenseFused, DenseLayerKeepsSoftmaxLogitsForTheLoss) {
  layers::Dense layer(3, {.activation = "softmax"});
  Generator gen(5);
  layer.build(Shape{4}, gen, Device::cpu());
  const Tensor y = layer.call(uniform32({2, 4}, 45), false);
  ASSERT_TRUE(y.impl()->keras_logits.defined());
  EXPECT_EQ(y.impl()->keras_logits.shape(), (Shape{2, 3}));
}

TEST(DenseFused, BadInputsSayWhatWasExpected) {
  const Tensor x = uniform32({3, 5}, 46), w = uniform32({4, 2}, 47), b = uniform32({2}, 48);
  EXPECT_EQ(message_of([&] { dense(x, w, b); }),
            "[dense] shapes [3, 5] and [4, 2] do not chain; expected the left's columns (5) to equal the right's "
            "rows (4)");
  const Tensor w5 = uniform32({5, 2}, 49);
  EXPECT_EQ(message_of([&] { dense(x, w5, uniform32({3}, 50)); }),
            "[dense] bias has shape [3]; expected [2], one value per column of the kernel [5, 2]");
  EXPECT_EQ(message_of([&] { dense(x, w5, b, "tanh"); }),
            "[dense] activation 'tanh' is not fused; expected linear or relu (apply others to the linear result)");
  EXPECT_EQ(message_of([&] {
              dense(uniform32({3, 5, 1}, 51), w5, b);
            }),
            "[dense] input has shape [3, 5, 1]; expected 2 dimensions");
  EXPECT_EQ(message_of([&] { dense(x.astype(DType::Float64), w5, b); }),
            "[dense] inputs have dtypes float64 and float32; expected the same dtype (convert one with .astype())");
}

// ---- GPU (cuBLASLt epilogues) ----

TEST(CudaDenseFused, MatchesCpuExactlyOnExactData) {
  REQUIRE_GPU();
  for (const Case& c : kGpuCases) {
    const Tensor x = quarters({c.m, c.k}, 1), w = quarters({c.k, c.n}, 2), b = quarters({c.n}, 3);
    const Tensor proj = quarters({c.m, c.n}, 4);
    for (const std::string act : {"linear", "relu"})
      for (bool with_bias : {true, false}) {
        const Tensor bias = with_bias ? b : Tensor();
        const auto cpu = run<float>(true, Device::cpu(), x, w, bias, act, proj);
        const auto gpu = run<float>(true, Device::gpu(), x, w, bias, act, proj);
        const std::string what = "[" + std::to_string(c.m) + ", " + std::to_string(c.k) + "] x [" +
                                 std::to_string(c.k) + ", " + std::to_string(c.n) + "] " + act +
                                 (with_bias ? " with bias" : " without bias");
        EXPECT_EQ(gpu.y, cpu.y) << what;
        EXPECT_EQ(gpu.dx, cpu.dx) << what;
        EXPECT_EQ(gpu.dw, cpu.dw) << what;
        EXPECT_EQ(gpu.db, cpu.db) << what;
      }
  }
}

TEST(CudaDenseFused, MatchesCpuOnRandomFloat32) {
  REQUIRE_GPU();
  // Linear, so that no ReLU mask can flip on a rounding difference. Float32 throughout: TF32
  // products would miss this bound at K = 7200 about tenfold.
  for (const Case& c : kGpuCases) {
    const Tensor x = uniform32({c.m, c.k}, 11), w = uniform32({c.k, c.n}, 12), b = uniform32({c.n}, 13);
    const Tensor proj = uniform32({c.m, c.n}, 14);
    const auto cpu = run<float>(true, Device::cpu(), x, w, b, "linear", proj);
    const auto gpu = run<float>(true, Device::gpu(), x, w, b, "linear", proj);
    EXPECT_TRUE(near(gpu.y, cpu.y, 1e-5)) << c.m << "x" << c.k << "x" << c.n;
    EXPECT_TRUE(near(gpu.dx, cpu.dx, 1e-5)) << c.m << "x" << c.k << "x" << c.n;
    EXPECT_TRUE(near(gpu.dw, cpu.dw, 1e-5)) << c.m << "x" << c.k << "x" << c.n;
    EXPECT_TRUE(near(gpu.db, cpu.db, 1e-5)) << c.m << "x" << c.k << "x" << c.n;
  }
}

TEST(CudaDenseFused, MatchesCpuInFloat64) {
  REQUIRE_GPU();
  for (const Case& c : kGpuCases) {
    const auto f64 = [](const Tensor& t) { return t.astype(DType::Float64); };
    const Tensor x = f64(uniform32({c.m, c.k}, 21)), w = f64(uniform32({c.k, c.n}, 22)), b = f64(uniform32({c.n}, 23)),
                 proj = f64(uniform32({c.m, c.n}, 24));
    const auto cpu = run<double>(true, Device::cpu(), x, w, b, "relu", proj);
    const auto gpu = run<double>(true, Device::gpu(), x, w, b, "relu", proj);
    EXPECT_TRUE(near(gpu.y, cpu.y, 1e-12)) << c.m << "x" << c.k << "x" << c.n;
    EXPECT_TRUE(near(gpu.dx, cpu.dx, 1e-12)) << c.m << "x" << c.k << "x" << c.n;
    EXPECT_TRUE(near(gpu.dw, cpu.dw, 1e-12)) << c.m << "x" << c.k << "x" << c.n;
    EXPECT_TRUE(near(gpu.db, cpu.db, 1e-12)) << c.m << "x" << c.k << "x" << c.n;
  }
}

TEST(CudaDenseFused, UnalignedOperandsMatchCpu) {
  REQUIRE_GPU();
  // Row slices at odd offsets leave x, the kernel and the bias 4-byte aligned only: the plans must
  // pick algorithms for that alignment (or fall back), never ones that need 16 bytes.
  const Tensor xs = quarters({8, 13}, 5), ws = quarters({14, 5}, 6), bs = quarters({2, 5}, 7);
  const Tensor proj = quarters({7, 5}, 8);
  const Tensor xg_all = xs.to(Device::gpu()), wg_all = ws.to(Device::gpu()), bg_all = bs.to(Device::gpu());
  const Tensor x = xs.slice_rows(1, 8), w = ws.slice_rows(1, 14), b = bs.slice_rows(1, 2).reshape({5});
  const Tensor xg = xg_all.slice_rows(1, 8), wg = wg_all.slice_rows(1, 14), bg = bg_all.slice_rows(1, 2).reshape({5});
  for (const std::string act : {"linear", "relu"}) {
    const auto cpu = run<float>(true, Device::cpu(), x, w, b, act, proj);
    const auto gpu = run<float>(true, Device::gpu(), xg, wg, bg, act, proj);
    EXPECT_EQ(gpu.y, cpu.y) << act;
    EXPECT_EQ(gpu.dx, cpu.dx) << act;
    EXPECT_EQ(gpu.dw, cpu.dw) << act;
    EXPECT_EQ(gpu.db, cpu.db) << act;
  }
}

TEST(CudaDenseFused, KeepsNanAsOnCpu) {
  REQUIRE_GPU();
  // NaN in a row of x, a column of the kernel and an element of the bias: cuBLASLt's RELU and
  // RELU_BIAS epilogues must keep those outputs NaN, as kiln's own ReLU does (a ReLU that turned
  // them into 0 would hide the NaN weight from check_numerics), and the ReLU backward passes the
  // gradient there. Quarters keep every finite value exact, so the two devices agree bit for bit.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
    return true;
  };
  for (const Case& c : kGpuCases) {
    std::vector<float> xv = quarters({c.m, c.k}, 71).to_vector<float>();
    std::vector<float> wv = quarters({c.k, c.n}, 72).to_vector<float>(), bv = quarters({c.n}, 73).to_vector<float>();
    xv[static_cast<std::size_t>((c.m / 2) * c.k + 1)] = nan;
    wv[static_cast<std::size_t>(2 * c.n + c.n - 1)] = nan;
    bv[0] = nan;
    const Tensor x = Tensor::from_vector(xv, {c.m, c.k}), w = Tensor::from_vector(wv, {c.k, c.n}),
                 b = Tensor::from_vector(bv, {c.n}), proj = quarters({c.m, c.n}, 74);
    for (bool with_bias : {true, false}) {
      const Tensor bias = with_bias ? b : Tensor();
      const auto cpu = run<float>(true, Device::cpu(), x, w, bias, "relu", proj);
      const auto gpu = run<float>(true, Device::gpu(), x, w, bias, "relu", proj);
      const std::string what = std::to_string(c.m) + "x" + std::to_string(c.k) + "x" + std::to_string(c.n) +
                               (with_bias ? " RELU_BIAS" : " RELU");
      const std::size_t nans =
          static_cast<std::size_t>(std::count_if(cpu.y.begin(), cpu.y.end(), [](float v) { return std::isnan(v); }));
      // Row m/2, column n-1 and (with the bias) column 0 are NaN.
      EXPECT_EQ(nans, static_cast<std::size_t>(with_bias ? c.n + 2 * c.m - 2 : c.n + c.m - 1)) << what;
      EXPECT_TRUE(same(gpu.y, cpu.y)) << what;
      EXPECT_TRUE(same(gpu.dx, cpu.dx)) << what;
      EXPECT_TRUE(same(gpu.dw, cpu.dw)) << what;
      EXPECT_TRUE(same(gpu.db, cpu.db)) << what;
    }
  }
}

TEST(CudaDenseFused, RepeatsBitForBit) {
  REQUIRE_GPU();
  for (const Case& c : kGpuCases) {
    const Tensor x = uniform32({c.m, c.k}, 61), w = uniform32({c.k, c.n}, 62), b = uniform32({c.n}, 63);
    const Tensor proj = uniform32({c.m, c.n}, 64);
    const auto first = run<float>(true, Device::gpu(), x, w, b, "relu", proj);
    for (int again = 0; again < 3; ++again) {
      const auto next = run<float>(true, Device::gpu(), x, w, b, "relu", proj);
      EXPECT_TRUE(same_bits(next.y, first.y)) << c.m << "x" << c.k << "x" << c.n;
      EXPECT_TRUE(same_bits(next.dx, first.dx)) << c.m << "x" << c.k << "x" << c.n;
      EXPECT_TRUE(same_bits(next.dw, first.dw)) << c.m << "x" << c.k << "x" << c.n;
      EXPECT_TRUE(same_bits(next.db, first.db)) << c.m << "x" << c.k << "x" << c.n;
    }
  }
}

TEST(CudaDenseFused, RecordedCallsReplayTheEagerResults) {
  REQUIRE_GPU();
  backend::Backend& be = backend::cuda(0);
  const Device gpu = Device::gpu();
  for (const Case& c : kGpuCases) {
    const Tensor x = uniform32({c.m, c.k}, 71).to(gpu), w = uniform32({c.k, c.n}, 72).to(gpu),
                 b = uniform32({c.n}, 73).to(gpu), dy = uniform32({c.m, c.n}, 74).to(gpu);
    Tensor y = Tensor::zeros({c.m, c.n}, DType::Float32, gpu), dw = Tensor::zeros({c.k, c.n}, DType::Float32, gpu),
           db = Tensor::zeros({c.n}, DType::Float32, gpu);
    const auto step = [&] {
      be.gemm_bias_act(DType::Float32, c.m, c.n, c.k, x.raw_data(), w.raw_data(), b.raw_data(), true, y.raw_data());
      be.gemm_wgrad_bias(DType::Float32, c.m, c.n, c.k, x.raw_data(), dy.raw_data(), dw.raw_data(), db.raw_data());
    };
    step();  // eager: chooses the plans
    const auto y0 = y.to_vector<float>(), dw0 = dw.to_vector<float>(), db0 = db.to_vector<float>();
    y.fill_(0.0);
    dw.fill_(0.0);
    db.fill_(0.0);
    be.begin_capture();
    try {
      step();
    } catch (...) {
      be.abort_capture();
      throw;
    }
    auto work = be.end_capture();
    work->launch();
    EXPECT_TRUE(same_bits(y.to_vector<float>(), y0)) << c.m << "x" << c.k << "x" << c.n;
    EXPECT_TRUE(same_bits(dw.to_vector<float>(), dw0)) << c.m << "x" << c.k << "x" << c.n;
    EXPECT_TRUE(same_bits(db.to_vector<float>(), db0)) << c.m << "x" << c.k << "x" << c.n;
  }
}
