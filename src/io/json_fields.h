// Typed, range-checked reads of fields of untrusted JSON (saved model configs), with errors that
// say which field of which file was wrong and what was expected.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kiln::io {

/// Largest extent accepted for a unit count, window, stride or input dimension read from a file.
inline constexpr int64_t kMaxExtent = int64_t{1} << 31;

/// Reads fields of one JSON object; `where` ("file: layer 1 ('dense')") prefixes every error.
class JsonFields {
 public:
  /// Fields of `object`, which must be a JSON object (else an error naming `where`).
  JsonFields(const nlohmann::json& object, std::string where, std::string op = "load_model");
  /// Whether `key` is present and not null.
  bool has(const std::string& key) const;
  /// The raw value of a required field.
  const nlohmann::json& at(const std::string& key) const;
  /// An integer in [min, max].
  int64_t integer(const std::string& key, int64_t min, int64_t max) const;
  /// A finite number.
  double number(const std::string& key) const;
  /// A boolean.
  bool boolean(const std::string& key) const;
  /// A string.
  std::string string(const std::string& key) const;
  /// Two integers in [1, kMaxExtent].
  std::array<int64_t, 2> pair(const std::string& key) const;
  /// A list of integers in [1, kMaxExtent] (empty allowed); absent or null reads as empty.
  std::vector<int64_t> extents(const std::string& key) const;
  /// A list of strings.
  std::vector<std::string> strings(const std::string& key) const;
  /// Throws "[op] where: what; expected ...".
  [[noreturn]] void fail(const std::string& message) const;
  /// The prefix of this object's errors.
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& object_;
  std::string where_;
  std::string op_;
};

}  // namespace kiln::io
