// The CPU's packet forms of exp, sigmoid, silu, elu, tanh and gelu's tanh form (cpu_vector_math.h)
// and their derivatives: within a few ulp of the definition computed in long double over the range
// where they are used, exactly the scalar formula's values at the edges (NaN, infinities, zeros,
// subnormals, beyond the packet functions' range), on every length (blocks and their remainders);
// and the backend's unary and unary_backward take them for float32 and bfloat16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_vector_math.h"
#include "backend/elementwise_math.h"
#include "kiln/kiln.h"

namespace {

using kiln::backend::cpu;
using kiln::backend::UnaryOp;
namespace cpu_vector = kiln::backend::cpu_vector;
namespace math = kiln::backend::math;

constexpr float kAlpha = 1.0f;  // Keras' elu alpha

// Floats ordered as integers, so that the distance between two of them counts the floats between.
int64_t ordinal(float f) {
  int32_t i = 0;
  std::memcpy(&i, &f, sizeof i);
  return i < 0 ? -static_cast<int64_t>(i & 0x7fffffff) : i;
}
int64_t ulps(float a, float b) { return std::llabs(ordinal(a) - ordinal(b)); }

// The definitions in long double, as elementwise_math.h writes them in float.
long double exact(UnaryOp op, long double x) {
  const long double k = 0.79788456080286535588L, c = 0.044715L;
  switch (op) {
    case UnaryOp::Exp:
      return std::exp(x);
    case UnaryOp::Sigmoid:
      return 1.0L / (1.0L + std::exp(-x));
    case UnaryOp::Silu:
      return x / (1.0L + std::exp(-x));
    case UnaryOp::Elu:
      return x > 0 ? x : kAlpha * std::expm1(x);
    case UnaryOp::Tanh:
      return std::tanh(x);
    default:  // GeluTanh
      return 0.5L * x * (1.0L + std::tanh(k * (x + c * x * x * x)));
  }
}

long double exact_derivative(UnaryOp op, long double x) {
  if (op == UnaryOp::Silu) {
    const long double s = 1.0L / (1.0L + std::exp(-x));
    return s * (1.0L + x * (1.0L - s));
  }
  return x > 0 ? 1.0L : kAlpha * std::exp(x);  // Elu
}

const UnaryOp kOps[] = {UnaryOp::Exp, UnaryOp::Sigmoid, UnaryOp::Silu, UnaryOp::Elu, UnaryOp::Tanh, UnaryOp::GeluTanh};
const UnaryOp kDerivatives[] = {UnaryOp::Silu, UnaryOp::Elu};

std::string name(UnaryOp op) { return "op " + std::to_string(static_cast<int>(op)); }

// n evenly spaced points of [lo, hi].
std::vector<float> sweep(float lo, float hi, int n) {
  std::vector<float> x(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = lo + (hi - lo) * static_cast<float>(i) / (n - 1);
  return x;
}

// Float's edges (NaN, infinities, zeros, subnormals, the largest finite values) and inputs just
// beyond `limit`, where the packet form hands over to the scalar formula.
std::vector<float> edges(float limit) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  return {nan,     -nan,   inf,     -inf,  0.0f,   -0.0f, 1e-40f, -1e-40f,        3e38f,          -3e38f,
          -104.0f, 200.0f, -200.0f, 89.0f, -95.0f, 88.5f, -88.5f, limit * 1.001f, -limit * 1.001f};
}

// The packet forms' ranges (cpu_vector_math.cpp): exp's argument within 87, tanh's within 9, gelu's
// x within 10.
float limit_of(UnaryOp op) { return op == UnaryOp::Tanh ? 9.0f : op == UnaryOp::GeluTanh ? 10.0f : 87.0f; }

bool same_value(float a, float b) { return (std::isnan(a) && std::isnan(b)) || ordinal(a) == ordinal(b); }

// Eigen's tanh takes other clamping constants without FMA, and each product is rounded apart: the
// bounds below were measured in builds of both kinds (x86-64-v3, and x86-64-v2 as MinGW's).
#if defined(__FMA__)
constexpr int64_t kTanhUlp = 5;
constexpr double kGeluTanhScaled = 1.9e-7;
#else
constexpr int64_t kTanhUlp = 6;
constexpr double kGeluTanhScaled = 2.11e-7;
#endif

TEST(CpuVectorMath, WithinAFewUlpOfTheDefinition) {
  // The bounds are what the packet forms reach (libm's scalar forms in brackets): exp 1 ulp (1),
  // sigmoid 2 (2), silu 3 (3), elu 1 (1), tanh 5, without FMA 6 (2). Gelu's tanh form cancels in
  // 1 + t below x = -2, where an error in ulp of the result means nothing: its bound is absolute,
  // in units of max(1, |x|): 1.9e-7, without FMA 2.11e-7 (1.2e-7).
  struct Bound {
    UnaryOp op;
    float lo, hi;
    int64_t ulp;
    double scaled;
  };
  const Bound bounds[] = {
      {UnaryOp::Exp, -87.0f, 87.0f, 1, 0},       {UnaryOp::Sigmoid, -87.0f, 87.0f, 2, 0},
      {UnaryOp::Silu, -87.0f, 87.0f, 3, 0},      {UnaryOp::Elu, -87.0f, 20.0f, 1, 0},
      {UnaryOp::Tanh, -9.0f, 9.0f, kTanhUlp, 0}, {UnaryOp::GeluTanh, -10.0f, 10.0f, 0, kGeluTanhScaled}};
  for (const Bound& b : bounds) {
    const std::vector<float> x = sweep(b.lo, b.hi, 200003);
    std::vector<float> y(x.size());
    cpu_vector::apply(b.op, kAlpha, x.data(), y.data(), static_cast<int64_t>(x.size()));
    int64_t worst = 0;
    double worst_scaled = 0.0;
    float at = 0.0f;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const long double want = exact(b.op, x[i]);
      const int64_t u = ulps(y[i], static_cast<float>(want));
      const double scaled = static_cast<double>(std::fabs(y[i] - want)) / std::max(1.0, std::fabs(double{x[i]}));
      if (b.ulp > 0 && u > worst) worst = u, at = x[i];
      if (b.ulp == 0 && scaled > worst_scaled) worst_scaled = scaled, at = x[i];
    }
    EXPECT_LE(worst, b.ulp) << name(b.op) << " at x = " << at;
    EXPECT_LE(worst_scaled, b.scaled) << name(b.op) << " at x = " << at;
  }
}

