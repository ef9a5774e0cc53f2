// libFuzzer target for the .npy reader: arbitrary bytes through load_npy_bytes (the path load_npy
// and load_npz take). A malformed input must end in kiln::Error; an accepted one must hold exactly
// the bytes its header promised, and survive a write-and-reread unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "io/numpy_bytes.h"
#include "kiln/error.h"

namespace io = kiln::io;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  kiln::Tensor t;
  io::NpyHeader h;
  try {
    h = io::parse_npy_header(bytes, "load_npy", "fuzz input");
    t = io::load_npy_bytes(bytes, "load_npy", "fuzz input");
  } catch (const kiln::Error&) {
    return 0;  // the expected answer to a malformed file
  }
  if (t.shape() != h.shape || t.dtype() != h.dtype || t.nbytes() != h.data_bytes) std::abort();
  if (h.data_offset + h.data_bytes != size) std::abort();
  // Whatever reads must write, and read back to the same tensor.
  std::vector<uint8_t> again;
  try {
    again = io::npy_bytes(t, "save_npy");
  } catch (const kiln::Error&) {
    std::abort();
  }
  const kiln::Tensor back = io::load_npy_bytes(again, "load_npy", "rewritten fuzz input");
  if (back.shape() != t.shape() || back.dtype() != t.dtype() ||
      (t.nbytes() > 0 && std::memcmp(back.raw_data(), t.raw_data(), t.nbytes()) != 0))
    std::abort();
  return 0;
}
