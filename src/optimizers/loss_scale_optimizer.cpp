// LossScaleOptimizer: Keras' dynamic loss scaling around another optimizer, with the scale, the
// count of finite steps and the count of applied updates kept on the parameters' device. A step is
// three pieces of device work, the same in an eager step and in a recorded one:
//   unscale_gradients   g /= scale for every gradient, and a flag set when any was not finite;
//   optimizer_update    the inner optimizer's fused update, which reads the flag and writes nothing
//                       when it is set; its per-step values (learning rate, Adam's step size) come
//                       from a table at the device's count of applied updates, so a skipped step
//                       does not advance the schedule;
//   update_loss_scale   the flag decides: count the update and grow the scale, or halve it.
// The host learns how many steps were skipped only when it asks (synchronize()), never per step.
#include "optimizers/loss_scale_optimizer.h"

#include <cmath>
#include <limits>
#include <tuple>

#include "backend/backend.h"
#include "io/json_fields.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "kiln/optimizers.h"
#include "optimizers/device_update.h"

namespace kiln::optimizers {

namespace {

constexpr const char* kOp = "LossScaleOptimizer";
// The state variables' names: Keras' variable names under the optimizer's own.
constexpr const char* kDynamicScaleName = "loss_scale_optimizer/dynamic_scale";
constexpr const char* kStepCounterName = "loss_scale_optimizer/step_counter";

// Eager steps queued on a GPU between two reads of the applied count: the eager per-step table
// holds this many rows plus one.
constexpr int64_t kEagerWindow = 64;

template <typename T>
T read_scalar(const Tensor& t) {
  T value{};
  backend::get(t.device()).copy_to_host(&value, t.raw_data(), sizeof(T));
  return value;
}

template <typename T>
void write_scalar(Tensor& t, T value) {
  backend::get(t.device()).copy_from_host(t.raw_data(), &value, sizeof(T));
}

void check_options(const LossScaleOptions& o) {
  const auto as_float = static_cast<float>(o.initial_scale);
  if (!(std::isfinite(o.initial_scale) && o.initial_scale > 0 && std::isfinite(as_float) && as_float > 0))
    throw Error(kOp, "initial_scale is " + std::to_string(o.initial_scale) +
                         "; expected a number > 0 that float32 holds (the scale is kept in float32, as Keras)");
  if (o.dynamic_growth_steps < 1)
    throw Error(kOp,
                "dynamic_growth_steps is " + std::to_string(o.dynamic_growth_steps) + "; expected an integer >= 1");
}

void check_scale_state(double dynamic_scale, int64_t step_counter, const std::string& where) {
  const auto as_float = static_cast<float>(dynamic_scale);
  if (!(std::isfinite(as_float) && as_float > 0))
    throw Error(kOp,
                where + "dynamic_scale is " + std::to_string(dynamic_scale) + "; expected a finite float32 number > 0");
  if (step_counter < 0)
    throw Error(kOp, where + "step_counter is " + std::to_string(step_counter) + "; expected an integer >= 0");
}

}  // namespace

// The recorded step's form of the update: queue_step() with a table for a pass's steps.
class LossScaleUpdate final : public DeviceUpdate {
 public:
  LossScaleUpdate(LossScaleOptimizer& opt, const KerasOptimizer& inner, std::vector<Tensor> params, int64_t max_steps)
      : opt_(opt), inner_(inner), params_(std::move(params)) {
    const Tensor& first = params_.front();
    table_ = Tensor::zeros({std::max<int64_t>(max_steps, 1) * backend::kStepValues}, first.dtype(), first.device());
    sums_ = Tensor::zeros({static_cast<int64_t>(params_.size()) + 1}, first.dtype(), first.device());
  }

  // The table starts at the exact count of updates (one read per pass), row 0 for the next one.
  void prepare(int64_t /*first_iteration*/, int64_t count) override {
    opt_.synchronize();
    rows_ = count;
    settled_ = 0;
    upload_step_values(inner_, table_, opt_.base_, rows_);
  }

  void queue(const int64_t* /*index*/) override { opt_.queue_step(params_, opt_.slots(), table_, sums_); }

