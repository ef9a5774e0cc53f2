// Which runner runs each batch of a pass, in one place for fit and evaluate: eager warm-up
// batches first (they make cuDNN's choices, the optimizer's slots and the allocator's cache), then
// a recording, made when the next full batch is due and replayed for every full batch; partial
// batches eagerly; eagerly for good once a recording fails. Every reason to stay eager ends in the
// model's StepReport (Sequential::last_fit_execution) and, unless it is the user's choice or the
// device's nature, in a line on stdout.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "kiln/model.h"
#include "model/step_runner.h"

namespace kiln::model {

/// Whether and when a pass may record.
struct RecordingPlan {
  /// Why recording is not tried at all ("" when it is).
  std::string never{};
  /// Whether `never` is the user's choice (cuda_graphs = false, check_numerics) or the device's
  /// nature (the CPU), said by the report only; otherwise a line says it too.
  bool never_is_expected = false;
  /// Eager full batches before the recording is made.
  int64_t warmup_steps = 0;
  /// Called once the warm-up batches have run (evaluate's kept recording remembers it).
  std::function<void()> warmed{};
  /// Makes the recorded runner; on nullptr `note` says why not, else what stays eager besides.
  std::function<std::unique_ptr<StepRunner>(std::string& note)> make{};
};

/// The plan's `never` for the reasons fit and evaluate share (cuda_graphs off, a device that
/// cannot record, no full batch); "" where recording may be tried.
RecordingPlan plan_recording(bool cuda_graphs, Device device, const Batches& batches);

/// Runs each batch of a pass with the recorded runner where it can, else eagerly, and reports why.
class StepSchedule {
 public:
  /// Words of the printed lines: `op` ("fit"), `eagerly` ("training eagerly"), `unit` ("step").
  struct Words {
    std::string op, eagerly, unit;
  };
  /// Runs `work` on `batches` (both outlive the schedule) as `plan` allows. With `print`, lines go
  /// to stdout, except one that repeats `said_before` (the reason a previous call reported).
  StepSchedule(Words words, const Batches& batches, StepWork& work, RecordingPlan plan, bool print,
               const std::string& said_before = "");
  /// Starts a pass over the batches (in their current order).
  void start_pass();
  /// Runs batch `step` of the pass.
  void run(int64_t step);
  /// Ends the pass (host-side state is up to date afterwards).
  void finish_pass();
  /// How the batches ran so far.
  StepReport report() const;

 private:
  // Prints `line` unless printing is off or `reason` is what a previous call reported.
  void say(const std::string& reason, const std::string& line) const;
  // Makes the recorded runner where the warm-up is done and one may be made; true when there is one.
  bool ready_to_record(int64_t step);

  Words words_;
  const Batches& batches_;
  EagerStep eager_;
  RecordingPlan plan_;
  bool print_;
  std::string said_before_;
  std::unique_ptr<StepRunner> recorded_;
  std::string note_;        // what stays eager beside the recording, or why it was not made
  std::string failure_;     // why recording failed ("" when it did not)
  bool gave_up_ = false;    // no recording from now on (failure_ or note_ says why)
  int64_t warm_steps_ = 0;  // eager full batches since the last recording
  int64_t steps_ = 0, recorded_steps_ = 0;
};

}  // namespace kiln::model
