// Matrix product of 2-D tensors; its backward is two more GEMMs.
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

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  ops::check_floating("matmul", a, "left operand");
  ops::check_floating("matmul", b, "right operand");
  ops::check_compatible("matmul", a, b);
  ops::check_ndim("matmul", a, 2, "left operand");
  ops::check_ndim("matmul", b, 2, "right operand");
  if (a.size(1) != b.size(0))
    throw Error("matmul", "shapes " + a.shape().str() + " and " + b.shape().str() + " do not chain; expected " +
                              "the left's columns (" + std::to_string(a.size(1)) + ") to equal the right's rows (" +
                              std::to_string(b.size(0)) + ")");
  Tensor out = gemm(a, false, b, false);
  return autograd::record("matmul", out, {a, b}, [a, b](const Tensor& g) -> std::vector<Tensor> {
    return {a.requires_grad() ? gemm(g, false, b, true) : Tensor(),   // dA = dC B^T
            b.requires_grad() ? gemm(a, true, g, false) : Tensor()};  // dB = A^T dC
  });
}

}  // namespace kiln
