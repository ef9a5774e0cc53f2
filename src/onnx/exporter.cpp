// The table of layer exporters by class name.
#include "onnx/exporter.h"

#if KILN_WITH_ONNX

namespace kiln::onnx_export {

Registry<LayerExporter>& layer_exporters() {
  static Registry<LayerExporter> registry("ONNX exporter");
  return registry;
}

RegisterExporter::RegisterExporter(const std::string& class_name, const LayerExporter& exporter) {
  layer_exporters().add(class_name, [exporter](const Config&) { return exporter; });
}

}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
