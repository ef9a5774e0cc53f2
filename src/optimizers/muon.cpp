// Muon (keras.optimizers.Muon): the Newton-Schulz orthogonalization of each matrix's momentum with
// tensor ops on the weights' device, then one fused pass per rule (backend/optimizer_update.h's
// Muon and Adam kinds) that stores the slots and moves the weights. Nothing here reads the device,
// so the same code serves the eager step, a recorded step and loss scaling's skipped steps.
#include <algorithm>
#include <cmath>
#include <regex>

#include "backend/backend.h"
#include "io/json_fields.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "kiln/optimizers.h"
#include "optimizers/device_update.h"
#include "optimizers/option_fields.h"
#include "tensor/tensor_impl.h"

namespace kiln::optimizers {

namespace {

constexpr const char* kOp = "Muon";

// The rows and columns of the matrix the Muon step sees in `shape`: all axes but the last, the last.
std::pair<int64_t, int64_t> matrix_of(const Shape& shape) {
  int64_t rows = 1;
  for (int64_t i = 0; i + 1 < shape.ndim(); ++i) rows *= shape[i];
  return {rows, shape[shape.ndim() - 1]};
}

// Keras' zeropower_via_newtonschulz5 in its order of operations: the wide orientation, unit
// Frobenius norm, then x = a x + (b A + (c A) A) x with A = x x^T, each product in the weights' dtype.
Tensor newton_schulz(Tensor x, const MuonOptions& o) {
  const bool tall = x.shape()[0] > x.shape()[1];
  if (tall) x = permute(x, {1, 0});
  x = div(x, add(sqrt(sum(square(x))), 1e-7));
  for (int64_t k = 0; k < o.ns_steps; ++k) {
    const Tensor a = matmul(x, permute(x, {1, 0}));
    const Tensor b = add(mul(a, o.muon_b), matmul(mul(a, o.muon_c), a));
    x = add(mul(x, o.muon_a), matmul(b, x));
  }
  return tall ? permute(x, {1, 0}) : x;
}

void check_open_unit(const char* option, double value) {
  if (!(value >= 0 && value < 1))
    throw Error(kOp, std::string(option) + " is " + std::to_string(value) + "; expected a value in [0, 1)");
}

void check_decay(const char* option, const std::optional<double>& value) {
  if (value && !(std::isfinite(*value) && *value >= 0))
    throw Error(kOp, std::string(option) + " is " + std::to_string(*value) + "; expected a number >= 0 (or none)");
}

}  // namespace

Muon::Muon(MuonOptions options) : options_(std::move(options)) {
  const CommonOptions c = common();
  if (c.clipnorm || c.clipvalue || c.global_clipnorm)
    throw Error(kOp,
                "clipnorm, clipvalue and global_clipnorm are not supported by Muon yet; expected them unset (clip "
                "the loss's scale instead, or use AdamW)");
  check_common(kOp, c);
  check_decay("adam_weight_decay", options_.adam_weight_decay);
  check_open_unit("adam_beta_1", options_.adam_beta_1);
  check_open_unit("adam_beta_2", options_.adam_beta_2);
  check_finite(kOp, "epsilon", options_.epsilon);
  if (!(options_.epsilon > 0)) throw Error(kOp, "epsilon must be positive");
  check_finite(kOp, "muon_a", options_.muon_a);
  check_finite(kOp, "muon_b", options_.muon_b);
  check_finite(kOp, "muon_c", options_.muon_c);
  check_finite(kOp, "adam_lr_ratio", options_.adam_lr_ratio);
  if (!(options_.adam_lr_ratio >= 0)) throw Error(kOp, "adam_lr_ratio must be >= 0");
  if (!(options_.momentum >= 0 && options_.momentum <= 1))
    throw Error(kOp, "momentum is " + std::to_string(options_.momentum) + "; expected a value in [0, 1]");
  if (options_.ns_steps < 0)
    throw Error(kOp, "ns_steps is " + std::to_string(options_.ns_steps) + "; expected an integer >= 0");
  if (options_.rms_rate && !(std::isfinite(*options_.rms_rate) && *options_.rms_rate > 0))
    throw Error(kOp, "rms_rate is " + std::to_string(*options_.rms_rate) + "; expected a positive number (or none)");
  for (const std::string& pattern : options_.exclude_layers) {
    try {
      excluded_.emplace_back(pattern);
    } catch (const std::regex_error& e) {
      throw Error(kOp, "exclude_layers entry '" + pattern + "' is not a regular expression (" + e.what() +
                           "); expected a pattern searched in variable paths such as \"dense_1/kernel\"");
    }
  }
}

CommonOptions Muon::common() const {
  return {options_.learning_rate,   options_.weight_decay, options_.clipnorm,     options_.clipvalue,
          options_.global_clipnorm, options_.use_ema,      options_.ema_momentum, options_.ema_overwrite_frequency};
}

void Muon::describe(backend::UpdateRule& rule) const {
  rule = {};
  rule.kind = backend::UpdateKind::Adam;
  rule.beta_1 = options_.adam_beta_1;
  rule.beta_2 = options_.adam_beta_2;
  rule.epsilon = options_.epsilon;
  rule.weight_decay = options_.adam_weight_decay.has_value();
  rule.weight_decay_rate = options_.adam_weight_decay.value_or(0.0);
}

bool Muon::uses_muon_step(const Tensor& param) const {
  const int64_t rank = param.shape().ndim();
  if (rank != 2 && !(options_.orthogonalize_conv_kernels && rank >= 3 && rank <= 5)) return false;
  const std::string& path = Tensor(param).impl()->variable_path;
  if (options_.exclude_embeddings) {
    std::string lower = path;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (lower.find("embedding") != std::string::npos) return false;
  }
  for (const std::regex& pattern : excluded_)
    if (std::regex_search(path, pattern)) return false;
  return true;
}

std::vector<SlotPlace> Muon::keras_variable_order(const std::vector<Tensor>& params) const {
  std::vector<SlotPlace> order = average_places(params);
  for (std::size_t p = 0; p < params.size(); ++p) {
    order.push_back({p, 0});                                  // momentum
    if (!uses_muon_step(params[p])) order.push_back({p, 1});  // velocity
  }
  return order;
}

void Muon::queue_update(const std::vector<Tensor>& params, const std::vector<std::vector<Tensor>>& slots,
                        const Tensor& sum_squares, const void* table, const int64_t* index, const double* host_step,
                        const int32_t* skip) const {
  NoGradGuard no_grad;
  const bool ema = options_.use_ema;
  backend::UpdateRule adam_rule;
  describe(adam_rule);
  backend::UpdateRule muon_rule;
  muon_rule.kind = backend::UpdateKind::Muon;
  muon_rule.weight_decay = options_.weight_decay.has_value();
  muon_rule.weight_decay_rate = options_.weight_decay.value_or(0.0);
  std::vector<backend::UpdateTensor> adam_list;
  std::vector<backend::UpdateTensor> muon_list;
  std::vector<Tensor> computed;  // the new momenta and directions, alive until their pass is queued
  const double mu = options_.momentum;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    const Tensor g = p.grad();
    if (!g.defined() && !ema) continue;
    std::vector<Tensor> own = slots[i];
    backend::UpdateTensor t = update_tensor(kOp, p, ema ? &own.back() : nullptr);
    if (!g.defined() || !uses_muon_step(p)) {
      t.slot[0] = own[0].raw_data();
      t.slot[1] = own[1].raw_data();
      t.lr_scale *= options_.adam_lr_ratio;  // the AdamW step's rate; its weight decay keeps learning_rate
      adam_list.push_back(t);
      continue;
    }
    // Keras' momentum in its form, m += g + m (momentum - 1), computed here and stored by the pass.
    const Tensor& m = own[0];
    Tensor momentum = add(m, add(g, mul(m, mu - 1.0)));
    const Tensor d = options_.nesterov ? add(g, mul(momentum, mu)) : momentum;
    const auto [rows, cols] = matrix_of(p.shape());
    Tensor direction = reshape(newton_schulz(reshape(d, Shape({rows, cols})), options_), p.shape());
    if (options_.rms_rate)
      direction = mul(mul(direction, std::sqrt(static_cast<double>(std::max(rows, cols)))), *options_.rms_rate);
    t.g = momentum.raw_data();
    t.slot[0] = own[0].raw_data();
    t.direction = direction.raw_data();
    muon_list.push_back(t);
    computed.push_back(std::move(momentum));
    computed.push_back(std::move(direction));
  }
  if (!muon_list.empty())
    queue_rule_update(muon_rule, muon_list, params.front(), sum_squares, table, index, host_step, skip);
  if (!adam_list.empty())
    queue_rule_update(adam_rule, adam_list, params.front(), sum_squares, table, index, host_step, skip);
}

