// Atomic file replacement: write beside the target, fsync, rename over it, fsync the directory,
// so a reader (or a process restarted after a crash) sees either the old file or the new one.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace kiln::io {

/// A file being written to a temporary name in the target's directory. commit() makes it the
/// target; destroying it uncommitted (an error, an exception) removes the temporary file and
/// leaves the target untouched. Errors are kiln::Error("save", ...) naming the path and strerror.
class AtomicFile {
 public:
  /// Creates the temporary file for `path` (same directory, so the rename cannot cross devices).
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends `bytes` (retrying short writes and EINTR).
  void write(std::span<const uint8_t> bytes);
  /// Flushes the data to disk, renames the temporary file over the target and flushes the directory.
  void commit();
  /// The temporary file's path (for tests).
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;

  [[noreturn]] void fail(const std::string& what, int err);
};

/// Replaces `path` with `bytes` atomically.
void write_file_atomically(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace kiln::io
