// The built-in optimizers' fused update, queued the same way by the eager step and by the
// recorded step's device-side update (whose per-step values come from a device table).
#include "optimizers/device_update.h"

#include <cmath>
#include <utility>

#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "tensor/tensor_impl.h"

namespace kiln::optimizers {

namespace {

// The backend's slot position of each of Keras' slot names (backend/optimizer_update.h's order).
int slot_position(backend::UpdateKind kind, const std::string& slot) {
  if (kind == backend::UpdateKind::Adam) return slot == "velocity" ? 1 : 0;
  if (kind == backend::UpdateKind::Rmsprop) return slot == "velocity" ? 0 : slot == "momentum" ? 1 : 2;
  return 0;  // SGD's momentum, Adagrad's accumulator
}

void check_grad(const std::string& op, const Tensor& param, const Tensor& grad) {
  if (grad.shape() != param.shape() || grad.dtype() != param.dtype() || grad.device() != param.device())
    throw Error(op, "gradient " + grad.shape().str() + " does not match its parameter " + param.shape().str());
}

class FusedUpdate final : public DeviceUpdate {
 public:
  FusedUpdate(const KerasOptimizer& opt, std::vector<Tensor> params, int64_t max_steps)
      : opt_(opt), params_(std::move(params)), dtype_(params_.front().dtype()), device_(params_.front().device()) {
    table_ = Tensor::zeros({std::max<int64_t>(max_steps, 1) * backend::kStepValues}, dtype_, device_);
    sum_squares_ = Tensor::zeros({static_cast<int64_t>(params_.size()) + 1}, dtype_, device_);
  }

  void prepare(int64_t first_iteration, int64_t count) override {
    upload_step_values(opt_, table_, first_iteration, count);
  }

  void queue(const int64_t* index) override {
    opt_.queue_update(params_, opt_.slots(), sum_squares_, std::as_const(table_).raw_data(), index, nullptr, nullptr);
  }

