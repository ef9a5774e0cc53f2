/// Minimal .npy reading and writing (little-endian float32 / int32 / float64, C order): the format
/// numpy.save and numpy.load speak, so the driver and parity.py exchange data without a parser.
#pragma once

#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::parity {

/// Reads a C-order .npy file of dtype <f4 or <i4 into a CPU tensor of the same dtype.
Tensor read_npy(const std::string& path);
/// Writes a float32 or int32 CPU tensor as .npy.
void write_npy(const std::string& path, const Tensor& t);
/// Writes `values` as a 1-D float64 .npy (losses keep every digit kiln produced).
void write_npy(const std::string& path, const std::vector<double>& values);

}  // namespace kiln::parity
