// Layout ops: slice, pad, concatenate and permute. Each is one or more box copies of the backend's
// copy_strided, and each one's backward is another of them (slice <-> pad, concatenate -> slices,
// permute -> the inverse permutation).
#include <algorithm>
#include <numeric>

#include "ops/op_util.h"

namespace kiln {

namespace {

using Dims = std::vector<int64_t>;
constexpr int kMaxDims = backend::StridedCopy::kMaxDims;

std::string dims_str(const Dims& d) { return Shape(d).str(); }

void check_tensor(const std::string& op, const Tensor& x, const char* role = "input") {
  if (!x.defined()) throw Error(op, std::string(role) + " is an undefined tensor");
  if (x.ndim() > kMaxDims)
    throw Error(op, std::string(role) + " has shape " + x.shape().str() + "; expected at most " +
                        std::to_string(kMaxDims) + " dimensions");
}

// Row-major strides of `shape`, in elements.
Dims strides_of(const Shape& shape) {
  Dims s(static_cast<std::size_t>(shape.ndim()), 1);
  for (int64_t d = shape.ndim() - 2; d >= 0; --d) s[d] = s[d + 1] * shape[d + 1];
  return s;
}

// Copies a box of `extent` (in dst's dimension order) from src into dst: box index i reads src at
// src_begin + i with i's dimension d taken as src's dimension perm[d] (perm empty: the identity),
// and writes dst at dst_begin + i. Dimensions of extent 1 are dropped and neighbours contiguous on
// both sides merged, so the device sees the fewest dimensions (a concatenation on the last axis
// is a 2-D copy of rows).
void copy_box(const Tensor& src, const Dims& src_begin, const Dims& perm, Tensor dst, const Dims& dst_begin,
              const Dims& extent) {
  const Dims ss = strides_of(src.shape()), ds = strides_of(dst.shape());
  backend::StridedCopy g;
  for (std::size_t d = 0; d < src_begin.size(); ++d) g.src_offset += src_begin[d] * ss[d];
  for (std::size_t d = 0; d < dst_begin.size(); ++d) g.dst_offset += dst_begin[d] * ds[d];
  for (std::size_t d = 0; d < extent.size(); ++d) {
    if (extent[d] == 0) return;
    if (extent[d] == 1) continue;
    const int64_t s = ss[perm.empty() ? d : static_cast<std::size_t>(perm[d])];
    const int k = g.ndim - 1;
    if (k >= 0 && g.src_stride[k] == extent[d] * s && g.dst_stride[k] == extent[d] * ds[d]) {
      g.extent[k] *= extent[d];
      g.src_stride[k] = s;
      g.dst_stride[k] = ds[d];
      continue;
    }
    g.extent[g.ndim] = extent[d];
    g.src_stride[g.ndim] = s;
    g.dst_stride[g.ndim] = ds[d];
    ++g.ndim;
  }
  if (g.ndim == 0) {  // a single element
    g.ndim = 1;
    g.extent[0] = g.src_stride[0] = g.dst_stride[0] = 1;
  }
  ops::backend_of(src).copy_strided(src.dtype(), g, src.raw_data(), dst.raw_data());
}

Tensor zeros_like_shape(const Shape& shape, const Tensor& like) {
  Tensor out = make_tensor(shape, like.dtype(), like.device());
  if (out.numel() > 0) ops::backend_of(like).fill(like.dtype(), out.raw_data(), out.numel(), 0.0);
  return out;
}

int64_t normalized_axis(const std::string& op, int64_t axis, int64_t ndim) {
  if (axis < -ndim || axis >= ndim)
    throw Error(op, "axis " + std::to_string(axis) + " is out of range for " + std::to_string(ndim) +
                        "-D inputs; expected -" + std::to_string(ndim) + " <= axis < " + std::to_string(ndim));
  return axis < 0 ? axis + ndim : axis;
}

}  // namespace

Tensor slice(const Tensor& x, const std::vector<int64_t>& begin, const std::vector<int64_t>& size) {
  const std::string op = "slice";
  check_tensor(op, x);
  const int64_t n = x.ndim();
  if (static_cast<int64_t>(begin.size()) != n || static_cast<int64_t>(size.size()) != n)
    throw Error(op, "begin " + dims_str(begin) + " and size " + dims_str(size) + " for an input of shape " +
                        x.shape().str() + "; expected one entry of each per dimension (" + std::to_string(n) + ")");
  Dims extent = size;
  for (int64_t d = 0; d < n; ++d) {
    if (extent[d] == -1 && begin[d] >= 0 && begin[d] <= x.size(d)) extent[d] = x.size(d) - begin[d];
    if (begin[d] < 0 || extent[d] < 0 || begin[d] + extent[d] > x.size(d))
      throw Error(op, "the box at begin " + dims_str(begin) + " of size " + dims_str(size) +
                          " does not fit in an input of shape " + x.shape().str() +
                          "; expected 0 <= begin, 0 <= size (or -1) and begin + size <= shape in every dimension");
  }
  Tensor out = make_tensor(Shape(extent), x.dtype(), x.device());
  copy_box(x, begin, {}, out, {}, extent);
  return autograd::record(op, out, {x}, [in_shape = x.shape(), begin, extent](const Tensor& g) -> std::vector<Tensor> {
    std::vector<std::array<int64_t, 2>> paddings;
    for (std::size_t d = 0; d < extent.size(); ++d)
      paddings.push_back({begin[d], in_shape[static_cast<int64_t>(d)] - begin[d] - extent[d]});
    return {pad(g, paddings)};
  });
}

Tensor pad(const Tensor& x, const std::vector<std::array<int64_t, 2>>& paddings) {
  const std::string op = "pad";
  check_tensor(op, x);
  const int64_t n = x.ndim();
  if (static_cast<int64_t>(paddings.size()) != n)
    throw Error(op, std::to_string(paddings.size()) + " padding pairs for an input of shape " + x.shape().str() +
                        "; expected one {before, after} pair per dimension (" + std::to_string(n) + ")");
  Dims out_dims(static_cast<std::size_t>(n)), before(static_cast<std::size_t>(n));
  for (int64_t d = 0; d < n; ++d) {
    const auto [b, a] = paddings[static_cast<std::size_t>(d)];
    if (b < 0 || a < 0)
      throw Error(op, "padding {" + std::to_string(b) + ", " + std::to_string(a) + "} of dimension " +
                          std::to_string(d) + "; expected amounts >= 0 (use slice to remove elements)");
    before[d] = b;
    out_dims[d] = b + x.size(d) + a;
  }
  Tensor out = zeros_like_shape(Shape(out_dims), x);
  copy_box(x, {}, {}, out, before, x.shape().dims());
  const Dims size = x.shape().dims();
  return autograd::record(op, out, {x},
                          [before, size](const Tensor& g) -> std::vector<Tensor> { return {slice(g, before, size)}; });
}

Tensor concatenate(const std::vector<Tensor>& tensors, int64_t axis) {
  const std::string op = "concatenate";
  if (tensors.empty()) throw Error(op, "got no tensors; expected at least one");
  const Tensor& first = tensors[0];
  check_tensor(op, first, "tensor 0");
  const int64_t n = first.ndim();
  if (n == 0) throw Error(op, "tensor 0 is a scalar; expected tensors of at least one dimension");
  const int64_t ax = normalized_axis(op, axis, n);
  Dims out_dims = first.shape().dims();
  out_dims[ax] = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    const std::string role = "tensor " + std::to_string(i);
    check_tensor(op, t, role.c_str());
    ops::check_compatible(op, first, t);
    bool fits = t.ndim() == n;
    for (int64_t d = 0; fits && d < n; ++d) fits = d == ax || t.size(d) == first.size(d);
    if (!fits)
      throw Error(op, role + " has shape " + t.shape().str() + " and tensor 0 " + first.shape().str() +
                          "; expected equal dimensions except on axis " + std::to_string(ax));
    out_dims[ax] += t.size(ax);
  }
  Tensor out = make_tensor(Shape(out_dims), first.dtype(), first.device());
  Dims at(static_cast<std::size_t>(n), 0), offsets;
  for (const Tensor& t : tensors) {
    offsets.push_back(at[ax]);
    copy_box(t, {}, {}, out, at, t.shape().dims());
    at[ax] += t.size(ax);
  }
  std::vector<Shape> shapes;
  std::vector<bool> needed;
  shapes.reserve(tensors.size());
  needed.reserve(tensors.size());
  for (const Tensor& t : tensors) {
    shapes.push_back(t.shape());
    needed.push_back(t.requires_grad());
  }
  return autograd::record(op, out, tensors, [shapes, offsets, needed, ax](const Tensor& g) -> std::vector<Tensor> {
    std::vector<Tensor> grads(shapes.size());
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      if (!needed[i]) continue;
      Dims begin(shapes[i].dims().size(), 0);
      begin[ax] = offsets[i];
      grads[i] = slice(g, begin, shapes[i].dims());
    }
    return grads;
  });
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  const std::string op = "permute";
  check_tensor(op, x);
  const int64_t n = x.ndim();
  Dims sorted = dims;
  std::sort(sorted.begin(), sorted.end());
  Dims identity(static_cast<std::size_t>(n));
  std::iota(identity.begin(), identity.end(), 0);
  if (sorted != identity)
    throw Error(op, "dims " + dims_str(dims) + " for an input of shape " + x.shape().str() +
                        "; expected a permutation of 0.." + std::to_string(n - 1));
  Dims out_dims(static_cast<std::size_t>(n)), inverse(static_cast<std::size_t>(n));
  for (int64_t d = 0; d < n; ++d) {
    out_dims[d] = x.size(dims[d]);
    inverse[dims[d]] = d;
  }
  Tensor out = make_tensor(Shape(out_dims), x.dtype(), x.device());
  copy_box(x, {}, dims, out, {}, out_dims);
  return autograd::record(op, out, {x},
                          [inverse](const Tensor& g) -> std::vector<Tensor> { return {permute(g, inverse)}; });
}

}  // namespace kiln
