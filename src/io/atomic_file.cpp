// AtomicFile: temp file + fsync + rename + directory fsync (POSIX). A crash at any point leaves
// the target either as it was or fully replaced; a "<name>.tmp-<pid>-<n>" file a killed writer left
// behind is removed by the next save of the same target.
#include "io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "kiln/error.h"

namespace kiln::io {

namespace {

std::string directory_of(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// Unique among threads (counter) and processes (pid); O_EXCL guards against anything else.
std::string temp_name_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

// Removes "<path>.tmp-<pid>-<n>" files whose writing process no longer exists (killed mid-save).
// A live writer's file (its pid answers kill(pid, 0)) is left alone.
void remove_orphaned_temps(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string prefix = fs::path(path).filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(directory_of(path), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const auto dash = rest.find('-');
    if (dash == 0 || dash == std::string::npos || dash > 9 || rest.find_first_not_of("0123456789-") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stoll(rest.substr(0, dash)));
    if (pid > 0 && pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) fs::remove(entry.path(), ec);
  }
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  if (path_.empty()) throw Error("save", "the path is empty; expected a file name");
  remove_orphaned_temps(path_);
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    temp_path_ = temp_name_for(path_);
    // 0666 filtered by the umask, like any newly created file (mkstemp would force 0600).
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) {
      const int err = errno;
      throw Error("save", path_ + ": cannot create the temporary file " + temp_path_ + ": " + std::strerror(err) +
                              "; expected a writable directory " + directory_of(path_));
    }
  }
  if (fd_ < 0) throw Error("save", path_ + ": no free temporary file name beside it; expected to create one");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void AtomicFile::fail(const std::string& what, int err) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temp_path_.c_str());
  temp_path_.clear();
  throw Error("save", path_ + ": " + what + " failed: " + std::strerror(err) + "; expected the file to be written (" +
                          path_ + " is unchanged)");
}

void AtomicFile::write(std::span<const uint8_t> bytes) {
  if (fd_ < 0 || committed_) throw Error("save", path_ + ": write after commit or failure; expected an open file");
  const uint8_t* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("writing " + temp_path_, errno);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0 || committed_) throw Error("save", path_ + ": commit after commit or failure; expected an open file");
  if (::fsync(fd_) != 0) fail("fsync of " + temp_path_, errno);
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail("closing " + temp_path_, errno);
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) fail("renaming " + temp_path_ + " over it", errno);
  committed_ = true;
  // The rename is durable only once the directory entry is on disk.
  const std::string dir = directory_of(path_);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    const int err = errno;
    throw Error("save", path_ + ": opening directory " + dir + " to fsync it failed: " + std::strerror(err) +
                            "; expected a readable directory (the new file is in place but may not survive a power loss)");
  }
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  // Some file systems refuse fsync on directories (EINVAL); the rename itself has happened.
  if (rc != 0 && err != EINVAL)
    throw Error("save", path_ + ": fsync of directory " + dir + " failed: " + std::strerror(err) +
                            "; expected it to succeed (the new file is in place but may not survive a power loss)");
}

void write_file_atomically(const std::string& path, std::span<const uint8_t> bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

}  // namespace kiln::io
