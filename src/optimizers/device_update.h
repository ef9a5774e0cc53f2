// Optimizer updates for recorded training steps (CUDA graphs): every value that changes from step
// to step (Adam's bias-corrected step size) is read from device memory at a device-side index, so
// a replay needs no host argument. Adam updates all parameters in one launch.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kiln/optimizers.h"
#include "kiln/tensor.h"

namespace kiln::optimizers {

/// The update of one optimizer over a fixed list of parameters, queued on their device.
class DeviceUpdate {
 public:
  /// nullptr when `opt` has no device-side form (only SGD and Adam do), when the parameters differ
  /// in dtype or device, or when Adam's slots do not exist yet (run one eager step first).
  /// `max_steps` bounds the per-epoch table that prepare() fills.
  static std::unique_ptr<DeviceUpdate> make(Optimizer& opt, const std::vector<Tensor>& params, int64_t max_steps);
  virtual ~DeviceUpdate() = default;
  /// Uploads the per-step values of iterations first_iteration + 1 ... + count, at indices
  /// 0 ... count - 1 (for Adam: the step sizes, computed exactly as the eager update does).
  virtual void prepare(int64_t first_iteration, int64_t count) = 0;
  /// Queues the update with the parameters' current gradients; per-step values at index `*index`.
  virtual void queue(const int64_t* index) = 0;
};

}  // namespace kiln::optimizers
