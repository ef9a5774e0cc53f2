// AtomicFile: temp file + flush to disk + rename over the target (+ directory fsync on POSIX). A
// crash at any point leaves the target either as it was or fully replaced; a
// "<name>.tmp-<pid>-<n>" file a killed writer left behind is removed by the next save of the target.
//
// POSIX: open(O_EXCL), write, fsync, rename(2), then fsync of the directory so the rename itself
// is durable. Windows: _open(_O_EXCL), _write, _commit (FlushFileBuffers), then MoveFileEx with
// MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH, which replaces an existing target in one
// step and returns once the move is on disk; Windows has no directory fsync, so there is none.
#include "io/atomic_file.h"

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <fcntl.h>
#include <io.h>
#include <process.h>
#include <sys/stat.h>
#include <windows.h>
#else
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "io/warning.h"
#include "kiln/error.h"

namespace kiln::io {

namespace fs = std::filesystem;

namespace {

// ---- the platform's calls, each returning an error text (empty on success) where it can fail ----
#ifdef _WIN32

int64_t current_pid() { return static_cast<int64_t>(::_getpid()); }

bool process_gone(int64_t pid) {
  HANDLE h = ::OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, static_cast<DWORD>(pid));
  if (!h) return ::GetLastError() == ERROR_INVALID_PARAMETER;  // no process has this id
  DWORD code = 0;
  const bool exited = ::GetExitCodeProcess(h, &code) && code != STILL_ACTIVE;
  ::CloseHandle(h);
  return exited;
}

int open_exclusive(const std::string& path) {
  return ::_open(path.c_str(), _O_WRONLY | _O_CREAT | _O_EXCL | _O_BINARY | _O_NOINHERIT, _S_IREAD | _S_IWRITE);
}

int64_t write_some(int fd, const uint8_t* p, std::size_t n) {
  return ::_write(fd, p, static_cast<unsigned>(std::min<std::size_t>(n, 1u << 30)));
}

int sync_fd(int fd) { return ::_commit(fd); }
int close_fd(int fd) { return ::_close(fd); }
void remove_file(const std::string& path) { ::_unlink(path.c_str()); }

std::string last_windows_error() { return std::system_category().message(static_cast<int>(::GetLastError())); }

std::string replace_file(const std::string& from, const std::string& to) {
  if (::MoveFileExA(from.c_str(), to.c_str(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) return {};
  return last_windows_error();
}

// MOVEFILE_WRITE_THROUGH already waited for the move to reach the disk.
std::string sync_directory(const std::string&) { return {}; }

#else

int64_t current_pid() { return static_cast<int64_t>(::getpid()); }

bool process_gone(int64_t pid) { return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

int open_exclusive(const std::string& path) {
  // 0666 filtered by the umask, like any newly created file (mkstemp would force 0600).
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
}

int64_t write_some(int fd, const uint8_t* p, std::size_t n) { return ::write(fd, p, n); }
int sync_fd(int fd) { return ::fsync(fd); }
int close_fd(int fd) { return ::close(fd); }
void remove_file(const std::string& path) { ::unlink(path.c_str()); }

std::string replace_file(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) == 0) return {};
  return std::strerror(errno);
}

// The rename is durable only once the directory entry is on disk.
std::string sync_directory(const std::string& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return "opening directory " + dir + " to fsync it failed: " + std::strerror(errno);
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  // Some file systems refuse fsync on directories (EINVAL); there is nothing more to do there.
  if (rc != 0 && err != EINVAL) return "fsync of directory " + dir + " failed: " + std::strerror(err);
  return {};
}

#endif

std::string directory_of(const std::string& path) {
  const std::string dir = fs::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// Follows symbolic links at the end of `path` to the file they name, so that a save through a link
// replaces the link's target (as writing to it would) instead of the link itself. A dangling link
// resolves to its missing target, which the save creates.
std::string resolve_symlinks(const std::string& path) {
  constexpr int kMaxHops = 40;  // Linux's own limit
  fs::path p(path);
  for (int hop = 0; hop < kMaxHops; ++hop) {
    std::error_code ec;
    if (!fs::is_symlink(fs::symlink_status(p, ec))) return p.string();
    const fs::path target = fs::read_symlink(p, ec);
    if (ec)
      throw Error("save", path + ": reading symbolic link " + p.string() + " failed: " + ec.message() +
                              "; expected a file or a link to one");
    p = target.is_absolute() ? target : p.parent_path() / target;
  }
  throw Error("save", path + ": is a symbolic link loop (more than " + std::to_string(kMaxHops) +
                          " links); expected a file or a link to one");
}

// Unique among threads (counter) and processes (pid); O_EXCL guards against anything else.
std::string temp_name_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp-" + std::to_string(current_pid()) + "-" + std::to_string(counter.fetch_add(1));
}

// Removes "<path>.tmp-<pid>-<n>" files whose writing process no longer exists (killed mid-save).
// A live writer's file is left alone.
void remove_orphaned_temps(const std::string& path) {
  const std::string prefix = fs::path(path).filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(directory_of(path), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const auto dash = rest.find('-');
    if (dash == 0 || dash == std::string::npos || dash > 10 ||
        rest.find_first_not_of("0123456789-") != std::string::npos)
      continue;
    const int64_t pid = std::stoll(rest.substr(0, dash));
    if (pid > 0 && pid != current_pid() && process_gone(pid)) fs::remove(entry.path(), ec);
  }
}

}  // namespace

AtomicFile::AtomicFile(const std::string& path) {
  if (path.empty()) throw Error("save", "the path is empty; expected a file name");
  path_ = resolve_symlinks(path);
  remove_orphaned_temps(path_);
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    temp_path_ = temp_name_for(path_);
    fd_ = open_exclusive(temp_path_);
    if (fd_ < 0 && errno != EEXIST) {
      const int err = errno;
      throw Error("save", path_ + ": cannot create the temporary file " + temp_path_ + ": " + std::strerror(err) +
                              "; expected a writable directory " + directory_of(path_));
    }
  }
  if (fd_ < 0) throw Error("save", path_ + ": no free temporary file name beside it; expected to create one");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) close_fd(fd_);
  if (!committed_ && !temp_path_.empty()) remove_file(temp_path_);
}

