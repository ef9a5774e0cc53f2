// Regular-file checks and reads for every reader of user-named files (safetensors, CIFAR-10).
#include "io/file_read.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <new>

#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "kiln/error.h"

namespace kiln::io {

namespace fs = std::filesystem;

namespace {

std::string kind_of(fs::file_type type) {
  switch (type) {
    case fs::file_type::directory:
      return "is a directory";
    case fs::file_type::fifo:
      return "is a FIFO (named pipe)";
    case fs::file_type::socket:
      return "is a socket";
    case fs::file_type::block:
      return "is a block device";
    case fs::file_type::character:
      return "is a character device";
    default:
      return "is not a regular file";
  }
}

#ifndef _WIN32
fs::file_type type_of_mode(mode_t mode) {
  if (S_ISDIR(mode)) return fs::file_type::directory;
  if (S_ISFIFO(mode)) return fs::file_type::fifo;
  if (S_ISSOCK(mode)) return fs::file_type::socket;
  if (S_ISBLK(mode)) return fs::file_type::block;
  if (S_ISCHR(mode)) return fs::file_type::character;
  return fs::file_type::unknown;
}
#endif

}  // namespace

std::string count_of(std::uintmax_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

FileProblem irregular_file_problem(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) {
    std::error_code lec;
    if (fs::is_symlink(fs::symlink_status(path, lec))) {
      const fs::path target = fs::read_symlink(path, lec);
      return {false, "is a dangling symbolic link (to '" + target.string() + "')"};
    }
    return {true, "does not exist"};
  }
  if (ec) {
#ifdef ELOOP
    if (ec.value() == ELOOP) return {false, "is a symbolic link loop (too many levels of symbolic links)"};
#endif
    return {false, "cannot be examined (" + ec.message() + ")"};
  }
  if (st.type() != fs::file_type::regular) return {false, kind_of(st.type())};
  return {};
}

OpenedFile open_regular_file(const std::string& path) {
  OpenedFile out;
#ifndef _WIN32
  // O_NONBLOCK: a FIFO swapped in after the type check must not hang the open; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    out.problem = std::strerror(errno);
    return out;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    out.problem = std::strerror(errno);
    ::close(fd);
    return out;
  }
  if (!S_ISREG(st.st_mode)) {
    out.problem = "it " + kind_of(type_of_mode(st.st_mode)) + " now";
    ::close(fd);
    return out;
  }
  out.file.reset(::fdopen(fd, "rb"));
  if (!out.file) {
    out.problem = std::strerror(errno);
    ::close(fd);
    return out;
  }
  out.size = static_cast<std::uintmax_t>(st.st_size);
#else
  // Windows has no FIFOs in the file system namespace; the type check before the open suffices.
  out.file.reset(std::fopen(path.c_str(), "rb"));
  if (!out.file) {
    out.problem = std::strerror(errno);
    return out;
  }
  std::error_code ec;
  out.size = fs::file_size(path, ec);
  if (ec) {
    out.file.reset();
    out.problem = ec.message();
  }
#endif
  return out;
}

std::vector<uint8_t> read_regular_file(const std::string& path, const std::string& op, const std::string& expected) {
  const std::string quoted = "'" + path + "'";
  if (const FileProblem problem = irregular_file_problem(path))
    throw Error(op, quoted + " " + problem.text + "; expected " + expected);
  OpenedFile f = open_regular_file(path);
  if (!f.file) throw Error(op, "cannot open " + quoted + ": " + f.problem + "; expected " + expected);
  std::vector<uint8_t> bytes;
  try {
    bytes.resize(static_cast<std::size_t>(f.size));
  } catch (const std::bad_alloc&) {
    throw Error(op, quoted + " is " + count_of(f.size, "byte") +
                        ", more than this process can hold in memory; expected " + expected);
  }
  const std::size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f.file.get());
  if (got != bytes.size()) {
    const std::string why = std::ferror(f.file.get()) ? std::string(std::strerror(errno)) : "end of file";
    throw Error(op, "reading " + quoted + " stopped at byte " + std::to_string(got) + " of " +
                        std::to_string(bytes.size()) + " (" + why +
                        "); expected a file that does not change while read");
  }
  if (std::fgetc(f.file.get()) != EOF)
    throw Error(op, quoted + " grew while it was read (more than " + count_of(bytes.size(), "byte") +
                        "); expected a file that does not change while read");
  return bytes;
}

}  // namespace kiln::io
