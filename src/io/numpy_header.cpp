// The .npy header: "\x93NUMPY", a version, a little-endian header length, then a Python dict
// literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces and '\n'.
// Only that literal's grammar is accepted (strings, True/False, a tuple of integers), every length
// is checked against the bytes present, and the shape's product is checked for overflow before any
// size is computed from it.
#include <array>
#include <charconv>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

#include "io/file_read.h"
#include "io/numpy_bytes.h"
#include "kiln/error.h"

namespace kiln::io {

namespace {

struct SupportedDescr {
  std::string_view descr;
  DType dtype;
  bool is_bool;
};

// NumPy writes dtype.str: '<' for multi-byte types on little-endian machines, '|' (no byte order)
// for one-byte types; '<u1' and '<b1' are accepted too since a byte has no order.
constexpr std::array<SupportedDescr, 9> kSupported{{{"<f4", DType::Float32, false},
                                                    {"<f8", DType::Float64, false},
                                                    {"<f2", DType::Float16, false},
                                                    {"<i4", DType::Int32, false},
                                                    {"<i8", DType::Int64, false},
                                                    {"|u1", DType::UInt8, false},
                                                    {"<u1", DType::UInt8, false},
                                                    {"|b1", DType::UInt8, true},
                                                    {"<b1", DType::UInt8, true}}};

constexpr const char* kSupportedList =
    "'<f4' (float32), '<f8' (float64), '<f2' (float16), '<i4' (int32), '<i8' (int64), '|u1' (uint8) or '|b1' (bool, "
    "read as uint8)";

// A cursor over the header text; every error names the source and what was expected there.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& op, const std::string& source)
      : text_(text), op_(op), source_(source) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(op_, source_ + " has a malformed header: " + what + " at byte " + std::to_string(pos_) +
                         " of the header; expected NumPy's {'descr': ..., 'fortran_order': ..., 'shape': (...)}");
  }

