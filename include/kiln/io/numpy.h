/// NumPy's file formats: .npy (one array) and .npz (a zip of named .npy arrays), read and written
/// as NumPy's np.save / np.load / np.savez do, so arrays move between Python and kiln unchanged.
///
/// Element types (little-endian, as NumPy writes them on every common machine):
///   '<f4' float32, '<f8' float64, '<i4' int32, '<i8' int64, '|u1' uint8, and '|b1' (bool), which
///   is read as uint8 0/1 (kiln has no bool type; a mask or a label of 0/1 keeps its meaning).
/// Anything else (big-endian, complex, strings, objects, structured dtypes) is refused with an
/// error that names the dtype and lists these. Fortran-ordered arrays are read into C order (a
/// transposing copy); saves always write C order. Readers check every header field (lengths,
/// shape, data size against the file size) before they allocate.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::io {

/// Reads the .npy file at `path` (format versions 1.0, 2.0 and 3.0) into a CPU tensor of its dtype
/// and shape (a 0-d array gives a tensor of shape []). Throws kiln::Error "[load_npy] ..." naming
/// the file and the field that was wrong.
Tensor load_npy(const std::string& path);

/// Writes `tensor` (from any device) as a C-order .npy file at `path`: format version 1.0, or 2.0
/// when the header needs more than 65535 bytes. The file is replaced atomically.
void save_npy(const std::string& path, const Tensor& tensor);

/// The arrays of an .npz file, in the order they are stored (np.savez's keyword order), looked up
/// by name as NumPy's NpzFile is: `load_npz("data.npz").at("x_train")`.
class NpzArrays {
 public:
  /// One named array.
  using Item = std::pair<std::string, Tensor>;
  NpzArrays() = default;  ///< No arrays.
  /// Arrays in this order; names must be unique.
  explicit NpzArrays(std::vector<Item> items);

  /// The array named `name` (without ".npy"); throws kiln::Error listing the names there are.
  const Tensor& at(const std::string& name) const;
  /// Whether an array is named `name`.
  bool contains(const std::string& name) const;
  /// The names, in stored order.
  std::vector<std::string> names() const;
  /// Every (name, array), in stored order.
  const std::vector<Item>& items() const { return items_; }
  /// Number of arrays.
  std::size_t size() const { return items_.size(); }
  /// Iteration over items(): `for (const auto& [name, tensor] : arrays)`.
  std::vector<Item>::const_iterator begin() const { return items_.begin(); }
  /// End of items().
  std::vector<Item>::const_iterator end() const { return items_.end(); }

 private:
  std::vector<Item> items_;
};

/// Reads the .npz file at `path` (np.savez or np.savez_compressed): each member `<name>.npy`
/// becomes the array `name`. A member that is not a .npy file is an error, as are two members of
/// one name. Needs libzip (kiln built without it throws "[load_npz] kiln was built without libzip").
NpzArrays load_npz(const std::string& path);

/// Writes `arrays` as an .npz file at `path`, member `<name>.npy` per array, in the given order:
/// `save_npz("data.npz", {{"x", x}, {"y", y}})`. `compress` deflates the members
/// (np.savez_compressed); by default they are stored, as np.savez does. Names must be non-empty
/// and unique. The file is replaced atomically. Needs libzip.
void save_npz(const std::string& path, const std::vector<NpzArrays::Item>& arrays, bool compress = false);

}  // namespace kiln::io
