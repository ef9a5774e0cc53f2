// Softmax and log-softmax over the last axis, with their own backward kernels.
#include "ops/op_util.h"

namespace kiln {

namespace {

Tensor softmax_family(const std::string& name, const Tensor& x, bool log) {
  ops::check_floating(name, x);
  if (x.ndim() == 0) throw Error(name, "input is a scalar; expected at least one dimension");
  const int64_t cols = x.size(-1), rows = cols ? x.numel() / cols : 0;
  Tensor y = make_tensor(x.shape(), x.dtype(), x.device());
  if (y.numel() == 0) return y;
  ops::backend_of(x).softmax(x.dtype(), x.raw_data(), y.raw_data(), rows, cols, log);
  const Tensor y_saved = y.detach();
  return autograd::record(name, y, {x}, [y_saved, rows, cols, log](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = make_tensor(y_saved.shape(), y_saved.dtype(), y_saved.device());
    ops::backend_of(g).softmax_backward(g.dtype(), y_saved.raw_data(), g.raw_data(), dx.raw_data(), rows, cols, log);
    return {dx};
  });
}

}  // namespace

Tensor softmax(const Tensor& x) { return softmax_family("softmax", x, false); }
Tensor log_softmax(const Tensor& x) { return softmax_family("log_softmax", x, true); }

}  // namespace kiln
