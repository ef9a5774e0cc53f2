// libFuzzer target for the CIFAR-10 reader: arbitrary bytes through parse_batch (the path that
// load_batch_file takes). A malformed input must end in kiln::Error; an accepted one must decode
// to tensors whose every pixel and label agrees with the input bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "kiln/datasets/cifar10.h"
#include "kiln/error.h"

namespace c10 = kiln::datasets::cifar10;

namespace {

// Aborts (a finding for libFuzzer) when `split` is not the NHWC decoding of `bytes`' first records.
void check_decoded(const c10::Split& split, std::span<const uint8_t> bytes) {
  const int64_t n = split.size();
  if (split.images.numel() != n * static_cast<int64_t>(c10::kImageBytes)) std::abort();
  if (static_cast<std::size_t>(n) * c10::kRecordBytes > bytes.size()) std::abort();
  const uint8_t* images = split.images.data<uint8_t>();
  const int32_t* labels = split.labels.data<int32_t>();
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* rec = bytes.data() + static_cast<std::size_t>(r) * c10::kRecordBytes;
    if (labels[r] != rec[0] || labels[r] >= c10::kNumClasses) std::abort();
    for (std::size_t p = 0; p < 1024; ++p)
      for (std::size_t c = 0; c < 3; ++c)
        if (images[static_cast<std::size_t>(r) * c10::kImageBytes + 3 * p + c] != rec[1 + c * 1024 + p])
          std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  try {
    const c10::Split all = c10::parse_batch(bytes, "fuzz input");
    check_decoded(all, bytes);
    const kiln::Tensor scaled = c10::to_float(all.images);
    if (scaled.numel() != all.images.numel()) std::abort();
  } catch (const kiln::Error&) {
    // The expected answer to a malformed batch.
  }
  // A limit of 0..3 records, taken from the input's last byte, reaches the limit paths as well.
  if (size > 0) {
    try {
      const c10::Split some = c10::parse_batch(bytes, "fuzz input", static_cast<int64_t>(data[size - 1] % 4));
      check_decoded(some, bytes);
    } catch (const kiln::Error&) {
    }
  }
  return 0;
}
