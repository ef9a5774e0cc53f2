// Shape ops: reshape and flatten (views, differentiable), take_rows and argmax (not).
#include "ops/op_util.h"

namespace kiln {

namespace {

Shape resolve_shape(const Tensor& x, const Shape& requested) {
  std::vector<int64_t> dims = requested.dims();
  int64_t known = 1, infer_at = -1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      if (infer_at >= 0) throw Error("reshape", "shape " + requested.str() + " has more than one -1");
      infer_at = static_cast<int64_t>(i);
    } else if (dims[i] < 0) {
      throw Error("reshape", "shape " + requested.str() + " has a negative extent");
    } else {
      known *= dims[i];
    }
  }
  if (infer_at >= 0 && known > 0 && x.numel() % known == 0) dims[infer_at] = x.numel() / known;
  Shape out(dims);
  if ((infer_at >= 0 && dims[infer_at] == -1) || out.numel() != x.numel())
    throw Error("reshape", "cannot view " + x.shape().str() + " (" + std::to_string(x.numel()) + " elements) as " +
                               requested.str() + "; expected the same number of elements");
  return out;
}

Tensor view(const Tensor& x, const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.impl()->storage;
  impl->offset = x.impl()->offset;
  impl->shape = shape;
  impl->dtype = x.dtype();
  return Tensor(std::move(impl));
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  if (!x.defined()) throw Error("reshape", "input is an undefined tensor");
  const Shape out_shape = resolve_shape(x, shape);
  const Shape& in_shape = x.shape();  // the lambda keeps a copy
  return autograd::record("reshape", view(x, out_shape), {x},
                          [in_shape](const Tensor& g) -> std::vector<Tensor> { return {view(g, in_shape)}; });
}

Tensor flatten(const Tensor& x) {
  if (!x.defined()) throw Error("flatten", "input is an undefined tensor");
  if (x.ndim() < 1) throw Error("flatten", "input is a scalar; expected a batch [N, ...]");
  const int64_t n = x.size(0);
  return reshape(x, {n, n ? x.numel() / n : x.shape().drop_front().numel()});
}

Tensor take_rows(const Tensor& x, const Tensor& indices) {
  if (!x.defined() || x.ndim() < 1) throw Error("take_rows", "input must have a first dimension");
  if (!indices.defined() || indices.dtype() != DType::Int32 || indices.ndim() != 1)
    throw Error("take_rows", "indices must be a 1-D int32 tensor");
  if (indices.device() != x.device())
    throw Error("take_rows",
                "indices on " + indices.device().str() + " and data on " + x.device().str() + "; expected one device");
  if (indices.device().is_cpu()) {
    const int32_t* idx = indices.data<int32_t>();
    for (int64_t i = 0; i < indices.numel(); ++i)
      if (idx[i] < 0 || idx[i] >= x.size(0))
        throw Error("take_rows",
                    "index " + std::to_string(idx[i]) + " out of range for " + std::to_string(x.size(0)) + " rows");
  }
  std::vector<int64_t> dims = x.shape().dims();
  dims[0] = indices.numel();
  Tensor out = make_tensor(Shape(dims), x.dtype(), x.device());
  const std::size_t row_bytes = x.size(0) ? x.nbytes() / static_cast<std::size_t>(x.size(0)) : 0;
  ops::backend_of(x).gather_rows(x.raw_data(), static_cast<const int32_t*>(indices.raw_data()), out.raw_data(),
                                 indices.numel(), row_bytes);
  return out;
}

Tensor argmax(const Tensor& x) {
  ops::check_floating("argmax", x);
  ops::check_ndim("argmax", x, 2);
  if (x.size(1) == 0) throw Error("argmax", "rows are empty; expected at least one column");
  Tensor out = make_tensor({x.size(0)}, DType::Int32, x.device());
  ops::backend_of(x).argmax_rows(x.dtype(), x.raw_data(), static_cast<int32_t*>(out.raw_data()), x.size(0), x.size(1));
  return out;
}

}  // namespace kiln
