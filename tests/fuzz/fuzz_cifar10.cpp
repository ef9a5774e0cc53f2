// libFuzzer target for the CIFAR-10 reader: arbitrary bytes through parse_batch, and written to a
// file and read through load_batch_file (the path-opening code users run). A malformed input must
// end in kiln::Error from both; an accepted one must decode to tensors whose every pixel and label
// agrees with the input bytes.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>

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
        if (images[static_cast<std::size_t>(r) * c10::kImageBytes + 3 * p + c] != rec[1 + c * 1024 + p]) std::abort();
  }
}

// A file name private to this process, in memory-backed /dev/shm when there is one.
struct TempPath {
  std::string path;
  TempPath() {
    namespace fs = std::filesystem;
    const fs::path dir = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    path = (dir / ("kiln_fuzz_cifar10_" + std::to_string(::getpid()) + ".bin")).string();
  }
  ~TempPath() { std::remove(path.c_str()); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const TempPath file;
  const std::span<const uint8_t> bytes(data, size);
  bool parsed = false;
  try {
    const c10::Split all = c10::parse_batch(bytes, "fuzz input");
    parsed = true;
    check_decoded(all, bytes);
    const kiln::Tensor scaled = c10::to_float(all.images);
    if (scaled.numel() != all.images.numel()) std::abort();
  } catch (const kiln::Error&) {
    // The expected answer to a malformed batch.
  }
  // The same bytes as a file: accepted exactly when parse_batch accepts them, decoded the same.
  std::FILE* f = std::fopen(file.path.c_str(), "wb");
  if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) std::abort();
  try {
    const c10::Split from_file = c10::load_batch_file(file.path);
    if (!parsed) std::abort();
    check_decoded(from_file, bytes);
  } catch (const kiln::Error&) {
    if (parsed) std::abort();
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
