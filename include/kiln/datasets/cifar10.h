/// CIFAR-10 reader: the official binary batches as NHWC uint8 images and int32 labels (Keras' shape).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kiln/tensor.h"

namespace kiln::datasets::cifar10 {

/// Image height.
inline constexpr int64_t kHeight = 32;
/// Image width.
inline constexpr int64_t kWidth = 32;
/// Image channels (R, G, B).
inline constexpr int64_t kChannels = 3;
/// Number of classes; labels are 0..kNumClasses-1.
inline constexpr int64_t kNumClasses = 10;
/// Bytes of one image (three 32x32 planes).
inline constexpr std::size_t kImageBytes = kHeight * kWidth * kChannels;
/// Bytes of one record of the binary files (1 label byte + image).
inline constexpr std::size_t kRecordBytes = 1 + kImageBytes;

/// One split (or one batch file): images uint8 [N, 32, 32, 3] (NHWC, as Keras), labels int32 [N].
struct Split {
  /// uint8 [N, 32, 32, 3], channels last; divide by 255 (to_float) before training.
  Tensor images;
  /// int32 [N], class indices 0..9.
  Tensor labels;
  /// Number of records N.
  int64_t size() const { return labels.defined() ? labels.numel() : 0; }
};

/// The dataset: 50,000 training and 10,000 test records. `auto [train, test] = load_data(dir);`
struct Cifar10 {
  /// data_batch_1.bin .. data_batch_5.bin, in file order.
  Split train;
  /// test_batch.bin.
  Split test;
};

/// Reads the official binary version. `dir` is the folder holding `cifar-10-batches-bin/` or that
/// folder itself. `limit` caps the records read per split (the first ones, in file order); files
/// past the limit are still checked (present, whole records) but not read. Throws kiln::Error
/// naming the file on a missing directory or file, a size that is not a whole number of records,
/// a label above 9, an empty file or a failed read.
Cifar10 load_data(const std::string& dir, std::optional<int64_t> limit = std::nullopt);

/// Reads one batch file (e.g. "data_batch_1.bin"), at most `limit` records.
Split load_batch_file(const std::string& path, std::optional<int64_t> limit = std::nullopt);

/// Decodes the bytes of one batch file held in memory; `name` is used in error messages.
/// load_batch_file reads the file and calls this, so both check the same things.
Split parse_batch(std::span<const uint8_t> bytes, const std::string& name, std::optional<int64_t> limit = std::nullopt);

/// float32 copy of uint8 `images` scaled to [0, 1] (x / 255, rounded as float64 then float32,
/// as numpy's `images / 255.0` cast to float32), on the same device and of the same shape.
Tensor to_float(const Tensor& images);

/// The class names, indexed by label: "airplane", "automobile", ..., "truck".
const std::array<std::string_view, kNumClasses>& class_names();

}  // namespace kiln::datasets::cifar10
