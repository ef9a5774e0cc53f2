// export_onnx: the model's graph walked call by call through the layer exporters, inputs and
// outputs with a dynamic batch dimension, the file written atomically.
#include "kiln/error.h"
#include "kiln/model.h"
#include "kiln/onnx.h"

#if KILN_WITH_ONNX

#include <climits>
#include <map>

#include "io/atomic_file.h"
#include "kiln/version.h"
#include "onnx/exporter.h"

namespace kiln {

namespace onnx_export {
namespace {

constexpr int64_t kMinOpset = 13;  // Softmax on one axis, Split/Slice/Pad taking tensors as inputs
constexpr int64_t kMaxOpset = 21;

// The IR version that goes with an opset (onnx/helper.py's VERSION_TABLE): the lowest that allows it,
// so older runtimes read the file.
int64_t ir_version(int64_t opset) {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

// A float32 [batch, shape...] value description.
void describe(onnx::ValueInfoProto& info, const std::string& name, const Shape& shape, const std::string& batch) {
  info.set_name(name);
  auto& tensor = *info.mutable_type()->mutable_tensor_type();
  tensor.set_elem_type(onnx::TensorProto::FLOAT);
  auto& dims = *tensor.mutable_shape();
  dims.add_dim()->set_dim_param(batch);
  for (int64_t d : shape.dims()) dims.add_dim()->set_dim_value(d);
}

std::string exportable_classes() {
  std::string known;
  for (const auto& name : layer_exporters().names()) known += (known.empty() ? "" : ", ") + name;
  return known;
}

}  // namespace
}  // namespace onnx_export

void export_onnx(const Model& model, const std::string& path, const OnnxOptions& options) {
  using namespace onnx_export;
  if (options.opset < kMinOpset || options.opset > kMaxOpset)
    throw Error("export_onnx", "opset " + std::to_string(options.opset) + " is not supported; expected " +
                                   std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset));
  if (options.batch_dim.empty())
    throw Error("export_onnx", "batch_dim is empty; expected a name for the batch dimension, such as \"batch\"");
  if (!model.built())
    throw Error("export_onnx", "model '" + model.name() +
                                   "' is not built; expected a built model (give input_shape, "
                                   "call build() or fit/predict once)");
  const model::Graph& graph = model.graph();
  // Every class needs an exporter: refuse before writing anything.
  for (const auto& node : graph.nodes())
    if (!layer_exporters().contains(node.layer->class_name()))
      throw Error("export_onnx", "layer '" + node.layer->name() + "' of class " + node.layer->class_name() +
                                     " has no ONNX exporter; expected layers of the classes " + exportable_classes());

  onnx::ModelProto proto;
  proto.set_ir_version(ir_version(options.opset));
  proto.set_producer_name("kiln");
  proto.set_producer_version(kiln::version());
  auto& opset = *proto.add_opset_import();
  opset.set_domain("");
  opset.set_version(options.opset);
  onnx::GraphProto& g = *proto.mutable_graph();
  g.set_name(model.name());

  GraphBuilder builder(g, graph, options);
  for (int i = 0; i < graph.input_count(); ++i) {
    const std::string& name = graph.input_names()[static_cast<std::size_t>(i)];
    describe(*g.add_input(), name, graph.shape(i), options.batch_dim);
    builder.fresh(name, true);
    builder.define(i, name, Layout::ChannelsLast);
  }
  // Every layer's and output's name is taken before any node is named, so no internal value can
  // take the name of a later layer's output.
  const std::vector<std::string> output_names = model.output_names();
  for (const auto& layer : graph.layers()) builder.fresh(layer->name(), true);

  std::map<const Layer*, int> calls;
  for (const auto& node : graph.nodes()) {
    const int call_number = calls[node.layer.get()]++;
    std::string name = node.layer->name();
    if (call_number > 0) name = builder.fresh(name + "_" + std::to_string(call_number), true);
    const LayerCall call{*node.layer, node.inputs, node.output, name};
    builder.begin_call(name);
    layer_exporters().make(node.layer->class_name(), Config())(builder, call);
  }

  // Outputs: channels_last under the output layers' names (an Identity where the value has another
  // name: an output that is the identity of another value, or one listed twice).
  builder.begin_call("");
  std::map<std::string, int> output_taken;
  for (std::size_t k = 0; k < graph.outputs().size(); ++k) {
    const int v = graph.outputs()[k];
    std::string out = k < output_names.size() ? output_names[k] : "output_" + std::to_string(k);
    if (output_taken[out]++ > 0) out = builder.fresh(out, true);
    if (!builder.has(v, Layout::ChannelsLast)) {
      // Made channels_first: the Transpose back makes the output itself.
      auto& t = builder.node_to("Transpose", {builder.value(v, Layout::ChannelsFirst)}, out);
      set_attr(t, "perm", layout_perm(builder.rank(v), false));
    } else if (const std::string value = builder.value(v, Layout::ChannelsLast); value != out) {
      // Another name (an output that passes another layer's value through, or one listed twice).
      builder.node_to("Identity", {value}, out).set_name(out + "/identity");
    }
    describe(*g.add_output(), out, graph.shape(v), options.batch_dim);
  }

  const std::size_t bytes = proto.ByteSizeLong();
  if (bytes > static_cast<std::size_t>(INT_MAX))
    throw Error("export_onnx", "the model needs " + std::to_string(bytes) +
                                   " bytes; expected at most 2 GiB (protobuf's limit for one ONNX file)");
  std::string data;
  if (!proto.SerializeToString(&data)) throw Error("export_onnx", "protobuf could not serialize the model");
  io::write_file_atomically(path, {reinterpret_cast<const uint8_t*>(data.data()), data.size()});
}

}  // namespace kiln

#else  // KILN_WITH_ONNX

namespace kiln {

void export_onnx(const Model& /*model*/, const std::string& /*path*/, const OnnxOptions& /*options*/) {
  throw Error("export_onnx", "kiln was built without ONNX; rebuild with libonnx-dev (and libprotobuf-dev) installed");
}

}  // namespace kiln

#endif  // KILN_WITH_ONNX
