// Layer base: weight bookkeeping shared by every layer.
#include "kiln/error.h"
#include "kiln/layers.h"

namespace kiln {

void Layer::build(const Shape& input_shape, Generator&, Device) {
  compute_output_shape(input_shape);  // validates the input
  built_ = true;
}

Tensor& Layer::add_weight(const std::string& name, Tensor value) {
  value.set_requires_grad(true);
  weights_.emplace_back(name, std::move(value));
  return weights_.back().second;
}

std::vector<Tensor> Layer::weights() const {
  std::vector<Tensor> out;
  for (const auto& [name, w] : named_weights()) out.push_back(w);
  return out;
}

void Layer::set_weight(const std::string& weight_name, const Tensor& value) {
  for (auto& [name, w] : weights_) {
    if (name != weight_name) continue;
    if (value.shape() != w.shape())
      throw Error(name_, "weight '" + weight_name + "' has shape " + w.shape().str() + "; got a value of shape " +
                             value.shape().str());
    w.copy_(value.astype(w.dtype()));
    return;
  }
  throw Error(name_, "has no weight named '" + weight_name + "'");
}

void Layer::to(Device device) {
  for (auto& [name, w] : weights_) {
    if (w.device() == device) continue;
    Tensor moved = w.detach().to(device);
    moved.set_requires_grad(true);
    w = moved;
  }
}

}  // namespace kiln