TEST(CpuVectorMath, DerivativesWithinAFewUlpOfTheDefinition) {
  // Absolute, as silu's derivative crosses zero. Measured: silu's 7.303e-7 (about 6 ulp of its
  // largest value, 1.1; libm's form the same), elu's 2.98e-8 (half an ulp of 1).
  const std::pair<UnaryOp, double> bounds[] = {{UnaryOp::Silu, 7.31e-7}, {UnaryOp::Elu, 2.99e-8}};
  for (const auto& [op, bound] : bounds) {
    const std::vector<float> x = sweep(-9.0f, 9.0f, 100003);
    const std::vector<float> dy(x.size(), 1.0f);
    std::vector<float> dx(x.size());
    cpu_vector::derivative_times(op, kAlpha, x.data(), dy.data(), dx.data(), static_cast<int64_t>(x.size()));
    double worst = 0.0;
    float at = 0.0f;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double d = std::fabs(static_cast<double>(dx[i]) - static_cast<double>(exact_derivative(op, x[i])));
      if (d > worst) worst = d, at = x[i];
    }
    EXPECT_LE(worst, bound) << name(op) << " at x = " << at;
  }
}

TEST(CpuVectorMath, EdgesAreTheScalarFormulas) {
  for (const UnaryOp op : kOps) {
    const std::vector<float> x = edges(limit_of(op));
    const auto n = static_cast<int64_t>(x.size());
    ASSERT_TRUE(cpu_vector::applies(op)) << name(op);
    std::vector<float> y(x.size());
    cpu_vector::apply(op, kAlpha, x.data(), y.data(), n);
    for (std::size_t i = 0; i < x.size(); ++i) {
      float want = 0.0f;
      math::with_unary_op(op, [&](auto c) { want = math::apply_unary<decltype(c)::value>(x[i], kAlpha); });
      EXPECT_TRUE(same_value(y[i], want)) << name(op) << " at " << x[i] << ": " << y[i] << ", scalar " << want;
    }
  }
  for (const UnaryOp op : kDerivatives) {
    ASSERT_TRUE(cpu_vector::differentiates(op)) << name(op);
    const std::vector<float> x = edges(limit_of(op));
    const auto n = static_cast<int64_t>(x.size());
    const std::vector<float> dy(x.size(), 0.75f);
    std::vector<float> dx(x.size());
    cpu_vector::derivative_times(op, kAlpha, x.data(), dy.data(), dx.data(), n);
    for (std::size_t i = 0; i < x.size(); ++i) {
      float want = 0.0f;
      math::with_unary_op(op, [&](auto c) { want = 0.75f * math::derivative<decltype(c)::value>(x[i], 0.0f, kAlpha); });
      EXPECT_TRUE(same_value(dx[i], want)) << name(op) << "' at " << x[i] << ": " << dx[i] << ", scalar " << want;
    }
  }
}