  // The replays were steps; the device says how many of them updated. The rest of the pass counts
  // from there, so the table moves with it: rows for the replays the pass has left, and none past
  // them (a schedule is not asked for iterations that training never reaches).
  void settle(Optimizer& /*opt*/, int64_t steps) override {
    opt_.since_base_ += steps;
    opt_.restore(opt_.slots(), opt_.iterations() + steps);
    opt_.synchronize();
    settled_ += steps;
    if (settled_ < rows_) upload_step_values(inner_, table_, opt_.base_, rows_ - settled_);
  }

 private:
  LossScaleOptimizer& opt_;
  const KerasOptimizer& inner_;
  std::vector<Tensor> params_;
  Tensor table_;         // [steps, kStepValues]: the per-step values of the updates after base_
  Tensor sums_;          // the gradients' squared norms, then their total
  int64_t rows_ = 0;     // replays the pass may make
  int64_t settled_ = 0;  // replays of the pass settled so far
};

LossScaleOptimizer::LossScaleOptimizer(std::unique_ptr<Optimizer> inner, LossScaleOptions options)
    : inner_(std::move(inner)), options_(options) {
  if (!inner_) throw Error(kOp, "the inner optimizer is null; expected an optimizer to wrap");
  if (dynamic_cast<const LossScaleOptimizer*>(inner_.get()) != nullptr)
    throw Error(kOp,
                "the inner optimizer is a LossScaleOptimizer; expected the optimizer to wrap (the loss is "
                "scaled once)");
  check_options(options_);
  scale_ = Tensor::from_vector(std::vector<float>{static_cast<float>(options_.initial_scale)}, Shape());
  counter_ = Tensor::from_vector(std::vector<int64_t>{0}, Shape());
  applied_ = Tensor::from_vector(std::vector<int64_t>{0}, Shape());
  nonfinite_ = Tensor::from_vector(std::vector<int32_t>{0}, Shape());
}

LossScaleOptimizer::LossScaleOptimizer(const Optimizer& inner, LossScaleOptions options)
    : LossScaleOptimizer(inner.clone(), options) {}

LossScaleOptimizer::~LossScaleOptimizer() = default;

Config LossScaleOptimizer::get_config() const {
  return {{"name", "loss_scale_optimizer"},
          {"inner_optimizer", {{"class_name", inner_->class_name()}, {"config", inner_->get_config()}}},
          {"initial_scale", options_.initial_scale},
          {"dynamic_growth_steps", options_.dynamic_growth_steps}};
}

LossScaleOptimizer LossScaleOptimizer::from_config(const Config& config) {
  const io::JsonFields f(config, "the LossScaleOptimizer config", "from_config");
  if (!f.has("inner_optimizer"))
    f.fail("\"inner_optimizer\" is missing; expected {\"class_name\": ..., \"config\": ...} of the wrapped optimizer");
  const io::JsonFields inner(f.at("inner_optimizer"), "the LossScaleOptimizer config: inner_optimizer", "from_config");
  const std::string class_name = inner.string("class_name");
  if (!optimizer_registry().contains(class_name))
    inner.fail("class_name \"" + class_name.substr(0, 60) + "\" is not a registered optimizer class");
  LossScaleOptions o;
  if (f.has("initial_scale")) o.initial_scale = f.number("initial_scale");
  if (f.has("dynamic_growth_steps"))
    o.dynamic_growth_steps =
        f.integer("dynamic_growth_steps", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
  return LossScaleOptimizer(
      optimizer_registry().make(class_name, inner.has("config") ? inner.at("config") : Config::object()), o);
}

std::unique_ptr<Optimizer> LossScaleOptimizer::clone() const {
  return std::make_unique<LossScaleOptimizer>(inner_->clone(), options_);
}

double LossScaleOptimizer::learning_rate() const {
  // The inner optimizer's rate at the updates applied so far (a schedule's value depends on it).
  int64_t exact = iterations();
  if (exact == base_ + since_base_ && since_base_ != 0) exact = base_ + read_scalar<int64_t>(applied_);
  inner_->restore(slots(), exact);
  return inner_->learning_rate();
}

void LossScaleOptimizer::set_learning_rate(double value) { inner_->set_learning_rate(value); }

void LossScaleOptimizer::finalize_variable_values(const std::vector<Tensor>& params) {
  synchronize();
  inner_->finalize_variable_values(params);
}

double LossScaleOptimizer::initial_slot_value(std::size_t slot) const { return inner_->initial_slot_value(slot); }

Tensor LossScaleOptimizer::scale_loss(const Tensor& loss) {
  place_state(loss.device());
  return mul(loss, loss.dtype() == DType::Float32 ? scale_ : cast(scale_, loss.dtype()));
}

double LossScaleOptimizer::dynamic_scale() const { return read_scalar<float>(scale_); }

int64_t LossScaleOptimizer::step_counter() const { return read_scalar<int64_t>(counter_); }

std::vector<std::pair<std::string, Tensor>> LossScaleOptimizer::state_variables() const {
  return {{kDynamicScaleName, Tensor::from_vector(std::vector<float>{static_cast<float>(dynamic_scale())}, Shape())},
          {kStepCounterName, Tensor::from_vector(std::vector<int64_t>{step_counter()}, Shape())}};
}

void LossScaleOptimizer::restore_state_variables(const std::vector<std::pair<std::string, Tensor>>& values) {
  const Tensor* scale = nullptr;
  const Tensor* counter = nullptr;
  for (const auto& [name, value] : values) {
    if (name == kDynamicScaleName)
      scale = &value;
    else if (name == kStepCounterName)
      counter = &value;
    else
      throw Error(kOp, "got state variable '" + name + "'; expected " + kDynamicScaleName + " and " + kStepCounterName);
  }
  for (const auto& [t, name, dtype] :
       {std::tuple{scale, kDynamicScaleName, DType::Float32}, std::tuple{counter, kStepCounterName, DType::Int64}})
    if (!t || t->dtype() != dtype || t->numel() != 1)
      throw Error(kOp, std::string(name) + " is " +
                           (t ? dtype_name(t->dtype()) + " " + t->shape().str() : std::string("missing")) +
                           "; expected one " + dtype_name(dtype) + " value");
  restore_loss_scale(scale->cpu().data<float>()[0], counter->cpu().data<int64_t>()[0]);
}

void LossScaleOptimizer::restore_loss_scale(double dynamic_scale, int64_t step_counter) {
  check_scale_state(dynamic_scale, step_counter, "");
  write_scalar(scale_, static_cast<float>(dynamic_scale));
  write_scalar(counter_, step_counter);
}

void LossScaleOptimizer::place_state(Device device) {
  if (scale_.device() == device) return;
  scale_ = scale_.to(device);
  counter_ = counter_.to(device);
  applied_ = applied_.to(device);
  nonfinite_ = nonfinite_.to(device);
  eager_table_ = Tensor();
  eager_sums_ = Tensor();
}

void LossScaleOptimizer::check_restored() {
  // Every step and replay this optimizer counts keeps iterations() == base_ + since_base_; a
  // different count was restored from outside, and is exact.
  if (iterations() == base_ + since_base_) return;
  base_ = iterations();
  since_base_ = 0;
  write_scalar<int64_t>(applied_, 0);
  inner_->restore(slots(), base_);
}

void LossScaleOptimizer::synchronize() {
  check_restored();
  read_applied();
}

void LossScaleOptimizer::read_applied() {
  if (since_base_ != 0) {
    base_ += read_scalar<int64_t>(applied_);
    since_base_ = 0;
    write_scalar<int64_t>(applied_, 0);
    restore(slots(), base_);
  }
  inner_->restore(slots(), base_);
}

void LossScaleOptimizer::queue_step(const std::vector<Tensor>& params, const std::vector<std::vector<Tensor>>& slots,
                                    const Tensor& table, const Tensor& sum_squares) {
  const auto& inner = dynamic_cast<const KerasOptimizer&>(*inner_);
  const DType dtype = params.front().dtype();
  backend::Backend& be = backend::get(params.front().device());
  std::vector<backend::UpdateTensor> grads;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (g.shape() != p.shape() || g.dtype() != p.dtype() || g.device() != p.device())
      throw Error(kOp, "gradient " + g.shape().str() + " does not match its parameter " + p.shape().str());
    backend::UpdateTensor t;
    t.g = g.raw_data();
    t.n = g.numel();
    grads.push_back(t);
  }
  auto* scale = static_cast<float*>(scale_.raw_data());
  auto* flag = static_cast<int32_t*>(nonfinite_.raw_data());
  auto* applied = static_cast<int64_t*>(applied_.raw_data());
  be.unscale_gradients(dtype, grads.data(), static_cast<int>(grads.size()), scale, flag);
  inner.queue_update(params, slots, sum_squares, table.raw_data(), applied, nullptr, flag);
  be.update_loss_scale(flag, scale, static_cast<int64_t*>(counter_.raw_data()), applied, options_.dynamic_growth_steps);
}

void LossScaleOptimizer::apply(const std::vector<Tensor>& params, std::vector<std::vector<Tensor>>& slots,
                               int64_t /*iteration*/) {
  check_restored();
  const auto* inner = dynamic_cast<const KerasOptimizer*>(inner_.get());
  if (inner == nullptr || !device_update_unsupported(params).empty()) {
    host_apply(params, slots);
    return;
  }
  const Tensor& first = params.front();
  place_state(first.device());
  if (since_base_ >= kEagerWindow) synchronize();
  if (!eager_table_.defined() || eager_table_.dtype() != first.dtype())
    eager_table_ = Tensor::zeros({(kEagerWindow + 1) * backend::kStepValues}, first.dtype(), first.device());
  const int64_t sums = static_cast<int64_t>(params.size()) + 1;
  if (!eager_sums_.defined() || eager_sums_.dtype() != first.dtype() || eager_sums_.numel() != sums)
    eager_sums_ = Tensor::zeros({sums}, first.dtype(), first.device());
  // Rows for every count of updates the device may have reached since base_.
  upload_step_values(*inner, eager_table_, base_, since_base_ + 1);
  queue_step(params, slots, eager_table_, eager_sums_);
  ++since_base_;
  if (first.device().is_cpu()) {
    // Reading the CPU's memory costs nothing: iterations() is exact after every step. The
    // caller, Optimizer::step(), adds this step to the count next, so it is taken off here.
    read_applied();
    restore(this->slots(), base_ - 1);
  }
}

void LossScaleOptimizer::host_apply(const std::vector<Tensor>& params, std::vector<std::vector<Tensor>>& slots) {
  // An inner optimizer without a fused update, or parameters on several devices: the flag is read
  // back, and the inner optimizer's own apply() runs only on finite gradients.
  synchronize();
  place_state(params.front().device());
  NoGradGuard no_grad;
  bool finite = true;
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    for (double v : g.astype(DType::Float64).cpu().to_vector<double>())
      if (!std::isfinite(v)) finite = false;
  }
  if (finite) {
    const double scale = dynamic_scale();
    for (const Tensor& p : params) {
      Tensor g = p.grad();
      if (g.defined()) g.copy_(div(g, Tensor::full(Shape(), scale, g.dtype(), g.device())));
    }
    inner_->apply(params, slots, base_);
  }
  write_scalar<int32_t>(nonfinite_, finite ? 0 : 1);
  backend::get(nonfinite_.device())
      .update_loss_scale(static_cast<const int32_t*>(nonfinite_.raw_data()), static_cast<float*>(scale_.raw_data()),
                         static_cast<int64_t*>(counter_.raw_data()), static_cast<int64_t*>(applied_.raw_data()),
                         options_.dynamic_growth_steps);
  ++since_base_;
  read_applied();
  restore(this->slots(), base_ - 1);  // Optimizer::step() counts this step next (see apply())
}

