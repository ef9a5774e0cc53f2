// SGD, Adam and AdamW: option checks, their rules' descriptions, configs and registration.
#include <cmath>

#include "backend/backend.h"
#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/optimizers.h"
#include "optimizers/option_fields.h"

namespace kiln::optimizers {

namespace {
AdamOptions adam_options_of(const AdamWOptions& w) {
  return {.learning_rate = w.learning_rate,
          .beta_1 = w.beta_1,
          .beta_2 = w.beta_2,
          .epsilon = w.epsilon,
          .weight_decay = w.weight_decay,
          .clipnorm = w.clipnorm,
          .clipvalue = w.clipvalue,
          .global_clipnorm = w.global_clipnorm,
          .use_ema = w.use_ema,
          .ema_momentum = w.ema_momentum,
          .ema_overwrite_frequency = w.ema_overwrite_frequency};
}
}  // namespace

// ---- SGD ----

SGD::SGD(SGDOptions options) : options_(std::move(options)) {
  check_common("SGD", common());
  if (!(options_.momentum >= 0 && options_.momentum <= 1))
    throw Error("SGD", "momentum is " + std::to_string(options_.momentum) + "; expected a value in [0, 1]");
}

void SGD::describe(backend::UpdateRule& rule) const {
  rule = {};
  rule.kind = backend::UpdateKind::Sgd;
  rule.momentum = options_.momentum;
  rule.nesterov = options_.nesterov;
  describe_common(rule);
}

std::vector<std::string> SGD::rule_slot_names() const {
  return options_.momentum != 0.0 ? std::vector<std::string>{"momentum"} : std::vector<std::string>{};
}

Config SGD::get_config() const {
  Config config = common_config(common());
  config["momentum"] = options_.momentum;
  config["nesterov"] = options_.nesterov;
  return config;
}

SGD SGD::from_config(const Config& config) {
  const io::JsonFields f(config, "the SGD config", "from_config");
  SGDOptions o;  // absent fields keep Keras' defaults
  set_common(o, common_from_config("SGD", config, common_options(o)));
  o.momentum = number_or(f, "momentum", o.momentum);
  o.nesterov = f.has("nesterov") ? f.boolean("nesterov") : o.nesterov;
  return SGD(o);
}

// ---- Adam ----

Adam::Adam(AdamOptions options) : Adam("Adam", std::move(options)) {}

Adam::Adam(const std::string& op, AdamOptions options) : options_(std::move(options)) {
  check_common(op, common());
  check_finite(op, "epsilon", options_.epsilon);
  if (!(options_.beta_1 >= 0 && options_.beta_1 < 1) || !(options_.beta_2 >= 0 && options_.beta_2 < 1))
    throw Error(op, "beta_1 and beta_2 must lie in [0, 1)");
  if (!(options_.epsilon > 0)) throw Error(op, "epsilon must be positive");
}

void Adam::describe(backend::UpdateRule& rule) const {
  rule = {};
  rule.kind = backend::UpdateKind::Adam;
  rule.beta_1 = options_.beta_1;
  rule.beta_2 = options_.beta_2;
  rule.epsilon = options_.epsilon;
  describe_common(rule);
}

std::vector<SlotPlace> Adam::keras_variable_order(const std::vector<Tensor>& params) const {
  std::vector<SlotPlace> order = average_places(params);
  for (std::size_t p = 0; p < params.size(); ++p) {
    order.push_back({p, 0});  // momentum
    order.push_back({p, 1});  // velocity
  }
  return order;
}

Config Adam::get_config() const {
  Config config = common_config(common());
  config["beta_1"] = options_.beta_1;
  config["beta_2"] = options_.beta_2;
  config["epsilon"] = options_.epsilon;
  config["amsgrad"] = false;
  return config;
}

namespace {
// Adam's own fields of `config` over `o`; AMSGrad is refused rather than silently dropped.
void read_adam_fields(const std::string& op, const Config& config, AdamOptions& o) {
  const io::JsonFields f(config, "the " + op + " config", "from_config");
  o.beta_1 = number_or(f, "beta_1", o.beta_1);
  o.beta_2 = number_or(f, "beta_2", o.beta_2);
  o.epsilon = number_or(f, "epsilon", o.epsilon);
  if (f.has("amsgrad") && f.boolean("amsgrad"))
    f.fail("\"amsgrad\" is true; expected false (AMSGrad is not supported)");
}
}  // namespace

Adam Adam::from_config(const Config& config) {
  AdamOptions o;  // absent fields keep Keras' defaults
  set_common(o, common_from_config("Adam", config, common_options(o)));
  read_adam_fields("Adam", config, o);
  return Adam(o);
}

// ---- AdamW ----

AdamW::AdamW(const AdamWOptions& options) : Adam("AdamW", adam_options_of(options)) {}

AdamW AdamW::from_config(const Config& config) {
  AdamWOptions w;  // Keras' AdamW defaults, weight_decay 0.004 included
  AdamOptions o = adam_options_of(w);
  set_common(o, common_from_config("AdamW", config, common_options(o)));
  read_adam_fields("AdamW", config, o);
  if (!o.weight_decay)
    throw Error("from_config", "the AdamW config: \"weight_decay\" is null; expected a number (AdamW needs one)");
  return AdamW({.learning_rate = o.learning_rate,
                .weight_decay = *o.weight_decay,
                .beta_1 = o.beta_1,
                .beta_2 = o.beta_2,
                .epsilon = o.epsilon,
                .clipnorm = o.clipnorm,
                .clipvalue = o.clipvalue,
                .global_clipnorm = o.global_clipnorm,
                .use_ema = o.use_ema,
                .ema_momentum = o.ema_momentum,
                .ema_overwrite_frequency = o.ema_overwrite_frequency});
}

std::unique_ptr<Optimizer> AdamW::clone() const {
  const AdamOptions& o = options();
  return std::make_unique<AdamW>(AdamWOptions{.learning_rate = o.learning_rate,
                                              .weight_decay = o.weight_decay.value_or(0.0),
                                              .beta_1 = o.beta_1,
                                              .beta_2 = o.beta_2,
                                              .epsilon = o.epsilon,
                                              .clipnorm = o.clipnorm,
                                              .clipvalue = o.clipvalue,
                                              .global_clipnorm = o.global_clipnorm,
                                              .use_ema = o.use_ema,
                                              .ema_momentum = o.ema_momentum,
                                              .ema_overwrite_frequency = o.ema_overwrite_frequency});
}

namespace {
const RegisterOptimizer<SGD> sgd_registered("SGD", "sgd");
const RegisterOptimizer<Adam> adam_registered("Adam", "adam");
const RegisterOptimizer<AdamW> adamw_registered("AdamW", "adamw");
}  // namespace

}  // namespace kiln::optimizers
