// SGD and Adam as device-side updates for recorded training steps.
#include "optimizers/device_update.h"

#include <cmath>

#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"

namespace kiln::optimizers {

namespace {

class SgdUpdate final : public DeviceUpdate {
 public:
  SgdUpdate(const SGD& opt, std::vector<Tensor> params) : opt_(opt), params_(std::move(params)) {}
  void prepare(int64_t, int64_t) override {}  // nothing changes from step to step
  void queue(const int64_t*) override {
    const auto& o = opt_.options();
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const Tensor g = params_[i].grad();
      if (!g.defined()) continue;
      const auto& slots = opt_.slots();
      Tensor velocity = i < slots.size() && !slots[i].empty() ? slots[i][0] : Tensor();
      void* v = velocity.defined() ? velocity.raw_data() : nullptr;
      backend::get(params_[i].device())
          .sgd_step(params_[i].dtype(), params_[i].raw_data(), g.raw_data(), v, params_[i].numel(), o.learning_rate,
                    o.momentum, o.nesterov);
    }
  }

 private:
  const SGD& opt_;
  std::vector<Tensor> params_;
};

class AdamUpdate final : public DeviceUpdate {
 public:
  AdamUpdate(const Adam& opt, std::vector<Tensor> params, int64_t max_steps)
      : opt_(opt), params_(std::move(params)), dtype_(params_.front().dtype()), device_(params_.front().device()) {
    alpha_ = Tensor::zeros({std::max<int64_t>(max_steps, 1)}, dtype_, device_);
  }

  void prepare(int64_t first_iteration, int64_t count) override {
    if (count > alpha_.numel())
      throw Error("adam", "step-size table for " + std::to_string(count) + " steps; expected at most " +
                              std::to_string(alpha_.numel()));
    const auto& o = opt_.options();
    // Term for term as the backends' adam_step: the bias correction in the variable's precision.
    auto fill = [&](auto tag) {
      using T = decltype(tag);
      std::vector<T> table(static_cast<std::size_t>(count));
      const T b1 = static_cast<T>(o.beta_1), b2 = static_cast<T>(o.beta_2);
      for (int64_t k = 0; k < count; ++k) {
        const T t = static_cast<T>(first_iteration + k + 1);
        table[static_cast<std::size_t>(k)] =
            static_cast<T>(o.learning_rate) * std::sqrt(T(1) - std::pow(b2, t)) / (T(1) - std::pow(b1, t));
      }
      backend::get(device_).copy_from_host(alpha_.raw_data(), table.data(), table.size() * sizeof(T));
    };
    if (dtype_ == DType::Float64)
      fill(double{});
    else
      fill(float{});
  }

  void queue(const int64_t* index) override {
    std::vector<backend::ParamSlots> list;
    const auto& slots = opt_.slots();
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const Tensor g = params_[i].grad();
      if (!g.defined()) continue;
      Tensor m = slots[i][0], v = slots[i][1];
      list.push_back({params_[i].raw_data(), g.raw_data(), m.raw_data(), v.raw_data(), params_[i].numel()});
    }
    const auto& o = opt_.options();
    backend::get(device_).adam_step_multi(dtype_, list.data(), static_cast<int>(list.size()), o.beta_1, o.beta_2,
                                          o.epsilon, alpha_.raw_data(), index);
  }

 private:
  const Adam& opt_;
  std::vector<Tensor> params_;
  DType dtype_;
  Device device_;
  Tensor alpha_;  // step sizes of this epoch's steps, in the parameters' dtype
};

}  // namespace

std::string device_update_unsupported(const std::vector<Tensor>& params) {
  if (params.empty()) return "there are no parameters to update";
  for (const Tensor& p : params) {
    if (p.dtype() != params.front().dtype() || p.device() != params.front().device())
      return "the parameters differ in dtype or device";
    if (!is_floating(p.dtype())) return "a parameter is not floating point";
  }
  return "";
}

std::unique_ptr<DeviceUpdate> make_sgd_update(SGD& opt, const std::vector<Tensor>& params) {
  if (!device_update_unsupported(params).empty()) return nullptr;
  if (opt.options().momentum != 0.0 && opt.slots().size() != params.size()) return nullptr;
  return std::make_unique<SgdUpdate>(opt, params);
}

std::unique_ptr<DeviceUpdate> make_adam_update(Adam& opt, const std::vector<Tensor>& params, int64_t max_steps) {
  if (!device_update_unsupported(params).empty()) return nullptr;
  const auto& slots = opt.slots();
  if (slots.size() != params.size()) return nullptr;
  for (std::size_t i = 0; i < params.size(); ++i)
    if (slots[i].size() != 2 || slots[i][0].device() != params[i].device()) return nullptr;
  return std::make_unique<AdamUpdate>(opt, params, max_steps);
}

}  // namespace kiln::optimizers
