// Optimizer updates for recorded training steps (CUDA graphs), and the one function that queues a
// built-in optimizer's fused update for both the eager and the recorded step. Every value that
// changes from step to step (the learning rate of a schedule, Adam's bias-corrected step size, the
// moving average's momentum and overwrite flag) is read from a device table at a device-side
// index, so a replay needs no host argument; gradient norms for clipping are summed on the device.
// Each optimizer class makes its own (Optimizer::make_device_update); one without a device-side
// form makes none, and a recorded step then runs that optimizer's step() after each replay
// (model/recorded_step.h).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/optimizer_update.h"
#include "kiln/optimizers.h"
#include "kiln/tensor.h"

namespace kiln::optimizers {

/// The update of one optimizer over a fixed list of parameters, queued on their device.
class DeviceUpdate {
 public:
  virtual ~DeviceUpdate() = default;
  /// Uploads the per-step values of the updates made after first_iteration ... first_iteration +
  /// count - 1 earlier updates, at indices 0 ... count - 1, computed exactly as the eager update
  /// does; the learning rate is read now (a rate set between epochs reaches the next prepare()).
  virtual void prepare(int64_t first_iteration, int64_t count) = 0;
  /// Queues the update with the parameters' current gradients; per-step values at index `*index`.
  virtual void queue(const int64_t* index) = 0;
  /// Counts `steps` replays of the queued update into `opt`, the optimizer that made it. The
  /// default adds them to opt's iteration count; loss scaling reads back how many of them the
  /// device applied.
  virtual void settle(Optimizer& opt, int64_t steps);
};

/// Why no device-side update can serve `params` whatever the optimizer ("" when one can): they
/// are empty, differ in dtype or device, or are not floating point.
std::string device_update_unsupported(const std::vector<Tensor>& params);

/// The per-step values (backend::StepValue order) of `opt`'s update after `iteration` earlier
/// updates, in T: the learning rate, Adam's bias-corrected step size, the moving average's
/// momentum (0 at the first update, as Keras) and its overwrite flag.
template <typename T>
std::array<T, backend::kStepValues> step_values(const KerasOptimizer& opt, const backend::UpdateRule& rule,
                                                int64_t iteration);

/// Writes into `table` (on its device, in its dtype) the per-step values of `opt`'s updates after
/// first_iteration ... first_iteration + count - 1 earlier updates, at rows 0 ... count - 1;
/// throws when the table holds fewer rows.
void upload_step_values(const KerasOptimizer& opt, Tensor& table, int64_t first_iteration, int64_t count);

/// Queues `opt`'s fused update over `params` (one device, one dtype) with their slots: gradient
/// norms into `sum_squares` (params.size() + 1 elements, used only with clipnorm or
/// global_clipnorm), then the update with the step's values from `table` at `*index` or, when
/// `table` is null, from `host_step`. Parameters without a grad keep their weights (and get
/// their moving average updated with use_ema). With `skip`, the device reads *skip and writes
/// nothing when it is not 0 (loss scaling's skipped step).
void queue_fused_update(const KerasOptimizer& opt, const std::vector<Tensor>& params,
                        const std::vector<std::vector<Tensor>>& slots, const Tensor& sum_squares, const void* table,
                        const int64_t* index, const double* host_step, const int32_t* skip = nullptr);

/// The backend's view of parameter `param`: its weights, its gradient (when it has one, checked
/// against the parameter; errors name `op`), its learning-rate multiplier and, unless null, the
/// moving average `average`; the rule's slots are left for the caller.
backend::UpdateTensor update_tensor(const std::string& op, const Tensor& param, const Tensor* average);

/// Queues `rule` over `list` (tensors on the device of `like`, in its dtype): gradient norms into
/// `sum_squares` when the rule clips by norm, then the update; the step's values and `skip` as in
/// queue_fused_update.
void queue_rule_update(const backend::UpdateRule& rule, std::vector<backend::UpdateTensor>& list, const Tensor& like,
                       const Tensor& sum_squares, const void* table, const int64_t* index, const double* host_step,
                       const int32_t* skip);

/// `opt`'s update over `params` for a recorded step, with a per-step table for up to `max_steps`
/// steps per epoch; nullptr when device_update_unsupported(params) says why, or when the slots do
/// not exist yet on the parameters' device (run one eager step first).
std::unique_ptr<DeviceUpdate> make_fused_update(const KerasOptimizer& opt, const std::vector<Tensor>& params,
                                                int64_t max_steps);

}  // namespace kiln::optimizers
