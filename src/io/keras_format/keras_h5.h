// The HDF5 side of Keras' weight files (model.weights.h5 inside a .keras archive, or a
// .weights.h5 file): groups of numbered datasets, read from and written to memory through
// libhdf5's core driver, so nothing touches the disk outside AtomicFile. Every libhdf5 status is
// checked and turned into a kiln::Error naming the file and the dataset; libhdf5's own error
// printing is silenced. Without libhdf5 (KILN_WITH_HDF5 unset) every function throws
// "[<op>] kiln was built without libhdf5 ...".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/shape.h"

namespace kiln::io::keras {

/// What a dataset holds, before its values are read.
struct H5DatasetInfo {
  std::vector<int64_t> dims;   ///< its extents (empty for a scalar)
  bool floating = false;       ///< a floating-point type (float16, float32, float64)
  bool integer = false;        ///< an integer type
  std::size_t type_bytes = 0;  ///< bytes per element as stored
};

/// An HDF5 file image opened read-only in memory. Paths are "/"-separated from the root
/// ("layers/dense/vars/0").
class H5Reader {
 public:
  /// Opens `image`; `op` and `source` ("m.keras: model.weights.h5") prefix every error.
  H5Reader(const std::vector<uint8_t>& image, std::string op, std::string source);
  ~H5Reader();
  H5Reader(const H5Reader&) = delete;
  H5Reader& operator=(const H5Reader&) = delete;

  /// Whether a group or dataset exists at `path`.
  bool has(const std::string& path) const;
  /// Whether `path` is a group.
  bool is_group(const std::string& path) const;
  /// The names of the members of group `path`, in name order (at most 1,000,000).
  std::vector<std::string> children(const std::string& path) const;
  /// The string attribute `name` of the object at `path`, or "" when absent or not a string.
  std::string string_attribute(const std::string& path, const std::string& name) const;
  /// Shape and type of dataset `path`, read without its values.
  H5DatasetInfo info(const std::string& path) const;
  /// The values of floating-point dataset `path` as float32 (float16 and float64 converted),
  /// after its shape is checked against `expected`.
  std::vector<float> read_floats(const std::string& path, const Shape& expected) const;
  /// The value of scalar integer dataset `path`.
  int64_t read_integer_scalar(const std::string& path) const;
  /// "source: dataset 'path'", for callers' messages.
  std::string where(const std::string& path) const;
  /// The file's name in errors.
  const std::string& source() const { return source_; }
  /// "source: group 'path'".
  std::string group_where(const std::string& path) const { return source_ + ": group '" + path + "'"; }

 private:
  std::string op_, source_;
  int64_t file_ = -1;  // hid_t
};

/// Builds an HDF5 file in memory: groups with string attributes, float32 and int64 datasets.
class H5Writer {
 public:
  /// A new empty file; `op` prefixes errors.
  explicit H5Writer(std::string op);
  ~H5Writer();
  H5Writer(const H5Writer&) = delete;
  H5Writer& operator=(const H5Writer&) = delete;

  /// Creates group `path` (its parent must exist) with string attributes `attributes`.
  void group(const std::string& path, const std::map<std::string, std::string>& attributes = {});
  /// Writes float32 dataset `path` of extents `dims` (empty: a scalar) from `values`.
  void floats(const std::string& path, const std::vector<int64_t>& dims, const float* values);
  /// Writes a scalar int64 dataset.
  void integer_scalar(const std::string& path, int64_t value);
  /// Closes the file and returns its bytes.
  std::vector<uint8_t> finish();

 private:
  std::string op_;
  int64_t file_ = -1;  // hid_t
};

}  // namespace kiln::io::keras
