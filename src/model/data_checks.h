// Validation shared by fit, evaluate and predict: one message per kind of bad input.
#pragma once

#include <string>

#include "kiln/tensor.h"

namespace kiln::model {

/// Throws unless x and y are defined, non-empty and hold the same number of samples.
void check_xy(const std::string& op, const Tensor& x, const Tensor& y);
/// Throws unless batch_size is positive.
void check_batch_size(const std::string& op, int64_t batch_size);

}  // namespace kiln::model
