// Reshaping layers: Flatten, Reshape and Permute act on Keras' channels_last order (Flatten must see
// [N, H, W, C] to order its features as Keras does), so they read their input channels_last;
// ZeroPadding2D (Pad) and Cropping2D (Slice) work in either layout, on the height and width axes.
#include "onnx/exporter.h"

#if KILN_WITH_ONNX

#include "kiln/layers/flatten.h"
#include "kiln/layers/reshaping.h"

namespace kiln::onnx_export {
namespace {

const RegisterExporter flatten("Flatten", [](GraphBuilder& b, const LayerCall& call) {
  auto& n = b.node_to("Flatten", {b.value(call.inputs.at(0), Layout::ChannelsLast)},
                      b.result_name(call, Layout::ChannelsLast));
  set_attr(n, "axis", int64_t{1});
  b.define(call.output, n.output(0), Layout::ChannelsLast);
});

// The resolved per-sample shape (Reshape's -1 filled in), the batch dimension copied (0).
const RegisterExporter reshape("Reshape", [](GraphBuilder& b, const LayerCall& call) {
  std::vector<int64_t> shape = {0};
  for (int64_t d : b.shape(call.output).dims()) shape.push_back(d);
  const auto& n =
      b.node_to("Reshape", {b.value(call.inputs.at(0), Layout::ChannelsLast), b.constant_i64("shape", shape)},
                b.result_name(call, Layout::ChannelsLast));
  b.define(call.output, n.output(0), Layout::ChannelsLast);
});

const RegisterExporter permute("Permute", [](GraphBuilder& b, const LayerCall& call) {
  const auto& layer = layer_as<layers::Permute>(call);
  std::vector<int64_t> perm = {0};
  perm.insert(perm.end(), layer.dims().begin(), layer.dims().end());
  auto& n = b.node_to("Transpose", {b.value(call.inputs.at(0), Layout::ChannelsLast)},
                      b.result_name(call, Layout::ChannelsLast));
  set_attr(n, "perm", perm);
  b.define(call.output, n.output(0), Layout::ChannelsLast);
});

const RegisterExporter zero_padding("ZeroPadding2D", [](GraphBuilder& b, const LayerCall& call) {
  const auto& p = layer_as<layers::ZeroPadding2D>(call).padding();
  const int in = call.inputs.at(0);
  const Layout layout = b.made_in(in);
  // ONNX's pads: every axis' start, then every axis' end.
  std::vector<int64_t> pads(8, 0);
  const auto h = static_cast<std::size_t>(b.axis(in, 1, layout));
  const auto w = static_cast<std::size_t>(b.axis(in, 2, layout));
  pads[h] = p.top;
  pads[w] = p.left;
  pads[h + 4] = p.bottom;
  pads[w + 4] = p.right;
  const auto& n = b.node_to("Pad", {b.value(in, layout), b.constant_i64("pads", pads)}, b.result_name(call, layout));
  b.define(call.output, n.output(0), layout);
});

const RegisterExporter cropping("Cropping2D", [](GraphBuilder& b, const LayerCall& call) {
  const auto& c = layer_as<layers::Cropping2D>(call).cropping();
  const int in = call.inputs.at(0);
  const Shape& shape = b.shape(in);
  const Layout layout = b.made_in(in);
  const auto& n = b.node_to("Slice",
                            {b.value(in, layout), b.constant_i64("starts", {c.top, c.left}),
                             b.constant_i64("ends", {shape[0] - c.bottom, shape[1] - c.right}),
                             b.constant_i64("axes", {b.axis(in, 1, layout), b.axis(in, 2, layout)})},
                            b.result_name(call, layout));
  b.define(call.output, n.output(0), layout);
});

}  // namespace
}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
