// SGD and Adam: option checks, one fused backend update per parameter, configs and registration.
#include <cmath>

#include "backend/backend.h"
#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/optimizers.h"
#include "optimizers/device_update.h"

namespace kiln::optimizers {

namespace {
void check_grad(const std::string& op, const Tensor& param, const Tensor& grad) {
  if (grad.shape() != param.shape() || grad.dtype() != param.dtype() || grad.device() != param.device())
    throw Error(op, "gradient " + grad.shape().str() + " does not match its parameter " + param.shape().str());
}

double number_or(const io::JsonFields& f, const std::string& key, double fallback) {
  return f.has(key) ? f.number(key) : fallback;
}

void check_finite(const std::string& op, const char* option, double value) {
  if (!std::isfinite(value))
    throw Error(op, std::string(option) + " is " + std::to_string(value) + "; expected a finite number");
}
}  // namespace

SGD::SGD(SGDOptions options) : options_(options) {
  check_finite("SGD", "learning_rate", options.learning_rate);
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
  check_finite("Adam", "learning_rate", options.learning_rate);
  check_finite("Adam", "epsilon", options.epsilon);
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

std::vector<std::string> SGD::slot_names() const {
  return options_.momentum != 0.0 ? std::vector<std::string>{"momentum"} : std::vector<std::string>{};
}

Config SGD::get_config() const {
  return {{"learning_rate", options_.learning_rate}, {"momentum", options_.momentum}, {"nesterov", options_.nesterov}};
}

SGD SGD::from_config(const Config& config) {
  const io::JsonFields f(config, "the SGD config", "from_config");
  const SGDOptions d;  // absent fields keep Keras' defaults
  return SGD({.learning_rate = number_or(f, "learning_rate", d.learning_rate),
              .momentum = number_or(f, "momentum", d.momentum),
              .nesterov = f.has("nesterov") ? f.boolean("nesterov") : d.nesterov});
}

std::unique_ptr<DeviceUpdate> SGD::make_device_update(const std::vector<Tensor>& params, int64_t) {
  return make_sgd_update(*this, params);
}

Config Adam::get_config() const {
  return {{"learning_rate", options_.learning_rate},
          {"beta_1", options_.beta_1},
          {"beta_2", options_.beta_2},
          {"epsilon", options_.epsilon}};
}

Adam Adam::from_config(const Config& config) {
  const io::JsonFields f(config, "the Adam config", "from_config");
  const AdamOptions d;  // absent fields keep Keras' defaults
  return Adam({.learning_rate = number_or(f, "learning_rate", d.learning_rate),
               .beta_1 = number_or(f, "beta_1", d.beta_1),
               .beta_2 = number_or(f, "beta_2", d.beta_2),
               .epsilon = number_or(f, "epsilon", d.epsilon)});
}

std::unique_ptr<DeviceUpdate> Adam::make_device_update(const std::vector<Tensor>& params, int64_t max_steps) {
  return make_adam_update(*this, params, max_steps);
}

namespace {
const RegisterOptimizer<SGD> sgd_registered("SGD", "sgd");
const RegisterOptimizer<Adam> adam_registered("Adam", "adam");
}  // namespace

}  // namespace kiln::optimizers
