// Opening files whose path comes from a user: only regular files are read. A directory would give
// ifstream a size of LLONG_MAX and a FIFO would block the reader for ever, so both are refused by
// what they are before anything is opened or allocated.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace kiln::io {

/// What is at a path that is not a regular file (symbolic links followed).
struct FileProblem {
  bool missing = false;  ///< nothing is there (a dangling symbolic link is not missing: it is named)
  std::string text;      ///< "does not exist", "is a directory", "is a FIFO (named pipe)", "is a
                         ///< symbolic link loop (...)", "is a dangling symbolic link (to 'x')", ...
  /// Whether there is a problem.
  explicit operator bool() const { return !text.empty(); }
};
/// The problem with reading `path` as a regular file; empty (false) for a regular file.
FileProblem irregular_file_problem(const std::string& path);

/// Why `path` (already checked by irregular_file_problem) could not be opened, or empty on success.
/// The open never blocks: a FIFO put in place after the check is found and refused by fstat.
struct OpenedFile {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file{nullptr, &std::fclose};
  std::uintmax_t size = 0;  ///< the size of the file that was opened
  std::string problem;      ///< empty when `file` is open
};
OpenedFile open_regular_file(const std::string& path);

/// The whole regular file at `path`. Errors are kiln::Error(op, "'path' is a directory; expected
/// <expected>") and the like; a file that changes size while it is read is refused.
std::vector<uint8_t> read_regular_file(const std::string& path, const std::string& op, const std::string& expected);

/// "1 byte", "2 bytes": `n` and `noun`, plural when n != 1.
std::string count_of(std::uintmax_t n, const std::string& noun);

}  // namespace kiln::io
