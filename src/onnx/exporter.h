// The ONNX exporters of the layer classes, by class name (the registry pattern of layers and
// activations): each class' exporter lives in its own src/onnx/export_<layer>.cpp and registers
// itself there, so a new layer adds one file and no edit elsewhere.
#pragma once

#if KILN_WITH_ONNX

#include <functional>
#include <string>

#include "kiln/registry.h"
#include "onnx/graph_builder.h"

namespace kiln::onnx_export {

/// Writes the nodes of one layer call: reads its inputs with builder.value(), and defines its output
/// with builder.define() (or builder.alias() for the identity).
using LayerExporter = std::function<void(GraphBuilder& builder, const LayerCall& call)>;

/// The exporters by layer class name.
Registry<LayerExporter>& layer_exporters();

/// Registers `exporter` for layer class `class_name` while this object is constructed (declare one
/// at namespace scope in the exporter's file).
struct RegisterExporter {
  /// Registers `exporter` under `class_name`.
  RegisterExporter(const std::string& class_name, const LayerExporter& exporter);
};

/// The layer class of `call` as `L`; throws naming the call when the class registered under its
/// class name is another C++ type (a user's class reusing a built-in name).
template <typename L>
const L& layer_as(const LayerCall& call) {
  const auto* layer = dynamic_cast<const L*>(&call.layer);
  if (layer == nullptr)
    throw Error("export_onnx", "layer '" + call.name + "' says it is a " + call.layer.class_name() +
                                   " but is another C++ class; expected kiln's own " + call.layer.class_name());
  return *layer;
}

/// Applies activation `name` (Keras' name, "linear" or "" for none) to ONNX value `x` of kiln value
/// `v` in `layout`; returns the result's name, `x` itself for linear. `output` names the result
/// exactly when not empty. Throws naming the layer and the activation when it has no ONNX form.
std::string emit_activation(GraphBuilder& builder, const LayerCall& call, const std::string& name, int v,
                            const std::string& x, Layout layout, const std::string& output = "");

/// Defines `call`'s output: `x` (made in `layout`) after `activation`.
void finish_with_activation(GraphBuilder& builder, const LayerCall& call, const std::string& activation,
                            const std::string& x, Layout layout);

}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
