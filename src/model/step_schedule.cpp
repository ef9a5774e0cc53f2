// StepSchedule: warm-up, recording on first need, eager fallback, and the report of each.
#include "model/step_schedule.h"

#include <iostream>

#include "backend/backend.h"

namespace kiln::model {

RecordingPlan plan_recording(bool cuda_graphs, Device device, const Batches& batches) {
  if (!cuda_graphs) return {.never = "cuda_graphs is false", .never_is_expected = true};
  if (!backend::get(device).can_capture())
    return {.never = "the device " + device.str() + " cannot record work (CUDA graphs need a CUDA device)",
            .never_is_expected = true};
  if (batches.full_steps() == 0)
    return {.never = "no full batch to record (" + std::to_string(batches.samples()) + " samples, batch_size " +
                     std::to_string(batches.batch_size()) + ")"};
  return {};
}

StepSchedule::StepSchedule(Words words, const Batches& batches, StepWork& work, RecordingPlan plan, bool print,
                           const std::string& said_before)
    : words_(std::move(words)),
      batches_(batches),
      eager_(batches, work),
      plan_(std::move(plan)),
      print_(print),
      said_before_(said_before) {
  if (!plan_.never.empty() && !plan_.never_is_expected)
    say(plan_.never, words_.op + ": " + words_.eagerly + "; " + plan_.never);
}

void StepSchedule::say(const std::string& reason, const std::string& line) const {
  if (print_ && reason != said_before_) std::cout << line << '\n';
}

void StepSchedule::start_pass() {
  if (recorded_ && !recorded_->start_pass(0)) {
    recorded_.reset();  // the weights moved: warm up on their new storage and record again
    warm_steps_ = 0;
  }
}

bool StepSchedule::ready_to_record(int64_t step) {
  if (recorded_) return true;
  if (gave_up_ || !plan_.never.empty() || warm_steps_ < plan_.warmup_steps || !plan_.make) return false;
  std::string note;
  recorded_ = plan_.make(note);
  if (recorded_ && !recorded_->start_pass(step)) recorded_.reset();
  if (!recorded_) {
    gave_up_ = true;
    note_ = note.empty() ? "the recorded " + words_.unit + " could not be made" : note;
    say(note_, words_.op + ": " + words_.eagerly + "; " + note_);
    return false;
  }
  note_ = note;
  if (!note_.empty()) say(note_, words_.op + ": " + note_);
  return true;
}

void StepSchedule::run(int64_t step) {
  ++steps_;
  const bool full = step < batches_.full_steps();
  if (full && ready_to_record(step)) {
    if (recorded_->run(step)) {
      ++recorded_steps_;
      return;
    }
    failure_ = "recording the " + words_.unit + " failed: " + recorded_->failure();
    say(failure_, words_.op + ": " + words_.eagerly + "; " + failure_);
    recorded_->settle();
    recorded_.reset();
    gave_up_ = true;
  }
  if (recorded_) recorded_->settle();  // the eager step continues from the replays' state
  eager_.run(step);
  if (full && ++warm_steps_ == plan_.warmup_steps && plan_.warmed) plan_.warmed();
}

void StepSchedule::finish_pass() {
  if (recorded_) recorded_->settle();
}

StepReport StepSchedule::report() const {
  if (!failure_.empty()) return {.recorded = false, .reason = failure_};
  if (recorded_steps_ > 0) return {.recorded = true, .reason = note_};
  if (!plan_.never.empty()) return {.recorded = false, .reason = plan_.never};
  if (gave_up_) return {.recorded = false, .reason = note_};
  if (steps_ == 0) return {.recorded = false, .reason = "no " + words_.unit + " ran"};
  return {.recorded = false,
          .reason = "every full " + words_.unit + " ran eagerly as warm-up (the recording follows " +
                    std::to_string(plan_.warmup_steps) + " of them)"};
}

}  // namespace kiln::model
