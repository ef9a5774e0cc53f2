// Activations and other elementwise functions of one tensor.
#include <cmath>

#include "ops/op_util.h"

namespace kiln {

using backend::UnaryFn;
using backend::UnaryOp;

namespace {

Tensor unary(const std::string& name, UnaryFn fn, const Tensor& x) {
  ops::check_floating(name, x);
  Tensor y = make_tensor(x.shape(), x.dtype(), x.device());
  ops::backend_of(x).unary(fn, x.dtype(), x.raw_data(), y.raw_data(), x.numel());
  const Tensor y_saved = y.detach();  // the rule may need y; a detached handle avoids a cycle
  return autograd::record(name, y, {x}, [fn, x, y_saved](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = make_tensor(x.shape(), x.dtype(), x.device());
    ops::backend_of(x).unary_backward(fn, x.dtype(), x.raw_data(), y_saved.raw_data(), g.raw_data(), dx.raw_data(),
                                      x.numel());
    return {dx};
  });
}

// A scalar parameter of an activation must be a number: a NaN or infinite one would turn every
// output of its branch into NaN without saying why.
void check_finite(const std::string& op, const char* name, double value) {
  if (!std::isfinite(value))
    throw Error(op, std::string(name) + " is " + std::to_string(value) + "; expected a finite number");
}

}  // namespace

Tensor relu(const Tensor& x) { return unary("relu", UnaryOp::Relu, x); }
Tensor sigmoid(const Tensor& x) { return unary("sigmoid", UnaryOp::Sigmoid, x); }
Tensor tanh(const Tensor& x) { return unary("tanh", UnaryOp::Tanh, x); }
Tensor exp(const Tensor& x) { return unary("exp", UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary("log", UnaryOp::Log, x); }
Tensor square(const Tensor& x) { return unary("square", UnaryOp::Square, x); }
Tensor sqrt(const Tensor& x) { return unary("sqrt", UnaryOp::Sqrt, x); }
Tensor abs(const Tensor& x) { return unary("abs", UnaryOp::Abs, x); }

Tensor gelu(const Tensor& x, bool approximate) {
  return unary("gelu", approximate ? UnaryOp::GeluTanh : UnaryOp::Gelu, x);
}

Tensor silu(const Tensor& x) { return unary("silu", UnaryOp::Silu, x); }

Tensor elu(const Tensor& x, double alpha) {
  check_finite("elu", "alpha", alpha);
  return unary("elu", UnaryFn(UnaryOp::Elu, alpha), x);
}

Tensor leaky_relu(const Tensor& x, double negative_slope) {
  check_finite("leaky_relu", "negative_slope", negative_slope);
  return unary("leaky_relu", UnaryFn(UnaryOp::LeakyRelu, negative_slope), x);
}

Tensor clip(const Tensor& x, double lo, double hi) {
  ops::check_floating("clip", x);
  if (!(lo <= hi))
    throw Error("clip", "bounds [" + std::to_string(lo) + ", " + std::to_string(hi) + "]; expected lo <= hi");
  Tensor y = make_tensor(x.shape(), x.dtype(), x.device());
  ops::backend_of(x).clip(x.dtype(), x.raw_data(), y.raw_data(), x.numel(), lo, hi);
  return autograd::record("clip", y, {x}, [x, lo, hi](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = make_tensor(x.shape(), x.dtype(), x.device());
    ops::backend_of(x).clip_backward(x.dtype(), x.raw_data(), g.raw_data(), dx.raw_data(), x.numel(), lo, hi);
    return {dx};
  });
}

}  // namespace kiln
