/// Gradient mode control.
#pragma once

namespace kiln {

/// While alive, ops record no graph (inference, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

/// Whether ops currently record the graph.
bool grad_enabled();

}  // namespace kiln
