// libFuzzer target for the .npz reader: arbitrary bytes through read_zip_bytes (libzip, the size
// limits, the inflated-size check) and then each member through the .npy reader, as load_npz does.
// Limits are small so that a declared size cannot make an input run for long; a malformed input
// must end in kiln::Error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "io/numpy_bytes.h"
#include "io/zip_archive.h"
#include "kiln/error.h"

namespace io = kiln::io;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::vector<uint8_t> archive(data, data + size);
  std::vector<io::ZipEntry> entries;
  try {
    entries = io::read_zip_bytes("load_npz", archive, uint64_t{1} << 24, uint64_t{1} << 26);
  } catch (const kiln::Error&) {
    return 0;
  }
  for (const io::ZipEntry& e : entries)
    if (e.bytes.size() > (std::size_t{1} << 24)) std::abort();  // the limit held
  try {
    const io::NpzArrays arrays = io::npz_from_entries(entries, "load_npz", "fuzz input");
    if (arrays.size() != entries.size()) std::abort();
  } catch (const kiln::Error&) {
    return 0;
  }
  return 0;
}
