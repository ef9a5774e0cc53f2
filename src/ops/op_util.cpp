// Shared op checks and the broadcast reduction used by backward rules.
#include "ops/op_util.h"

namespace kiln::ops {

void check_floating(const std::string& op, const Tensor& t, const char* role) {
  if (!t.defined()) throw Error(op, std::string(role) + " is an undefined tensor");
  if (!is_floating(t.dtype()))
    throw Error(op, std::string(role) + " has dtype " + dtype_name(t.dtype()) +
                        "; expected a floating dtype (float32, float64, float16 or bfloat16)");
}

void check_compatible(const std::string& op, const Tensor& a, const Tensor& b) {
  if (a.device() != b.device())
    throw Error(op, "inputs are on different devices (" + a.device().str() + " and " + b.device().str() +
                        "); expected both on one device (move one with .to())");
  if (a.dtype() != b.dtype())
    throw Error(op, "inputs have dtypes " + dtype_name(a.dtype()) + " and " + dtype_name(b.dtype()) +
                        "; expected the same dtype (convert one with .astype())");
}

void check_ndim(const std::string& op, const Tensor& t, int64_t ndim, const char* role) {
  if (t.ndim() != ndim)
    throw Error(
        op, std::string(role) + " has shape " + t.shape().str() + "; expected " + std::to_string(ndim) + " dimensions");
}

Tensor reduce_to(const Tensor& g, const Shape& shape) {
  if (g.numel() == shape.numel()) return g.shape() == shape ? g : g.reshape(shape);
  const int64_t cols = shape.numel();
  Tensor out = make_tensor(shape, g.dtype(), g.device());
  backend_of(g).sum_rows(g.dtype(), g.raw_data(), out.raw_data(), g.numel() / cols, cols, false);
  return out;
}

}  // namespace kiln::ops
