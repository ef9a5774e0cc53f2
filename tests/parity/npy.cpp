// .npy format 1.0/2.0: magic, version, header length, a Python-dict header, then raw elements.
#include "npy.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace kiln::parity {

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("[npy] cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& descr, const std::vector<int64_t>& shape, const void* data,
                std::size_t nbytes) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 1);  // "(3,)" for 1-D, "(3, 4)" otherwise
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  // numpy aligns the data to 64 bytes: 10 bytes of preamble, the header, spaces, a newline.
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("[npy] cannot write " + path);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.put(static_cast<char>(len & 0xff)).put(static_cast<char>(len >> 8));
  out << header;
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(nbytes));
  if (!out) throw std::runtime_error("[npy] short write to " + path);
}

}  // namespace

Tensor read_npy(const std::string& path) {
  const std::string bytes = read_all(path);
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw std::runtime_error("[npy] " + path + " is not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
    offset = 10;
  } else {
    uint32_t l = 0;
    std::memcpy(&l, bytes.data() + 8, 4);
    header_len = l;
    offset = 12;
  }
  if (offset + header_len > bytes.size()) throw std::runtime_error("[npy] truncated header in " + path);
  const std::string header = bytes.substr(offset, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([^']*)'")))
    throw std::runtime_error("[npy] no descr in " + path);
  const std::string descr = m[1];
  if (header.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error("[npy] " + path + " is Fortran-ordered; expected C order");
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")))
    throw std::runtime_error("[npy] no shape in " + path);
  std::vector<int64_t> dims;
  const std::string shape_str = m[1];
  const std::regex number("\\d+");
  for (auto it = std::sregex_iterator(shape_str.begin(), shape_str.end(), number); it != std::sregex_iterator(); ++it)
    dims.push_back(std::stoll(it->str()));
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  const char* data = bytes.data() + offset + header_len;
  const std::size_t avail = bytes.size() - offset - header_len;
  if (avail != static_cast<std::size_t>(n) * 4)
    throw std::runtime_error("[npy] " + path + " holds " + std::to_string(avail) + " data bytes; expected " +
                             std::to_string(n * 4));
  if (descr == "<f4") {
    std::vector<float> v(static_cast<std::size_t>(n));
    std::memcpy(v.data(), data, avail);
    return Tensor::from_vector(v, Shape(dims));
  }
  if (descr == "<i4") {
    std::vector<int32_t> v(static_cast<std::size_t>(n));
    std::memcpy(v.data(), data, avail);
    return Tensor::from_vector(v, Shape(dims));
  }
  throw std::runtime_error("[npy] " + path + " has dtype " + descr + "; expected <f4 or <i4");
}

void write_npy(const std::string& path, const Tensor& t) {
  const Tensor c = t.cpu();
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < c.ndim(); ++i) dims.push_back(c.size(i));
  if (c.dtype() == DType::Float32) return write_file(path, "<f4", dims, c.raw_data(), c.nbytes());
  if (c.dtype() == DType::Int32) return write_file(path, "<i4", dims, c.raw_data(), c.nbytes());
  throw std::runtime_error("[npy] cannot write dtype " + std::string(dtype_name(c.dtype())));
}

void write_npy(const std::string& path, const std::vector<double>& values) {
  write_file(path, "<f8", {static_cast<int64_t>(values.size())}, values.data(), values.size() * sizeof(double));
}

}  // namespace kiln::parity
