// The safetensors format (8-byte little-endian header length, JSON header, tensor bytes): a
// bounds-checked parser of untrusted bytes and a writer, both naming the file in their errors.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kiln/dtype.h"
#include "kiln/shape.h"
#include "kiln/tensor.h"

namespace kiln::io {

/// Largest JSON header accepted (the reference implementation's limit); anything longer is refused
/// before a byte of it is parsed.
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

/// "F32", "F64", "F16", "BF16", "I32", "U8" or "I64": the safetensors name of `dtype`.
std::string safetensors_dtype_name(DType dtype);

/// One tensor of a parsed buffer. `bytes` points into the parsed input and is exactly
/// shape.numel() * dtype_size(dtype) long.
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  std::span<const uint8_t> bytes;
};

/// A parsed safetensors buffer: its tensors in data order and its "__metadata__" strings.
struct SafetensorsView {
  std::vector<SafetensorsEntry> tensors;
  std::map<std::string, std::string> metadata;
  /// The entry named `name`, or null.
  const SafetensorsEntry* find(const std::string& name) const;
};

/// Parses a whole safetensors buffer; `source` names it in errors. Every header field is checked
/// before use: lengths, JSON, dtypes, shapes against byte ranges, and that the ranges tile the
/// data section exactly. Throws kiln::Error("safetensors", ...) on any defect.
SafetensorsView parse_safetensors(std::span<const uint8_t> bytes, const std::string& source);

/// A file's bytes and their parse (the entries point into `bytes`, so this moves but never copies).
struct SafetensorsFile {
  std::vector<uint8_t> bytes;
  SafetensorsView view;
  SafetensorsFile() = default;
  SafetensorsFile(SafetensorsFile&&) = default;
  SafetensorsFile& operator=(SafetensorsFile&&) = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
};

/// Reads and parses the regular file at `path`; anything else (a directory, a FIFO, a missing
/// file) is refused before it is opened, with an error of `op` (the caller: "load_model", ...).
SafetensorsFile read_safetensors(const std::string& path, const std::string& op = "safetensors");

/// A CPU tensor holding a copy of `entry`'s elements.
Tensor to_tensor(const SafetensorsEntry& entry);

/// Named tensors (any device, any order) plus metadata, as one safetensors buffer. Names must be
/// unique and may not be "__metadata__"; the header is padded with spaces to a multiple of 8 bytes
/// so that every tensor starts 8-byte aligned in the file.
std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata);

/// Writes serialize_safetensors' bytes to `path` atomically (see atomic_file.h).
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace kiln::io
