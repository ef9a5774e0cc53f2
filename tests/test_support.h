// Helpers shared by the test files: skipping without a GPU or without symbolic links, reading an
// error's message, scoped process-wide modes and environment variables, and float comparisons.
#pragma once

#include <gtest/gtest.h>

#ifdef _WIN32
#include <process.h>
#else
#include <unistd.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "kiln/config.h"
#include "kiln/device.h"
#include "kiln/error.h"
#include "kiln/mixed_precision.h"

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

/// Puts the global dtype policy back to "float32", the default, when the scope ends (a test that
/// sets another one, even if it fails on the way).
struct RestoreGlobalPolicy {
  RestoreGlobalPolicy() = default;
  RestoreGlobalPolicy(const RestoreGlobalPolicy&) = delete;
  RestoreGlobalPolicy& operator=(const RestoreGlobalPolicy&) = delete;
  ~RestoreGlobalPolicy() { mixed_precision::set_global_policy("float32"); }
};

/// Sets (or with nullptr unsets) an environment variable for a scope and restores the previous
/// value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    set(name, value);
  }
  ~ScopedEnv() { set(name_, old_ ? old_->c_str() : nullptr); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  // Windows has no setenv; _putenv_s with "" removes the variable.
  static void set(const char* name, const char* value) {
#ifdef _WIN32
    _putenv_s(name, value ? value : "");
#else
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
#endif
  }
  const char* name_;
  std::optional<std::string> old_;
};

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

/// Sets a process-wide mode (TF32, op determinism) for one scope and restores the previous setting
/// on exit, even when a check fails.
class ModeSetting {
 public:
  ModeSetting(void (*set)(bool), bool (*get)(), bool enabled) : set_(set), before_(get()) { set_(enabled); }
  ~ModeSetting() {
    try {
      set_(before_);
    } catch (...) {  // a destructor must not throw; the next test's default check would report it
    }
  }
  ModeSetting(const ModeSetting&) = delete;
  ModeSetting& operator=(const ModeSetting&) = delete;

 private:
  void (*set_)(bool);
  bool before_;
};

/// Sets the process-wide thread count for one scope and restores the previous count on exit.
class ThreadCount {
 public:
  explicit ThreadCount(int threads) : saved_(get_num_threads()) { set_num_threads(threads); }
  ~ThreadCount() { set_num_threads(saved_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int saved_;
};

/// max |a - b| / max |b|: the error relative to the largest reference value (`b`). Sizes must match.
inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

/// Whether `a` and `b` hold the same floats bit for bit (NaNs and signed zeros included).
inline bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// This process's id, for folder and file names that concurrent runs of the tests do not share.
inline int64_t process_id() {
#ifdef _WIN32
  return ::_getpid();
#else
  return ::getpid();
#endif
}

/// A fixture giving each test a fresh folder (removed afterwards; named by suite, test and process,
/// so concurrent runs do not share it) and models on the CPU, whose kernels are deterministic.
class CpuTestInFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_device_ = model_device();
    set_default_device(Device::cpu());
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("kiln_" + std::string(info->test_suite_name()) + "_" + std::to_string(process_id()) + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    set_default_device(previous_device_);
    std::error_code ignored;  // a folder left behind must not fail the test
    std::filesystem::remove_all(dir_, ignored);
  }
  /// `name` inside this test's folder.
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
  Device previous_device_ = Device::cpu();
};

}  // namespace kiln::testing
