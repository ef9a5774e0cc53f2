// Eigen's array functions over blocks of elements (their packet versions: Eigen evaluates a Map's
// expression a packet at a time), then the scalar formula for the block's elements outside the
// range where the packet functions are trusted. Each function names that range: within it, its
// packet exp stays in float's normal range (|x| <= 87), its tanh is not clamped.
#include "backend/cpu/cpu_vector_math.h"

#include <Eigen/Core>
#include <algorithm>
#include <limits>

#include "backend/elementwise_math.h"
#include "kiln/error.h"

namespace kiln::backend::cpu_vector {

namespace {

constexpr int64_t kBlock = 256;  // elements per expression: a multiple of every packet size
// A block of elements, aligned: Eigen evaluates a whole one in packets, while on an unaligned or
// partial span it would compute the head and tail elements with its scalar functions, whose values
// differ from the packet ones, and a result would depend on where a thread's share begins.
using Block = Eigen::Array<float, kBlock, 1>;
using C = math::GeluConstants<float>;

// The functions, and the derivatives, that have packet forms below.
constexpr bool has_packet_form(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Sigmoid || op == UnaryOp::Silu || op == UnaryOp::Elu ||
         op == UnaryOp::Tanh || op == UnaryOp::GeluTanh;
}
constexpr bool has_packet_derivative(UnaryOp op) { return op == UnaryOp::Silu || op == UnaryOp::Elu; }

constexpr float kExpLimit = 87.0f;   // exp(-87) is float's smallest normals' order; exp(87) < max
constexpr float kTanhLimit = 9.0f;   // tanh(9) rounds to 1; Eigen clamps from 7.99 on
constexpr float kGeluLimit = 10.0f;  // gelu's tanh argument within kTanhLimit's reach, x^3 finite

// sigmoid(x) as math::sigmoid_of splits it by sign, with e = exp(-|x|) for both halves.
Block sigmoid(const Block& x) {
  const Block e = (-x.abs()).exp();
  return (x >= 0.0f).select(1.0f / (1.0f + e), e / (1.0f + e));
}

// For blocks of n: the block's x (and dy) copied into aligned blocks padded with zeros, y = f(x[, dy])
// on whole blocks, the block's elements copied out; then y[i] = scalar(x[i], i) wherever x[i] is
// outside [lo, hi] (NaN included, which fails both comparisons).
template <typename F, typename S>
void by_blocks(const float* x, const float* dy, float* y, int64_t n, float lo, float hi, F&& f, S&& scalar) {
  Block xb, dyb, yb;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t count = std::min(kBlock, n - i0);
    if (count < kBlock) xb.setZero(), dyb.setZero();
    std::copy_n(x + i0, count, xb.data());
    if (dy) std::copy_n(dy + i0, count, dyb.data());
    f(xb, dyb, yb);
    std::copy_n(yb.data(), count, y + i0);
    for (int64_t i = i0; i < i0 + count; ++i)
      if (!(x[i] >= lo && x[i] <= hi)) y[i] = scalar(x[i], i);
  }
}

template <UnaryOp op>
void apply_op(float param, const float* x, float* y, int64_t n) {
  const auto scalar = [&](float v, int64_t) { return math::apply_unary<op>(v, param); };
  const auto run = [&](float lo, float hi, auto&& f) {
    by_blocks(
        x, nullptr, y, n, lo, hi, [&](const Block& a, const Block&, Block& b) { b = f(a); }, scalar);
  };
  if constexpr (op == UnaryOp::Exp)
    run(-kExpLimit, kExpLimit, [](const Block& a) -> Block { return a.exp(); });
  else if constexpr (op == UnaryOp::Sigmoid)
    run(-kExpLimit, kExpLimit, [](const Block& a) { return sigmoid(a); });
  else if constexpr (op == UnaryOp::Silu)
    run(-kExpLimit, kExpLimit, [](const Block& a) -> Block { return a * sigmoid(a); });
  else if constexpr (op == UnaryOp::Elu)
    run(-kExpLimit, std::numeric_limits<float>::infinity(),
        [param](const Block& a) -> Block { return (a > 0.0f).select(a, param * a.expm1()); });
  else if constexpr (op == UnaryOp::Tanh)
    run(-kTanhLimit, kTanhLimit, [](const Block& a) -> Block { return a.tanh(); });
  else  // UnaryOp::GeluTanh
    run(-kGeluLimit, kGeluLimit, [](const Block& a) -> Block {
      return 0.5f * a * (1.0f + (C::kSqrt2OverPi * (a + C::kCubic * a * a * a)).tanh());
    });
}

template <UnaryOp op>
void derivative_op(float param, const float* x, const float* dy, float* dx, int64_t n) {
  // The derivative first, then the product, as the scalar loop does.
  const auto scalar = [&](float v, int64_t i) { return dy[i] * math::derivative<op>(v, 0.0f, param); };
  const auto run = [&](float lo, float hi, auto&& derivative) {
    by_blocks(
        x, dy, dx, n, lo, hi, [&](const Block& a, const Block& g, Block& b) { b = g * derivative(a); }, scalar);
  };
  if constexpr (op == UnaryOp::Silu)
    run(-kExpLimit, kExpLimit, [](const Block& a) -> Block {
      const Block s = sigmoid(a);
      return s * (1.0f + a * (1.0f - s));
    });
  else  // UnaryOp::Elu
    run(-kExpLimit, std::numeric_limits<float>::infinity(),
        [param](const Block& a) -> Block { return (a > 0.0f).select(Block::Ones(), param * a.exp()); });
}

}  // namespace

bool applies(UnaryOp op) { return has_packet_form(op); }

void apply(UnaryOp op, float param, const float* x, float* y, int64_t n) {
  math::with_unary_op(op, [&](auto c) {
    if constexpr (has_packet_form(c.value))
      apply_op<c.value>(param, x, y, n);
    else
      throw Error("cpu_vector::apply", "no vector form of this function; expected one that applies() accepts");
  });
}

bool differentiates(UnaryOp op) { return has_packet_derivative(op); }

void derivative_times(UnaryOp op, float param, const float* x, const float* dy, float* dx, int64_t n) {
  math::with_unary_op(op, [&](auto c) {
    if constexpr (has_packet_derivative(c.value))
      derivative_op<c.value>(param, x, dy, dx, n);
    else
      throw Error("cpu_vector::derivative_times",
                  "no vector form of this derivative; expected one that differentiates() accepts");
  });
}

}  // namespace kiln::backend::cpu_vector
