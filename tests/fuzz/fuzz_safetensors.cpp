// libFuzzer target for the safetensors reader: arbitrary bytes through parse_safetensors (the path
// read_safetensors takes). A malformed input must end in kiln::Error; an accepted one must describe
// tensors lying inside the input, and survive a write-and-reparse unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "io/safetensors.h"
#include "kiln/error.h"

namespace io = kiln::io;

namespace {

// Aborts (a finding for libFuzzer) unless `view`'s entries are sound views of `bytes`.
void check_entries(const io::SafetensorsView& view, std::span<const uint8_t> bytes) {
  for (const auto& e : view.tensors) {
    if (static_cast<uint64_t>(e.shape.numel()) * kiln::dtype_size(e.dtype) != e.bytes.size()) std::abort();
    if (!e.bytes.empty() &&
        (e.bytes.data() < bytes.data() || e.bytes.data() + e.bytes.size() > bytes.data() + bytes.size()))
      std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  io::SafetensorsView view;
  try {
    view = io::parse_safetensors(bytes, "fuzz input");
  } catch (const kiln::Error&) {
    return 0;  // the expected answer to a malformed file
  }
  check_entries(view, bytes);
  // Accepted tensors are small enough to copy: they lie inside the input.
  std::vector<std::pair<std::string, kiln::Tensor>> tensors;
  for (const auto& e : view.tensors) tensors.emplace_back(e.name, io::to_tensor(e));
  std::vector<uint8_t> again;
  try {
    again = io::serialize_safetensors(tensors, view.metadata);
  } catch (const kiln::Error&) {
    std::abort();  // whatever parses must be writable
  }
  const io::SafetensorsView reparsed = io::parse_safetensors(again, "rewritten fuzz input");
  if (reparsed.metadata != view.metadata || reparsed.tensors.size() != view.tensors.size()) std::abort();
  for (const auto& e : view.tensors) {
    const io::SafetensorsEntry* r = reparsed.find(e.name);
    if (!r || r->dtype != e.dtype || r->shape != e.shape || r->bytes.size() != e.bytes.size() ||
        (!e.bytes.empty() && std::memcmp(r->bytes.data(), e.bytes.data(), e.bytes.size()) != 0))
      std::abort();
  }
  return 0;
}
