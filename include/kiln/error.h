/// Exceptions thrown by kiln: every message reads "[op] what happened; expected what".
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace kiln {

/// Base of every exception kiln throws.
class Error : public std::runtime_error {
 public:
  /// Builds "[op] message".
  Error(const std::string& op, const std::string& message);
  /// The op or component that raised the error (e.g. "dense").
  const std::string& op() const { return op_; }
  /// The message without its "[op] " prefix (to say it again under another op).
  std::string message() const { return std::string(what()).substr(op_.size() + 3); }

 private:
  std::string op_;
};

/// A device could not satisfy an allocation.
class OutOfMemoryError : public Error {
 public:
  /// `requested` bytes could not be allocated on `device`.
  OutOfMemoryError(const std::string& op, const std::string& message, std::size_t requested);
  /// Size of the allocation that failed, in bytes.
  std::size_t requested_bytes() const { return requested_; }

 private:
  std::size_t requested_;
};

/// Training produced a NaN or an infinity.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

}  // namespace kiln
