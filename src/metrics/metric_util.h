// Pieces the metrics share: float32 views of a batch and adding a device value into a metric sum.
#pragma once

#include <string>

#include "kiln/tensor.h"

namespace kiln::metrics::detail {

/// `t` detached, as float32 (the dtype of the metric sums).
Tensor as_float32(const Tensor& t);

/// sum += value * scale for one-element float32 tensors on one device, as device work only.
void add_into(Tensor& sum, const Tensor& value, double scale = 1.0);

/// Throws unless y_true and y_pred hold one target per prediction, naming `metric`.
void check_same_size(const std::string& metric, const Tensor& y_true, const Tensor& y_pred);

/// Elements per sample of a batch [N, ...] (at least 1).
int64_t per_sample(const Tensor& y_pred);

}  // namespace kiln::metrics::detail
