// Tensor: creation, element access, views, device moves and the autograd entry points.
#include "kiln/tensor.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "autograd/backward.h"
#include "backend/backend.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "kiln/random.h"
#include "tensor/tensor_impl.h"

namespace kiln {

namespace {

const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  if (!impl) throw Error("tensor", "use of an undefined tensor; expected one created by a factory or an op");
  return *impl;
}

void check_shape(const Shape& shape, const char* op) {
  for (int64_t d : shape.dims())
    if (d < 0) throw Error(op, "negative extent in shape " + shape.str() + "; expected sizes >= 0");
}

// Bytes of a tensor of `shape` and `dtype`. A size past what size_t counts is an allocation no
// device can make: OutOfMemoryError, not a wrapped-around small size that writes go past.
std::size_t byte_size(const Shape& shape, DType dtype) {
  std::size_t bytes = dtype_size(dtype);
  for (int64_t d : shape.dims())
    if (__builtin_mul_overflow(bytes, static_cast<std::size_t>(d), &bytes))
      throw OutOfMemoryError("tensor",
                             "shape " + shape.str() + " of " + dtype_name(dtype) +
                                 " needs more bytes than a size_t counts; expected a smaller tensor",
                             std::numeric_limits<std::size_t>::max());
  return bytes;
}

// Stores draw() (a double) into each element of t in order, converted as the CPU backend's cast
// converts (so the 16-bit floats, which have no C++ type up here, are rounded once), kChunk draws at a
// time: cast straight into a CPU tensor, through a host buffer to another device. Neither holds a host
// copy of the whole tensor, so the allocator alone decides whether it fits.
template <typename F>
void fill_drawn(Tensor& t, F&& draw) {
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t n = t.numel();
  const std::size_t item = dtype_size(t.dtype());
  const bool on_cpu = t.device().is_cpu();
  backend::Backend& cpu = backend::get(Device::cpu());
  auto* dst = static_cast<unsigned char*>(t.raw_data());
  std::vector<double> drawn(static_cast<std::size_t>(std::min(n, kChunk)));
  std::vector<unsigned char> staged(on_cpu ? 0 : drawn.size() * item);
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t len = std::min(kChunk, n - i0);
    for (int64_t j = 0; j < len; ++j) drawn[static_cast<std::size_t>(j)] = draw();
    unsigned char* out = dst + static_cast<std::size_t>(i0) * item;
    cpu.cast(DType::Float64, drawn.data(), t.dtype(), on_cpu ? out : staged.data(), len);
    if (!on_cpu) backend::get(t.device()).copy_from_host(out, staged.data(), static_cast<std::size_t>(len) * item);
  }
}

}  // namespace

Tensor make_tensor(const Shape& shape, DType dtype, Device device) {
  check_shape(shape, "tensor");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(byte_size(shape, dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) { return make_tensor(shape, dtype, device); }

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = make_tensor(shape, dtype, device);
  t.fill_(value);
  return t;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  check_shape(shape, "tensor");
  if (static_cast<int64_t>(values.size()) != shape.numel())
    throw Error("tensor", std::to_string(values.size()) + " values cannot fill shape " + shape.str() + "; expected " +
                              std::to_string(shape.numel()));
  Tensor t = make_tensor(shape, dtype_of<T>(), device);
  backend::get(device).copy_from_host(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<int32_t>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<uint8_t>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&, Device);

Tensor Tensor::uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype, Device device) {
  check_shape(shape, "uniform");
  Tensor t = make_tensor(shape, dtype, device);
  fill_drawn(t, [&] { return low + (high - low) * gen.uniform(); });
  return t;
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, DType dtype, Device device) {
  check_shape(shape, "randn");
  Tensor t = make_tensor(shape, dtype, device);
  fill_drawn(t, [&] { return gen.normal(); });
  return t;
}

const Shape& Tensor::shape() const { return checked(impl_).shape; }
DType Tensor::dtype() const { return checked(impl_).dtype; }
Device Tensor::device() const { return checked(impl_).device(); }
std::size_t Tensor::nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype()); }

void* Tensor::raw_data() { return checked(impl_).data(); }
const void* Tensor::raw_data() const { return checked(impl_).data(); }

template <typename T>
T* Tensor::data() {
  const TensorImpl& impl = checked(impl_);
  if (!impl.device().is_cpu())
    throw Error("tensor",
                "data() on a tensor on " + impl.device().str() + "; expected a CPU tensor (use .cpu() or to_vector())");
  if (impl.dtype != dtype_of<T>())
    throw Error("tensor", "data<" + dtype_name(dtype_of<T>()) + ">() on a " + dtype_name(impl.dtype) + " tensor");
  return static_cast<T*>(impl.data());
}
template <typename T>
const T* Tensor::data() const {
  return const_cast<Tensor*>(this)->data<T>();
}
template float* Tensor::data<float>();
template double* Tensor::data<double>();
template int32_t* Tensor::data<int32_t>();
template uint8_t* Tensor::data<uint8_t>();
template int64_t* Tensor::data<int64_t>();
template const float* Tensor::data<float>() const;
template const double* Tensor::data<double>() const;
template const int32_t* Tensor::data<int32_t>() const;
template const uint8_t* Tensor::data<uint8_t>() const;
template const int64_t* Tensor::data<int64_t>() const;

