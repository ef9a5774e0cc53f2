// Pooling: MaxPool and AveragePool (Keras' "same" average counts only the cells inside the input:
// count_include_pad 0), GlobalAveragePool and GlobalMaxPool, all channels_first.
#include "onnx/exporter.h"

#if KILN_WITH_ONNX

#include "kiln/layers/pooling.h"
#include "onnx/window.h"

namespace kiln::onnx_export {
namespace {

void pool(GraphBuilder& b, const LayerCall& call, const char* op) {
  const auto& layer = layer_as<layers::Pooling2D>(call);
  const int in = call.inputs.at(0);
  const Shape& shape = b.shape(in);
  const std::string x = b.value(in, Layout::ChannelsFirst);
  auto& n = b.node_to(op, {x}, b.result_name(call, Layout::ChannelsFirst));
  const auto k = layer.pool_size();
  const auto s = layer.strides();
  set_attr(n, "kernel_shape", std::vector<int64_t>{k[0], k[1]});
  set_attr(n, "strides", std::vector<int64_t>{s[0], s[1]});
  set_attr(n, "pads", window_pads(layer.options().padding, {shape[0], shape[1]}, k, s));
  if (std::string(op) == "AveragePool") set_attr(n, "count_include_pad", int64_t{0});
  b.define(call.output, n.output(0), Layout::ChannelsFirst);
}

// [N, C, H, W] -> [N, C, 1, 1]; without keepdims, Flatten makes it [N, C].
void global_pool(GraphBuilder& b, const LayerCall& call, const char* op) {
  const auto& layer = layer_as<layers::GlobalPooling2D>(call);
  const std::string x = b.value(call.inputs.at(0), Layout::ChannelsFirst);
  if (layer.keepdims()) {
    b.define(call.output, b.node_to(op, {x}, b.result_name(call, Layout::ChannelsFirst)).output(0),
             Layout::ChannelsFirst);
    return;
  }
  const auto& pooled = b.node(op, {x}, "pooled");
  auto& flat = b.node_to("Flatten", {pooled.output(0)}, b.result_name(call, Layout::ChannelsLast));
  set_attr(flat, "axis", int64_t{1});
  b.define(call.output, flat.output(0), Layout::ChannelsLast);
}

const RegisterExporter max_pooling("MaxPooling2D", [](GraphBuilder& b, const LayerCall& c) { pool(b, c, "MaxPool"); });
const RegisterExporter average_pooling("AveragePooling2D",
                                       [](GraphBuilder& b, const LayerCall& c) { pool(b, c, "AveragePool"); });
const RegisterExporter global_average("GlobalAveragePooling2D", [](GraphBuilder& b, const LayerCall& c) {
  global_pool(b, c, "GlobalAveragePool");
});
const RegisterExporter global_max("GlobalMaxPooling2D",
                                  [](GraphBuilder& b, const LayerCall& c) { global_pool(b, c, "GlobalMaxPool"); });

}  // namespace
}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