 private:
  const KerasOptimizer& opt_;
  std::vector<Tensor> params_;
  DType dtype_;
  Device device_;
  Tensor table_;        // [steps, kStepValues] of this epoch's steps, in the parameters' dtype
  Tensor sum_squares_;  // the gradients' squared norms, then their total
};

}  // namespace

void DeviceUpdate::settle(Optimizer& opt, int64_t steps) { opt.restore(opt.slots(), opt.iterations() + steps); }

void upload_step_values(const KerasOptimizer& opt, Tensor& table, int64_t first_iteration, int64_t count) {
  const int64_t capacity = table.numel() / backend::kStepValues;
  if (count > capacity)
    throw Error(opt.name(),
                "per-step table for " + std::to_string(count) + " steps; expected at most " + std::to_string(capacity));
  backend::UpdateRule rule;
  opt.describe(rule);
  auto fill = [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> rows;
    rows.reserve(static_cast<std::size_t>(count * backend::kStepValues));
    for (int64_t k = 0; k < count; ++k)
      for (T v : step_values<T>(opt, rule, first_iteration + k)) rows.push_back(v);
    backend::get(table.device()).copy_from_host(table.raw_data(), rows.data(), rows.size() * sizeof(T));
  };
  if (table.dtype() == DType::Float64)
    fill(double{});
  else
    fill(float{});
}

template <typename T>
std::array<T, backend::kStepValues> step_values(const KerasOptimizer& opt, const backend::UpdateRule& rule,
                                                int64_t iteration) {
  const CommonOptions common = opt.common();
  std::array<T, backend::kStepValues> row{};
  const T lr = static_cast<T>(common.learning_rate.at(iteration));
  row[backend::kLearningRate] = lr;
  if (rule.kind == backend::UpdateKind::Adam) {
    // Keras computes the bias correction in the variable's dtype: float32 powers for float32.
    const T b1 = static_cast<T>(rule.beta_1), b2 = static_cast<T>(rule.beta_2);
    const T t = static_cast<T>(iteration + 1);
    row[backend::kAdamAlpha] = lr * std::sqrt(T(1) - std::pow(b2, t)) / (T(1) - std::pow(b1, t));
  }
  if (common.use_ema) {
    const double momentum = common.ema_momentum.at(iteration);
    if (!(momentum >= 0 && momentum <= 1))
      throw Error(opt.name(), "ema_momentum's schedule gives " + std::to_string(momentum) + " at iteration " +
                                  std::to_string(iteration) + "; expected a value in [0, 1]");
    row[backend::kEmaMomentum] = iteration != 0 ? static_cast<T>(momentum) : T(0);
    const auto every = common.ema_overwrite_frequency;
    row[backend::kEmaOverwrite] = every && (iteration + 1) % *every == 0 ? T(1) : T(0);
  }
  return row;
}

template std::array<float, backend::kStepValues> step_values<float>(const KerasOptimizer&, const backend::UpdateRule&,
                                                                    int64_t);
template std::array<double, backend::kStepValues> step_values<double>(const KerasOptimizer&, const backend::UpdateRule&,
                                                                      int64_t);

backend::UpdateTensor update_tensor(const std::string& op, const Tensor& param, const Tensor* average) {
  Tensor p = param;  // a handle: the update writes through it
  backend::UpdateTensor t;
  t.w = p.raw_data();
  t.n = p.numel();
  t.lr_scale = p.impl()->learning_rate_multiplier;
  const Tensor g = p.grad();
  if (g.defined()) {
    check_grad(op, p, g);
    t.g = g.raw_data();
  }
  if (average != nullptr) t.average = Tensor(*average).raw_data();
  return t;
}

void queue_rule_update(const backend::UpdateRule& rule, std::vector<backend::UpdateTensor>& list, const Tensor& like,
                       const Tensor& sum_squares, const void* table, const int64_t* index, const double* host_step,
                       const int32_t* skip) {
  if (list.empty()) return;
  const int count = static_cast<int>(list.size());
  backend::Backend& be = backend::get(like.device());
  const bool norms = rule.clip == backend::ClipKind::Norm || rule.clip == backend::ClipKind::GlobalNorm;
  Tensor sums = sum_squares;
  if (norms)
    be.grad_sum_squares(like.dtype(), list.data(), count, sums.raw_data(), rule.clip == backend::ClipKind::GlobalNorm);
  be.optimizer_update(like.dtype(), rule, list.data(), count, norms ? sums.raw_data() : nullptr, table, index,
                      host_step, skip);
}

void queue_fused_update(const KerasOptimizer& opt, const std::vector<Tensor>& params,
                        const std::vector<std::vector<Tensor>>& slots, const Tensor& sum_squares, const void* table,
                        const int64_t* index, const double* host_step, const int32_t* skip) {
  backend::UpdateRule rule;
  opt.describe(rule);
  const bool ema = opt.common().use_ema;
  const std::vector<std::string> names = opt.rule_slot_names();
  std::vector<backend::UpdateTensor> list;
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!params[i].grad().defined() && !ema) continue;
    std::vector<Tensor> own = slots[i];
    backend::UpdateTensor t = update_tensor(opt.name(), params[i], ema ? &own.back() : nullptr);
    for (std::size_t s = 0; s < names.size(); ++s) t.slot[slot_position(rule.kind, names[s])] = own[s].raw_data();
    list.push_back(t);
  }
  if (!list.empty()) queue_rule_update(rule, list, params.front(), sum_squares, table, index, host_step, skip);
}

std::string device_update_unsupported(const std::vector<Tensor>& params) {
  if (params.empty()) return "there are no parameters to update";
  for (const Tensor& p : params) {
    if (p.dtype() != params.front().dtype() || p.device() != params.front().device())
      return "the parameters differ in dtype or device";
    if (!is_floating(p.dtype())) return "a parameter is not floating point";
    // Its per-step table and kernels are float32 or float64; 16-bit floats have no update kernel.
    if (p.dtype() != DType::Float32 && p.dtype() != DType::Float64)
      return "a parameter is " + dtype_name(p.dtype()) + "; expected float32 or float64";
  }
  return "";
}

std::unique_ptr<DeviceUpdate> make_fused_update(const KerasOptimizer& opt, const std::vector<Tensor>& params,
                                                int64_t max_steps) {
  if (!device_update_unsupported(params).empty()) return nullptr;
  const auto& slots = opt.slots();
  const std::size_t per_param = opt.slot_names().size();
  if (slots.size() != params.size()) return nullptr;
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (slots[i].size() != per_param) return nullptr;
    for (const Tensor& s : slots[i])
      if (s.device() != params[i].device()) return nullptr;
  }
  return std::make_unique<FusedUpdate>(opt, params, max_steps);
}

}  // namespace kiln::optimizers
