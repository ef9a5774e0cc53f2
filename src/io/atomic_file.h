// Atomic file replacement: write beside the target, flush it to disk, rename over it (and fsync the
// directory on POSIX), so a reader (or a process restarted after a crash) sees either the old file
// or the new one. A path that is a symbolic link replaces the link's target, the link stays.
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
  /// Creates the temporary file for `path` (same directory, so the rename cannot cross devices);
  /// when `path` is a symbolic link, for the file it names.
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends `bytes` (retrying short writes and EINTR).
  void write(std::span<const uint8_t> bytes);
  /// Flushes the data to disk, renames the temporary file over the target and flushes the directory.
  /// A failure of that last step (e.g. a directory without read permission) is a warning on stderr,
  /// not an error: the new file is in place.
  void commit();
  /// The file being replaced: the path given, symbolic links followed.
  const std::string& path() const { return path_; }
  /// The temporary file's path (for tests).
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;

  [[noreturn]] void fail(const std::string& what, const std::string& reason);
};

/// Replaces `path` with `bytes` atomically.
void write_file_atomically(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace kiln::io