template <typename T>
std::vector<T> Tensor::to_vector() const {
  const TensorImpl& impl = checked(impl_);
  std::vector<unsigned char> bytes(nbytes());
  backend::get(impl.device()).copy_to_host(bytes.data(), impl.data(), bytes.size());
  std::vector<T> out(static_cast<std::size_t>(numel()));
  const int64_t n = numel();
  // The CPU backend's cast converts every dtype, the 16-bit floats included (no C++ type for them here).
  backend::get(Device::cpu()).cast(impl.dtype, bytes.data(), dtype_of<T>(), out.data(), n);
  return out;
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<uint8_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;

double Tensor::item() const {
  if (numel() != 1)
    throw Error("item", "tensor of shape " + shape().str() + " has " + std::to_string(numel()) +
                            " elements; expected exactly one");
  return to_vector<double>()[0];
}

Tensor Tensor::reshape(const Shape& new_shape) const { return kiln::reshape(*this, new_shape); }

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  const TensorImpl& impl = checked(impl_);
  if (impl.shape.ndim() == 0) throw Error("slice_rows", "cannot slice a scalar tensor");
  const int64_t rows = impl.shape[0];
  if (begin < 0 || end > rows || begin > end)
    throw Error("slice_rows", "rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                                  ") out of range for shape " + impl.shape.str());
  auto view = std::make_shared<TensorImpl>();
  view->storage = impl.storage;
  const int64_t row_elems = rows ? impl.shape.numel() / rows : 0;
  view->offset = impl.offset + static_cast<std::size_t>(begin * row_elems) * dtype_size(impl.dtype);
  std::vector<int64_t> dims = impl.shape.dims();
  dims[0] = end - begin;
  view->shape = Shape(dims);
  view->dtype = impl.dtype;
  return Tensor(std::move(view));
}

Tensor Tensor::clone() const {
  Tensor out = make_tensor(shape(), dtype(), device());
  backend::get(device()).copy(out.raw_data(), raw_data(), nbytes());
  return out;
}

Tensor Tensor::detach() const {
  const TensorImpl& impl = checked(impl_);
  auto view = std::make_shared<TensorImpl>();
  view->storage = impl.storage;
  view->offset = impl.offset;
  view->shape = impl.shape;
  view->dtype = impl.dtype;
  return Tensor(std::move(view));
}

Tensor Tensor::to(Device target) const {
  const TensorImpl& impl = checked(impl_);
  if (impl.device() == target) return *this;
  Tensor out = make_tensor(impl.shape, impl.dtype, target);
  if (impl.device().is_cpu()) {
    backend::get(target).copy_from_host(out.raw_data(), impl.data(), nbytes());
  } else if (target.is_cpu()) {
    backend::get(impl.device()).copy_to_host(out.raw_data(), impl.data(), nbytes());
  } else {  // GPU to GPU through the host: rare, and keeps the backends independent
    std::vector<unsigned char> bytes(nbytes());
    backend::get(impl.device()).copy_to_host(bytes.data(), impl.data(), bytes.size());
    backend::get(target).copy_from_host(out.raw_data(), bytes.data(), bytes.size());
  }
  return out;
}

Tensor Tensor::astype(DType target) const {
  if (dtype() == target) return *this;
  Tensor out = make_tensor(shape(), target, device());
  backend::get(device()).cast(dtype(), raw_data(), target, out.raw_data(), numel());
  return out;
}

void Tensor::copy_(const Tensor& src) {
  if (src.shape() != shape() || src.dtype() != dtype())
    throw Error("copy_", "source " + src.shape().str() + " " + dtype_name(src.dtype()) +
                             " does not match destination " + shape().str() + " " + dtype_name(dtype()));
  const Tensor moved = src.to(device());
  backend::get(device()).copy(raw_data(), moved.raw_data(), nbytes());
}

void Tensor::fill_(double value) { backend::get(device()).fill(dtype(), raw_data(), numel(), value); }

bool Tensor::requires_grad() const { return checked(impl_).requires_grad; }

Tensor& Tensor::set_requires_grad(bool on) {
  TensorImpl& impl = const_cast<TensorImpl&>(checked(impl_));
  if (impl.grad_fn)
    throw Error("set_requires_grad", "tensor is the output of an op; expected a leaf tensor (use detach())");
  if (on && !is_floating(impl.dtype))
    throw Error("set_requires_grad",
                "a " + dtype_name(impl.dtype) + " tensor cannot require grad; expected float32 or float64");
  impl.requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return checked(impl_).grad; }

void Tensor::zero_grad() { const_cast<TensorImpl&>(checked(impl_)).grad = Tensor(); }

bool Tensor::has_grad_fn() const { return checked(impl_).grad_fn != nullptr; }

void Tensor::backward() const { autograd::run_backward(*this); }

}  // namespace kiln
