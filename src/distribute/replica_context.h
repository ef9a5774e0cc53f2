// What a layer may ask of the data-parallel fit in progress: how many replicas train together,
// where this replica's shard lies in the global batch of the step being run, and a sum over the
// replicas (a synchronized BatchNormalization's batch moments). Replica installs it for the length
// of fit; outside a data-parallel fit there is none and a layer behaves as in one process.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "kiln/tensor.h"

namespace kiln::distribute {

class Communicator;

/// The shard of the step being run: rows [first_row, first_row + rows) of a global batch of
/// `global_rows` rows.
struct ShardPosition {
  int64_t first_row = 0;
  int64_t rows = 0;
  int64_t global_rows = 0;
};

/// The replicas of the fit in progress, seen from this process.
class ReplicaContext {
 public:
  /// The context of the fit in progress on this thread, or nullptr outside a data-parallel fit.
  static ReplicaContext* current();

  /// `host` carries CPU tensors' collectives (MPI).
  explicit ReplicaContext(Communicator& host) : host_(host) {}
  /// `group` carries GPU tensors' collectives (NCCL), queued on the device's stream.
  void set_device_group(backend::DeviceCollectives* group) { device_group_ = group; }
  /// Number of replicas training together.
  int replicas() const;
  /// The shard of the step being run (set by Replica before each step's forward pass).
  const ShardPosition& shard() const { return shard_; }
  void set_shard(const ShardPosition& shard) { shard_ = shard; }
  /// Sums `t` (float32 or float64) in place over the replicas; every replica must call it in the
  /// same order with the same shape. A CPU tensor's sum is done on return; a GPU tensor's is queued
  /// on its device's stream (and recorded with the step). `what` names the sum in a timeout's message
  /// ("the batch moments of batch_normalization").
  void all_reduce_sum(Tensor& t, const std::string& what);

 private:
  Communicator& host_;
  backend::DeviceCollectives* device_group_ = nullptr;
  ShardPosition shard_;
};

/// Makes `context` the current one for its lifetime (fit's), restoring the previous one after.
class ScopedReplicaContext {
 public:
  explicit ScopedReplicaContext(ReplicaContext* context);
  ~ScopedReplicaContext();
  ScopedReplicaContext(const ScopedReplicaContext&) = delete;
  ScopedReplicaContext& operator=(const ScopedReplicaContext&) = delete;

 private:
  ReplicaContext* previous_;
};

}  // namespace kiln::distribute
