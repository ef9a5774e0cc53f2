// The gradient sum of a data-parallel fit on GPUs: every gradient is packed into one device buffer
// per dtype (scaled by the shard's share of the global batch), the buffers are summed over the
// replicas by the GPU group (NCCL) on the device's stream, and the parameters' gradients become
// views of the sums; BatchNormalization's moving statistics ride along and are averaged. Device
// work only, so a recorded step records it; nothing is read back.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "kiln/tensor.h"

namespace kiln::distribute {

/// The sum of one replica's gradients with the others', on its GPU.
class DeviceGradientSum {
 public:
  /// `group`: the replicas' GPU collectives; `statistics`: the moving statistics averaged after
  /// every step; `counters`: the random layers' counters (int64), kept equal when a shard is empty;
  /// `replicas`: the group's size.
  DeviceGradientSum(backend::DeviceCollectives& group, std::vector<Tensor> statistics, std::vector<Tensor> counters,
                    int replicas);

  /// Replaces every parameter's gradient by the sum over replicas of the gradients of their
  /// shares of the global mean loss: this replica's shard has `rows` of the global batch's
  /// `global_rows` (0: an empty shard, which adds zeros), and `ranks_with_rows` replicas trained
  /// on rows (they are the ones the statistics average over).
  void run(std::vector<Tensor>& params, int64_t rows, int64_t global_rows, int ranks_with_rows);

 private:
  struct Slot {
    Tensor statistic;       // the moving statistic (undefined for a parameter's gradient)
    std::size_t param = 0;  // index into params (parameters only)
    Tensor view;            // its part of a flat buffer
  };
  struct Flat {
    DType dtype;
    Tensor buffer;
    std::vector<Slot> slots;
  };
  void make_buffers(const std::vector<Tensor>& params);

  backend::DeviceCollectives& group_;
  std::vector<Tensor> statistics_, counters_;
  int replicas_;
  std::vector<Flat> flats_;     // made at the first step
  std::vector<bool> has_grad_;  // which parameters get a gradient (the first step with rows says)
};

}  // namespace kiln::distribute
