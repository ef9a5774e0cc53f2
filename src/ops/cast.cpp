// The differentiable dtype conversion: mixed precision's bridge between float32 weights and
// 16-bit math.
#include "ops/op_util.h"

namespace kiln {

Tensor cast(const Tensor& x, DType dtype) {
  if (!x.defined()) throw Error("cast", "input is an undefined tensor; expected a tensor");
  if (x.dtype() == dtype) return x;
  Tensor y = x.detach().astype(dtype);
  if (!is_floating(x.dtype()) || !is_floating(dtype)) return y;
  const DType from = x.dtype();
  return autograd::record("cast", y, {x}, [from](const Tensor& g) -> std::vector<Tensor> { return {g.astype(from)}; });
}

}  // namespace kiln
