// Weights as ONNX initializers.
#include "onnx/tensors.h"

#if KILN_WITH_ONNX

#include "kiln/error.h"
#include "kiln/layer.h"

namespace kiln::onnx_export {

namespace {

const Tensor& find_weight(const Layer& layer, const std::string& weight) {
  for (const auto& w : layer.all_weights())
    if (w.name == weight) return w.value;
  throw Error("export_onnx", "layer '" + layer.name() + "' has no weight '" + weight + "'; expected a built layer");
}

}  // namespace

std::vector<float> host_floats(const Tensor& t) {
  return t.astype(DType::Float32).to(Device::cpu()).to_vector<float>();
}

std::string weight_initializer(GraphBuilder& builder, const Layer& layer, const std::string& weight) {
  return builder.cached(layer.name() + "/" + weight, [&] {
    const Tensor& w = find_weight(layer, weight);
    return builder.constant(weight, host_floats(w), w.shape().dims());
  });
}

std::string conv_kernel_initializer(GraphBuilder& builder, const Layer& layer, const std::string& weight) {
  return builder.cached(layer.name() + "/" + weight + "/oihw", [&] {
    const Tensor& w = find_weight(layer, weight);
    if (w.ndim() != 4)
      throw Error("export_onnx", "layer '" + layer.name() + "' has kernel " + w.shape().str() +
                                     "; expected [height, width, in_channels, filters]");
    const std::vector<float> hwio = host_floats(w);
    const int64_t kh = w.size(0), kw = w.size(1), c = w.size(2), f = w.size(3);
    std::vector<float> oihw(hwio.size());
    for (int64_t i = 0; i < kh; ++i)
      for (int64_t j = 0; j < kw; ++j)
        for (int64_t ci = 0; ci < c; ++ci)
          for (int64_t o = 0; o < f; ++o)
            oihw[static_cast<std::size_t>(((o * c + ci) * kh + i) * kw + j)] =
                hwio[static_cast<std::size_t>(((i * kw + j) * c + ci) * f + o)];
    return builder.constant(weight, oihw, {f, c, kh, kw});
  });
}

}  // namespace kiln::onnx_export

#endif  // KILN_WITH_ONNX
