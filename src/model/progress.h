// Keras' progress output: "Epoch 3/10", then "step/steps bar time time-per-step - loss: ...",
// redrawn in place on a terminal, printed once per epoch otherwise.
#pragma once

#include <chrono>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace kiln::model {

using Values = std::vector<std::pair<std::string, double>>;

class ProgressBar {
 public:
  /// verbose: 0 silent, 1 bar (redrawn on a terminal), 2 one line at the end.
  ProgressBar(std::ostream& os, int64_t total_steps, int verbose, bool is_terminal);
  /// Whether a redraw is due at `step` (so the caller reads device values only then).
  bool wants_update(int64_t step) const;
  /// Redraws for `step` done of the total with `values`.
  void update(int64_t step, const Values& values);
  /// Final line of the epoch with `values` (train and validation).
  void finish(const Values& values);

 private:
  std::ostream& os_;
  int64_t total_;
  int verbose_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  void draw(int64_t step, const Values& values, bool final);
};

/// True when stdout is a terminal (redraws are then in place).
bool stdout_is_terminal();
/// "Epoch 3/10" (printed by fit when verbose).
std::string epoch_header(int epoch, int epochs);

}  // namespace kiln::model
