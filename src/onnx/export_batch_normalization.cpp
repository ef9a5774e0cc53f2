// BatchNormalization at inference (moving statistics): ONNX's BatchNormalization, channels_first
// (its channel axis is 1), or with fold_batch_norm folded into the Conv or Gemm that makes its input.
#include "onnx/exporter.h"

#if KILN_WITH_ONNX

#include <cmath>
#include <cstring>

#include "kiln/layers/batch_normalization.h"
#include "onnx/tensors.h"

namespace kiln::onnx_export {
namespace {

struct Statistics {
  std::vector<float> gamma, beta, mean, variance;
};

Statistics statistics(const layers::BatchNormalization& layer, int64_t channels) {
  Statistics s;
  for (const auto& w : layer.all_weights()) {
    if (w.name == "gamma") s.gamma = host_floats(w.value);
    if (w.name == "beta") s.beta = host_floats(w.value);
    if (w.name == "moving_mean") s.mean = host_floats(w.value);
    if (w.name == "moving_variance") s.variance = host_floats(w.value);
  }
  const auto n = static_cast<std::size_t>(channels);
  if (s.gamma.empty()) s.gamma.assign(n, 1.0F);  // scale=False
  if (s.beta.empty()) s.beta.assign(n, 0.0F);    // center=False
  return s;
}

std::vector<float> floats_of(const onnx::TensorProto& t) {
  std::vector<float> v(t.raw_data().size() / sizeof(float));
  std::memcpy(v.data(), t.raw_data().data(), v.size() * sizeof(float));
  return v;
}

void set_floats(onnx::TensorProto& t, const std::vector<float>& v) {
  t.set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
}

// y = x * inv + (beta - mean * inv), inv = gamma / sqrt(variance + epsilon), moved into the affine
// node before it: kernel slices of channel c times inv[c], bias b[c] * inv[c] + beta[c] - mean[c] *
// inv[c]. Only where that node's output is read by this layer alone (and the node belongs to a
// layer called once, so its weights are its own).
bool fold(GraphBuilder& b, const LayerCall& call, const Statistics& s, double epsilon) {
  const int in = call.inputs.at(0);
  const std::string x = b.value(in, b.made_in(in));
  const auto affine = b.affine(x);
  if (!affine || affine->value != in || b.readers(in) != 1) return false;
  const std::size_t channels = s.mean.size();
  std::vector<double> inv(channels), shift(channels);
  for (std::size_t c = 0; c < channels; ++c) {
    inv[c] = static_cast<double>(s.gamma[c]) / std::sqrt(static_cast<double>(s.variance[c]) + epsilon);
    shift[c] = static_cast<double>(s.beta[c]) - static_cast<double>(s.mean[c]) * inv[c];
  }
  onnx::TensorProto* weight = b.initializer(affine->weight);
  if (weight == nullptr) return false;
  std::vector<float> w = floats_of(*weight);
  // Conv's [F, C, KH, KW]: channel-major blocks; Gemm's [in, units]: the channel is the column.
  const std::size_t block = w.size() / channels;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const std::size_t c = affine->channel_axis == 0 ? i / block : i % channels;
    w[i] = static_cast<float>(static_cast<double>(w[i]) * inv[c]);
  }
  set_floats(*weight, w);
  onnx::NodeProto& node = b.node_at(affine->node_index);
  std::vector<float> bias(channels, 0.0F);
  onnx::TensorProto* bias_tensor = nullptr;
  if (node.input_size() > affine->bias_input) {
    bias_tensor = b.initializer(node.input(affine->bias_input));
    if (bias_tensor == nullptr) return false;
    bias = floats_of(*bias_tensor);
  }
  for (std::size_t c = 0; c < channels; ++c) bias[c] = static_cast<float>(bias[c] * inv[c] + shift[c]);
  if (bias_tensor != nullptr) {
    set_floats(*bias_tensor, bias);
  } else {
    node.add_input(b.constant("folded_bias", bias, {static_cast<int64_t>(channels)}));
  }
  b.alias(call.output, in);
  return true;
}

const RegisterExporter batch_normalization("BatchNormalization", [](GraphBuilder& b, const LayerCall& call) {
  const auto& layer = layer_as<layers::BatchNormalization>(call);
  const int in = call.inputs.at(0);
  const Shape& shape = b.shape(in);
  const int64_t channels = shape[shape.ndim() - 1];
  const double epsilon = layer.options().epsilon;
  if (b.options().fold_batch_norm && fold(b, call, statistics(layer, channels), epsilon)) return;
  const Layout layout = b.rank(in) >= 3 ? Layout::ChannelsFirst : Layout::ChannelsLast;
  const std::string x = b.value(in, layout);
  const auto c = std::vector<int64_t>{channels};
  const auto& o = layer.options();
  const std::string gamma = o.scale
                                ? weight_initializer(b, layer, "gamma")
                                : b.constant("gamma", std::vector<float>(static_cast<std::size_t>(channels), 1.0F), c);
  const std::string beta = o.center
                               ? weight_initializer(b, layer, "beta")
                               : b.constant("beta", std::vector<float>(static_cast<std::size_t>(channels), 0.0F), c);
  auto& n = b.node_to(
      "BatchNormalization",
      {x, gamma, beta, weight_initializer(b, layer, "moving_mean"), weight_initializer(b, layer, "moving_variance")},
      b.result_name(call, layout));
  set_attr(n, "epsilon", static_cast<float>(epsilon));
  b.define(call.output, n.output(0), layout);
});

}  // namespace
}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
