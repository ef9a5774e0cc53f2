// Sums and means over everything, over the first axis or over the last axis.
#include "ops/op_util.h"

namespace kiln {

namespace {

int64_t normalize_axis(const std::string& op, const Tensor& x, int64_t axis) {
  const int64_t n = x.ndim();
  const int64_t a = axis < 0 ? axis + n : axis;
  if (n == 0 || a < 0 || a >= n)
    throw Error(op, "axis " + std::to_string(axis) + " out of range for shape " + x.shape().str());
  if (a != 0 && a != n - 1)
    throw Error(
        op, "axis " + std::to_string(axis) + " of shape " + x.shape().str() + "; expected the first or the last axis");
  return a;
}

Shape without_axis(const Shape& s, int64_t axis) {
  std::vector<int64_t> d = s.dims();
  d.erase(d.begin() + axis);
  return Shape(d);
}

// Broadcasts g (of the reduced shape) back over the reduced axis, scaled.
Tensor expand_back(const Tensor& g, const Shape& shape, int64_t axis, double scale) {
  Tensor out = make_tensor(shape, g.dtype(), g.device());
  const Tensor ones = Tensor::full(shape, scale, g.dtype(), g.device());
  if (axis == 0 || g.numel() == 1) {  // g repeats per row: a row broadcast
    ops::backend_of(g).binary(backend::BinaryOp::Mul, g.dtype(), ones.raw_data(), ones.numel(), g.raw_data(), g.numel(),
                              out.raw_data(), out.numel());
    return out;
  }
  // Last axis: each of g's elements fills one row; a rank-1 GEMM broadcasts it.
  const int64_t rows = g.numel(), cols = shape.numel() / rows;
  const Tensor col = Tensor::full({cols}, scale, g.dtype(), g.device());
  ops::backend_of(g).gemm(g.dtype(), false, false, rows, cols, 1, 1.0, g.raw_data(), col.raw_data(), 0.0,
                          out.raw_data());
  return out;
}

Tensor reduce(const std::string& name, const Tensor& x, int64_t axis, bool all, bool is_mean) {
  ops::check_floating(name, x);
  const Shape out_shape = all ? Shape{} : without_axis(x.shape(), axis);
  const int64_t out_n = out_shape.numel();
  if (x.numel() == 0 && is_mean) throw Error(name, "mean of an empty tensor " + x.shape().str());
  Tensor out = make_tensor(out_shape, x.dtype(), x.device());
  const int64_t count = out_n ? x.numel() / out_n : 0;
  auto& be = ops::backend_of(x);
  if (all || axis != 0)
    be.sum_cols(x.dtype(), x.raw_data(), out.raw_data(), out_n, count);
  else
    be.sum_rows(x.dtype(), x.raw_data(), out.raw_data(), count, out_n, false);
  const double scale = is_mean ? 1.0 / static_cast<double>(count) : 1.0;
  if (is_mean) be.affine(x.dtype(), out.raw_data(), scale, 0.0, out.raw_data(), out_n);
  const Shape& in_shape = x.shape();  // the lambda keeps a copy
  return autograd::record(name, out, {x}, [in_shape, axis, all, scale](const Tensor& g) -> std::vector<Tensor> {
    return {expand_back(g, in_shape, all ? 0 : axis, scale)};
  });
}

}  // namespace

Tensor sum(const Tensor& x) { return reduce("sum", x, 0, true, false); }
Tensor mean(const Tensor& x) { return reduce("mean", x, 0, true, true); }
Tensor sum(const Tensor& x, int64_t axis) { return reduce("sum", x, normalize_axis("sum", x, axis), false, false); }
Tensor mean(const Tensor& x, int64_t axis) { return reduce("mean", x, normalize_axis("mean", x, axis), false, true); }

}  // namespace kiln