  void skip_space() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  bool accept(char c) {
    skip_space();
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("'") + c + "' missing");
  }

  // A Python string literal in single or double quotes, without escapes (NumPy's keys and dtype
  // strings have none).
  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("a string missing");
    const std::size_t start = ++pos_;
    while (!at_end() && text_[pos_] != quote) {
      if (text_[pos_] == '\\') fail("an escape sequence in a string");
      ++pos_;
    }
    if (at_end()) fail("an unterminated string");
    return std::string(text_.substr(start, pos_++ - start));
  }

  bool boolean() {
    skip_space();
    if (text_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (text_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail("True or False missing");
  }

  // A tuple of non-negative integers: (), (3,), (2, 3).
  std::vector<int64_t> int_tuple() {
    expect('(');
    std::vector<int64_t> dims;
    while (!accept(')')) {
      skip_space();
      const char* first = text_.data() + pos_;
      const char* last = text_.data() + text_.size();
      int64_t d = 0;
      const auto [ptr, ec] = std::from_chars(first, last, d);
      if (ec == std::errc::result_out_of_range) fail("a dimension beyond 2^63 - 1");
      if (ec != std::errc() || ptr == first) fail("a dimension that is not an integer");
      if (d < 0) fail("a negative dimension");
      pos_ += static_cast<std::size_t>(ptr - first);
      dims.push_back(d);
      if (!accept(',')) {
        expect(')');
        break;
      }
    }
    return dims;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  const std::string& op_;
  const std::string& source_;
};

uint32_t read_le(std::span<const uint8_t> bytes, std::size_t offset, std::size_t width) {
  uint32_t v = 0;
  for (std::size_t i = 0; i < width; ++i) v |= static_cast<uint32_t>(bytes[offset + i]) << (8 * i);
  return v;
}

std::string tuple_str(const std::vector<int64_t>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + (dims.size() == 1 ? ",)" : ")");
}

}  // namespace

NpyHeader parse_npy_header(std::span<const uint8_t> bytes, const std::string& op, const std::string& source) {
  return parse_npy_header(bytes, bytes.size(), op, source);
}

NpyHeader parse_npy_header(std::span<const uint8_t> bytes, std::size_t file_size, const std::string& op,
                           const std::string& source) {
  // `bytes` may be the file's start only; every size below is checked against the whole file's.
  if (bytes.size() > file_size) bytes = bytes.first(file_size);
  static constexpr std::string_view kMagic("\x93NUMPY", 6);
  const std::string expected = "; expected a .npy file (np.save)";
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0)
    throw Error(op, source + " does not start with NumPy's magic \"\\x93NUMPY\"" + expected);
  NpyHeader h;
  const int major = bytes[6];
  const int minor = bytes[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    throw Error(op, source + " is .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                        "; expected version 1.0, 2.0 or 3.0");
  h.major_version = major;
  // Version 1.0 has a 2-byte header length, 2.0 and 3.0 (UTF-8 header) a 4-byte one.
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  const std::size_t preamble = 8 + length_bytes;
  if (file_size < preamble)
    throw Error(op, source + " ends inside its preamble (" + count_of(file_size, "byte") + "); expected " +
                        std::to_string(preamble) + " bytes before the header");
  if (bytes.size() < preamble) throw Error(op, source + ": the reader was given less than the preamble");
  const std::size_t header_len = read_le(bytes, 8, length_bytes);
  if (header_len > kNpyMaxHeaderBytes)
    throw Error(op, source + " declares a header of " + count_of(header_len, "byte") + "; expected at most " +
                        std::to_string(kNpyMaxHeaderBytes));
  if (header_len > file_size - preamble)
    throw Error(op, source + " declares a header of " + count_of(header_len, "byte") + " but only " +
                        count_of(file_size - preamble, "byte") + " follow the preamble; expected a whole file");
  if (header_len > bytes.size() - preamble) throw Error(op, source + ": the reader was given less than the header");
  h.data_offset = preamble + header_len;

  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + preamble), header_len);
  HeaderParser p(text, op, source);
  std::optional<std::string> descr;
  std::optional<bool> fortran;
  std::optional<std::vector<int64_t>> dims;
  p.expect('{');
  while (!p.accept('}')) {
    const std::string key = p.string_literal();
    p.expect(':');
    if (key == "descr") {
      if (descr) p.fail("a second 'descr'");
      p.skip_space();
      if (p.peek() == '[')
        throw Error(op,
                    source + " has a structured dtype (a list of fields); expected a plain dtype: " + kSupportedList);
      descr = p.string_literal();
    } else if (key == "fortran_order") {
      if (fortran) p.fail("a second 'fortran_order'");
      fortran = p.boolean();
    } else if (key == "shape") {
      if (dims) p.fail("a second 'shape'");
      dims = p.int_tuple();
    } else {
      p.fail("an unknown key '" + key + "'");
    }
    if (!p.accept(',')) {
      p.expect('}');
      break;
    }
  }
  p.skip_space();
  if (!p.at_end()) p.fail("text after the closing '}'");
  if (!descr) p.fail("no 'descr'");
  if (!fortran) p.fail("no 'fortran_order'");
  if (!dims) p.fail("no 'shape'");

  h.descr = *descr;
  h.fortran_order = *fortran;
  bool found = false;
  for (const SupportedDescr& s : kSupported) {
    if (s.descr == h.descr) {
      h.dtype = s.dtype;
      h.is_bool = s.is_bool;
      found = true;
    }
  }
  if (!found) {
    const std::string why = !h.descr.empty() && h.descr[0] == '>' ? " (big-endian)" : "";
    throw Error(
        op, source + " has dtype '" + h.descr + "'" + why + ", which kiln does not read; expected " + kSupportedList);
  }

  // The element count and byte size, refused before they can overflow: a zero extent makes the
  // array empty, but the other extents must still have a product that fits.
  const std::size_t item = dtype_size(h.dtype);
  uint64_t nonzero_product = 1;
  bool empty = false;
  for (const int64_t d : *dims) {
    if (d == 0) {
      empty = true;
      continue;
    }
    if (nonzero_product > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / item / static_cast<uint64_t>(d))
      throw Error(op, source + " has shape " + tuple_str(*dims) + ", whose size overflows 2^63 bytes of " + h.descr +
                          "; expected an array that fits in memory");
    nonzero_product *= static_cast<uint64_t>(d);
  }
  const uint64_t data_bytes = empty ? 0 : nonzero_product * item;
  const std::size_t present = file_size - h.data_offset;
  if (data_bytes != present)
    throw Error(op, source + " holds " + count_of(present, "data byte") + "; expected " + std::to_string(data_bytes) +
                        " for shape " + tuple_str(*dims) + " of '" + h.descr + "'" +
                        (data_bytes > present ? " (the file is truncated)" : " (and nothing after them)"));
  h.data_bytes = static_cast<std::size_t>(data_bytes);
  h.shape = Shape(std::move(*dims));
  return h;
}

}  // namespace kiln::io
