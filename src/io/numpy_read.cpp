// Reading .npy and .npz: the checked header (numpy_header.cpp) tells where the elements are; they
// are copied into a new CPU tensor, transposed from Fortran order when the file says so, and bool
// bytes are normalised to 0/1.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "io/file_read.h"
#include "io/numpy_bytes.h"
#include "io/zip_archive.h"
#include "kiln/error.h"
#include "kiln/io/numpy.h"

namespace kiln::io {

namespace {

// Copies column-major `src` of `dims` into row-major `dst`: walks the source in its own order with
// a multi-index whose first dimension runs fastest, and keeps the matching row-major offset.
void fortran_to_c(const uint8_t* src, uint8_t* dst, const std::vector<int64_t>& dims, std::size_t item) {
  const std::size_t ndim = dims.size();
  std::vector<int64_t> stride(ndim, 1);  // row-major strides, in elements
  for (std::size_t i = ndim; i-- > 1;) stride[i - 1] = stride[i] * dims[i];
  std::vector<int64_t> index(ndim, 0);
  int64_t numel = 1;
  for (const int64_t d : dims) numel *= d;
  int64_t offset = 0;
  for (int64_t n = 0; n < numel; ++n) {
    std::memcpy(dst + offset * static_cast<int64_t>(item), src + n * static_cast<int64_t>(item), item);
    for (std::size_t k = 0; k < ndim; ++k) {
      offset += stride[k];
      if (++index[k] < dims[k]) break;
      offset -= stride[k] * dims[k];
      index[k] = 0;
    }
  }
}

constexpr const char* kNpySuffix = ".npy";

// Fills `t` (shaped by `h`) from the file's elements at `src`.
void decode_into(const NpyHeader& h, const uint8_t* src, Tensor& t) {
  auto* dst = static_cast<uint8_t*>(t.raw_data());
  if (h.fortran_order && h.shape.ndim() > 1)
    fortran_to_c(src, dst, h.shape.dims(), dtype_size(h.dtype));
  else if (src != dst)
    std::memcpy(dst, src, h.data_bytes);
  // NumPy's bools are 0/1 bytes; anything else a writer left there still means true.
  if (h.is_bool) std::transform(dst, dst + h.data_bytes, dst, [](uint8_t b) { return b != 0 ? 1 : 0; });
}

}  // namespace

Tensor load_npy_bytes(std::span<const uint8_t> bytes, const std::string& op, const std::string& source) {
  const NpyHeader h = parse_npy_header(bytes, op, source);
  Tensor t = Tensor::empty(h.shape, h.dtype);
  if (h.data_bytes > 0) decode_into(h, bytes.data() + h.data_offset, t);
  return t;
}

Tensor load_npy(const std::string& path) {
  // The header is read and checked first; the elements then go straight into the tensor, so a large
  // file is held once, not twice.
  static const std::string op = "load_npy";
  static const std::string expected = "a .npy file (np.save)";
  const std::string source = "'" + path + "'";
  if (const FileProblem problem = irregular_file_problem(path))
    throw Error(op, source + " " + problem.text + "; expected " + expected);
  OpenedFile f = open_regular_file(path);
  if (!f.file) throw Error(op, "cannot open " + source + ": " + f.problem + "; expected " + expected);
  const auto short_read = [&](std::size_t at) {
    const std::string why = std::ferror(f.file.get()) ? std::string(std::strerror(errno)) : "end of file";
    return Error(op, "reading " + source + " stopped at byte " + std::to_string(at) + " of " + std::to_string(f.size) +
                         " (" + why + "); expected a file that does not change while read");
  };
  std::vector<uint8_t> head(static_cast<std::size_t>(std::min<std::uintmax_t>(f.size, kNpyMaxHeaderBytes + 12)));
  if (!head.empty() && std::fread(head.data(), 1, head.size(), f.file.get()) != head.size()) throw short_read(0);
  const NpyHeader h = parse_npy_header(head, static_cast<std::size_t>(f.size), op, source);
  Tensor t = Tensor::empty(h.shape, h.dtype);
  if (h.data_bytes > 0) {
    const bool in_place = !(h.fortran_order && h.shape.ndim() > 1);
    std::vector<uint8_t> staging;  // only a Fortran-ordered file needs its bytes apart before the transpose
    if (!in_place) staging.resize(h.data_bytes);
    uint8_t* dst = in_place ? static_cast<uint8_t*>(t.raw_data()) : staging.data();
    // Elements already in `head`, then the rest from the file.
    const std::size_t have = std::min(h.data_bytes, head.size() - h.data_offset);
    std::memcpy(dst, head.data() + h.data_offset, have);
    if (have < h.data_bytes && std::fread(dst + have, 1, h.data_bytes - have, f.file.get()) != h.data_bytes - have)
      throw short_read(h.data_offset + have);
    decode_into(h, dst, t);
  }
  if (std::fgetc(f.file.get()) != EOF)
    throw Error(op, source + " grew while it was read (more than " + count_of(f.size, "byte") +
                        "); expected a file that does not change while read");
  return t;
}

NpzArrays::NpzArrays(std::vector<Item> items) : items_(std::move(items)) {
  std::set<std::string> seen;
  for (const Item& item : items_)
    if (!seen.insert(item.first).second)
      throw Error("npz", "two arrays are named '" + item.first + "'; expected unique names");
}

const Tensor& NpzArrays::at(const std::string& name) const {
  for (const Item& item : items_)
    if (item.first == name) return item.second;
  std::string names;
  for (const Item& item : items_) names += (names.empty() ? "'" : ", '") + item.first + "'";
  throw Error("npz", "no array is named '" + name + "'; expected one of " + (names.empty() ? "(none)" : names));
}

bool NpzArrays::contains(const std::string& name) const {
  return std::any_of(items_.begin(), items_.end(), [&](const Item& item) { return item.first == name; });
}

std::vector<std::string> NpzArrays::names() const {
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const Item& item : items_) out.push_back(item.first);
  return out;
}

NpzArrays npz_from_entries(const std::vector<ZipEntry>& entries, const std::string& op, const std::string& source) {
  std::vector<NpzArrays::Item> items;
  std::set<std::string> seen;
  for (const ZipEntry& e : entries) {
    const std::string member = source + " member '" + e.name + "'";
    if (!e.name.ends_with(kNpySuffix) || e.name.size() == std::strlen(kNpySuffix))
      throw Error(op, member + " is not named '<name>.npy'; expected only arrays, as np.savez writes them");
    std::string name = e.name.substr(0, e.name.size() - std::strlen(kNpySuffix));
    if (!seen.insert(name).second)
      throw Error(op, source + " holds two members named '" + e.name + "'; expected one array per name");
    items.emplace_back(std::move(name), load_npy_bytes(e.bytes, op, member));
  }
  return NpzArrays(std::move(items));
}

NpzArrays load_npz(const std::string& path) {
  return npz_from_entries(read_zip("load_npz", path), "load_npz", "'" + path + "'");
}

}  // namespace kiln::io
