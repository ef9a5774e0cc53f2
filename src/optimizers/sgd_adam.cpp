// SGD and Adam: option checks, then one fused backend update per parameter.
#include "backend/backend.h"
#include "kiln/error.h"
#include "kiln/optimizers.h"

namespace kiln::optimizers {

namespace {
void check_grad(const std::string& op, const Tensor& param, const Tensor& grad) {
  if (grad.shape() != param.shape() || grad.dtype() != param.dtype() || grad.device() != param.device())
    throw Error(op, "gradient " + grad.shape().str() + " does not match its parameter " + param.shape().str());
}
}  // namespace

SGD::SGD(SGDOptions options) : options_(options) {
  if (!(options.learning_rate > 0)) throw Error("SGD", "learning_rate must be positive");
  if (!(options.momentum >= 0 && options.momentum <= 1))
    throw Error("SGD", "momentum is " + std::to_string(options.momentum) + "; expected a value in [0, 1]");
}

void SGD::update(Tensor& param, const Tensor& grad, std::vector<Tensor>& slots, int64_t) {
  check_grad("SGD", param, grad);
  backend::get(param.device())
      .sgd_step(param.dtype(), param.raw_data(), grad.raw_data(), slots.empty() ? nullptr : slots[0].raw_data(),
                param.numel(), options_.learning_rate, options_.momentum, options_.nesterov);
}

Adam::Adam(AdamOptions options) : options_(options) {
  if (!(options.learning_rate > 0)) throw Error("Adam", "learning_rate must be positive");
  if (!(options.beta_1 >= 0 && options.beta_1 < 1) || !(options.beta_2 >= 0 && options.beta_2 < 1))
    throw Error("Adam", "beta_1 and beta_2 must lie in [0, 1)");
  if (!(options.epsilon > 0)) throw Error("Adam", "epsilon must be positive");
}

void Adam::update(Tensor& param, const Tensor& grad, std::vector<Tensor>& slots, int64_t step) {
  check_grad("Adam", param, grad);
  backend::get(param.device())
      .adam_step(param.dtype(), param.raw_data(), grad.raw_data(), slots[0].raw_data(), slots[1].raw_data(),
                 param.numel(), options_.learning_rate, options_.beta_1, options_.beta_2, options_.epsilon, step);
}

}  // namespace kiln::optimizers
