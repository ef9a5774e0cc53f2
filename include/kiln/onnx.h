/// ONNX export: a model's inference graph as an .onnx file that onnxruntime (and every other ONNX
/// runtime) can run.
#pragma once

#include <cstdint>
#include <string>

namespace kiln {

class Model;

/// Options of export_onnx.
struct OnnxOptions {
  /// The version of the default ONNX operator set ("ai.onnx") the graph is written for, 13 to 21.
  /// 17 runs on every onnxruntime since 1.12; from 20 on, gelu is ONNX's own Gelu node instead of
  /// its Erf form.
  int64_t opset = 17;
  /// Folds a BatchNormalization whose input is made only for it by a Conv2D or Dense without an
  /// activation into that layer's kernel and bias (no BatchNormalization node is written then).
  /// Inference gives the same function; the folded weights are rounded once to float32.
  bool fold_batch_norm = false;
  /// The symbolic name of the batch dimension of every input and output (ONNX dim_param).
  std::string batch_dim = "batch";
};

/// Writes `model`'s inference graph (what predict computes) to `path` as an ONNX model, atomically.
///
/// Inputs and outputs are float32 and channels_last, as the model's, named as the model's inputs
/// (kiln::Input's name, "input_layer" by default) and outputs (model.output_names()), with a
/// dynamic batch dimension (options.batch_dim). Inside, convolutions and pooling run channels_first,
/// as ONNX defines them, with a Transpose where the layout changes. Layers that are the identity at
/// inference (Dropout, RandomFlip, RandomTranslation) are left out; the weights are initializers
/// named "<layer>/<weight>" ("dense/kernel"). Every layer class needs an exporter: a layer without
/// one, an activation without an ONNX form or an opset out of range throws kiln::Error
/// "[export_onnx] ..." naming it, before anything is written. A build without libonnx throws
/// "[export_onnx] kiln was built without ONNX".
void export_onnx(const Model& model, const std::string& path, const OnnxOptions& options = {});

}  // namespace kiln
