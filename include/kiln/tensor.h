/// Tensor: a cheap handle to shared, contiguous, row-major storage on one device.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/device.h"
#include "kiln/dtype.h"
#include "kiln/shape.h"

namespace kiln {

struct TensorImpl;
class Generator;

/// A multi-dimensional array with optional gradient tracking. Copies share storage; views
/// (reshape, flatten, row slices) share it too and stay contiguous.
class Tensor {
 public:
  /// An undefined tensor (defined() is false).
  Tensor() = default;
  /// Wraps an implementation object (used inside the library).
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation ----
  /// Uninitialised storage of `shape`.
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  /// All zeros.
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  /// All ones.
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  /// Every element `value`.
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = Device::cpu());
  /// Copies `values` (row-major) into a tensor of `shape`; sizes must agree.
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu());
  /// Copies `values` into a 1-D tensor.
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, Device device = Device::cpu()) {
    return from_vector(values, Shape{static_cast<int64_t>(values.size())}, device);
  }
  /// Uniform samples in [low, high) drawn from `gen` (on the host, so every device gets the same).
  static Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype = DType::Float32,
                        Device device = Device::cpu());
  /// Standard normal samples drawn from `gen`.
  static Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::Float32, Device device = Device::cpu());

  // ---- properties ----
  /// False for a default-constructed tensor.
  bool defined() const { return impl_ != nullptr; }
  /// Dimensions.
  const Shape& shape() const;
  /// Element type.
  DType dtype() const;
  /// Where the elements live.
  Device device() const;
  /// Number of dimensions.
  int64_t ndim() const { return shape().ndim(); }
  /// Number of elements.
  int64_t numel() const { return shape().numel(); }
  /// Extent of dimension `i` (negative counts from the end).
  int64_t size(int64_t i) const { return shape()[i]; }
  /// Bytes of element data this tensor covers.
  std::size_t nbytes() const;

  // ---- element access (host) ----
  /// Pointer to the elements; CPU tensors only, T must match dtype().
  template <typename T>
  T* data();
  /// Read-only pointer to the elements; CPU tensors only, T must match dtype().
  template <typename T>
  const T* data() const;
  /// Untyped pointer to the first element on its device.
  void* raw_data();
  /// Read-only untyped pointer to the first element on its device.
  const void* raw_data() const;
  /// Copies the elements to a host vector (from any device), converting to T.
  template <typename T>
  std::vector<T> to_vector() const;
  /// The single element of a one-element tensor, as double.
  double item() const;

  // ---- views and copies ----
  /// Same storage, new shape (one extent may be -1); numel must agree.
  Tensor reshape(const Shape& shape) const;
  /// Rows [begin, end) of dimension 0, sharing storage.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  /// A deep copy on the same device, not tracking gradients.
  Tensor clone() const;
  /// Same storage, cut from the autograd graph.
  Tensor detach() const;
  /// A copy on `device` (this tensor itself when already there).
  Tensor to(Device device) const;
  /// Shorthand for to(Device::cpu()).
  Tensor cpu() const { return to(Device::cpu()); }
  /// A converted copy of element type `dtype` (this tensor itself when already so).
  Tensor astype(DType dtype) const;
  /// Overwrites this tensor's elements with `src`'s (same shape and dtype, any device).
  void copy_(const Tensor& src);
  /// Sets every element to `value`.
  void fill_(double value);

  // ---- autograd ----
  /// Whether gradients are tracked for this tensor.
  bool requires_grad() const;
  /// Marks a leaf tensor as a parameter whose gradient backward() accumulates into grad().
  Tensor& set_requires_grad(bool requires_grad = true);
  /// The accumulated gradient (undefined until a backward pass reaches this tensor).
  Tensor grad() const;
  /// Clears grad().
  void zero_grad();
  /// Back-propagates from this scalar into the grad() of every leaf that requires it.
  void backward() const;
  /// True when this tensor was produced by a tracked op.
  bool has_grad_fn() const;

  /// Human-readable contents, numpy style, elided past `max_per_dim` elements per dimension.
  std::string str(int max_per_dim = 6) const;

  /// The implementation (for the library's internals).
  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }
  /// Identity: true when both handles refer to the same tensor.
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

/// Prints tensor.str() plus shape, dtype and device.
std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace kiln
