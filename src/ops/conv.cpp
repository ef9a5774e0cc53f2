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
                          std::to_string(k) +
                          ") with padding \"valid\"; expected an input at least as large, "
                          "or padding \"same\"");
    return {(in - k) / stride + 1, 0};
  }
  const int64_t out = (in + stride - 1) / stride;
  const int64_t pad_total = std::max<int64_t>((out - 1) * stride + k - in, 0);
  return {out, pad_total / 2};  // TensorFlow puts the odd extra pixel after the input
}

}  // namespace ops

Tensor conv2d(const Tensor& x, const Tensor& kernel, std::array<int64_t, 2> strides, Padding padding) {
  return conv2d(x, kernel, Tensor(), "linear", strides, padding);
}

Tensor conv2d(const Tensor& x, const Tensor& kernel, const Tensor& bias, const std::string& activation,
              std::array<int64_t, 2> strides, Padding padding) {
  const std::string op = "conv2d";
  const bool relu = activation == "relu";
  if (!relu && activation != "linear" && !activation.empty())
    throw Error(op, "activation '" + activation +
                        "' is not fused; expected linear or relu (apply others to "
                        "the result)");
  ops::check_floating(op, x);
  ops::check_floating(op, kernel, "kernel");
  ops::check_compatible(op, x, kernel);
  ops::check_ndim(op, x, 4, "input (NHWC)");
  ops::check_ndim(op, kernel, 4, "kernel [KH, KW, C, F]");
  if (kernel.size(2) != x.size(3))
    throw Error(op, "input has " + std::to_string(x.size(3)) + " channels " + x.shape().str() + " but the kernel " +
                        kernel.shape().str() + " expects " + std::to_string(kernel.size(2)));
  if (bias.defined()) {
    ops::check_floating(op, bias, "bias");
    ops::check_compatible(op, x, bias);
    if (bias.ndim() != 1 || bias.size(0) != kernel.size(3))
      throw Error(op, "bias of shape " + bias.shape().str() + " for a kernel of " + std::to_string(kernel.size(3)) +
                          " filters; expected [" + std::to_string(kernel.size(3)) + "]");
  }
  const auto h = ops::window_axis(op, "height", x.size(1), kernel.size(0), strides[0], padding);
  const auto w = ops::window_axis(op, "width", x.size(2), kernel.size(1), strides[1], padding);
  const backend::Conv2dGeometry g{x.size(0),      x.size(1),      x.size(2),   x.size(3), kernel.size(0),
                                  kernel.size(1), kernel.size(3), h.out,       w.out,     strides[0],
                                  strides[1],     h.pad_before,   w.pad_before};
  Tensor y = make_tensor({g.N, g.OH, g.OW, g.F}, x.dtype(), x.device());
  auto& be = ops::backend_of(x);
  be.conv2d_forward(x.dtype(), g, x.raw_data(), kernel.raw_data(), bias.defined() ? bias.raw_data() : nullptr, relu,
                    y.raw_data());
  // The ReLU's backward reads the output (y > 0 exactly where the pre-activation was > 0).
  const Tensor y_saved = relu ? y.detach() : Tensor();
  return autograd::record(op, y, {x, kernel, bias},
                          [x, kernel, bias, y_saved, g](const Tensor& dy) -> std::vector<Tensor> {
                            auto& be = ops::backend_of(dy);
                            const void* relu_y = y_saved.defined() ? y_saved.raw_data() : nullptr;
                            Tensor dx, dw, db, dz = dy;
                            // The pre-activation gradient written out (the ReLU's mask applied),
                            // for the steps that cannot apply it on the fly.
                            auto write_dz = [&] {
                              if (!relu_y) return;
                              dz = make_tensor(dy.shape(), dy.dtype(), dy.device());
                              be.unary_backward(backend::UnaryOp::Relu, dy.dtype(), relu_y, relu_y, dy.raw_data(),
                                                dz.raw_data(), dy.numel());
                              relu_y = nullptr;
                            };
                            if (x.requires_grad()) {
                              write_dz();
                              dx = make_tensor(x.shape(), x.dtype(), x.device());
                              be.conv2d_backward_data(x.dtype(), g, dz.raw_data(), kernel.raw_data(), dx.raw_data());
                            }
                            const bool want_db = bias.defined() && bias.requires_grad();
                            if (kernel.requires_grad()) {
                              dw = make_tensor(kernel.shape(), kernel.dtype(), kernel.device());
                              if (want_db) db = make_tensor(bias.shape(), bias.dtype(), bias.device());
                              be.conv2d_backward_filter(x.dtype(), g, x.raw_data(), dz.raw_data(), relu_y,
                                                        dw.raw_data(), want_db ? db.raw_data() : nullptr);
                            } else if (want_db) {
                              // A frozen kernel needs no filter gradient: the bias's is the sum of
                              // the pre-activation gradient over every output position.
                              write_dz();
                              db = make_tensor(bias.shape(), bias.dtype(), bias.device());
                              be.sum_rows(dz.dtype(), dz.raw_data(), db.raw_data(), g.N * g.OH * g.OW, g.F, false);
                            }
                            return {dx, dw, db};
                          });
}

}  // namespace kiln
