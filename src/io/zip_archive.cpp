// Zip archives through libzip. Reading opens the archive with libzip's stricter consistency checks,
// refuses a member whose declared uncompressed size (or the running total) is over the caller's
// limit before inflating it, grows each member's buffer only as bytes actually arrive, and checks
// that the inflated size is the declared one (libzip checks the CRC). Writing builds the archive
// in a libzip buffer source and hands the bytes to write_file_atomically.
#include "io/zip_archive.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "io/atomic_file.h"
#include "io/file_read.h"
#include "kiln/error.h"

#if KILN_WITH_LIBZIP
#include <zip.h>
#endif

namespace kiln::io {

#if KILN_WITH_LIBZIP

namespace {

std::string zip_error_text(int code) {
  zip_error_t e;
  zip_error_init_with_code(&e, code);
  std::string text = zip_error_strerror(&e);
  zip_error_fini(&e);
  return text;
}

struct ZipCloser {
  void operator()(zip_t* za) const { zip_discard(za); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipCloser>;
struct ZipFileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};
using ZipFilePtr = std::unique_ptr<zip_file_t, ZipFileCloser>;
struct SourceFreer {
  void operator()(zip_source_t* s) const { zip_source_free(s); }
};
using SourcePtr = std::unique_ptr<zip_source_t, SourceFreer>;

// Every member of the open archive `za`; `source` names it in errors ("'a.npz'").
std::vector<ZipEntry> read_entries(zip_t* za, const std::string& op, const std::string& source,
                                   uint64_t max_entry_bytes, uint64_t max_total_bytes) {
  const zip_int64_t count = zip_get_num_entries(za, 0);
  if (count < 0) throw Error(op, source + ": cannot count the members; expected a zip archive");
  std::vector<ZipEntry> entries;
  uint64_t total = 0;
  for (zip_int64_t i = 0; i < count; ++i) {
    const auto index = static_cast<zip_uint64_t>(i);
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(za, index, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME) || st.name == nullptr ||
        !(st.valid & ZIP_STAT_SIZE))
      throw Error(op, source + " member " + std::to_string(i) + " cannot be examined (" +
                          zip_error_strerror(zip_get_error(za)) + "); expected a readable zip archive");
    std::string name = st.name;
    if (name.ends_with('/')) continue;  // a directory
    const std::string member = source + " member '" + name + "'";
    if (st.size > max_entry_bytes)
      throw Error(op, member + " declares " + count_of(st.size, "byte") + " uncompressed; expected at most " +
                          std::to_string(max_entry_bytes));
    total += st.size;
    if (total > max_total_bytes)
      throw Error(op, source + " declares more than " + std::to_string(max_total_bytes) +
                          " uncompressed bytes in all (up to member '" + name + "'); expected at most that");
    ZipFilePtr file(zip_fopen_index(za, index, 0));
    if (!file)
      throw Error(op, member + " cannot be opened: " + zip_error_strerror(zip_get_error(za)) +
                          "; expected a stored or deflated member without encryption");
    // The declared size is only a claim: reserve a bounded amount and let the vector grow with the
    // bytes that really arrive, so a small archive cannot make the reader allocate its claim.
    std::vector<uint8_t> bytes;
    bytes.reserve(static_cast<std::size_t>(std::min<uint64_t>(st.size, uint64_t{1} << 24)));
    std::vector<uint8_t> chunk(std::size_t{1} << 16);
    for (;;) {
      const zip_int64_t got = zip_fread(file.get(), chunk.data(), chunk.size());
      if (got < 0)
        throw Error(op, member + " cannot be read: " + zip_error_strerror(zip_file_get_error(file.get())) +
                            "; expected intact data");
      if (got == 0) break;
      if (static_cast<uint64_t>(got) > st.size - bytes.size())
        throw Error(op, member + " inflates to more than its declared " + count_of(st.size, "byte") +
                            "; expected exactly that many");
      bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
    }
    if (bytes.size() != st.size)
      throw Error(op, member + " inflates to " + count_of(bytes.size(), "byte") + "; expected its declared " +
                          std::to_string(st.size));
    entries.push_back({std::move(name), std::move(bytes)});
  }
  return entries;
}

}  // namespace

std::vector<ZipEntry> read_zip(const std::string& op, const std::string& path, uint64_t max_entry_bytes,
                               uint64_t max_total_bytes) {
  const std::string source = "'" + path + "'";
  if (const FileProblem problem = irregular_file_problem(path))
    throw Error(op, source + " " + problem.text + "; expected a zip archive");
  int code = 0;
  ZipPtr za(zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code));
  if (!za) throw Error(op, source + " is not a readable zip archive: " + zip_error_text(code));
  return read_entries(za.get(), op, source, max_entry_bytes, max_total_bytes);
}

