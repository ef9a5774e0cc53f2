// What fit does differently under a strategy, in one place: the checks that every rank runs the
// same fit, the shards, the first broadcast of the weights, the gradient all-reduce in buckets,
// the global logs and validation, the callbacks that write files on the chief only, and the
// replicas check. fit calls it only when FitOptions::strategy is set.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "autograd/backward.h"
#include "distribute/communicator.h"
#include "distribute/device_gradient_sum.h"
#include "distribute/replica_context.h"
#include "kiln/distribute.h"
#include "kiln/model.h"
#include "model/step_runner.h"

namespace kiln::distribute {

/// This process's part in a data-parallel fit.
class Replica {
 public:
  /// Throws for a batch_size smaller than the number of replicas; cheap, before any data is moved.
  static void check(Strategy& strategy, int64_t batch_size);
  /// Checks that every rank runs the same fit (samples, batch size, epochs, weights' sizes) and
  /// shards `batches` (fit's training batches, which must outlive this object).
  Replica(Strategy& strategy, Model& model, model::Batches& batches, const FitOptions& options);

  /// True on rank 0 (it prints, and writes files).
  bool chief() const { return comm_.rank() == 0; }
  /// Number of replicas.
  int size() const { return comm_.size(); }

  /// The callbacks this rank runs: all on the chief; elsewhere the same without the file writers
  /// (ModelCheckpoint and CSVLogger dropped, BackupAndRestore reduced to restoring), or none where
  /// the chief decides for every replica (Strategy::callbacks_on_chief_only).
  std::vector<std::shared_ptr<Callback>> callbacks(const std::vector<std::shared_ptr<Callback>>& given) const;
  /// The epoch every rank starts at: the chief's where it decides, else every rank's own, and then
  /// throws when the ranks disagree (a backup not every rank sees).
  int agree_on_first_epoch(int first_epoch);
  /// Copies rank 0's weights, random generator and optimizer state (slots, iterations, state
  /// variables) to every rank.
  void broadcast_state();
  /// After the chief's on_epoch_begin callbacks (`epoch` 0-based): where the chief decides, every
  /// replica takes its fixed learning rate.
  void begin_epoch(int epoch);
  /// Tells the layers (ReplicaContext) where this rank's shard of batch `step` lies and derives
  /// its share of the step; before the step's forward pass, eager or recorded.
  void begin_step(int64_t step);
  /// For the backward pass of the step begun last (a CPU model): starts each bucket's all-reduce
  /// as soon as backward has completed its gradients, so that the sums travel while backward goes
  /// on. Buckets start in one order on every rank (a bucket waits for the ones before it).
  autograd::LeafReady gradient_ready_hook(const std::vector<Tensor>& params);
  /// Sums every rank's gradient of its share of the global batch's mean loss into every rank's
  /// params' grads (averages BatchNormalization's moving statistics, and keeps the random layers'
  /// counters equal) for batch `step`, begun with begin_step(step). `loss` is undefined when this
  /// rank's shard is empty. A CPU model's sum is done on return, and the global batch's loss is
  /// returned; a GPU model's is queued on the device (nothing is read back, nullopt).
  std::optional<double> all_reduce_gradients(std::vector<Tensor>& params, const Tensor& loss, int64_t step, int epoch);
  /// Whether the model trains on a GPU (its sums then queue on the device).
  bool on_device() const { return device_sum_ != nullptr; }
  /// The device part of all_reduce_gradients for the step begun last (a recorded step's body).
  void all_reduce_gradients_on_device(std::vector<Tensor>& params);
  /// On a GPU: waits for the work queued so far, up to the collectives' deadline, and throws naming
  /// the ranks that did not join `what` when it does not complete (nothing waits for a dead peer
  /// forever). Call it before reading anything back from the device. Nothing on the CPU.
  void synchronize(const std::string& what);
  /// Makes `logs` (means over this rank's `samples`) the means over every rank's samples.
  void reduce_logs(std::vector<std::pair<std::string, double>>& logs, int64_t samples, const std::string& what);
  /// The validation logs over every rank's shard of (x, y) (inputs and prepared targets).
  std::vector<std::pair<std::string, double>> evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                                       int64_t batch_size, int epoch);
  /// False on every rank when any rank's callbacks stopped training.
  bool all_keep_going(bool keep_going, int epoch);
  /// With check_replicas: throws naming the ranks whose weights differ from rank 0's.
  void check_replicas(int epoch);
  /// Waits until every rank got here (the end of fit: the chief's files are written).
  void barrier(const std::string& what);

 private:
  struct Entry {
    Tensor tensor;  // a parameter (its gradient goes in the bucket) or a moving statistic
    bool statistic = false;
    std::size_t param = 0;  // index into params (parameters only)
  };
  struct Bucket {
    DType dtype;
    std::vector<Entry> entries;
    std::vector<unsigned char> bytes;
    int pending = 0;  // gradients of the step backward has not completed yet
  };
  void make_buckets(const std::vector<Tensor>& params);
  // Packs bucket `b` (gradients scaled by the shard's share) and starts its all-reduce.
  void start_bucket(Bucket& b, const std::vector<Tensor>& params, int64_t rows, double scale);
  // Starts every bucket from next_bucket_ on whose gradients are complete, in order.
  void start_ready_buckets(const std::vector<Tensor>& params);
  [[noreturn]] void device_deadline_missed(const std::string& what);
  // Starts copying rank 0's `t` here: through the GPU group for a device tensor, else the
  // communicator (complete after comm_.wait and synchronize).
  void broadcast_tensor(Tensor& t);
  void broadcast_optimizer_state();

  Communicator& comm_;
  ReplicaContext context_;
  ScopedReplicaContext context_scope_{&context_};  // the layers see context_ during fit
  Model& model_;
  model::Batches& batches_;
  int64_t bucket_bytes_;
  bool check_replicas_;
  bool chief_decides_;              // only the chief runs callbacks (Strategy::callbacks_on_chief_only)
  std::vector<Tensor> statistics_;  // BatchNormalization's moving statistics (trainable layers)
  std::vector<Tensor> counters_;    // random layers' stream counters (Dropout, random image layers)
  std::vector<int64_t> counter_values_;
  std::vector<Bucket> buckets_;  // made at the first step
  std::size_t next_bucket_ = 0;  // the first bucket of the step not started yet
  std::vector<std::size_t> bucket_of_param_;
  std::unordered_map<const void*, std::size_t> param_of_impl_;  // a parameter's TensorImpl -> its index
  std::vector<double> meta_;                                    // loss share, one "has a gradient" flag per param
  // This rank's part of the step begun last, derived once (every rank knows every shard's rows).
  struct Share {
    int64_t rows = 0, global_rows = 0;
    double scale = 0.0;       // rows / global_rows: the share of the global mean loss
    int ranks_with_rows = 0;  // the ranks the moving statistics average over
  } share_;
  backend::DeviceCollectives* device_group_ = nullptr;  // a GPU model's collectives (NCCL)
  std::unique_ptr<DeviceGradientSum> device_sum_;       // a GPU model's gradient sum
};

}  // namespace kiln::distribute
