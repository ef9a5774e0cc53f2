// Layers that are the identity at inference: Dropout and the random augmentation layers that pass
// their input through outside training (RandomFlip, RandomTranslation). They write no node: their
// output is their input. (RandomCrop is not one of them: at inference it crops the centre.)
#include "onnx/exporter.h"

#if KILN_WITH_ONNX

namespace kiln::onnx_export {
namespace {

void identity(GraphBuilder& b, const LayerCall& call) { b.alias(call.output, call.inputs.at(0)); }

const RegisterExporter dropout("Dropout", identity);
const RegisterExporter random_flip("RandomFlip", identity);
const RegisterExporter random_translation("RandomTranslation", identity);

}  // namespace
}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