std::unique_ptr<DeviceUpdate> LossScaleOptimizer::make_device_update(const std::vector<Tensor>& params,
                                                                     int64_t max_steps) {
  const auto* inner = dynamic_cast<const KerasOptimizer*>(inner_.get());
  if (inner == nullptr || !device_update_unsupported(params).empty()) return nullptr;
  const auto& own = slots();
  if (own.size() != params.size()) return nullptr;
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (own[i].size() != slot_names().size()) return nullptr;
    for (const Tensor& s : own[i])
      if (s.device() != params[i].device()) return nullptr;
  }
  place_state(params.front().device());  // before the recording reads the state's addresses
  return std::make_unique<LossScaleUpdate>(*this, *inner, params, max_steps);
}

std::unique_ptr<Optimizer> with_loss_scaling_for(std::unique_ptr<Optimizer> optimizer,
                                                 const std::vector<std::shared_ptr<Layer>>& layers) {
  if (dynamic_cast<const LossScaleOptimizer*>(optimizer.get()) != nullptr) return optimizer;
  for (const auto& layer : layers)
    if (layer && layer->dtype_policy().name() == "mixed_float16")
      return std::make_unique<LossScaleOptimizer>(std::move(optimizer));
  return optimizer;
}

namespace {
const RegisterOptimizer<LossScaleOptimizer> registered("LossScaleOptimizer", "LossScaleOptimizer");
}  // namespace

}  // namespace kiln::optimizers
