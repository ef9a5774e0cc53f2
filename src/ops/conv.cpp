// 2-D convolution (NHWC, kernel [KH, KW, C, F]) and its Keras padding arithmetic.
#include <algorithm>
#include <cctype>

#include "ops/conv_geometry.h"
#include "ops/op_util.h"

namespace kiln {

Padding parse_padding(const std::string& name, const std::string& op) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "valid") return Padding::Valid;
  if (s == "same") return Padding::Same;
  throw Error(op, "unknown padding '" + name + "'; expected \"valid\" or \"same\"");
}

namespace ops {

WindowAxis window_axis(const std::string& op, const char* axis, int64_t in, int64_t k, int64_t stride,
                       Padding padding) {
  if (k <= 0 || stride <= 0)
    throw Error(op, std::string("window ") + axis + " size " + std::to_string(k) + " and stride " +
                        std::to_string(stride) + "; expected both >= 1");
  if (padding == Padding::Valid) {
    if (in < k)
      throw Error(op, std::string("input ") + axis + " " + std::to_string(in) + " is smaller than the window (" +
                          std::to_string(k) + ") with padding \"valid\"; expected an input at least as large, "
                          "or padding \"same\"");
    return {(in - k) / stride + 1, 0};
  }
  const int64_t out = (in + stride - 1) / stride;
  const int64_t pad_total = std::max<int64_t>((out - 1) * stride + k - in, 0);
  return {out, pad_total / 2};  // TensorFlow puts the odd extra pixel after the input
}

}  // namespace ops

Tensor conv2d(const Tensor& x, const Tensor& kernel, std::array<int64_t, 2> strides, Padding padding) {
  const std::string op = "conv2d";
  ops::check_floating(op, x);
  ops::check_floating(op, kernel, "kernel");
  ops::check_compatible(op, x, kernel);
  ops::check_ndim(op, x, 4, "input (NHWC)");
  ops::check_ndim(op, kernel, 4, "kernel [KH, KW, C, F]");
  if (kernel.size(2) != x.size(3))
    throw Error(op, "input has " + std::to_string(x.size(3)) + " channels " + x.shape().str() + " but the kernel " +
                        kernel.shape().str() + " expects " + std::to_string(kernel.size(2)));
  const auto h = ops::window_axis(op, "height", x.size(1), kernel.size(0), strides[0], padding);
  const auto w = ops::window_axis(op, "width", x.size(2), kernel.size(1), strides[1], padding);
  const backend::Conv2dGeometry g{x.size(0), x.size(1),  x.size(2),  x.size(3), kernel.size(0),
                                  kernel.size(1), kernel.size(3), h.out, w.out, strides[0],
                                  strides[1], h.pad_before, w.pad_before};
  Tensor y = make_tensor({g.N, g.OH, g.OW, g.F}, x.dtype(), x.device());
  auto& be = ops::backend_of(x);
  be.conv2d_forward(x.dtype(), g, x.raw_data(), kernel.raw_data(), y.raw_data());
  return autograd::record(op, y, {x, kernel}, [x, kernel, g](const Tensor& dy) -> std::vector<Tensor> {
    auto& be = ops::backend_of(dy);
    Tensor dx, dw;
    if (x.requires_grad()) {
      dx = make_tensor(x.shape(), x.dtype(), x.device());
      be.conv2d_backward_data(x.dtype(), g, dy.raw_data(), kernel.raw_data(), dx.raw_data());
    }
    if (kernel.requires_grad()) {
      dw = make_tensor(kernel.shape(), kernel.dtype(), kernel.device());
      be.conv2d_backward_filter(x.dtype(), g, x.raw_data(), dy.raw_data(), dw.raw_data());
    }
    return {dx, dw};
  });
}

}  // namespace kiln