TEST(CpuVectorMath, EveryLengthAndOffsetGivesTheSameValues) {
  // Blocks of 512 elements and packets of 8 or 16: lengths around both, the same value wherever an
  // element sits.
  const std::vector<float> all = sweep(-6.0f, 6.0f, 1500);
  for (const UnaryOp op : kOps) {
    std::vector<float> whole(all.size());
    cpu_vector::apply(op, kAlpha, all.data(), whole.data(), static_cast<int64_t>(all.size()));
    for (const int64_t offset : {0, 1, 5, 13}) {
      for (const int64_t n : {1, 7, 8, 15, 16, 17, 511, 512, 513, 1025}) {
        std::vector<float> y(static_cast<std::size_t>(n));
        cpu_vector::apply(op, kAlpha, all.data() + offset, y.data(), n);
        for (int64_t i = 0; i < n; ++i)
          ASSERT_TRUE(same_value(y[static_cast<std::size_t>(i)], whole[static_cast<std::size_t>(offset + i)]))
              << name(op) << " n " << n << " offset " << offset << " element " << i;
      }
    }
  }
}

TEST(CpuVectorMath, BackendUnaryTakesThemForFloatAndBFloat16) {
  // The backend's float32 unary equals the packet form bit for bit (and so differs from the scalar
  // loop somewhere: the path is taken); bfloat16 equals the packet form on its float values, rounded.
  const std::vector<float> x = sweep(-5.0f, 5.0f, 3001);
  const auto n = static_cast<int64_t>(x.size());
  for (const UnaryOp op : kOps) {
    std::vector<float> want(x.size()), got(x.size());
    cpu_vector::apply(op, kAlpha, x.data(), want.data(), n);
    cpu().unary({op, kAlpha}, kiln::DType::Float32, x.data(), got.data(), n);
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_value(got[i], want[i])) << name(op) << " at " << x[i];

    const kiln::Tensor xb = kiln::Tensor::from_vector(x, {n}).astype(kiln::DType::BFloat16);
    const kiln::Tensor xw = xb.astype(kiln::DType::Float32);
    kiln::Tensor yw = kiln::Tensor::empty({n}, kiln::DType::Float32);
    kiln::Tensor yb = kiln::Tensor::empty({n}, kiln::DType::BFloat16);
    cpu_vector::apply(op, kAlpha, static_cast<const float*>(xw.raw_data()), static_cast<float*>(yw.raw_data()), n);
    cpu().unary({op, kAlpha}, kiln::DType::BFloat16, xb.raw_data(), yb.raw_data(), n);
    const kiln::Tensor want16 = yw.astype(kiln::DType::BFloat16);
    ASSERT_EQ(std::memcmp(yb.raw_data(), want16.raw_data(), yb.nbytes()), 0) << name(op) << " in bfloat16";
  }
  for (const UnaryOp op : kDerivatives) {
    std::vector<float> dy(x.size()), want(x.size()), got(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) dy[i] = 0.5f + static_cast<float>(i % 7) * 0.25f;
    cpu_vector::derivative_times(op, kAlpha, x.data(), dy.data(), want.data(), n);
    cpu().unary_backward({op, kAlpha}, kiln::DType::Float32, x.data(), x.data(), dy.data(), got.data(), n);
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_value(got[i], want[i])) << name(op) << "' at " << x[i];
  }
}

TEST(CpuVectorMath, OtherFunctionsAreNotClaimed) {
  for (const UnaryOp op : {UnaryOp::Relu, UnaryOp::Gelu, UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Abs}) {
    EXPECT_FALSE(cpu_vector::applies(op)) << name(op);
    EXPECT_FALSE(cpu_vector::differentiates(op)) << name(op);
  }
  EXPECT_FALSE(cpu_vector::differentiates(UnaryOp::Tanh));  // 1 - y^2 needs no call
  EXPECT_FALSE(cpu_vector::differentiates(UnaryOp::GeluTanh));
  float x = 1.0f, y = 0.0f;
  EXPECT_THROW(cpu_vector::apply(UnaryOp::Gelu, 0.0f, &x, &y, 1), kiln::Error);
  EXPECT_THROW(cpu_vector::derivative_times(UnaryOp::Tanh, 0.0f, &x, &x, &y, 1), kiln::Error);
}

}  // namespace
