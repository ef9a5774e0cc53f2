// Zip archives through libzip: the container of Keras' .keras files and NumPy's .npz files.
// Entries are read whole into memory after their declared size is checked against a limit, and
// an archive is written through AtomicFile, so a crash mid-save leaves the previous file intact.
// Without libzip (KILN_WITH_LIBZIP unset) every function throws "[<op>] kiln was built without
// libzip ...".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::io {

/// One member of a zip archive.
struct ZipEntry {
  std::string name;            ///< its path inside the archive ("config.json", "x.npy")
  std::vector<uint8_t> bytes;  ///< its uncompressed contents
};

/// Reads every member of the zip archive at `path` (directories skipped). `op` prefixes errors
/// ("[load_npz] 'a.npz' is not a zip archive: ..."); a member whose uncompressed size exceeds
/// `max_entry_bytes`, or a total above `max_total_bytes`, is refused before it is inflated.
std::vector<ZipEntry> read_zip(const std::string& op, const std::string& path,
                               uint64_t max_entry_bytes = uint64_t{1} << 34,
                               uint64_t max_total_bytes = uint64_t{1} << 36);

/// The same, from bytes in memory (the fuzz targets' entry point).
std::vector<ZipEntry> read_zip_bytes(const std::string& op, const std::vector<uint8_t>& archive,
                                     uint64_t max_entry_bytes = uint64_t{1} << 34,
                                     uint64_t max_total_bytes = uint64_t{1} << 36);

/// Writes `entries` as a zip archive at `path`, atomically (AtomicFile); `compress` deflates
/// them, otherwise they are stored (NumPy's savez and Keras both store).
void write_zip(const std::string& op, const std::string& path, const std::vector<ZipEntry>& entries,
               bool compress = false);

}  // namespace kiln::io
