// Dense: Gemm on [N, in] (kiln's Dense takes rank-2 inputs only), then its activation.
#include "onnx/exporter.h"

#if KILN_WITH_ONNX

#include "kiln/layers/dense.h"
#include "onnx/tensors.h"

namespace kiln::onnx_export {
namespace {

const RegisterExporter dense("Dense", [](GraphBuilder& b, const LayerCall& call) {
  const auto& layer = layer_as<layers::Dense>(call);
  const int in = call.inputs.at(0);
  const std::string x = b.value(in, Layout::ChannelsLast);
  const std::string kernel = weight_initializer(b, layer, "kernel");
  const std::string& activation = layer.options().activation;
  const bool linear = activation.empty() || activation == "linear";
  const std::string out = linear ? b.result_name(call, Layout::ChannelsLast) : b.fresh("dense");
  std::vector<std::string> inputs = {x, kernel};
  if (layer.options().use_bias) inputs.push_back(weight_initializer(b, layer, "bias"));
  b.node_to("Gemm", inputs, out);
  // A BatchNormalization reading only this output may scale the kernel's columns and the bias.
  if (linear && b.call_count(layer) == 1) b.set_affine(out, {b.node_count() - 1, kernel, 1, 2, call.output});
  finish_with_activation(b, call, activation, out, Layout::ChannelsLast);
});

}  // namespace
}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
