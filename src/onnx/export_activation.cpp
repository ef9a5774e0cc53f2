// Activations as ONNX nodes (kiln's table in src/layers/activations.cpp, Keras' defaults), and the
// Activation layer. Elementwise, so they run in whichever layout their input was made in; softmax
// takes its axis (the channels) in that layout.
#include "onnx/exporter.h"

#if KILN_WITH_ONNX

#include <cmath>
#include <map>

#include "kiln/layers/activation.h"

namespace kiln::onnx_export {

namespace {

// One activation: writes its nodes on x, the last one making `out`.
using ActivationWriter =
    std::function<void(GraphBuilder& b, const std::string& x, const std::string& out, int64_t channel_axis)>;

void unary(GraphBuilder& b, const char* op, const std::string& x, const std::string& out) { b.node_to(op, {x}, out); }

// 0.5 * x * (1 + erf(x / sqrt(2))): opset 20's Gelu, written with Erf for the opsets before it.
void gelu(GraphBuilder& b, const std::string& x, const std::string& out) {
  if (b.options().opset >= 20) {
    b.node_to("Gelu", {x}, out);
    return;
  }
  const auto& scaled = b.node("Mul", {x, b.constant("inv_sqrt2", {static_cast<float>(M_SQRT1_2)}, {})}, "gelu_scaled");
  const auto& erf = b.node("Erf", {scaled.output(0)}, "gelu_erf");
  const auto& one_plus = b.node("Add", {erf.output(0), b.constant("one", {1.0F}, {})}, "gelu_one_plus");
  const auto& half_x = b.node("Mul", {x, b.constant("half", {0.5F}, {})}, "gelu_half_x");
  b.node_to("Mul", {half_x.output(0), one_plus.output(0)}, out);
}

const std::map<std::string, ActivationWriter>& writers() {
  static const std::map<std::string, ActivationWriter> table = {
      {"relu", [](GraphBuilder& b, const auto& x, const auto& out, int64_t) { unary(b, "Relu", x, out); }},
      {"sigmoid", [](GraphBuilder& b, const auto& x, const auto& out, int64_t) { unary(b, "Sigmoid", x, out); }},
      {"tanh", [](GraphBuilder& b, const auto& x, const auto& out, int64_t) { unary(b, "Tanh", x, out); }},
      {"softmax", [](GraphBuilder& b, const auto& x, const auto& out,
                     int64_t axis) { set_attr(b.node_to("Softmax", {x}, out), "axis", axis); }},
      {"gelu", [](GraphBuilder& b, const auto& x, const auto& out, int64_t) { gelu(b, x, out); }},
      {"elu", [](GraphBuilder& b, const auto& x, const auto& out,
                 int64_t) { set_attr(b.node_to("Elu", {x}, out), "alpha", 1.0F); }},
      // Keras 3's leaky_relu activation: negative slope 0.2.
      {"leaky_relu", [](GraphBuilder& b, const auto& x, const auto& out,
                        int64_t) { set_attr(b.node_to("LeakyRelu", {x}, out), "alpha", 0.2F); }},
      // swish is Keras' alias of silu: x * sigmoid(x).
      {"silu",
       [](GraphBuilder& b, const auto& x, const auto& out, int64_t) {
         b.node_to("Mul", {x, b.node("Sigmoid", {x}, "sigmoid").output(0)}, out);
       }},
      {"swish",
       [](GraphBuilder& b, const auto& x, const auto& out, int64_t) {
         b.node_to("Mul", {x, b.node("Sigmoid", {x}, "sigmoid").output(0)}, out);
       }},
  };
  return table;
}

std::string known_activations() {
  std::string known = "linear";
  for (const auto& entry : writers()) known += ", " + entry.first;
  return known;
}

}  // namespace

std::string emit_activation(GraphBuilder& builder, const LayerCall& call, const std::string& name, int v,
                            const std::string& x, Layout layout, const std::string& output) {
  if (name.empty() || name == "linear") return x;
  auto it = writers().find(name);
  if (it == writers().end())
    throw Error("export_onnx", "layer '" + call.name + "' (" + call.layer.class_name() + ") uses activation '" + name +
                                   "', which has no ONNX form; expected one of " + known_activations());
  std::string out = output.empty() ? builder.fresh(name) : output;
  it->second(builder, x, out, builder.axis(v, -1, layout));
  return out;
}

void finish_with_activation(GraphBuilder& builder, const LayerCall& call, const std::string& activation,
                            const std::string& x, Layout layout) {
  const bool linear = activation.empty() || activation == "linear";
  builder.define(
      call.output,
      linear ? x
             : emit_activation(builder, call, activation, call.output, x, layout, builder.result_name(call, layout)),
      layout);
}

namespace {

// Elementwise: in the layout its input was made in.
const RegisterExporter activation_layer("Activation", [](GraphBuilder& b, const LayerCall& call) {
  const auto& layer = layer_as<layers::Activation>(call);
  const Layout layout = b.made_in(call.inputs.at(0));
  finish_with_activation(b, call, layer.activation(), b.value(call.inputs.at(0), layout), layout);
});

}  // namespace

}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
