/// Tensor shapes.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace kiln {

/// The extents of a tensor, outermost first (row-major).
class Shape {
 public:
  Shape() = default;
  /// Shape from extents, e.g. Shape{10, 32, 32, 3}.
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  /// Shape from a vector of extents.
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  /// Number of dimensions.
  int64_t ndim() const { return static_cast<int64_t>(dims_.size()); }
  /// Extent of dimension `i`; negative `i` counts from the end.
  int64_t operator[](int64_t i) const;
  /// Product of all extents (1 for a scalar shape).
  int64_t numel() const;
  /// The extents.
  const std::vector<int64_t>& dims() const { return dims_; }
  /// "[10, 32, 32, 3]".
  std::string str() const;
  /// A per-sample shape as Keras prints a batch of it: "[None, 8, 8, 16]".
  std::string batch_str() const;
  /// Shape without its first dimension (the per-sample shape of a batch).
  Shape drop_front() const;
  /// Shape with `n` prepended.
  Shape prepend(int64_t n) const;

  /// Same dimensions in the same order.
  bool operator==(const Shape&) const = default;

 private:
  std::vector<int64_t> dims_;
};

}  // namespace kiln
