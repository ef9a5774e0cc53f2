// Running sums of the loss and the metrics over an epoch, kept on the model's device so a
// training step needs no host read; values are read only when shown.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kiln/metrics.h"
#include "kiln/tensor.h"

namespace kiln::metrics {

/// Accumulates the batch-size-weighted loss and the compiled metrics.
class Accumulator {
 public:
  /// `metric_names` as given to compile ("accuracy", ...); throws for unknown names.
  Accumulator(const std::vector<std::string>& metric_names, Device device);
  /// Zeroes every sum (in place after the first time, so the sums keep their device addresses).
  void reset();
  /// Adds one batch: its mean loss (one-element tensor), targets and predictions.
  void add(const Tensor& loss, const Tensor& y_true, const Tensor& y_pred);
  /// Counts `n` more samples whose sums a replayed recording of add() has already added.
  void add_samples(int64_t n) { samples_ += n; }
  /// Samples seen since reset().
  int64_t samples() const { return samples_; }
  /// ("loss", mean) then each metric, as Keras orders them in logs; reads the device.
  std::vector<std::pair<std::string, double>> results() const;
  /// The mean loss so far (reads the device).
  double mean_loss() const;

 private:
  std::vector<std::shared_ptr<const Metric>> metrics_;
  std::vector<std::string> names_;  // the metrics' names
  Device device_;
  Tensor loss_sum_;
  std::vector<Tensor> metric_sums_;
  int64_t samples_ = 0;
};

/// Canonical Keras log name of a metric ("acc" -> "accuracy"); throws for unknown names.
std::string canonical_name(const std::string& name);

}  // namespace kiln::metrics
