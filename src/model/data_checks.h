// Validation shared by fit, evaluate and predict: one message per kind of bad input.
#pragma once

#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::model {

/// Throws unless x and y are defined, non-empty and hold the same number of samples; `context`
/// starts the message ("validation_data: ").
void check_xy(const std::string& op, const Tensor& x, const Tensor& y, const std::string& context = "");
/// The same for one tensor per model input and one target tensor per output.
void check_xy(const std::string& op, const std::vector<Tensor>& x, const std::vector<Tensor>& y,
              const std::string& context = "");
/// Throws unless batch_size is positive.
void check_batch_size(const std::string& op, int64_t batch_size);
/// Throws unless verbose is 0, 1 or 2 (Keras' values).
void check_verbose(const std::string& op, int verbose);

}  // namespace kiln::model
