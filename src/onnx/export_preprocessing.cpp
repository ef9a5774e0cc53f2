// Rescaling (x * scale + offset) and Normalization ((x - mean) / max(sqrt(variance), 1e-7)), with
// the constants rounded to float32 as kiln computes them, in the same order of operations.
#include "onnx/exporter.h"

#if KILN_WITH_ONNX

#include <algorithm>
#include <cmath>

#include "kiln/layers/preprocessing.h"
#include "onnx/tensors.h"

namespace kiln::onnx_export {
namespace {

// Elementwise with scalars: in the layout its input was made in.
const RegisterExporter rescaling("Rescaling", [](GraphBuilder& b, const LayerCall& call) {
  const auto& layer = layer_as<layers::Rescaling>(call);
  const int in = call.inputs.at(0);
  const Layout layout = b.made_in(in);
  const std::string x = b.value(in, layout);
  const std::string out = b.result_name(call, layout);
  const std::string scale = b.constant("scale", {static_cast<float>(layer.scale())}, {});
  const double offset = layer.options().offset;
  if (offset == 0.0) {
    b.node_to("Mul", {x, scale}, out);
  } else {
    b.node_to("Add",
              {b.node("Mul", {x, scale}, "scaled").output(0), b.constant("offset", {static_cast<float>(offset)}, {})},
              out);
  }
  b.define(call.output, out, layout);
});

// The kept axes are the trailing ones, so constants of the kept shape broadcast against the
// channels_last input as NumPy's rules (and ONNX's) align them.
const RegisterExporter normalization("Normalization", [](GraphBuilder& b, const LayerCall& call) {
  const auto& layer = layer_as<layers::Normalization>(call);
  const auto& o = layer.options();
  const int in = call.inputs.at(0);
  const Shape& shape = b.shape(in);
  const std::size_t kept_rank = o.axis.size();
  const std::vector<int64_t> kept(shape.dims().end() - static_cast<std::ptrdiff_t>(kept_rank), shape.dims().end());
  std::size_t n = 1;
  for (int64_t d : kept) n *= static_cast<std::size_t>(d);
  constexpr float kEpsilon = 1e-7F;  // Keras' backend.epsilon(): the floor of the standard deviation
  std::vector<float> mean(n), denom(n);
  if (o.mean) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t k = o.mean->size() == 1 ? 0 : i;
      mean[i] = static_cast<float>((*o.mean)[k]);
      denom[i] = std::max(std::sqrt(static_cast<float>((*o.variance)[k])), kEpsilon);
    }
  } else {
    std::vector<float> variance;
    for (const auto& w : layer.all_weights()) {
      if (w.name == "mean") mean = host_floats(w.value);
      if (w.name == "variance") variance = host_floats(w.value);
    }
    for (std::size_t i = 0; i < n; ++i) denom[i] = std::max(std::sqrt(variance.at(i)), kEpsilon);
  }
  const std::string x = b.value(in, Layout::ChannelsLast);
  const std::string m = b.constant("mean", mean, kept);
  const std::string d = b.constant("denominator", denom, kept);
  const std::string out = b.result_name(call, Layout::ChannelsLast);
  if (o.invert) {
    b.node_to("Add", {m, b.node("Mul", {x, d}, "scaled").output(0)}, out);
  } else {
    b.node_to("Div", {b.node("Sub", {x, m}, "centered").output(0), d}, out);
  }
  b.define(call.output, out, Layout::ChannelsLast);
});

}  // namespace
}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
