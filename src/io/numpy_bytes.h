// NumPy .npy in memory: the header parser, the array decoder and the encoder behind load_npy,
// save_npy and the .npz functions (and the fuzz targets' entry points). `source` in every function
// is how errors name the bytes: "'x.npy'" or "'data.npz' member 'x.npy'".
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/zip_archive.h"
#include "kiln/io/numpy.h"
#include "kiln/tensor.h"

namespace kiln::io {

/// Longest header the reader accepts (NumPy's own np.load stops at 10000 bytes by default; kiln
/// allows more so that save_npy's 2.0 headers read back).
inline constexpr std::size_t kNpyMaxHeaderBytes = std::size_t{1} << 20;

/// What a .npy header says, checked against the bytes that follow it.
struct NpyHeader {
  int major_version = 1;  ///< 1, 2 or 3
  std::string descr;      ///< as written: "<f4"
  DType dtype = DType::Float32;
  bool is_bool = false;        ///< '|b1': read as uint8 0/1
  bool fortran_order = false;  ///< the data is column-major
  Shape shape;
  std::size_t data_offset = 0;  ///< where the elements start
  std::size_t data_bytes = 0;   ///< numel * element size, present in full after data_offset
};

/// Parses and checks the header of the .npy file in `bytes`: magic, version, header length, the
/// dict's keys and values, the dtype, the shape's product and the data size against the bytes
/// present. Throws kiln::Error(op, source + ...).
NpyHeader parse_npy_header(std::span<const uint8_t> bytes, const std::string& op, const std::string& source);

/// The same for a file of `file_size` bytes of which `head` is the start, at least its preamble and
/// header where the file has them (the first kNpyMaxHeaderBytes + 12 bytes suffice): load_npy reads
/// the elements straight into the tensor afterwards.
NpyHeader parse_npy_header(std::span<const uint8_t> head, std::size_t file_size, const std::string& op,
                           const std::string& source);

/// The array in `bytes` (a whole .npy file) as a CPU tensor in C order.
Tensor load_npy_bytes(std::span<const uint8_t> bytes, const std::string& op, const std::string& source);

/// The preamble and header that save_npy writes for a C-order array of `dtype` and `shape`
/// (version 1.0; 2.0 when the header needs more than 65535 bytes), padded so that the data starts
/// at a multiple of 64 bytes, as NumPy pads.
std::vector<uint8_t> npy_header_bytes(DType dtype, const Shape& shape, const std::string& op);

/// A whole .npy file for `tensor` (copied to the CPU first).
std::vector<uint8_t> npy_bytes(const Tensor& tensor, const std::string& op);

/// The arrays of an .npz archive's members ('<name>.npy' each); `source` names the archive.
NpzArrays npz_from_entries(const std::vector<ZipEntry>& entries, const std::string& op, const std::string& source);

/// NumPy's descr for `dtype`: "<f4", "<f8", "<f2", "<i4", "<i8", "|u1"; throws for bfloat16 (NumPy has none).
std::string npy_descr(DType dtype);

}  // namespace kiln::io
