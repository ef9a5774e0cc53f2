// Helpers shared by the test files: skipping without a GPU, and reading an error's message.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "kiln/config.h"
#include "kiln/error.h"

/// Skips the current test, with the verdict's one-line reason, when no GPU is usable.
#define REQUIRE_GPU()                                                                          \
  do {                                                                                         \
    const ::kiln::GpuVerdict verdict_ = ::kiln::gpu_verdict();                                 \
    if (!verdict_.usable) GTEST_SKIP() << "no usable GPU: " << verdict_.summary;               \
  } while (0)

namespace kiln::testing {

/// The message of the kiln::Error that `f` throws, or "(no error)".
inline std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace kiln::testing
