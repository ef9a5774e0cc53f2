// Binary arithmetic and maximum with row broadcasting, and scalar arithmetic.
#include "ops/op_util.h"

namespace kiln {

using backend::BinaryOp;

namespace {

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add:
      return "add";
    case BinaryOp::Sub:
      return "sub";
    case BinaryOp::Mul:
      return "mul";
    case BinaryOp::Div:
      return "div";
    case BinaryOp::Maximum:
      return "maximum";
    case BinaryOp::GreaterEqual:
      return "greater_equal";
  }
  return "binary";
}

// True when `small`, less leading 1s, is a trailing suffix of `big`.
bool is_suffix(const Shape& small, const Shape& big) {
  auto s = small.dims();
  while (!s.empty() && s.front() == 1) s.erase(s.begin());
  if (s.size() > big.dims().size()) return false;
  return std::equal(s.rbegin(), s.rend(), big.dims().rbegin());
}

Shape broadcast_shape(const std::string& op, const Tensor& a, const Tensor& b) {
  const Shape &sa = a.shape(), &sb = b.shape();
  if (sa == sb) return sa;
  if (sb.numel() == 1 && sa.ndim() >= sb.ndim()) return sa;
  if (sa.numel() == 1 && sb.ndim() >= sa.ndim()) return sb;
  if (sa.numel() >= sb.numel() && sb.numel() > 0 && is_suffix(sb, sa)) return sa;
  if (sb.numel() > sa.numel() && sa.numel() > 0 && is_suffix(sa, sb)) return sb;
  throw Error(op, "shapes " + sa.str() + " and " + sb.str() +
                      " do not broadcast; expected equal shapes, one a trailing suffix of the other "
                      "(row broadcast) or one with a single element");
}

Tensor binary_raw(BinaryOp op, const Tensor& a, const Tensor& b, const Shape& out_shape) {
  Tensor out = make_tensor(out_shape, a.dtype(), a.device());
  ops::backend_of(a).binary(op, a.dtype(), a.raw_data(), a.numel(), b.raw_data(), b.numel(), out.raw_data(),
                            out.numel());
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const std::string name = binary_name(op);
  ops::check_floating(name, a, "left operand");
  ops::check_floating(name, b, "right operand");
  ops::check_compatible(name, a, b);
  const Shape shape = broadcast_shape(name, a, b);
  Tensor out = binary_raw(op, a, b, shape);
  if (out.numel() == 0) return out;
  return autograd::record(name, out, {a, b}, [op, a, b](const Tensor& g) -> std::vector<Tensor> {
    const bool need_a = a.requires_grad(), need_b = b.requires_grad();
    Tensor ga, gb;
    switch (op) {
      case BinaryOp::Add:
        if (need_a) ga = g;
        if (need_b) gb = g;
        break;
      case BinaryOp::Sub:
        if (need_a) ga = g;
        if (need_b) gb = neg(g);
        break;
      case BinaryOp::Mul:
        if (need_a) ga = mul(g, b);
        if (need_b) gb = mul(g, a);
        break;
      case BinaryOp::Div:
        if (need_a) ga = div(g, b);
        if (need_b) gb = neg(div(mul(g, a), mul(b, b)));
        break;
      case BinaryOp::Maximum: {
        // TensorFlow's rule: the gradient goes to a where a >= b (ties included), elsewhere (a NaN
        // included) to b.
        const Tensor to_a = binary_raw(BinaryOp::GreaterEqual, a, b, g.shape());
        if (need_a) ga = mul(g, to_a);
        if (need_b) gb = mul(g, add(neg(to_a), 1.0));
        break;
      }
      case BinaryOp::GreaterEqual:  // a step: no gradient (not differentiable; not a public op)
        break;
    }
    return {ga.defined() ? ops::reduce_to(ga, a.shape()) : ga, gb.defined() ? ops::reduce_to(gb, b.shape()) : gb};
  });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Maximum, a, b); }

namespace {
// y = alpha * x + beta, differentiable in x.
Tensor affine(const std::string& name, const Tensor& x, double alpha, double beta) {
  ops::check_floating(name, x);
  Tensor out = make_tensor(x.shape(), x.dtype(), x.device());
  ops::backend_of(x).affine(x.dtype(), x.raw_data(), alpha, beta, out.raw_data(), x.numel());
  return autograd::record(
      name, out, {x}, [alpha](const Tensor& g) -> std::vector<Tensor> { return {alpha == 1.0 ? g : mul(g, alpha)}; });
}
}  // namespace

Tensor mul(const Tensor& a, double s) { return affine("mul", a, s, 0.0); }
Tensor add(const Tensor& a, double s) { return affine("add", a, 1.0, s); }
Tensor neg(const Tensor& a) { return affine("neg", a, -1.0, 0.0); }

}  // namespace kiln
