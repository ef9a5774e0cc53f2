// Weights as ONNX initializers: read to the host as float32, and Conv2D's kernel reordered from
// Keras' [KH, KW, C, F] to ONNX's [F, C, KH, KW].
#pragma once

#if KILN_WITH_ONNX

#include <string>
#include <vector>

#include "kiln/tensor.h"
#include "onnx/graph_builder.h"

namespace kiln::onnx_export {

/// The values of `t` (any device, any floating dtype) as float32, row-major.
std::vector<float> host_floats(const Tensor& t);

/// The initializer of `layer`'s weight `weight` as it is (written once per layer, named
/// "<layer>/<weight>").
std::string weight_initializer(GraphBuilder& builder, const Layer& layer, const std::string& weight);

/// The initializer of `layer`'s channels_last convolution kernel [KH, KW, C, F] as ONNX's
/// [F, C, KH, KW] (written once per layer).
std::string conv_kernel_initializer(GraphBuilder& builder, const Layer& layer, const std::string& weight);

}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
