// Checks and small helpers shared by the op families.
#pragma once

#include <string>

#include "autograd/node.h"
#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "tensor/tensor_impl.h"

namespace kiln::ops {

/// The backend that runs ops on `t`.
inline backend::Backend& backend_of(const Tensor& t) { return backend::get(t.device()); }

/// Throws unless `t` is defined and of a floating dtype.
void check_floating(const std::string& op, const Tensor& t, const char* role = "input");
/// Throws unless a and b share device and dtype.
void check_compatible(const std::string& op, const Tensor& a, const Tensor& b);
/// Throws unless `t` has `ndim` dimensions.
void check_ndim(const std::string& op, const Tensor& t, int64_t ndim, const char* role = "input");

/// Sums `g` down to `shape` when `shape` was row-broadcast (or a single element) into g's shape.
Tensor reduce_to(const Tensor& g, const Shape& shape);

}  // namespace kiln::ops
