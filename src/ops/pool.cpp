// 2-D max and average pooling (NHWC), each with its own backward kernel.
#include "ops/conv_geometry.h"
#include "ops/op_util.h"

namespace kiln {

namespace {

// Checks x and the window and returns the geometry of pooling it, Keras' padding arithmetic.
backend::Pool2dGeometry pool_geometry(const std::string& op, const Tensor& x, std::array<int64_t, 2> pool_size,
                                      std::array<int64_t, 2> strides, Padding padding) {
  ops::check_floating(op, x);
  ops::check_ndim(op, x, 4, "input (NHWC)");
  const auto h = ops::window_axis(op, "height", x.size(1), pool_size[0], strides[0], padding);
  const auto w = ops::window_axis(op, "width", x.size(2), pool_size[1], strides[1], padding);
  return {x.size(0), x.size(1), x.size(2),  x.size(3),  pool_size[0], pool_size[1],
          h.out,     w.out,     strides[0], strides[1], h.pad_before, w.pad_before};
}

}  // namespace

Tensor max_pool2d(const Tensor& x, std::array<int64_t, 2> pool_size, std::array<int64_t, 2> strides, Padding padding) {
  const std::string op = "max_pool2d";
  const backend::Pool2dGeometry g = pool_geometry(op, x, pool_size, strides, padding);
  Tensor y = make_tensor({g.N, g.OH, g.OW, g.C}, x.dtype(), x.device());
  ops::backend_of(x).max_pool2d_forward(x.dtype(), g, x.raw_data(), y.raw_data());
  const Tensor y_saved = y.detach();
  return autograd::record(op, y, {x}, [x, y_saved, g](const Tensor& dy) -> std::vector<Tensor> {
    Tensor dx = make_tensor(x.shape(), x.dtype(), x.device());
    ops::backend_of(dy).max_pool2d_backward(x.dtype(), g, x.raw_data(), y_saved.raw_data(), dy.raw_data(),
                                            dx.raw_data());
    return {dx};
  });
}

Tensor avg_pool2d(const Tensor& x, std::array<int64_t, 2> pool_size, std::array<int64_t, 2> strides, Padding padding) {
  const std::string op = "avg_pool2d";
  const backend::Pool2dGeometry g = pool_geometry(op, x, pool_size, strides, padding);
  Tensor y = make_tensor({g.N, g.OH, g.OW, g.C}, x.dtype(), x.device());
  ops::backend_of(x).avg_pool2d_forward(x.dtype(), g, x.raw_data(), y.raw_data());
  return autograd::record(op, y, {x}, [x, g](const Tensor& dy) -> std::vector<Tensor> {
    Tensor dx = make_tensor(x.shape(), x.dtype(), x.device());
    ops::backend_of(dy).avg_pool2d_backward(x.dtype(), g, dy.raw_data(), dx.raw_data());  // reads only dy
    return {dx};
  });
}

}  // namespace kiln
