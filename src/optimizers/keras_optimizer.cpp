// KerasOptimizer: Keras' common optimizer options (learning rate or schedule, weight decay,
// clipping, EMA), their checks and config fields, and the eager step through the fused update.
#include <cmath>
#include <map>
#include <sstream>

#include "backend/backend.h"
#include "io/json_fields.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/optimizers.h"
#include "optimizers/device_update.h"
#include "optimizers/option_fields.h"

namespace kiln::optimizers {

namespace {

std::string shown(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

void check_positive(const std::string& op, const char* option, const std::optional<double>& value) {
  if (value && !(std::isfinite(*value) && *value > 0))
    throw Error(op, std::string(option) + " is " + shown(*value) + "; expected a positive number (or none)");
}

}  // namespace

void KerasOptimizer::check_common(const std::string& op, const CommonOptions& c) {
  if (!c.learning_rate.is_schedule()) {
    const double lr = c.learning_rate.at(0);
    if (!std::isfinite(lr)) throw Error(op, "learning_rate is " + std::to_string(lr) + "; expected a finite number");
    if (!(lr > 0)) throw Error(op, "learning_rate must be positive");
  }
  if (c.weight_decay && !(std::isfinite(*c.weight_decay) && *c.weight_decay >= 0))
    throw Error(op, "weight_decay is " + shown(*c.weight_decay) + "; expected a number >= 0 (or none)");
  check_positive(op, "clipnorm", c.clipnorm);
  check_positive(op, "clipvalue", c.clipvalue);
  check_positive(op, "global_clipnorm", c.global_clipnorm);
  const int clips = int(c.clipnorm.has_value()) + int(c.clipvalue.has_value()) + int(c.global_clipnorm.has_value());
  if (clips > 1)
    throw Error(op, "clipnorm, clipvalue and global_clipnorm are " + std::to_string(clips) +
                        " set; expected at most one of them");
  // A schedule's values are checked as the steps use them (step_values).
  if (!c.ema_momentum.is_schedule() && !(c.ema_momentum.at(0) >= 0 && c.ema_momentum.at(0) <= 1))
    throw Error(op, "ema_momentum is " + shown(c.ema_momentum.at(0)) + "; expected a value in [0, 1]");
  if (c.ema_overwrite_frequency && *c.ema_overwrite_frequency < 1)
    throw Error(op, "ema_overwrite_frequency is " + std::to_string(*c.ema_overwrite_frequency) +
                        "; expected an integer >= 1 (or none)");
}

Config KerasOptimizer::common_config(const CommonOptions& c) {
  return {
      {"learning_rate", c.learning_rate.to_config()},
      {"weight_decay", optional_json(c.weight_decay)},
      {"clipnorm", optional_json(c.clipnorm)},
      {"global_clipnorm", optional_json(c.global_clipnorm)},
      {"clipvalue", optional_json(c.clipvalue)},
      {"use_ema", c.use_ema},
      {"ema_momentum", c.ema_momentum.to_config()},
      {"ema_overwrite_frequency", c.ema_overwrite_frequency ? Config(*c.ema_overwrite_frequency) : Config(nullptr)}};
}

CommonOptions KerasOptimizer::common_from_config(const std::string& op, const Config& config, CommonOptions d) {
  const io::JsonFields f(config, "the " + op + " config", "from_config");
  if (f.has("learning_rate"))
    d.learning_rate = LearningRate::from_config(f.at("learning_rate"), "the " + op + " config: learning_rate");
  d.weight_decay = optional_number_or(config, f, "weight_decay", d.weight_decay);
  d.clipnorm = optional_number(f, "clipnorm");
  d.clipvalue = optional_number(f, "clipvalue");
  d.global_clipnorm = optional_number(f, "global_clipnorm");
  if (f.has("use_ema")) d.use_ema = f.boolean("use_ema");
  if (f.has("ema_momentum"))
    d.ema_momentum = LearningRate::from_config(f.at("ema_momentum"), "the " + op + " config: ema_momentum");
  if (f.has("ema_overwrite_frequency")) d.ema_overwrite_frequency = f.integer("ema_overwrite_frequency", 1, INT64_MAX);
  for (const char* unsupported : {"loss_scale_factor", "gradient_accumulation_steps"})
    if (f.has(unsupported)) f.fail(std::string("\"") + unsupported + "\" is set; expected null (not supported)");
  return d;
}

void KerasOptimizer::describe_common(backend::UpdateRule& rule) const {
  const CommonOptions c = common();
  rule.weight_decay = c.weight_decay.has_value();
  rule.weight_decay_rate = c.weight_decay.value_or(0.0);
  rule.clip = c.clipnorm          ? backend::ClipKind::Norm
              : c.global_clipnorm ? backend::ClipKind::GlobalNorm
              : c.clipvalue       ? backend::ClipKind::Value
                                  : backend::ClipKind::None;
  rule.clip_value = c.clipnorm.value_or(c.global_clipnorm.value_or(c.clipvalue.value_or(0.0)));
}

std::vector<std::string> KerasOptimizer::slot_names() const {
  std::vector<std::string> names = rule_slot_names();
  if (common().use_ema) names.push_back("average");  // Keras' name of the moving average
  return names;
}

double KerasOptimizer::learning_rate() const { return common().learning_rate.at(iterations()); }

void KerasOptimizer::set_learning_rate(double value) {
  if (common().learning_rate.is_schedule())
    throw Error(name(),
                "the learning rate is a schedule, so it cannot be set; expected an optimizer made with a number "
                "as its learning_rate");
  if (!(std::isfinite(value) && value >= 0))
    throw Error(name(), "set_learning_rate(" + shown(value) + "); expected a finite number >= 0");
  store_learning_rate(value);
}

void KerasOptimizer::finalize_variable_values(const std::vector<Tensor>& params) {
  if (!common().use_ema || slots().empty()) return;
  if (slots().size() != params.size())
    throw Error(name(), "finalize_variable_values got " + std::to_string(params.size()) +
                            " parameters; the optimizer keeps moving averages of " + std::to_string(slots().size()) +
                            ", expected the parameters it trained");
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor p = params[i];
    p.copy_(slots()[i].back().to(p.device()));
  }
}

void KerasOptimizer::queue_update(const std::vector<Tensor>& params, const std::vector<std::vector<Tensor>>& slots,
                                  const Tensor& sum_squares, const void* table, const int64_t* index,
                                  const double* host_step, const int32_t* skip) const {
  queue_fused_update(*this, params, slots, sum_squares, table, index, host_step, skip);
}

std::unique_ptr<DeviceUpdate> KerasOptimizer::make_device_update(const std::vector<Tensor>& params, int64_t max_steps) {
  return make_fused_update(*this, params, max_steps);
}

void KerasOptimizer::apply(const std::vector<Tensor>& params, std::vector<std::vector<Tensor>>& slots,
                           int64_t iteration) {
  backend::UpdateRule rule;
  describe(rule);
  // One fused update per (device, dtype) group of parameters, in their order.
  std::map<std::pair<std::string, int>, std::vector<std::size_t>> groups;
  for (std::size_t i = 0; i < params.size(); ++i)
    groups[{params[i].device().str(), static_cast<int>(params[i].dtype())}].push_back(i);
  if (groups.size() > 1 && rule.clip == backend::ClipKind::GlobalNorm)
    throw Error(name(),
                "global_clipnorm needs one norm over all gradients, but the parameters differ in device or "
                "dtype; expected them on one device with one dtype");
  for (const auto& [key, members] : groups) {
    std::vector<Tensor> group_params;
    std::vector<std::vector<Tensor>> group_slots;
    for (std::size_t i : members) {
      group_params.push_back(params[i]);
      group_slots.push_back(slots[i]);
    }
    const Tensor& first = group_params.front();
    if (!is_floating(first.dtype()))
      throw Error(name(), "a parameter is " + std::string(dtype_name(first.dtype())) + "; expected floating point");
    // Gradient norms only where a clip needs them: no allocation or fill per step otherwise.
    const bool norms = rule.clip == backend::ClipKind::Norm || rule.clip == backend::ClipKind::GlobalNorm;
    const Tensor sums =
        norms ? Tensor::empty({static_cast<int64_t>(members.size()) + 1}, first.dtype(), first.device()) : Tensor();
    double row[backend::kStepValues];
    if (first.dtype() == DType::Float64) {
      const auto v = step_values<double>(*this, rule, iteration);
      for (int k = 0; k < backend::kStepValues; ++k) row[k] = v[static_cast<std::size_t>(k)];
    } else {
      const auto v = step_values<float>(*this, rule, iteration);
      for (int k = 0; k < backend::kStepValues; ++k) row[k] = v[static_cast<std::size_t>(k)];
    }
    queue_update(group_params, group_slots, sums, nullptr, nullptr, row, nullptr);
  }
}

}  // namespace kiln::optimizers
