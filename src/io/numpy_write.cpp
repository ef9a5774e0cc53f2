// Writing .npy and .npz as np.save and np.savez do: a version 1.0 header (2.0 only when the header
// outgrows 1.0's 16-bit length), padded with spaces and a '\n' so the data starts 64-byte aligned,
// then the C-order elements. Files are replaced atomically.
#include <set>

#include "io/atomic_file.h"
#include "io/numpy_bytes.h"
#include "io/zip_archive.h"
#include "kiln/error.h"
#include "kiln/io/numpy.h"

namespace kiln::io {

std::string npy_descr(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "<f4";
    case DType::Float64:
      return "<f8";
    case DType::Int32:
      return "<i4";
    case DType::Int64:
      return "<i8";
    case DType::UInt8:
      return "|u1";
    case DType::Float16:
      return "<f2";
    case DType::BFloat16:
      break;  // NumPy has no bfloat16; npy_header_bytes refuses it by name first
  }
  throw Error("save_npy", "dtype " + std::to_string(static_cast<int>(dtype)) + " has no NumPy equivalent");
}

std::vector<uint8_t> npy_header_bytes(DType dtype, const Shape& shape, const std::string& op) {
  if (dtype == DType::BFloat16)
    throw Error(op,
                "NumPy has no bfloat16 dtype; expected float16, float32, float64, int32, int64 or uint8 "
                "(cast with astype(float32) first)");
  std::string dims;
  for (int64_t i = 0; i < shape.ndim(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.ndim() == 1) dims += ",";  // a Python 1-tuple
  std::string header = "{'descr': '" + npy_descr(dtype) + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Version 1.0 stores the header length in 2 bytes; 2.0 in 4. Padding makes preamble + header a
  // multiple of 64 and ends in '\n'.
  auto padded = [&](std::size_t preamble) {
    const std::size_t unpadded = preamble + header.size() + 1;
    return header.size() + (64 - unpadded % 64) % 64 + 1;
  };
  int version = 1;
  std::size_t preamble = 10;
  if (padded(preamble) > 0xffff) {
    version = 2;
    preamble = 12;
  }
  const std::size_t length = padded(preamble);
  if (length > kNpyMaxHeaderBytes)
    throw Error(op, "a tensor of " + std::to_string(shape.ndim()) + " dimensions needs a header of " +
                        std::to_string(length) + " bytes; expected at most " + std::to_string(kNpyMaxHeaderBytes) +
                        " (what load_npy reads)");
  header.append(length - header.size() - 1, ' ');
  header += '\n';

  std::vector<uint8_t> out{0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(version), 0};
  for (std::size_t i = 0; i < preamble - 8; ++i) out.push_back(static_cast<uint8_t>(length >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  return out;
}

std::vector<uint8_t> npy_bytes(const Tensor& tensor, const std::string& op) {
  const Tensor c = tensor.cpu();
  std::vector<uint8_t> out = npy_header_bytes(c.dtype(), c.shape(), op);
  const auto* data = static_cast<const uint8_t*>(c.raw_data());
  if (c.nbytes() > 0) out.insert(out.end(), data, data + c.nbytes());
  return out;
}

void save_npy(const std::string& path, const Tensor& tensor) {
  if (!tensor.defined()) throw Error("save_npy", "the tensor for '" + path + "' is undefined; expected a tensor");
  const Tensor c = tensor.cpu();
  const std::vector<uint8_t> header = npy_header_bytes(c.dtype(), c.shape(), "save_npy");
  // Header and elements go to the file separately: a large tensor is not copied once more.
  AtomicFile file(path);
  file.write(header);
  if (c.nbytes() > 0) file.write({static_cast<const uint8_t*>(c.raw_data()), c.nbytes()});
  file.commit();
}

void save_npz(const std::string& path, const std::vector<NpzArrays::Item>& arrays, bool compress) {
  std::vector<ZipEntry> entries;
  entries.reserve(arrays.size());
  std::set<std::string> seen;
  for (const auto& [name, tensor] : arrays) {
    if (name.empty()) throw Error("save_npz", "an array for '" + path + "' has an empty name; expected a name");
    if (!seen.insert(name).second)
      throw Error("save_npz", "two arrays for '" + path + "' are named '" + name + "'; expected unique names");
    if (!tensor.defined())
      throw Error("save_npz", "array '" + name + "' for '" + path + "' is undefined; expected a tensor");
    entries.push_back({name + ".npy", npy_bytes(tensor, "save_npz")});
  }
  write_zip("save_npz", path, entries, compress);
}

}  // namespace kiln::io
