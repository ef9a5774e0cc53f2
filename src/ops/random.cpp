// Counter-based random ops (Philox, backend/philox.h): uniform numbers and dropout, keyed by a seed
// and a step counter read on the device, so a recorded step draws new numbers on every replay.
#include <cmath>

#include "backend/philox.h"
#include "ops/op_util.h"

namespace kiln {

namespace {

// Checks the counter tensor and the stream's limits; returns the counter's device pointer.
const int64_t* checked_counter(const std::string& op, const Tensor& step_counter, Device device, uint64_t draw,
                               int64_t n) {
  if (!step_counter.defined()) throw Error(op, "step_counter is an undefined tensor");
  if (step_counter.dtype() != DType::Int64 || step_counter.numel() != 1)
    throw Error(op, "step_counter has dtype " + dtype_name(step_counter.dtype()) + " and shape " +
                        step_counter.shape().str() + "; expected one int64 element");
  if (step_counter.device() != device)
    throw Error(op, "step_counter is on " + step_counter.device().str() + " and the input on " + device.str() +
                        "; expected both on one device (move one with .to())");
  if (draw > backend::philox::kMaxDraw)
    throw Error(op, "draw " + std::to_string(draw) + " is out of range; expected draw < 2^32");
  if (n > backend::philox::kMaxElements)
    throw Error(op, std::to_string(n) + " elements are more than one stream holds; expected at most 2^34");
  return static_cast<const int64_t*>(step_counter.raw_data());
}

}  // namespace

Tensor random_uniform_philox(const Shape& shape, uint64_t seed, const Tensor& step_counter, uint64_t draw,
                             DType dtype) {
  const std::string op = "random_uniform_philox";
  if (!is_floating(dtype))
    throw Error(op, "dtype " + dtype_name(dtype) +
                        " requested; expected a floating dtype (float32, float64, float16 or bfloat16)");
  const Device device = step_counter.defined() ? step_counter.device() : Device::cpu();
  const int64_t* counter = checked_counter(op, step_counter, device, draw, shape.numel());
  Tensor y = make_tensor(shape, dtype, device);
  ops::backend_of(y).philox_uniform(dtype, y.raw_data(), y.numel(), seed, counter, draw);
  return y;
}

Tensor dropout(const Tensor& x, double rate, uint64_t seed, const Tensor& step_counter, uint64_t draw, int64_t first) {
  const std::string op = "dropout";
  ops::check_floating(op, x);
  if (!(rate >= 0.0 && rate < 1.0)) throw Error(op, "rate " + std::to_string(rate) + "; expected 0 <= rate < 1");
  if (first < 0 || first > backend::philox::kMaxElements)
    throw Error(op, "first element " + std::to_string(first) + "; expected 0 to 2^34");
  checked_counter(op, step_counter, x.device(), draw, first + x.numel());
  if (rate == 0.0) return x;
  // The backward regenerates the mask instead of saving it: n elements fewer held until backward
  // for one Philox call per four elements, in a pass that is bound by memory anyway. It reads a
  // copy of the counter taken now (a device copy, no host read), so a counter advanced between
  // forward and backward cannot change the mask the gradient sees.
  const bool tracked = grad_enabled() && x.requires_grad();
  const Tensor counter = tracked ? step_counter.clone() : step_counter;
  Tensor y = make_tensor(x.shape(), x.dtype(), x.device());
  ops::backend_of(x).dropout(x.dtype(), x.raw_data(), y.raw_data(), x.numel(), rate, seed,
                             static_cast<const int64_t*>(counter.raw_data()), draw, first);
  return autograd::record(op, y, {x}, [rate, seed, counter, draw, first](const Tensor& dy) -> std::vector<Tensor> {
    Tensor dx = make_tensor(dy.shape(), dy.dtype(), dy.device());
    ops::backend_of(dy).dropout(dy.dtype(), dy.raw_data(), dx.raw_data(), dy.numel(), rate, seed,
                                static_cast<const int64_t*>(counter.raw_data()), draw, first);
    return {dx};
  });
}

}  // namespace kiln
