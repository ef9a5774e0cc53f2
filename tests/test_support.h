// Helpers shared by the test files: skipping without a GPU or without symbolic links, and reading an
// error's message.
#pragma once

#include <gtest/gtest.h>

#ifdef _WIN32
#include <process.h>
#else
#include <unistd.h>
#endif

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>

#include "kiln/config.h"
#include "kiln/error.h"

/// Skips the current test, with the verdict's one-line reason, when no GPU is usable.
#define REQUIRE_GPU()                                                            \
  do {                                                                           \
    const ::kiln::GpuVerdict verdict_ = ::kiln::gpu_verdict();                   \
    if (!verdict_.usable) GTEST_SKIP() << "no usable GPU: " << verdict_.summary; \
  } while (0)

/// Skips the current test when symbolic links cannot be made in the folder `dir` (on Windows,
/// MinGW's std::filesystem has none, and MSVC's need Developer Mode or an administrator).
#define REQUIRE_SYMLINKS(dir)                                                            \
  do {                                                                                   \
    const std::string why_ = ::kiln::testing::symlinks_unavailable(dir);                 \
    if (!why_.empty()) GTEST_SKIP() << "no symbolic links in " << (dir) << ": " << why_; \
  } while (0)

namespace kiln::testing {

/// Why a symbolic link cannot be made in `dir` ("" when one can), found by making one.
inline std::string symlinks_unavailable(const std::filesystem::path& dir) {
  const std::filesystem::path probe = dir / "kiln_symlink_probe";
  std::error_code ec;
  std::filesystem::create_symlink("kiln_symlink_probe_target", probe, ec);
  if (ec) return ec.message();
  std::filesystem::remove(probe, ec);
  return "";
}

/// The message of the kiln::Error that `f` throws, or "(no error)".
inline std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

/// This process's id, for folder and file names that concurrent runs of the tests do not share.
inline int64_t process_id() {
#ifdef _WIN32
  return ::_getpid();
#else
  return ::getpid();
#endif
}

}  // namespace kiln::testing