Config Muon::get_config() const {
  Config config = common_config(common());
  config["adam_beta_1"] = options_.adam_beta_1;
  config["adam_beta_2"] = options_.adam_beta_2;
  config["epsilon"] = options_.epsilon;
  config["exclude_layers"] = options_.exclude_layers;
  config["muon_a"] = options_.muon_a;
  config["muon_b"] = options_.muon_b;
  config["muon_c"] = options_.muon_c;
  config["adam_lr_ratio"] = options_.adam_lr_ratio;
  config["momentum"] = options_.momentum;
  config["ns_steps"] = options_.ns_steps;
  config["nesterov"] = options_.nesterov;
  config["exclude_embeddings"] = options_.exclude_embeddings;
  config["adam_weight_decay"] = optional_json(options_.adam_weight_decay);
  config["rms_rate"] = optional_json(options_.rms_rate);
  // Written only when set: Keras' Muon takes no such argument.
  if (options_.orthogonalize_conv_kernels) config["orthogonalize_conv_kernels"] = true;
  return config;
}

Muon Muon::from_config(const Config& config) {
  const io::JsonFields f(config, "the Muon config", "from_config");
  MuonOptions o;  // absent fields keep Keras' defaults
  const CommonOptions c = common_from_config(kOp, config, common_options(o));
  set_common(o, c);
  o.adam_beta_1 = number_or(f, "adam_beta_1", o.adam_beta_1);
  o.adam_beta_2 = number_or(f, "adam_beta_2", o.adam_beta_2);
  o.epsilon = number_or(f, "epsilon", o.epsilon);
  if (f.has("exclude_layers")) o.exclude_layers = f.strings("exclude_layers");
  o.muon_a = number_or(f, "muon_a", o.muon_a);
  o.muon_b = number_or(f, "muon_b", o.muon_b);
  o.muon_c = number_or(f, "muon_c", o.muon_c);
  o.adam_lr_ratio = number_or(f, "adam_lr_ratio", o.adam_lr_ratio);
  o.momentum = number_or(f, "momentum", o.momentum);
  if (f.has("ns_steps")) o.ns_steps = f.integer("ns_steps", 0, INT64_MAX);
  if (f.has("nesterov")) o.nesterov = f.boolean("nesterov");
  if (f.has("exclude_embeddings")) o.exclude_embeddings = f.boolean("exclude_embeddings");
  o.adam_weight_decay = optional_number_or(config, f, "adam_weight_decay", o.adam_weight_decay);
  o.rms_rate = optional_number_or(config, f, "rms_rate", o.rms_rate);
  if (f.has("orthogonalize_conv_kernels")) o.orthogonalize_conv_kernels = f.boolean("orthogonalize_conv_kernels");
  return Muon(o);
}

namespace {
const RegisterOptimizer<Muon> muon_registered("Muon", "muon");
}  // namespace

}  // namespace kiln::optimizers
