// The test binary's process-wide settings, made once before the first test runs:
// - Models start on the CPU, so results do not depend on the machine; GPU tests ask for the GPU
//   explicitly.
// - Op determinism is on: the GPU tests compare recorded steps with eager ones, resumed runs with
//   uninterrupted ones and reruns with runs, bit for bit, and cuDNN's fastest algorithms are not
//   deterministic. test_op_determinism.cpp turns it off where it tests kiln's default.
// A GoogleTest environment, not a static initializer: the settings write kiln's own statics, which
// other files' static initializers are not ordered against.
#include <gtest/gtest.h>

#include "kiln/config.h"

namespace {

class ProcessDefaults : public ::testing::Environment {
 public:
  void SetUp() override {
    kiln::set_default_device(kiln::Device::cpu());
    kiln::config::enable_op_determinism();
  }
};

// GoogleTest owns and deletes the environment.
const ::testing::Environment* const process_defaults = ::testing::AddGlobalTestEnvironment(new ProcessDefaults);

}  // namespace