std::vector<ZipEntry> read_zip_bytes(const std::string& op, const std::vector<uint8_t>& archive,
                                     uint64_t max_entry_bytes, uint64_t max_total_bytes) {
  const std::string source = "the zip archive in memory";
  zip_error_t error;
  zip_error_init(&error);
  SourcePtr src(zip_source_buffer_create(archive.data(), archive.size(), 0, &error));
  if (!src) {
    const std::string text = zip_error_strerror(&error);
    zip_error_fini(&error);
    throw Error(op, "cannot read " + source + ": " + text);
  }
  ZipPtr za(zip_open_from_source(src.get(), ZIP_RDONLY | ZIP_CHECKCONS, &error));
  if (!za) {
    const std::string text = zip_error_strerror(&error);
    zip_error_fini(&error);
    throw Error(op, source + " is not a readable zip archive: " + text);
  }
  zip_error_fini(&error);
  (void)src.release();  // the archive owns the source now
  return read_entries(za.get(), op, source, max_entry_bytes, max_total_bytes);
}

void write_zip(const std::string& op, const std::string& path, const std::vector<ZipEntry>& entries, bool compress) {
  // libzip writes nothing for an archive without members; the empty zip is its end record alone.
  if (entries.empty()) {
    std::vector<uint8_t> empty(22, 0);
    empty[0] = 'P';
    empty[1] = 'K';
    empty[2] = 5;
    empty[3] = 6;
    write_file_atomically(path, empty);
    return;
  }
  zip_error_t error;
  zip_error_init(&error);
  SourcePtr src(zip_source_buffer_create(nullptr, 0, 0, &error));
  ZipPtr za(src ? zip_open_from_source(src.get(), ZIP_CREATE | ZIP_TRUNCATE, &error) : nullptr);
  if (!za) {
    const std::string text = zip_error_strerror(&error);
    zip_error_fini(&error);
    throw Error(op, "cannot start a zip archive for '" + path + "': " + text);
  }
  zip_error_fini(&error);
  zip_source_keep(src.get());  // zip_close frees the archive's reference; the bytes are read after it
  for (const ZipEntry& e : entries) {
    zip_source_t* member = zip_source_buffer(za.get(), e.bytes.data(), e.bytes.size(), 0);
    const zip_int64_t index = member ? zip_file_add(za.get(), e.name.c_str(), member, ZIP_FL_ENC_UTF_8) : -1;
    if (index < 0) {
      zip_source_free(member);
      throw Error(op, "cannot add '" + e.name + "' to '" + path + "': " + zip_error_strerror(zip_get_error(za.get())) +
                          "; expected unique member names");
    }
    if (zip_set_file_compression(za.get(), static_cast<zip_uint64_t>(index), compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE,
                                 0) != 0)
      throw Error(op, "cannot set the compression of '" + e.name + "': " + zip_error_strerror(zip_get_error(za.get())));
  }
  if (zip_close(za.get()) != 0)
    throw Error(op, "cannot write the zip archive for '" + path + "': " + zip_error_strerror(zip_get_error(za.get())));
  (void)za.release();  // closed, and freed by zip_close

  zip_source_t* s = src.get();
  if (zip_source_open(s) != 0)
    throw Error(op, "cannot read back the zip archive for '" + path + "': " + zip_error_strerror(zip_source_error(s)));
  std::vector<uint8_t> bytes;
  zip_int64_t size = -1;
  if (zip_source_seek(s, 0, SEEK_END) == 0) size = zip_source_tell(s);
  if (size >= 0 && zip_source_seek(s, 0, SEEK_SET) == 0) {
    bytes.resize(static_cast<std::size_t>(size));
    if (zip_source_read(s, bytes.data(), bytes.size()) != size) size = -1;
  }
  zip_source_close(s);
  if (size < 0)
    throw Error(op, "cannot read back the zip archive for '" + path + "': " + zip_error_strerror(zip_source_error(s)));
  write_file_atomically(path, bytes);
}

#else  // !KILN_WITH_LIBZIP

namespace {
[[noreturn]] void no_libzip(const std::string& op) {
  throw Error(op, "kiln was built without libzip; rebuild with libzip-dev installed");
}
}  // namespace

std::vector<ZipEntry> read_zip(const std::string& op, const std::string&, uint64_t, uint64_t) { no_libzip(op); }
std::vector<ZipEntry> read_zip_bytes(const std::string& op, const std::vector<uint8_t>&, uint64_t, uint64_t) {
  no_libzip(op);
}
void write_zip(const std::string& op, const std::string&, const std::vector<ZipEntry>&, bool) { no_libzip(op); }

#endif

}  // namespace kiln::io
