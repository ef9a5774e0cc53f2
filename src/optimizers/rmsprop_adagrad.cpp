// RMSprop and Adagrad: option checks, their rules' descriptions, configs and registration.
#include "backend/backend.h"
#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/optimizers.h"
#include "optimizers/option_fields.h"

namespace kiln::optimizers {

// ---- RMSprop ----

RMSprop::RMSprop(RMSpropOptions options) : options_(std::move(options)) {
  check_common("RMSprop", common());
  check_finite("RMSprop", "epsilon", options_.epsilon);
  if (!(options_.rho >= 0 && options_.rho < 1))
    throw Error("RMSprop", "rho is " + std::to_string(options_.rho) + "; expected a value in [0, 1)");
  if (!(options_.momentum >= 0 && options_.momentum <= 1))
    throw Error("RMSprop", "momentum is " + std::to_string(options_.momentum) + "; expected a value in [0, 1]");
  if (!(options_.epsilon > 0)) throw Error("RMSprop", "epsilon must be positive");
}

void RMSprop::describe(backend::UpdateRule& rule) const {
  rule = {};
  rule.kind = backend::UpdateKind::Rmsprop;
  rule.rho = options_.rho;
  rule.momentum = options_.momentum;
  rule.epsilon = options_.epsilon;
  rule.centered = options_.centered;
  describe_common(rule);
}

std::vector<std::string> RMSprop::rule_slot_names() const {
  std::vector<std::string> names{"velocity"};
  if (options_.momentum > 0) names.push_back("momentum");
  if (options_.centered) names.push_back("average_gradient");
  return names;
}

Config RMSprop::get_config() const {
  Config config = common_config(common());
  config["rho"] = options_.rho;
  config["momentum"] = options_.momentum;
  config["epsilon"] = options_.epsilon;
  config["centered"] = options_.centered;
  return config;
}

RMSprop RMSprop::from_config(const Config& config) {
  const io::JsonFields f(config, "the RMSprop config", "from_config");
  RMSpropOptions o;  // absent fields keep Keras' defaults
  set_common(o, common_from_config("RMSprop", config, common_options(o)));
  o.rho = number_or(f, "rho", o.rho);
  o.momentum = number_or(f, "momentum", o.momentum);
  o.epsilon = number_or(f, "epsilon", o.epsilon);
  o.centered = f.has("centered") ? f.boolean("centered") : o.centered;
  return RMSprop(o);
}

// ---- Adagrad ----

Adagrad::Adagrad(AdagradOptions options) : options_(std::move(options)) {
  check_common("Adagrad", common());
  check_finite("Adagrad", "epsilon", options_.epsilon);
  if (!(options_.epsilon > 0)) throw Error("Adagrad", "epsilon must be positive");
  if (!(std::isfinite(options_.initial_accumulator_value) && options_.initial_accumulator_value >= 0))
    throw Error("Adagrad", "initial_accumulator_value is " + std::to_string(options_.initial_accumulator_value) +
                               "; expected a finite number >= 0");
}

void Adagrad::describe(backend::UpdateRule& rule) const {
  rule = {};
  rule.kind = backend::UpdateKind::Adagrad;
  rule.epsilon = options_.epsilon;
  describe_common(rule);
}

double Adagrad::initial_slot_value(std::size_t slot) const {
  return slot == 0 ? options_.initial_accumulator_value : 0.0;  // the accumulator; the EMA starts at 0
}

Config Adagrad::get_config() const {
  Config config = common_config(common());
  config["initial_accumulator_value"] = options_.initial_accumulator_value;
  config["epsilon"] = options_.epsilon;
  return config;
}

Adagrad Adagrad::from_config(const Config& config) {
  const io::JsonFields f(config, "the Adagrad config", "from_config");
  AdagradOptions o;  // absent fields keep Keras' defaults
  set_common(o, common_from_config("Adagrad", config, common_options(o)));
  o.initial_accumulator_value = number_or(f, "initial_accumulator_value", o.initial_accumulator_value);
  o.epsilon = number_or(f, "epsilon", o.epsilon);
  return Adagrad(o);
}

namespace {
const RegisterOptimizer<RMSprop> rmsprop_registered("RMSprop", "rmsprop");
const RegisterOptimizer<Adagrad> adagrad_registered("Adagrad", "adagrad");
}  // namespace

}  // namespace kiln::optimizers
