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
    const std::vector<std::string> names = slot_names();
    for (std::size_t i = 0; i < params.size(); ++i)
      for (std::size_t s = 0; s < names.size(); ++s)
        slots_[i].push_back(
            Tensor::full(params[i].shape(), initial_slot_value(s), params[i].dtype(), params[i].device()));
  } else if (slots_.size() != params.size()) {
    throw Error(name(), "step() got " + std::to_string(params.size()) + " parameters after " +
                            std::to_string(slots_.size()) + " before; expected the same parameters every step");
  }
  for (std::size_t i = 0; i < params.size(); ++i)
    for (Tensor& slot : slots_[i])
      if (slot.device() != params[i].device()) slot = slot.to(params[i].device());
  apply(params, slots_, iterations_);
  ++iterations_;
}

void Optimizer::apply(const std::vector<Tensor>& params, std::vector<std::vector<Tensor>>& slots, int64_t iteration) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor param = params[i];
    const Tensor grad = param.grad();
    if (!grad.defined()) continue;
    update(param, grad, slots[i], iteration + 1);
  }
}

void Optimizer::update(Tensor&, const Tensor&, std::vector<Tensor>&, int64_t) {
  throw Error(name(), "the optimizer defines no update; expected an override of update() or apply()");
}

double Optimizer::initial_slot_value(std::size_t) const { return 0.0; }

double Optimizer::learning_rate() const {
  throw Error(name(), "the optimizer has no learning rate; expected one of Keras' optimizers");
}

void Optimizer::set_learning_rate(double) {
  throw Error(name(), "the optimizer has no settable learning rate; expected one of Keras' optimizers");
}

void Optimizer::finalize_variable_values(const std::vector<Tensor>&) {}

Tensor Optimizer::scale_loss(const Tensor& loss) { return loss; }

bool Optimizer::skips_non_finite_steps() const { return false; }

std::vector<std::pair<std::string, Tensor>> Optimizer::state_variables() const { return {}; }

void Optimizer::restore_state_variables(const std::vector<std::pair<std::string, Tensor>>& values) {
  if (!values.empty())
    throw Error(name(), "got a value for state variable '" + values.front().first +
                            "'; expected none (the optimizer keeps no state beyond its slots)");
}

void Optimizer::synchronize() {}

void Optimizer::restore(std::vector<std::vector<Tensor>> slots, int64_t iterations) {
  slots_ = std::move(slots);
  iterations_ = iterations;
}

std::unique_ptr<optimizers::DeviceUpdate> Optimizer::make_device_update(const std::vector<Tensor>&, int64_t) {
  return nullptr;
}

std::vector<SlotPlace> Optimizer::average_places(const std::vector<Tensor>& params) const {
  const std::vector<std::string> names = slot_names();
  std::vector<SlotPlace> order;
  for (std::size_t s = 0; s < names.size(); ++s)
    if (names[s] == "average")
      for (std::size_t p = 0; p < params.size(); ++p) order.push_back({p, s});
  return order;
}

std::vector<SlotPlace> Optimizer::keras_variable_order(const std::vector<Tensor>& params) const {
  const std::vector<std::string> names = slot_names();
  std::vector<SlotPlace> order = average_places(params);
  for (std::size_t s = 0; s < names.size(); ++s)
    if (names[s] != "average")
      for (std::size_t p = 0; p < params.size(); ++p) order.push_back({p, s});
  return order;
}

Registry<std::unique_ptr<Optimizer>>& optimizer_registry() {
  static Registry<std::unique_ptr<Optimizer>> registry("optimizer");
  return registry;
}

std::unique_ptr<Optimizer> optimizers::get(const std::string& name) {
  return optimizer_registry().make(name, Config::object());
}

}  // namespace kiln
