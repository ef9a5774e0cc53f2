// Optimizer updates for recorded training steps (CUDA graphs): every value that changes from step
// to step (Adam's bias-corrected step size) is read from device memory at a device-side index, so
// a replay needs no host argument. Adam updates all parameters in one launch. Each optimizer class
// makes its own (Optimizer::make_device_update); one without a device-side form makes none, and a
// recorded step then runs that optimizer's step() after each replay (model/recorded_step.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/optimizers.h"
#include "kiln/tensor.h"

namespace kiln::optimizers {

/// The update of one optimizer over a fixed list of parameters, queued on their device.
class DeviceUpdate {
 public:
  virtual ~DeviceUpdate() = default;
  /// Uploads the per-step values of iterations first_iteration + 1 ... + count, at indices
  /// 0 ... count - 1 (for Adam: the step sizes, computed exactly as the eager update does).
  virtual void prepare(int64_t first_iteration, int64_t count) = 0;
  /// Queues the update with the parameters' current gradients; per-step values at index `*index`.
  virtual void queue(const int64_t* index) = 0;
};

/// Why no device-side update can serve `params` whatever the optimizer ("" when one can): they
/// are empty, differ in dtype or device, or are not floating point.
std::string device_update_unsupported(const std::vector<Tensor>& params);

/// SGD's update over `params`; nullptr when device_update_unsupported(params) says why, or when
/// momentum needs velocity slots that do not exist yet (run one eager step first).
std::unique_ptr<DeviceUpdate> make_sgd_update(SGD& opt, const std::vector<Tensor>& params);

/// Adam's update over `params`, with a step-size table for up to `max_steps` steps per epoch;
/// nullptr when device_update_unsupported(params) says why, or when Adam's slots do not exist yet
/// on the parameters' device (run one eager step first).
std::unique_ptr<DeviceUpdate> make_adam_update(Adam& opt, const std::vector<Tensor>& params, int64_t max_steps);

}  // namespace kiln::optimizers
