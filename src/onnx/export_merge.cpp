// Merge layers: Add, Subtract, Multiply and Average as chains of binary nodes, left to right as kiln
// computes them (so the float rounding is the same); Maximum as Max; Concatenate as Concat. They run
// channels_first when every input was made so (a residual block between convolutions), else
// channels_last.
#include "onnx/exporter.h"

#if KILN_WITH_ONNX

#include "kiln/layers/merge.h"

namespace kiln::onnx_export {
namespace {

Layout common_layout(const GraphBuilder& b, const LayerCall& call) {
  for (int v : call.inputs)
    if (b.made_in(v) != Layout::ChannelsFirst || b.rank(v) < 3) return Layout::ChannelsLast;
  return Layout::ChannelsFirst;
}

std::vector<std::string> inputs_in(GraphBuilder& b, const LayerCall& call, Layout layout) {
  std::vector<std::string> names;
  for (int v : call.inputs) names.push_back(b.value(v, layout));
  return names;
}

// ((x0 op x1) op x2) ...; the last node makes `out`.
std::string chain(GraphBuilder& b, const char* op, const std::vector<std::string>& x, const std::string& out) {
  std::string acc = x.at(0);
  for (std::size_t i = 1; i < x.size(); ++i)
    acc = i + 1 == x.size() ? b.node_to(op, {acc, x[i]}, out).output(0) : b.node(op, {acc, x[i]}, "partial").output(0);
  return acc;
}

void elementwise(GraphBuilder& b, const LayerCall& call, const char* op) {
  const Layout layout = common_layout(b, call);
  b.define(call.output, chain(b, op, inputs_in(b, call, layout), b.result_name(call, layout)), layout);
}

const RegisterExporter add("Add", [](GraphBuilder& b, const LayerCall& c) { elementwise(b, c, "Add"); });
const RegisterExporter subtract("Subtract", [](GraphBuilder& b, const LayerCall& c) { elementwise(b, c, "Sub"); });
const RegisterExporter multiply("Multiply", [](GraphBuilder& b, const LayerCall& c) { elementwise(b, c, "Mul"); });

// The sum times 1 / count, as kiln's Average.
const RegisterExporter average("Average", [](GraphBuilder& b, const LayerCall& call) {
  const Layout layout = common_layout(b, call);
  const std::string sum = chain(b, "Add", inputs_in(b, call, layout), b.fresh("sum"));
  const float factor = static_cast<float>(1.0 / static_cast<double>(call.inputs.size()));
  const auto& n = b.node_to("Mul", {sum, b.constant("factor", {factor}, {})}, b.result_name(call, layout));
  b.define(call.output, n.output(0), layout);
});

const RegisterExporter maximum("Maximum", [](GraphBuilder& b, const LayerCall& call) {
  const Layout layout = common_layout(b, call);
  b.define(call.output, b.node_to("Max", inputs_in(b, call, layout), b.result_name(call, layout)).output(0), layout);
});

const RegisterExporter concatenate("Concatenate", [](GraphBuilder& b, const LayerCall& call) {
  const auto& layer = layer_as<layers::Concatenate>(call);
  const Layout layout = common_layout(b, call);
  auto& n = b.node_to("Concat", inputs_in(b, call, layout), b.result_name(call, layout));
  set_attr(n, "axis", b.axis(call.output, layer.axis(), layout));
  b.define(call.output, n.output(0), layout);
});

}  // namespace
}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
