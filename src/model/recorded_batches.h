// A loop over the full batches of a dataset on the device, recorded once (a CUDA graph) and
// replayed: the rows of each batch are taken from a device-side sample order at a device-side
// batch counter, so a replay takes no host argument and costs one launch instead of dozens of
// launches and their host overhead. fit's training step (model/recorded_step.h) and evaluate's batch
// (model/recorded_evaluation.h) are both such a loop around a different body.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kiln/tensor.h"

namespace kiln::model {

class RecordedBatches {
 public:
  /// The work of one batch (xb, yb: `batch_size` rows of x and y). Must only queue device work.
  using Body = std::function<void(const std::vector<Tensor>& xb, const std::vector<Tensor>& yb)>;

  /// What run() did.
  enum class Ran {
    Recorded,  ///< recorded the batch and ran the recording once (the body ran on the host once)
    Replayed,  ///< replayed the recording (the body did not run on the host)
    Failed,    ///< recording failed: nothing ran on the device; run this batch eagerly, stay eager
  };

  /// nullptr when the device of x cannot record or x holds no full batch. x and y are the whole
  /// dataset on the device; they are read at their current addresses by every replay. The body
  /// gets rows [shard_first, shard_first + shard_rows) of each full batch (a data-parallel fit's
  /// shard; shard_rows -1: the whole batch).
  static std::unique_ptr<RecordedBatches> make(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                               int64_t batch_size, int64_t shard_first = 0, int64_t shard_rows = -1);
  ~RecordedBatches();
  RecordedBatches(const RecordedBatches&) = delete;
  RecordedBatches& operator=(const RecordedBatches&) = delete;

  /// Uploads the sample order (one entry per row of x) into the same device addresses every time;
  /// the copy queues before the runs that follow.
  void set_order(const std::vector<int32_t>& order);
  /// Runs full batch `step` (0-based) of the current order: records it the first time (nothing
  /// may read the device back meanwhile), else replays.
  Ran run(int64_t step, const Body& body);
  /// The device-side batch counter (int64): while a recorded body runs it names the batch at hand,
  /// so per-batch values can be read from device tables at it (fit's optimizer step sizes).
  const int64_t* counter() const { return index_; }
  /// Why the recording failed (empty when it did not).
  const std::string& failure() const { return failure_; }

 private:
  RecordedBatches(backend::Backend& be, const std::vector<Tensor>& x, const std::vector<Tensor>& y, int64_t batch_size,
                  int64_t shard_first, int64_t shard_rows);

  backend::Backend& be_;
  std::vector<Tensor> x_, y_;
  int64_t batch_size_;
  Tensor order_;                  // int32 [n]: the sample order
  int64_t* index_ = nullptr;      // device int64: the full batch the next run works on
  Tensor batch_;                  // int32 [batch_size]: the rows of that batch
  Tensor shard_;                  // the part of batch_ the body gets
  int64_t index_on_device_ = -1;  // what index_ holds once the queued work has run (-1: unknown)
  std::unique_ptr<backend::CapturedWork> graph_;
  std::string failure_;
};

}  // namespace kiln::model
