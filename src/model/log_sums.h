// The running sums behind fit's and evaluate's logs: the total loss, and for a model of several
// outputs each output's loss and metrics under Keras' names ("dense_1_loss", "dense_1_accuracy").
// Kept on the model's device (metrics::Accumulator), so a recorded step needs no host read.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "metrics/metrics.h"

namespace kiln::model {

class LogSums {
 public:
  /// `metrics`: the compiled metric names per output; `output_names` names the outputs in logs.
  LogSums(const std::vector<std::vector<std::string>>& metrics, std::vector<std::string> output_names, Device device);
  /// Zeroes every sum in place.
  void reset();
  /// Adds one batch: its total loss, each output's loss (unused for one output), targets and
  /// predictions per output.
  void add(const Tensor& total, const std::vector<Tensor>& output_losses, const std::vector<Tensor>& y_true,
           const std::vector<Tensor>& y_pred);
  /// Counts `n` more samples whose sums a replayed recording of add() has already added.
  void add_samples(int64_t n);
  /// Samples seen since reset().
  int64_t samples() const { return total_.samples(); }
  /// The logs in Keras' order, "loss" last; reads the device.
  std::vector<std::pair<std::string, double>> results() const;

 private:
  metrics::Accumulator total_;                 // the loss (and, for one output, its metrics)
  std::vector<metrics::Accumulator> outputs_;  // several outputs: each output's loss and metrics
  std::vector<std::string> output_names_;
};

}  // namespace kiln::model
