// Matrix product of 2-D tensors (its backward is two more GEMMs), and the dense layer's fused form
// act(x W + b), whose bias and ReLU ride on the GEMMs (cuBLASLt epilogues on a GPU).
#include "ops/op_util.h"

namespace kiln {

namespace {

Tensor gemm(const Tensor& a, bool ta, const Tensor& b, bool tb) {
  const int64_t m = ta ? a.size(1) : a.size(0), k = ta ? a.size(0) : a.size(1);
  const int64_t n = tb ? b.size(0) : b.size(1);
  Tensor out = make_tensor({m, n}, a.dtype(), a.device());
  ops::backend_of(a).gemm(a.dtype(), ta, tb, m, n, k, 1.0, a.raw_data(), b.raw_data(), 0.0, out.raw_data());
  return out;
}

// The checks of a product a b of 2-D floating tensors on one device, `a_role` and `b_role` naming
// them in messages.
void check_product(const std::string& op, const Tensor& a, const char* a_role, const Tensor& b, const char* b_role) {
  ops::check_floating(op, a, a_role);
  ops::check_floating(op, b, b_role);
  ops::check_compatible(op, a, b);
  ops::check_ndim(op, a, 2, a_role);
  ops::check_ndim(op, b, 2, b_role);
  if (a.size(1) != b.size(0))
    throw Error(op, "shapes " + a.shape().str() + " and " + b.shape().str() + " do not chain; expected " +
                        "the left's columns (" + std::to_string(a.size(1)) + ") to equal the right's rows (" +
                        std::to_string(b.size(0)) + ")");
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_product("matmul", a, "left operand", b, "right operand");
  Tensor out = gemm(a, false, b, false);
  return autograd::record("matmul", out, {a, b}, [a, b](const Tensor& g) -> std::vector<Tensor> {
    return {a.requires_grad() ? gemm(g, false, b, true) : Tensor(),   // dA = dC B^T
            b.requires_grad() ? gemm(a, true, g, false) : Tensor()};  // dB = A^T dC
  });
}

Tensor dense(const Tensor& x, const Tensor& kernel, const Tensor& bias, const std::string& activation) {
  const std::string op = "dense";
  check_product(op, x, "input", kernel, "kernel");
  const int64_t m = x.size(0), k = x.size(1), n = kernel.size(1);
  if (bias.defined()) {
    ops::check_floating(op, bias, "bias");
    ops::check_compatible(op, x, bias);
    if (bias.ndim() != 1 || bias.size(0) != n)
      throw Error(op, "bias has shape " + bias.shape().str() + "; expected [" + std::to_string(n) +
                          "], one value per column of the kernel " + kernel.shape().str());
  }
  const bool relu = activation == "relu";
  if (!relu && activation != "linear" && !activation.empty())
    throw Error(op, "activation '" + activation +
                        "' is not fused; expected linear or relu (apply others to "
                        "the linear result)");
  backend::Backend& be = ops::backend_of(x);
  Tensor y = make_tensor({m, n}, x.dtype(), x.device());
  be.gemm_bias_act(x.dtype(), m, n, k, x.raw_data(), kernel.raw_data(), bias.defined() ? bias.raw_data() : nullptr,
                   relu, y.raw_data());
  // The ReLU's mask is y > 0, which is z > 0 for z = x W + b: the rule keeps y, not z.
  const Tensor y_saved = relu ? y.detach() : Tensor();
  return autograd::record(op, y, {x, kernel, bias}, [x, kernel, bias, y_saved](const Tensor& g) -> std::vector<Tensor> {
    backend::Backend& be = ops::backend_of(g);
    const int64_t m = x.size(0), k = x.size(1), n = kernel.size(1);
    // dZ = dY * relu'(z) stays its own kernel: both GEMMs below read dZ, and cuBLASLt's epilogues
    // act on a GEMM's output, not its input. Its DRELU(_BGRAD) epilogues would fit this layer's dX
    // GEMM only to apply the ReLU of the layer below (the op that produced x), tying this rule to it.
    Tensor dz = g;
    if (y_saved.defined()) {
      dz = make_tensor(g.shape(), g.dtype(), g.device());
      be.unary_backward(backend::UnaryOp::Relu, g.dtype(), y_saved.raw_data(), y_saved.raw_data(), g.raw_data(),
                        dz.raw_data(), g.numel());
    }
    const bool need_w = kernel.requires_grad(), need_b = bias.defined() && bias.requires_grad();
    Tensor dw, db;
    if (need_b) db = make_tensor(bias.shape(), g.dtype(), g.device());
    if (need_w) {  // dW = X^T dZ, with db = column sums of dZ in the same pass
      dw = make_tensor(kernel.shape(), g.dtype(), g.device());
      be.gemm_wgrad_bias(g.dtype(), m, n, k, x.raw_data(), dz.raw_data(), dw.raw_data(),
                         need_b ? db.raw_data() : nullptr);
    } else if (need_b) {
      be.sum_rows(g.dtype(), dz.raw_data(), db.raw_data(), m, n, false);
    }
    return {x.requires_grad() ? gemm(dz, false, kernel, true) : Tensor(), dw, db};  // dX = dZ W^T
  });
}

}  // namespace kiln