void AtomicFile::fail(const std::string& what, const std::string& reason) {
  if (fd_ >= 0) close_fd(fd_);
  fd_ = -1;
  remove_file(temp_path_);
  temp_path_.clear();
  throw Error("save", path_ + ": " + what + " failed: " + reason + "; expected the file to be written (" + path_ +
                          " is unchanged)");
}

void AtomicFile::write(std::span<const uint8_t> bytes) {
  if (fd_ < 0 || committed_) throw Error("save", path_ + ": write after commit or failure; expected an open file");
  const uint8_t* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const int64_t n = write_some(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("writing " + temp_path_, std::strerror(errno));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0 || committed_) throw Error("save", path_ + ": commit after commit or failure; expected an open file");
  if (sync_fd(fd_) != 0) fail("flushing " + temp_path_ + " to disk", std::strerror(errno));
  if (close_fd(fd_) != 0) {
    fd_ = -1;
    fail("closing " + temp_path_, std::strerror(errno));
  }
  fd_ = -1;
  if (const std::string err = replace_file(temp_path_, path_); !err.empty())
    fail("renaming " + temp_path_ + " over it", err);
  committed_ = true;
  // The new file is in place and complete: a failed directory sync only weakens its durability
  // against a power loss, so it is reported and the save (and a fit that called it) goes on.
  if (const std::string err = sync_directory(directory_of(path_)); !err.empty())
    warn("save", path_ + ": saved, but " + err + "; the new file is in place but may not survive a power loss");
}

void write_file_atomically(const std::string& path, std::span<const uint8_t> bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

}  // namespace kiln::io
