// Optimizer base: slot bookkeeping, the iteration count and the optimizer registry.
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/optimizers.h"
#include "optimizers/device_update.h"

namespace kiln {

void Optimizer::step(const std::vector<Tensor>& params) {
  NoGradGuard no_grad;
  if (slots_.empty()) {
    slots_.resize(params.size());
    for (std::size_t i = 0; i < params.size(); ++i)
      for (std::size_t s = 0; s < slot_names().size(); ++s)
        slots_[i].push_back(Tensor::zeros(params[i].shape(), params[i].dtype(), params[i].device()));
  } else if (slots_.size() != params.size()) {
    throw Error(name(), "step() got " + std::to_string(params.size()) + " parameters after " +
                            std::to_string(slots_.size()) + " before; expected the same parameters every step");
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor param = params[i];
    const Tensor grad = param.grad();
    if (!grad.defined()) continue;
    for (Tensor& slot : slots_[i])
      if (slot.device() != param.device()) slot = slot.to(param.device());
    update(param, grad, slots_[i], iterations_ + 1);
  }
  ++iterations_;
}

void Optimizer::restore(std::vector<std::vector<Tensor>> slots, int64_t iterations) {
  slots_ = std::move(slots);
  iterations_ = iterations;
}

std::unique_ptr<optimizers::DeviceUpdate> Optimizer::make_device_update(const std::vector<Tensor>&, int64_t) {
  return nullptr;
}

Registry<std::unique_ptr<Optimizer>>& optimizer_registry() {
  static Registry<std::unique_ptr<Optimizer>> registry("optimizer");
  return registry;
}

std::unique_ptr<Optimizer> optimizers::get(const std::string& name) {
  return optimizer_registry().make(name, Config::object());
}

}  // namespace kiln
