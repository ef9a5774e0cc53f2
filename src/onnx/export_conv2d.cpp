// Conv2D: ONNX's Conv, channels_first, with Keras' padding as explicit pads; then its activation.
#include "onnx/exporter.h"

#if KILN_WITH_ONNX

#include "kiln/layers/conv2d.h"
#include "onnx/tensors.h"
#include "onnx/window.h"

namespace kiln::onnx_export {
namespace {

// Keras' dilation_rate where the layer's config has one (1, 1 otherwise).
std::array<int64_t, 2> dilation_rate(const Layer& layer) {
  const Config config = layer.get_config();
  if (!config.contains("dilation_rate")) return {1, 1};
  const auto& d = config.at("dilation_rate");
  if (d.is_number_integer()) return {d.get<int64_t>(), d.get<int64_t>()};
  return {d.at(0).get<int64_t>(), d.at(1).get<int64_t>()};
}

const RegisterExporter conv2d("Conv2D", [](GraphBuilder& b, const LayerCall& call) {
  const auto& layer = layer_as<layers::Conv2D>(call);
  const int in = call.inputs.at(0);
  const Shape& shape = b.shape(in);
  const std::string x = b.value(in, Layout::ChannelsFirst);
  const std::string kernel = conv_kernel_initializer(b, layer, "kernel");
  const std::string& activation = layer.options().activation;
  const bool linear = activation.empty() || activation == "linear";
  const std::string out = linear ? b.result_name(call, Layout::ChannelsFirst) : b.fresh("conv");
  std::vector<std::string> inputs = {x, kernel};
  if (layer.options().use_bias) inputs.push_back(weight_initializer(b, layer, "bias"));
  auto& conv = b.node_to("Conv", inputs, out);
  const auto k = layer.kernel_size();
  const auto strides = layer.options().strides;
  const auto dilations = dilation_rate(layer);
  set_attr(conv, "kernel_shape", std::vector<int64_t>{k[0], k[1]});
  set_attr(conv, "strides", std::vector<int64_t>{strides[0], strides[1]});
  set_attr(conv, "dilations", std::vector<int64_t>{dilations[0], dilations[1]});
  set_attr(conv, "pads", window_pads(layer.options().padding, {shape[0], shape[1]}, k, strides, dilations));
  if (linear && b.call_count(layer) == 1) b.set_affine(out, {b.node_count() - 1, kernel, 0, 2, call.output});
  finish_with_activation(b, call, activation, out, Layout::ChannelsFirst);
});

}  // namespace
}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
